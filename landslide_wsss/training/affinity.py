"""Pixel-affinity refinement of a teacher CAM before it is cut into pseudo-mask bands.

A CAM is coarse (one value per 16 px of the classifier's feature grid, then upsampled); landslide
edges follow colour edges. Two standard refinements, picked by measurement on the hold-out
(`rebuild/teacher.py`):

slic   superpixels of the image (scikit-image SLIC, about `SLIC_M` metres across): the CAM is
       replaced by its mean inside each superpixel, so a band boundary follows colour edges.
crf    a fully connected CRF (pydensecrf2; Kraehenbuehl & Koltun 2011) with the max-normalized CAM as
       the landslide probability; the CRF's landslide marginal replaces the CAM.
none   the CAM as it is.

Both work on one landslide image / tile at a time (the unit a pseudo-mask is normalized in).
"""
from __future__ import annotations

import numpy as np

REFINEMENTS = ("none", "slic", "crf")
SLIC_M = 8.0          # superpixel size in metres
CRF_ITER = 5


def _norm(cam: np.ndarray) -> np.ndarray:
    cam = np.nan_to_num(np.asarray(cam, np.float32))
    top = float(cam.max()) if cam.size else 0.0
    return cam / top if top > 0 else np.zeros_like(cam)


def teacher_map(maps) -> np.ndarray:
    """A teacher's stitched maps -> its one map: the CAM, times the max-normalized CycleGAN
    difference when the teacher has one (a `-cyclegan` method)."""
    cam = maps["cam"]
    return _norm(cam) * _norm(maps["diff"]) if "diff" in maps else cam


def _rgb(image: np.ndarray) -> np.ndarray:
    """(C, H, W) raw bands -> (H, W, 3) uint8 contiguous (the first three bands)."""
    img = np.asarray(image)[:3]
    if img.dtype != np.uint8:
        img = np.clip(img, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(np.moveaxis(img, 0, -1))


def refine(cam: np.ndarray, image: np.ndarray, how: str, gsd: float) -> np.ndarray:
    """The refined, max-normalized CAM (values 0..1) of one image / tile; `image` is (C, H, W) at
    the CAM's grid, `gsd` its pixel size in metres."""
    n = _norm(cam)
    if how == "none" or not n.any():
        return n
    if how == "slic":
        from scipy import ndimage
        from skimage.segmentation import slic
        h, w = n.shape
        side = max(SLIC_M / gsd, 2.0)
        seg = slic(_rgb(image), n_segments=max(int(h * w / side ** 2), 1), compactness=10.0, start_label=1)
        means = np.asarray(ndimage.mean(n, labels=seg, index=np.arange(1, seg.max() + 1)), np.float32)
        return _norm(np.concatenate([[0.0], means]).astype(np.float32)[seg])
    if how == "crf":
        import pydensecrf.densecrf as dcrf
        from pydensecrf.utils import unary_from_softmax
        h, w = n.shape
        p = np.clip(n, 1e-4, 1 - 1e-4)
        crf = dcrf.DenseCRF2D(w, h, 2)
        crf.setUnaryEnergy(np.ascontiguousarray(unary_from_softmax(np.stack([1 - p, p])), np.float32))
        # kernel widths in metres -> pixels, so a 0.5 m and a 1.6 m image are smoothed alike
        crf.addPairwiseGaussian(sxy=max(2.0 / gsd, 1.0), compat=3)
        crf.addPairwiseBilateral(sxy=max(25.0 / gsd, 1.0), srgb=13, rgbim=_rgb(image), compat=10)
        q = np.asarray(crf.inference(CRF_ITER), np.float32).reshape(2, h, w)
        return q[1]
    raise ValueError(f"unknown refinement {how!r}; known: {', '.join(REFINEMENTS)}")
