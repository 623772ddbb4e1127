"""The numpy resampling (no torch at detection) is torch's `F.interpolate`, which the networks were
trained with: bilinear up and down, antialiased shrinking, majority targets, on odd sizes."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from landslide_wsss.resample import resample_image, resample_target, resize_bilinear, resize_prob

SIZES = ((64, 50), (16, 16), (23, 111), (5, 37), (7, 3))


def _torch(a, size, **kw):
    return F.interpolate(torch.from_numpy(np.ascontiguousarray(a, np.float32))[None], size=size, **kw)[0].numpy()


def test_resize_bilinear_is_torch_bilinear_up_and_down():
    a = np.random.default_rng(1).normal(size=(3, 23, 37)).astype(np.float32)
    for size in SIZES:
        want = _torch(a, size, mode="bilinear", align_corners=False)
        np.testing.assert_allclose(resize_bilinear(a, size), want, atol=1e-4)
        np.testing.assert_allclose(resize_prob(a[0], size), want[0], atol=1e-4)


@pytest.mark.parametrize("factor", [1.6, 2.0, 3.3, 0.5, 0.7])
def test_resample_image_is_torch_antialiased_bilinear(factor):
    img = np.random.default_rng(2).integers(0, 256, size=(3, 97, 61)).astype(np.uint8)
    size = (max(1, round(97 / factor)), max(1, round(61 / factor)))
    want = _torch(img, size, mode="bilinear", antialias=factor > 1, align_corners=False)
    got = resample_image(img.astype(np.float32), factor)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3)  # torch: float32 source indices
    as_bytes = resample_image(img, factor)
    assert as_bytes.dtype == np.uint8 and as_bytes.shape == (3,) + size
    assert np.abs(as_bytes.astype(int) - np.clip(np.rint(want), 0, 255)).max() <= 1  # rounding ties only


def test_resample_target_is_the_majority_of_torch_area_and_nearest():
    rng = np.random.default_rng(3)
    t = rng.choice(np.array([0, 1, 255], np.uint8), size=(50, 70), p=[0.5, 0.3, 0.2])
    for size in ((25, 35), (17, 23), (50, 70), (100, 140), (61, 83)):
        mode = "area" if size[0] <= t.shape[0] else "nearest"
        frac = _torch(np.stack([t == 0, t == 1]), size, mode=mode)
        want = np.full(size, 255, np.uint8)
        want[frac[0] > 0.5] = 0
        want[frac[1] >= 0.5] = 1
        got = resample_target(t, size)
        assert got.shape == size
        assert (got != want).mean() < 0.002  # float ties at exactly one half only
