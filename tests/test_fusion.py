"""Fusion of CAM and CycleGAN difference: thresholds from scene statistics, gating, clean-up."""
import numpy as np
import pytest
import torch

from landslide_wsss.fusion import (
    FusionParams,
    difference_map,
    fuse_maps,
    map_stats,
    otsu_from_hist,
    thresholds,
)
from landslide_wsss.scoring import FUSE_HALO, SceneStats


def disk(shape, cy, cx, r):
    y, x = np.ogrid[:shape[0], :shape[1]]
    return (y - cy) ** 2 + (x - cx) ** 2 <= r * r


def scene(seed=0, shape=(160, 160)):
    """CAM region around (50, 50); two difference blobs: one inside the CAM, one far outside."""
    rng = np.random.default_rng(seed)
    cam = np.zeros(shape, np.float32)
    cam[disk(shape, 50, 50, 22)] = 1.0
    cam += rng.uniform(0, 0.05, shape).astype(np.float32)
    diff = rng.uniform(0.0, 0.1, shape).astype(np.float32)
    inside = disk(shape, 50, 50, 10)
    outside = disk(shape, 120, 120, 10)
    diff[inside] += 0.8
    diff[outside] += 0.8
    return cam, diff, inside, outside


def stats_of(cam, diff):
    return SceneStats({"cam": map_stats(cam), "diff": map_stats(diff)})


def test_blob_inside_cam_kept_outside_dropped():
    cam, diff, inside, outside = scene()
    score, mask = fuse_maps(cam, diff, stats_of(cam, diff))
    assert mask.dtype == bool and score.dtype == np.float32
    assert mask[inside].mean() > 0.9
    assert not mask[outside].any()
    assert mask.sum() < 1.3 * inside.sum()  # nothing else
    assert 0 <= score.min() and score.max() <= 1
    assert score[inside].mean() > 0.6 and score[outside].mean() < 0.3  # sqrt(0.05 * 1)


def test_small_components_and_noise_removed():
    cam, diff, inside, _ = scene()
    diff[45, 30] = 5.0  # a single hot pixel inside the CAM region
    diff[60:63, 65:68] += 0.8  # a 3x3 speck inside the (dilated) CAM region
    _, mask = fuse_maps(cam, diff, stats_of(cam, diff), {"min_component_px": 32})
    assert not mask[45, 30] and not mask[60:63, 65:68].any()
    assert mask[inside].mean() > 0.9


def test_otsu_separates_bimodal_histogram():
    rng = np.random.default_rng(1)
    v = np.concatenate([rng.normal(0.2, 0.03, 8000), rng.normal(0.7, 0.05, 2000)]).clip(0, None)
    st = map_stats(v)
    t = otsu_from_hist(st.hist, st.vmax)
    assert 0.3 < t < 0.6
    # and it is what fuse uses by default
    cam = np.ones(10, np.float32)
    _, t_d = thresholds(SceneStats({"cam": map_stats(cam), "diff": st}))
    assert t_d == pytest.approx(t)
    _, t_p = thresholds(SceneStats({"cam": map_stats(cam), "diff": st}), {"diff_rule": "percentile",
                                                                           "diff_percentile": 0.5})
    assert t_p == pytest.approx(0.2, abs=0.02)


def test_thresholds_come_from_scene_not_block():
    """A block holding only background stays dark: no per-tile (per-block) normalization."""
    cam, diff, inside, _ = scene()
    stats = stats_of(cam, diff)
    block = (slice(100, 160), slice(0, 60))  # far from both blobs, only weak CAM and diff noise
    score, mask = fuse_maps(cam[block], diff[block], stats)
    assert not mask.any() and score.max() < 0.3
    # a block-wise fusion with a FUSE_HALO halo equals the whole-scene fusion (seamless blocks)
    s_full, m_full = fuse_maps(cam, diff, stats)
    h = FUSE_HALO
    r0, r1 = 40, 80
    s_blk, m_blk = fuse_maps(cam[r0 - h:r1 + h], diff[r0 - h:r1 + h], stats)
    np.testing.assert_array_equal(m_blk[h:-h], m_full[r0:r1])
    np.testing.assert_allclose(s_blk[h:-h], s_full[r0:r1])


def test_dark_scene_not_stretched_with_cam_floor():
    cam, diff, inside, _ = scene()
    weak = cam * 0.05  # a scene where the classifier is barely interested
    stats = stats_of(weak, diff)
    _, m_rel = fuse_maps(weak, diff, stats)
    _, m_abs = fuse_maps(weak, diff, stats, {"cam_floor": 1.0})
    assert m_rel[inside].any() and not m_abs.any()


def test_difference_map_shapes_and_smoothing():
    x = np.zeros((2, 3, 32, 32), np.float32)
    g = x.copy()
    g[:, :, 10:20, 10:20] = 1.0
    d = difference_map(x, g, sigma=0)
    assert d.shape == (2, 32, 32) and d.dtype == np.float32
    assert d[0, 15, 15] == pytest.approx(1.0) and d[0, 0, 0] == 0
    ds = difference_map(torch.from_numpy(x[0]), torch.from_numpy(g[0]), sigma=1.0)
    assert ds.shape == (32, 32)
    assert 0 < ds[10, 10] < 1 and ds[15, 15] == pytest.approx(1.0, abs=1e-3)  # edges softened only
    assert d[1].sum() == pytest.approx(ds.sum(), rel=0.02)  # smoothing keeps the mass
    with pytest.raises(ValueError):
        difference_map(x, g[:, :2])


def test_params_validation():
    with pytest.raises(ValueError):
        FusionParams(diff_rule="mean")
    with pytest.raises(ValueError):
        FusionParams(cam_dilate=FUSE_HALO + 1)
    assert FusionParams.from_any({"t_cam": 0.3, "unknown": 1}).t_cam == 0.3


def test_gated_zeros_do_not_drive_thresholds():
    """Tiles skipped by the classifier gate hold D = 0 and CAM = 0: a scene full of them keeps the
    same thresholds as the scored part alone."""
    cam, diff, inside, _ = scene()
    big_cam = np.zeros((480, 480), np.float32)
    big_diff = np.zeros((480, 480), np.float32)
    big_cam[:160, :160], big_diff[:160, :160] = cam, diff
    t_small = thresholds(stats_of(cam, diff))
    t_big = thresholds(stats_of(big_cam, big_diff))
    np.testing.assert_allclose(t_big, t_small, rtol=1e-6)
    _, mask = fuse_maps(big_cam, big_diff, stats_of(big_cam, big_diff))
    assert mask[:160, :160][inside].mean() > 0.9 and mask.sum() < 1.3 * inside.sum()


def test_difference_brighter_mode_is_one_sided():
    x = np.zeros((3, 16, 16), np.float32)
    g = x.copy()
    g[:, :, :8] = -0.5  # G darkened the left half (a bright scar removed)
    g[:, :, 8:] = 0.5   # and brightened the right half (not a landslide removal)
    d = difference_map(x, g, sigma=0, mode="brighter")
    assert np.allclose(d[:, :8], 0.5) and np.allclose(d[:, 8:], 0)
    assert np.allclose(difference_map(x, g, sigma=0), 0.5)
    with pytest.raises(ValueError):
        difference_map(x, g, mode="l1")


def test_empty_histograms_warn_instead_of_masking_everything():
    from landslide_wsss.scoring import MapStats
    cam, diff, inside, outside = scene()
    good = stats_of(cam, diff)
    bad = SceneStats({k: MapStats(v.vmax, v.count, np.zeros_like(v.hist)) for k, v in good.maps.items()})
    with pytest.warns(RuntimeWarning, match="empty histogram"):
        _, mask = fuse_maps(cam, diff, bad)
    assert not mask[outside].any() and mask.sum() < 1.5 * inside.sum()


def test_parameter_sets_share_one_builder():
    """FusionParams, CropParams and CamParams come from metadata the same way: defaults for None,
    known keys of a mapping (others belong to the sets stored beside them), a wrong type refused."""
    from landslide_wsss.cam.terrain_crop import CropParams
    from landslide_wsss.params import CamParams, from_mapping
    assert FusionParams.from_any(None) == FusionParams()
    assert FusionParams.from_any({"t_cam": 0.4, "unrelated": 1}).t_cam == 0.4
    assert CropParams.from_any({"max_crops": 2}).max_crops == 2
    cp = from_mapping(CamParams, {"gate": 0.2, "scales": (1.0, 2.0), "fusion": {}})
    assert cp.gate == 0.2 and list(cp.scales) == [1.0, 2.0]
    with pytest.raises(ValueError, match="CamParams.gate"):
        from_mapping(CamParams, {"gate": "high"})
    with pytest.raises(ValueError, match="t_cam"):
        FusionParams.from_any({"t_cam": [0.1]})
    with pytest.raises(ValueError, match="norm"):
        from_mapping(CamParams, {"norm": "median"})


def test_bad_model_params_are_a_clean_error(weak_model_file):
    from landslide_wsss.errors import ModelError
    from landslide_wsss.wsss import load_model
    with pytest.raises(ModelError, match="model parameters: CamParams.gate"):
        load_model(weak_model_file, method="cam", device="cpu", params={"gate": -1.0})
