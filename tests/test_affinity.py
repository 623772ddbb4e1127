"""Pixel-affinity refinement of teacher CAMs (training/affinity.py) on a tiny synthetic image."""
import numpy as np
import pytest
from scipy import ndimage

from landslide_wsss.training.affinity import REFINEMENTS, refine


def _scene():
    """A bright square on dark ground, and a blocky CAM that overhangs the square's edges."""
    rng = np.random.default_rng(0)
    img = np.full((3, 64, 64), 60, np.float32) + rng.normal(0, 3, (3, 64, 64))
    img[:, 16:40, 16:40] = 200
    cam = np.zeros((64, 64), np.float32)
    cam[12:44, 12:44] = 1.0  # too wide on every side and blurred, as an upsampled CAM is
    return np.clip(img, 0, 255).astype(np.uint8), ndimage.gaussian_filter(cam, 3), img[0] > 128


@pytest.mark.parametrize("how", ["slic", "crf"])
def test_refinement_follows_the_colour_edge(how):
    img, cam, truth = _scene()
    iou = lambda m: (m & truth).sum() / (m | truth).sum()
    before = iou(refine(cam, img, "none", 1.0) >= 0.5)
    after = iou(refine(cam, img, how, 1.0) >= 0.5)
    assert after > before + 0.05


def test_refinement_keeps_shape_and_range():
    img, cam, _ = _scene()
    for how in REFINEMENTS:
        out = refine(cam * 3, img, how, 0.5)
        assert out.shape == cam.shape and out.dtype == np.float32
        assert 0 <= out.min() and out.max() <= 1 + 1e-6
    assert not refine(np.zeros_like(cam), img, "slic", 0.5).any()  # an empty CAM stays empty


def test_unknown_refinement_is_an_error():
    img, cam, _ = _scene()
    with pytest.raises(ValueError, match="unknown refinement"):
        refine(cam, img, "watershed", 1.0)
