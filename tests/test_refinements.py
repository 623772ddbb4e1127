"""The CAM refinements on tiny synthetic data: losses behave, crops are placed right."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from landslide_wsss.cam.terrain_crop import (CropParams, confident_mask, crop_cam, grow_box, plan_crops,
                                             refine_batch, slope_gate, zoom_factor)
from landslide_wsss.models.classifier import Classifier
from landslide_wsss.training import adversarial_erasing as ae
from landslide_wsss.training import rcm_mam as rm

torch.set_num_threads(2)


def tiny(seed=0):
    torch.manual_seed(seed)
    model = Classifier("resnet18", in_bands=3, output_stride=16, width=8).eval()
    with torch.no_grad():
        model.fc.weight.abs_()  # activations are >= 0: a positive CAM everywhere
    return model


# ------------------------------------------------------------------ terrain-guided cropping


def test_confident_mask_threshold():
    cam = np.zeros((20, 20))
    cam[2:6, 2:6] = 1.0      # peak
    cam[10:14, 10:14] = 0.3  # above 0.1 but below min + 0.5 (max - min) = 0.3 + 0.35
    cam[16:18, 16:18] = 0.05  # zeroed (< 0.1)
    m = confident_mask(cam)
    assert m[2:6, 2:6].all() and not m[10:14, 10:14].any() and m.sum() == 16
    assert not confident_mask(np.zeros((8, 8))).any()


def test_grow_box_grows_and_clips():
    assert grow_box((40, 40, 80, 60), (128, 128), grow=0.5, min_box=8) == (30, 35, 90, 65)
    # minimum size enforced, and a box at the edge is shifted inside, not cut below the minimum
    b = grow_box((0, 0, 4, 4), (128, 128), grow=0.5, min_box=32)
    assert b[0] == 0 and b[1] == 0 and b[2] - b[0] == 32 and b[3] - b[1] == 32
    b = grow_box((100, 120, 128, 128), (128, 128), grow=0.5, min_box=32)
    assert b[2] == 128 and b[3] == 128 and b[2] - b[0] >= 32 and b[3] - b[1] >= 32
    # never larger than the image
    assert grow_box((0, 0, 128, 128), (128, 128)) == (0, 0, 128, 128)


def test_zoom_factor_clipped():
    assert zoom_factor(64 * 64) == 1.0
    assert zoom_factor(32 * 32) == pytest.approx(2.0)
    assert zoom_factor(4) == 4.0 and zoom_factor(10 ** 6) == 1.0


def test_plan_crops_prefers_steep_component():
    cam = np.full((64, 64), 0.2, np.float32)
    cam[5:13, 5:13] = 1.0
    cam[40:48, 40:48] = 0.95
    slope = np.zeros((64, 64), np.float32)
    slope[30:, 30:] = 40.0
    p = CropParams(max_crops=1, slope_weight=1.0)
    (box_flat, _), = plan_crops(cam, p)
    (box_steep, _), = plan_crops(cam, p, slope=slope)
    assert (box_flat[0] + box_flat[2]) / 2 < 20 and (box_steep[0] + box_steep[2]) / 2 > 40


def test_fused_cam_at_least_full_cam_everywhere():
    model = tiny()
    x = np.random.default_rng(0).normal(size=(2, 3, 64, 64)).astype(np.float32)
    from landslide_wsss.cam import make_cam
    cam = make_cam("cam", model)

    def cam_fn(tiles):
        return cam(torch.from_numpy(tiles)).numpy()

    full = cam_fn(x)
    full[1] = 0  # a dark tile stays dark
    fused = refine_batch(cam_fn, x, full, CropParams(min_box=16, k=32))
    assert (fused >= full - 1e-7).all()
    assert (fused[1] == 0).all()
    assert fused[0].max() == pytest.approx(full[0].max(), rel=1e-5)  # peak matching keeps the magnitude


def test_crop_cam_pastes_inside_box_only():
    full = np.zeros((32, 32), np.float32)
    full[10:20, 10:20] = 1.0
    x = np.zeros((3, 32, 32), np.float32)
    fused = crop_cam(lambda t: np.ones((t.shape[0],) + t.shape[-2:], np.float32), x, full, [((8, 8, 24, 24), 2.0)])
    assert (fused[8:24, 8:24] == 1).all() and fused.sum() == 16 * 16


def test_slope_gate_uses_scene_quantile():
    from landslide_wsss.fusion import map_stats
    slope = np.tile(np.linspace(0, 50, 100, dtype=np.float32), (10, 1))
    cam = np.ones_like(slope)
    t = map_stats(slope).quantile(0.2)
    assert 8 < t < 12  # the 20 % quantile of 0..50, not a fixed degree value
    gated = slope_gate(cam, slope, t)
    assert 0.17 < (gated == 0).mean() < 0.23
    # the same quantile on rescaled slopes (Landslide4Sense stores them normalized) gates the same pixels
    t2 = map_stats(slope / 50).quantile(0.2)
    assert ((slope_gate(cam, slope / 50, t2) == 0) == (gated == 0)).mean() > 0.98


# ------------------------------------------------------------------ RCM + MAM


def test_mam_zero_for_identical_cams_positive_otherwise():
    cam = torch.rand(2, 8, 8)
    assert float(rm.mam_loss(cam, rm.max_norm(cam))) == pytest.approx(0.0, abs=1e-5)
    assert float(rm.mam_loss(cam, rm.max_norm(torch.rand(2, 8, 8)))) > 0.05


def test_info_nce_lower_when_features_match_prototypes():
    torch.manual_seed(0)
    regions = torch.zeros(2, 6, 6, dtype=torch.long)
    regions[:, :3] = 1
    protos = torch.nn.functional.normalize(torch.randn(2, 16), dim=1)
    matched = protos[regions].permute(0, 3, 1, 2)  # every pixel = its region's prototype
    swapped = protos[1 - regions].permute(0, 3, 1, 2)
    good = float(rm.info_nce(matched, regions, protos, 0.1))
    bad = float(rm.info_nce(swapped, regions, protos, 0.1))
    assert good < 0.5 < bad
    # prototypes are the mask-averaged features
    p = rm.prototypes(matched, regions)
    assert torch.allclose(p, protos, atol=1e-5)


def test_rcm_mam_step_runs_and_learns():
    main, x = tiny(), torch.randn(2, 3, 32, 32)
    y = torch.tensor([1.0, 0.0])
    support = rm.EMA(main, 0.9)
    terms, logits = rm.rcm_mam_losses(main, support.model, x, y)
    assert logits.shape == (2,) and all(torch.isfinite(v) for v in terms.values())
    loss = terms["rcm"] + terms["mam"]
    loss.backward()
    assert main.layer4[0].conv1.weight.grad.abs().sum() > 0
    # identical MainNet and SupportNet at one scale: MAM is 0
    t1, _ = rm.rcm_mam_losses(main, support.model, x, y, scales=(1.0,))
    assert float(t1["mam"].detach()) == pytest.approx(0.0, abs=1e-4)


# ------------------------------------------------------------------ adversarial erasing


def test_soft_mask_and_erase():
    a = torch.tensor([[[0.0, 0.45, 0.55, 1.0]]])
    m = ae.soft_mask(a)
    assert m[0, 0, 0] < 1e-3 and m[0, 0, 3] > 0.999 and m[0, 0, 1] < 0.01 < 0.99 < m[0, 0, 2]
    x = torch.ones(1, 3, 1, 4)
    assert torch.allclose(ae.erase(x, m)[0, :, 0, 3], torch.zeros(3), atol=1e-3)


def test_gradcam_in_graph_is_differentiable():
    model = tiny()
    x = torch.randn(2, 3, 32, 32)
    a, logits = ae.gradcam_in_graph(model, x)
    assert a.shape == (2, 32, 32) and float(a.min()) >= 0 and float(a.max()) <= 1 + 1e-6
    ae.soft_mask(a).mean().backward()
    assert model.layer4[1].conv2.weight.grad is not None
    assert model.layer4[1].conv2.weight.grad.abs().sum() > 0


def test_erasing_loss_rises_when_mask_misses_object():
    """An adversary that sees a bright square: erasing the square lowers its score, so the localizer
    loss is lower when the mask covers the object than when it misses it."""

    class Bright(torch.nn.Module):  # adversary: logit = 20·(mean brightness of the top-left quarter − 0.5)
        def forward(self, x):
            return 20 * (x[:, :, :8, :8].mean(dim=(1, 2, 3)) - 0.5)

    x = torch.zeros(1, 3, 16, 16)
    x[:, :, :8, :8] = 1.0
    y = torch.ones(1)
    hit = torch.zeros(1, 16, 16)
    hit[:, :8, :8] = 1.0
    miss = torch.zeros(1, 16, 16)
    miss[:, 8:, 8:] = 1.0
    logits = torch.tensor([3.0])
    adv = Bright()
    l_hit, _ = ae.localizer_loss(logits, y, adv(ae.erase(x, ae.soft_mask(hit))), hit)
    l_miss, parts = ae.localizer_loss(logits, y, adv(ae.erase(x, ae.soft_mask(miss))), miss)
    assert float(l_miss) > float(l_hit) + 0.03
    assert float(parts["adv"]) > 0.99
    # negative images carry no adversarial term
    l_neg, p_neg = ae.localizer_loss(logits, torch.zeros(1), adv(x), hit)
    assert float(p_neg["adv"]) == 0.0


# ------------------------------------------------------------------ scorer registration


def test_methods_registered_in_load_model(tmp_path):
    from landslide_wsss.errors import ModelError
    from landslide_wsss.refinements import RefinedScorer
    from landslide_wsss.training.refine_common import save_refined
    from landslide_wsss.wsss import DEFAULT_PARAMS, load_model
    model = tiny()
    path = save_refined(model, tmp_path / "rcm.safetensors", "rcm-mam", {"params": dict(DEFAULT_PARAMS)}, {})
    sc = load_model(path, device="cpu")
    assert isinstance(sc, RefinedScorer) and sc.name == "rcm-mam"
    tiles = np.random.default_rng(0).integers(0, 255, (2, 3, 32, 32)).astype(np.float32)
    sc.settings = dataclasses.replace(sc.settings, gate=0.0)
    out = sc.predict_tiles(tiles, np.ones((2, 32, 32), bool))
    assert out["cam"].shape == (2, 32, 32)
    tc = load_model(path, method="terrain-crop", device="cpu")
    assert tc.uses_terrain and "slope" in tc.map_names
    tc.settings = dataclasses.replace(tc.settings, gate=0.0)
    terr = np.zeros((2, 2, 32, 32), np.float32)
    terr[:, 1] = 20.0
    out2 = tc.predict_tiles(tiles, np.ones((2, 32, 32), bool), terr)
    assert (out2["cam"] >= out["cam"] - 1e-5).all() and (out2["slope"] == 20).all()
    with pytest.raises(ModelError, match="own weights"):
        load_model(path, method="adversarial-erasing", device="cpu")


def test_embedded_refinement_runs_from_the_model_file(tmp_path, weak_model_file):
    """A refinement's own classifier embedded under its name (int8) makes `--method NAME` run from
    that one file, with maps close to the fp32 refined network's; other components are untouched."""
    import shutil

    from landslide_wsss.checkpoint import load_checkpoint
    from landslide_wsss.training.refine_common import load_init, save_refined
    from landslide_wsss.wsss import embed_refinement, load_model, method_available
    from landslide_wsss.checkpoint import read_metadata
    from landslide_wsss import registry

    model_file = tmp_path / "default.safetensors"
    shutil.copy(weak_model_file, model_file)
    with pytest.raises(Exception, match="needs its own weights"):
        load_model(model_file, method="rcm-mam", device="cpu")
    clf, src_meta, _ = load_init(model_file)
    with torch.no_grad():  # a "fine-tuned" classifier that differs from the shipped one
        clf.fc.weight.mul_(1.5)
    refined = save_refined(clf, tmp_path / "rcm.safetensors", "rcm-mam", src_meta, {"steps": 0})
    before = {k: v.clone() for k, v in load_checkpoint(model_file, raw=True)[0].items()}
    embed_refinement(model_file, refined, "rcm-mam")
    after, meta = load_checkpoint(model_file, raw=True)
    assert all(torch.equal(after[k], v) for k, v in before.items())  # nothing else rewritten
    assert after["rcm-mam.stem.0.weight"].dtype == torch.int8
    assert method_available(read_metadata(model_file), registry.get("rcm-mam"))
    rng = np.random.default_rng(0)
    tiles = rng.integers(20, 60, (2, 3, 64, 64)).astype(np.float32)
    tiles[0, :, 20:34, 20:34] = 220
    valid = np.ones((2, 64, 64), bool)
    ours = load_model(model_file, method="rcm-mam", device="cpu", params={"gate": 0.0, "bf16": False})
    ref = load_model(refined, method="rcm-mam", device="cpu", params={"gate": 0.0, "bf16": False})
    a, b = ours.predict_tiles(tiles, valid)["cam"], ref.predict_tiles(tiles, valid)["cam"]
    assert np.abs(a - b).max() <= 0.02 * np.abs(b).max()
    with pytest.raises(Exception, match="not a adversarial-erasing model file"):
        embed_refinement(model_file, refined, "adversarial-erasing")


def test_int8_packing_round_trip(tmp_path):
    from landslide_wsss.checkpoint import int8_tensors, load_checkpoint, save_checkpoint
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.BatchNorm2d(8), torch.nn.Linear(4, 5))
    packed = int8_tensors(net, "n")
    assert packed["n.0.weight"].dtype == torch.int8 and "n.0.weight.qscale" in packed
    assert packed["n.1.running_var"].dtype == torch.float16 and packed["n.1.num_batches_tracked"].dtype == torch.int64
    path = save_checkpoint(tmp_path / "q.safetensors", packed, {"architecture": "x", "in_bands": 3, "version": "t"})
    back, _ = load_checkpoint(path)
    assert set(back) == {f"n.{k}" for k in net.state_dict()}
    for k, v in net.state_dict().items():
        if v.is_floating_point() and v.ndim >= 2:  # int8 per output channel: error <= half a step
            step = v.abs().flatten(1).amax(1) / 127
            err = (back[f"n.{k}"] - v).abs().flatten(1).amax(1)
            assert bool((err <= step / 2 + 1e-7).all())


def test_classifier_with_a_working_gsd_sees_resampled_tiles(weak_model_file, tmp_path):
    """A classifier file that records gsd runs its CAM methods at that GSD: evaluation's maps_at_gsd
    hands it the image resampled (half the pixels a side at twice the GSD) and returns maps on the
    image's own grid; a file without gsd sees the image as it is."""
    import shutil

    from landslide_wsss.checkpoint import update_model_file
    from landslide_wsss.evaluation import maps_at_gsd
    from landslide_wsss.wsss import load_model
    coarse = tmp_path / "coarse.safetensors"
    shutil.copy(weak_model_file, coarse)
    update_model_file(coarse, meta=lambda m: m.__setitem__("gsd", 1.0))
    img = np.full((3, 256, 256), 40, np.float32)
    img[:, 100:140, 100:140] = 220
    valid = np.ones((256, 256), bool)
    for path, gsd, tiles in ((weak_model_file, None, 25), (coarse, 1.0, 9)):
        model = load_model(path, method="cam", device="cpu")
        assert model.gsd == gsd
        seen = []
        real = model.predict_tiles
        model.predict_tiles = lambda x, v, terrain=None: (seen.append(len(x)), real(x, v))[1]
        maps = maps_at_gsd(model, img, valid, 0.5)
        assert maps["cam"].shape == (256, 256)
        assert sum(seen) == tiles  # 64 px tiles, overlap 8: 256 px -> 5 x 5, 128 px -> 3 x 3
        cam = maps["cam"]
        assert cam.max() > 0
        if gsd is None:  # the image as it is: the bright square lights up where it is
            r, c = np.unravel_index(int(np.argmax(cam)), cam.shape)
            assert 92 <= r < 148 and 92 <= c < 148, (r, c)
            continue
        # at 1 m: exactly the maps of the image resampled to 1 m, brought back to the image's grid (how well
        # a classifier trained at 0.5 m reads 1 m tiles varies with the CPU's arithmetic; the plumbing does not)
        from landslide_wsss.resample import resample_image, resize_prob
        small = resample_image(img, 2.0)
        direct = maps_at_gsd(model, small, valid[::2, ::2], 1.0)["cam"]
        assert direct.shape == (128, 128)
        np.testing.assert_allclose(cam, resize_prob(direct, (256, 256)), atol=1e-5 * max(1.0, float(direct.max())))
