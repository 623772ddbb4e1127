"""Score-CAM speed paths keep the definition: BatchNorm folding, chunking and the constant-channel
shortcut give the maps of a plain per-channel loop (METHODS.md, Score-CAM)."""
import torch
import torch.nn.functional as F

from landslide_wsss.cam.scorecam import ScoreCAM, fold_batchnorm
from landslide_wsss.models.classifier import build_classifier


def _model():
    torch.manual_seed(0)
    m = build_classifier({"arch": "resnet18", "in_bands": 3, "output_stride": 16, "width": 8}).eval()
    for mod in m.modules():  # non-trivial BatchNorm statistics, so folding is really exercised
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.2, 0.2)
            mod.running_var.uniform_(0.5, 2.0)
            mod.weight.data.uniform_(0.5, 1.5)
            mod.bias.data.uniform_(-0.1, 0.1)
    return m


def _reference(model, x):
    """Plain loop over images and channels, no batching, no folding."""
    acts = {}
    h = model.layer4.register_forward_hook(lambda mod, i, o: acts.__setitem__("a", o))
    with torch.no_grad():
        model(x)
    h.remove()
    a = acts["a"]
    out = []
    with torch.no_grad():
        for i in range(x.shape[0]):
            scores = []
            for k in range(a.shape[1]):
                up = F.interpolate(a[i:i + 1, k:k + 1], size=x.shape[-2:], mode="bilinear", align_corners=False)
                rng = up.max() - up.min()
                hm = (up - up.min()) / rng if rng > 0 else torch.zeros_like(up)
                scores.append(model(x[i:i + 1] * hm)[0])
            w = torch.softmax(torch.stack(scores), 0)
            cam = F.relu(torch.einsum("k,khw->hw", w, a[i]))
            out.append(F.interpolate(cam[None, None], size=x.shape[-2:], mode="bilinear", align_corners=False)[0, 0])
    return torch.stack(out)


def test_exact_matches_plain_loop():
    model = _model()
    x = torch.randn(2, 3, 64, 64)
    x[1, :, :, :] = 0.0  # a blank tile: constant activations exercise the shared f(0) score
    ref = _reference(model, x)
    cam = ScoreCAM(model, chunk=24)
    got = cam(x)
    assert torch.allclose(got, ref, rtol=1e-4, atol=1e-5 * float(ref.abs().max()) + 1e-7)
    assert cam.masked_passes <= 2 * model.num_features


def test_fold_batchnorm_same_logits_and_refreshes_after_weight_change():
    model = _model()
    x = torch.randn(3, 3, 64, 64)
    fused = fold_batchnorm(model)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    with torch.no_grad():
        assert torch.allclose(fused(x), model(x), rtol=1e-4, atol=1e-4)
    cam = ScoreCAM(model, top_k=4)
    first = cam.scoring_model()
    assert cam.scoring_model() is first
    with torch.no_grad():
        model.fc.bias.add_(1.0)
    assert cam.scoring_model() is not first


def test_dense_form_gives_the_same_maps():
    """The one-pass form traced into the ONNX graph scores as the chunked, folded, shortcut path does,
    exact and top-k, blank tile included."""
    model = _model()
    x = torch.randn(3, 3, 64, 64)
    x[1] = 0.0
    for options in ({}, {"top_k": 5}, {"top_k": 5, "select": "std", "mask_size": 32}):
        dense = ScoreCAM(model, dense=True, **options)
        want = ScoreCAM(model, chunk=24, **options)(x)
        got = dense(x)
        assert dense.scoring_model() is model and dense.masked_passes == 3 * (options.get("top_k") or model.num_features)
        assert torch.allclose(got, want, rtol=1e-4, atol=1e-5 * float(want.abs().max()) + 1e-7)
