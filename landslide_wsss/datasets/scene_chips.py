"""Chips cut from GeoTIFF scenes (e.g. the AMU-Net areas) with image-level labels from a mask.

Mask convention: 1 landslide, 0 background, 255 (or the mask's nodata) = not covered. A chip's
label is 1 when any covered pixel is landslide. Chips whose covered fraction (mask not 255 and
image valid) is below `min_covered` are skipped. An optional DSM adds one band (elevation, m).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio

from ..errors import InputError
from .common import ChipSet


def _read(path, name):
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: {name} not found")
    with rasterio.open(path) as ds:
        data = ds.read()
        valid = ds.read_masks(1) > 0
    return data, valid


def read_scene_arrays(image, mask=None, dsm=None):
    """Whole-scene arrays: image (C, H, W) float32 (DSM appended as a band), valid (H, W), mask (H, W) or None."""
    img, valid = _read(image, "image")
    img = img.astype(np.float32)
    if dsm is not None:
        d, dvalid = _read(dsm, "DSM")
        if d.shape[1:] != img.shape[1:]:
            raise InputError(f"{dsm}: DSM is {d.shape[2]}x{d.shape[1]}, image is {img.shape[2]}x{img.shape[1]}")
        img = np.concatenate([img, d[:1].astype(np.float32)])
        valid &= dvalid
    m = None
    if mask is not None:
        m, _ = _read(mask, "mask")
        m = m[0].astype(np.uint8)
        if m.shape != img.shape[1:]:
            raise InputError(f"{mask}: mask is {m.shape[1]}x{m.shape[0]}, image is {img.shape[2]}x{img.shape[1]}")
        m = np.where(valid, m, 255).astype(np.uint8)
    img[:, ~valid] = 0
    return img, valid, m


def scene_chips(image, mask, dsm=None, size: int = 128, stride: int = 64, min_covered: float = 0.5,
                factor: float = 1.0) -> ChipSet:
    """Cut chips on a regular grid (last row/column pulled back inside the scene). factor > 1: the
    scene is first resampled that much coarser (area-weighted image, majority mask); chip names then
    give working-grid offsets."""
    img, valid, m = read_scene_arrays(image, mask, dsm)
    if abs(factor - 1) > 1e-3:
        from ..resample import resample_image, resample_target
        img = resample_image(img, factor)
        m = resample_target(m, img.shape[1:])
    h, w = m.shape
    if h < size or w < size:
        raise InputError(f"{image}: scene {w}x{h} is smaller than the chip size {size}")
    rows = sorted(set(list(range(0, h - size + 1, stride)) + [h - size]))
    cols = sorted(set(list(range(0, w - size + 1, stride)) + [w - size]))
    imgs, labels, masks, names = [], [], [], []
    stem = Path(image).stem
    for r in rows:
        for c in cols:
            mm = m[r:r + size, c:c + size]
            covered = mm != 255
            if covered.mean() < min_covered:
                continue
            imgs.append(img[:, r:r + size, c:c + size])
            labels.append(float((mm == 1).any()))
            masks.append(mm)
            names.append(f"{stem}_r{r}_c{c}")
    if not imgs:
        return ChipSet(np.zeros((0, img.shape[0], size, size), np.float32), np.zeros(0, np.float32),
                       np.zeros((0, size, size), np.uint8), [])
    dtype = np.uint8 if dsm is None else np.float32
    return ChipSet(np.stack(imgs).astype(dtype), np.asarray(labels, np.float32), np.stack(masks), names)
