"""Classifier: N bands, output stride by stride/dilation, training, checkpoint resume, model files."""
import numpy as np
import pytest
import torch

from landslide_wsss.datasets.common import ChipSet
from landslide_wsss.models.classifier import Classifier
from landslide_wsss.training.classifier import predict_probs, train_classifier

torch.set_num_threads(1)  # tiny models: one thread is faster and immune to oversubscription


@pytest.mark.parametrize("os_,arch", [(8, "resnet18"), (16, "resnet18"), (32, "resnet18"), (16, "resnet50")])
def test_output_stride_and_bands(os_, arch):
    m = Classifier(arch=arch, in_bands=5, output_stride=os_, width=8).eval()
    x = torch.randn(2, 5, 64, 64)
    with torch.no_grad():
        f = m.features(x)
        y = m(x)
    assert f.shape[-2:] == (64 // os_, 64 // os_)
    assert f.shape[1] == m.num_features
    assert y.shape == (2,)


def test_dilation_keeps_receptive_field_growing():
    m = Classifier(output_stride=8, width=8)
    convs = [c for c in m.layer4.modules() if isinstance(c, torch.nn.Conv2d) and c.kernel_size == (3, 3)]
    assert all(c.stride == (1, 1) for c in convs)
    assert {c.dilation for c in convs} == {(2, 2), (4, 4)}


def test_normalization_buffers():
    m = Classifier(in_bands=2, width=8, mean=[10.0, 20.0], std=[2.0, 4.0])
    x = torch.tensor([10.0, 24.0]).view(1, 2, 1, 1)
    assert torch.allclose(m.normalize(x).flatten(), torch.tensor([0.0, 1.0]))
    assert "norm_mean" in m.state_dict()


def synthetic_squares(n=96, size=32, seed=0):
    """Positives carry a bright 10x10 square somewhere; negatives are plain noise."""
    rng = np.random.default_rng(seed)
    imgs = rng.integers(30, 90, size=(n, 3, size, size)).astype(np.uint8)
    labels = (np.arange(n) % 2).astype(np.float32)
    boxes = []
    for i in range(n):
        r, c = rng.integers(0, size - 10, 2)
        boxes.append((r, c))
        if labels[i]:
            imgs[i, :, r:r + 10, c:c + 10] = 220
    return ChipSet(imgs, labels), boxes


def test_training_learns_squares():
    chips, _ = synthetic_squares()
    m, hist = train_classifier(chips, {"width": 8, "output_stride": 8}, epochs=4, batch_size=16, lr=3e-3,
                               log=lambda **k: None, threads=1)
    acc = ((predict_probs(m, chips.images) > 0.5) == (chips.labels > 0.5)).mean()
    assert acc > 0.9
    assert hist[-1]["loss"] < hist[0]["loss"]


def test_loss_plot_draws_the_recorded_holdout_accuracy(tmp_path):
    """The hold-out panel of the loss plot reads the key train_classifier records."""
    from landslide_wsss.training.classifier import loss_plot

    chips, _ = synthetic_squares(n=32)
    _, hist = train_classifier(chips, {"width": 8, "output_stride": 16}, val=chips.subset(range(8)), epochs=2,
                               batch_size=16, log=lambda **k: None, threads=1)
    drawn = loss_plot(hist, tmp_path / "loss.png")
    assert drawn == {"BCE loss": {"loss": 2}, "hold-out accuracy": {"holdout_acc": 1}}  # the last epoch
    assert (tmp_path / "loss.png").stat().st_size > 1000
    _, hist = train_classifier(chips, {"width": 8, "output_stride": 16}, epochs=1, batch_size=16,
                               log=lambda **k: None, threads=1)
    assert loss_plot(hist, tmp_path / "no_holdout.png") == {"BCE loss": {"loss": 1}}  # no empty panel


def test_training_is_deterministic_with_a_seed():
    chips, _ = synthetic_squares(n=32)
    runs = [train_classifier(chips, {"width": 8, "output_stride": 8}, epochs=1, batch_size=16, seed=5,
                             log=lambda **k: None, threads=1)[0].state_dict() for _ in range(2)]
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])


def test_resume_matches_uninterrupted(tmp_path):
    chips, _ = synthetic_squares(n=32)
    cfg = {"width": 8, "output_stride": 16}
    quiet = lambda **k: None  # noqa: E731
    ref, _ = train_classifier(chips, cfg, epochs=3, batch_size=16, state_path=tmp_path / "a.safetensors", log=quiet, threads=1)
    from landslide_wsss.checkpoint import load_checkpoint
    _, meta = load_checkpoint(tmp_path / "a.safetensors")
    assert meta["epoch"] == 2
    # interrupt right after the first epoch's state is written, then resume with a fresh call
    c_state = tmp_path / "c.safetensors"
    import landslide_wsss.training.classifier as tc
    orig = tc.save_training_state
    calls = {"n": 0}

    class Stop(Exception):
        pass

    def save_then_stop(*a, **k):
        orig(*a, **k)
        calls["n"] += 1
        if calls["n"] == 1:
            raise Stop

    tc.save_training_state = save_then_stop
    try:
        with pytest.raises(Stop):
            train_classifier(chips, cfg, epochs=3, batch_size=16, state_path=c_state, log=quiet, threads=1)
    finally:
        tc.save_training_state = orig
    resumed, _ = train_classifier(chips, cfg, epochs=3, batch_size=16, state_path=c_state, log=quiet, threads=1)
    for (k, a), (_, b) in zip(ref.state_dict().items(), resumed.state_dict().items()):
        assert torch.allclose(a.float(), b.float(), atol=1e-5), k


def test_model_file_roundtrip(tmp_path):
    from landslide_wsss.checkpoint import save_checkpoint
    from landslide_wsss.wsss import DEFAULT_PARAMS, classifier_metadata, load_model
    m = Classifier(width=8, output_stride=16, mean=[50.0] * 3, std=[20.0] * 3).eval()
    meta = classifier_metadata(m, tile=32, training={}, params=dict(DEFAULT_PARAMS))
    path = tmp_path / "m.safetensors"
    save_checkpoint(path, {f"classifier.{k}": v for k, v in m.state_dict().items()}, meta)
    scorer = load_model(path, method="cam", device="cpu", params={"bf16": False})
    x = np.random.default_rng(0).uniform(0, 255, (2, 3, 32, 32)).astype(np.float32)
    with torch.no_grad():
        ref = torch.sigmoid(m(m.normalize(torch.from_numpy(x)))).numpy()
    p = scorer.networks.probabilities(x, batch=2)
    assert np.allclose(p, ref, atol=1e-5)
    assert scorer.in_bands == 3 and scorer.tile_size == 32 and scorer.map_names == ("cam",)


def test_scorer_settings_layer_file_tuned_caller_and_profile(tmp_path):
    """The scorer's typed settings: the file's params, then the method's tuned values, then the caller's;
    a profile and the threshold setter replace them; a bad value is one ModelError at load."""
    from landslide_wsss.checkpoint import save_checkpoint
    from landslide_wsss.errors import ModelError
    from landslide_wsss.params import CamParams
    from landslide_wsss.pipeline import with_threshold
    from landslide_wsss.wsss import DEFAULT_PARAMS, classifier_metadata, load_model
    m = Classifier(width=8, output_stride=16, mean=[50.0] * 3, std=[20.0] * 3).eval()
    params = {**DEFAULT_PARAMS, "thresholds": {"cam": 0.25}, "norm": "abs",
              "per_method": {"cam": {"norm": "quantile", "norm_q": 0.9, "threshold": 0.4}},
              "profiles": {"bijie": {"cam": {"norm": "vmax", "threshold": 0.6}}}}
    path = tmp_path / "m.safetensors"
    save_checkpoint(path, {f"classifier.{k}": v for k, v in m.state_dict().items()},
                    classifier_metadata(m, tile=32, training={}, params=params))
    sc = load_model(path, method="cam", device="cpu", params={"norm_q": 0.8})
    s = sc.settings
    assert (s.norm, s.norm_q, sc.threshold) == ("quantile", 0.8, 0.4)
    assert s.thresholds["gradcam"] == CamParams().thresholds["gradcam"]  # left out by the file: the default
    copy_ = with_threshold(sc, 0.1)
    assert copy_.threshold == 0.1 and sc.threshold == 0.4
    assert sc.use_profile("bijie") and not sc.use_profile("nowhere")
    assert (sc.settings.norm, sc.settings.norm_q, sc.threshold) == ("vmax", CamParams.norm_q, 0.6)
    with pytest.raises(ModelError, match="CamParams.gate"):
        load_model(path, method="cam", device="cpu", params={"gate": "open"})


def test_pickle_files_refused(tmp_path):
    from landslide_wsss.errors import ModelError
    from landslide_wsss.wsss import load_model
    path = tmp_path / "evil.pt"
    torch.save({"a": torch.zeros(1)}, path)
    with pytest.raises(ModelError):
        load_model(path)


def test_train_classifier_command(tmp_path):
    """`landslide-wsss train classifier` on a tiny Bijie-style folder: a model file the CAM methods run."""
    from test_datasets import make_bijie
    from landslide_wsss.training.classifier import main as train_cls
    from landslide_wsss.wsss import load_model
    root = make_bijie(tmp_path / "bijie")
    out = tmp_path / "m.safetensors"
    common = ["--bijie", str(root), "--tile", "32", "--epochs", "1", "--threads", "1", "-o", str(out)]
    assert train_cls(common + ["--width", "8", "--batch-size", "2"]) == 0
    assert (tmp_path / "m.safetensors.loss.png").stat().st_size > 1000  # loss curve beside the model
    weak = load_model(out, method="cam", device="cpu")
    x = np.full((1, 3, 32, 32), 100.0, np.float32)
    v = np.ones((1, 32, 32), bool)
    assert weak.predict_tiles(x, v)["cam"].shape == (1, 32, 32)


def _tiny_scorer(tmp_path, **params):
    from landslide_wsss.checkpoint import save_checkpoint
    from landslide_wsss.wsss import DEFAULT_PARAMS, classifier_metadata, load_model
    torch.manual_seed(0)
    m = Classifier(width=8, output_stride=16, mean=[50.0] * 3, std=[20.0] * 3).eval()
    meta = classifier_metadata(m, tile=32, training={}, params=dict(DEFAULT_PARAMS))
    path = tmp_path / "m.safetensors"
    save_checkpoint(path, {f"classifier.{k}": v for k, v in m.state_dict().items()}, meta)
    return load_model(path, method="cam", device="cpu", params=params)


def test_weak_scorer_gate(tmp_path):
    x = np.random.default_rng(0).uniform(0, 255, (3, 3, 32, 32)).astype(np.float32)
    v = np.ones((3, 32, 32), bool)
    v[2, :, :16] = False
    closed = _tiny_scorer(tmp_path, gate=1.01)  # no probability reaches it: every tile gated out
    assert not closed.predict_tiles(x, v)["cam"].any()
    opened = _tiny_scorer(tmp_path, gate=0.0)
    cam = opened.predict_tiles(x, v)["cam"]
    assert cam.shape == (3, 32, 32) and cam.dtype == np.float32 and (cam >= 0).all()
    assert cam[:2].any() and not cam[2, :, :16].any()  # invalid pixels stay 0


def test_weak_scorer_fuse_uses_scene_statistics(tmp_path):
    from landslide_wsss.fusion import map_stats
    from landslide_wsss.scoring import SceneStats
    s = _tiny_scorer(tmp_path, norm="vmax", thresholds={"cam": 0.3}, per_method={}, open_radius=1,
                     min_component_px=4)
    block = np.zeros((40, 40), np.float32)
    block[10:30, 10:30] = 1.0
    bright_scene = SceneStats({"cam": map_stats(np.array([0.0, 10.0]))})  # scene max 10: block is weak
    dim_scene = SceneStats({"cam": map_stats(np.array([0.0, 2.0]))})      # scene max 2: block stands out
    score, mask = s.fuse({"cam": block}, bright_scene)
    assert not mask.any() and np.isclose(score.max(), 0.1)
    score, mask = s.fuse({"cam": block}, dim_scene)
    # opening with a radius-1 disk trims only the four corner pixels
    assert mask[10:30, 10:30].sum() == 400 - 4 and mask.sum() == 396 and np.isclose(score.max(), 0.5)


def test_evaluate_bijie_gallery_and_pr_plot(tmp_path):
    """evaluate writes a per-image overlay gallery and a precision/recall-vs-threshold plot."""
    from PIL import Image
    from test_datasets import make_bijie
    from landslide_wsss.evaluation import evaluate_bijie

    root = make_bijie(tmp_path / "bijie")
    model = _tiny_scorer(tmp_path, gate=0.0)
    res = evaluate_bijie(root, root / "train.txt", model=model, gallery=tmp_path / "g", pr_plot=tmp_path / "pr.png")
    shots = sorted(p.name for p in (tmp_path / "g").iterdir())
    assert shots == ["ls_0001.png", "ls_0002.png", "nls_0001.png"]
    w = Image.open(tmp_path / "g" / "ls_0001.png").size
    assert w == (3 * 60 + 8, 40)  # three panels of the 60x40 image
    assert (tmp_path / "pr.png").stat().st_size > 1000 and res["pr_plot"].endswith("pr.png")
