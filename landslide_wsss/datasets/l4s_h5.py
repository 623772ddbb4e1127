"""Landslide4Sense h5 patches: img/image_N.h5 (key "img", 128x128x14 float: Sentinel-2 bands 1-12,
slope, DEM, as rescaled by the dataset) and mask/mask_N.h5 (key "mask", 128x128, 1 = landslide).

`load_l4s(img_dir, mask_dir=None)` -> ChipSet with images (N, 14, H, W) float32 (channels first),
labels = any landslide pixel in the mask (0 when no mask is given), masks (N, H, W) uint8 or None.
A single h5 file holding both keys is accepted as well (`read_pair`).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Optional, Tuple

import numpy as np

from ..errors import InputError
from .common import ChipSet

BANDS = ["B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B9", "B10", "B11", "B12", "slope", "dem"]


def _num(p: Path) -> int:
    m = re.search(r"(\d+)", p.stem)
    return int(m.group(1)) if m else -1


def read_pair(img_path, mask_path=None) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """(C, H, W) float32 image and (H, W) uint8 mask (or None)."""
    import h5py
    img_path = Path(img_path)
    try:
        with h5py.File(img_path, "r") as f:
            if "img" not in f:
                raise InputError(f"{img_path}: no 'img' dataset in this h5 file")
            img = np.asarray(f["img"], np.float32)
            mask = np.asarray(f["mask"]) if ("mask" in f and mask_path is None) else None
    except OSError as exc:
        raise InputError(f"{img_path}: not a readable h5 file ({exc})") from None
    if img.ndim != 3:
        raise InputError(f"{img_path}: 'img' has shape {img.shape}, expected H x W x C")
    img = np.ascontiguousarray(img.transpose(2, 0, 1))
    if mask_path is not None:
        with h5py.File(mask_path, "r") as f:
            if "mask" not in f:
                raise InputError(f"{mask_path}: no 'mask' dataset in this h5 file")
            mask = np.asarray(f["mask"])
    if mask is not None:
        mask = np.asarray(mask).squeeze().astype(np.uint8)
        if mask.shape != img.shape[1:]:
            raise InputError(f"{img_path}: mask {mask.shape} does not fit image {img.shape[1:]}")
    return img, mask


def load_l4s(img_dir, mask_dir=None, limit: Optional[int] = None) -> ChipSet:
    img_dir = Path(img_dir)
    if not img_dir.is_dir():
        raise InputError(f"{img_dir}: not a directory")
    files = sorted(img_dir.glob("*.h5"), key=_num)[:limit] if limit else sorted(img_dir.glob("*.h5"), key=_num)
    if not files:
        raise InputError(f"{img_dir}: no .h5 files")
    masks_by_num = {}
    if mask_dir is not None:
        masks_by_num = {_num(p): p for p in Path(mask_dir).glob("*.h5")}
    imgs, masks, labels, names = [], [], [], []
    for p in files:
        mp = masks_by_num.get(_num(p)) if mask_dir is not None else None
        if mask_dir is not None and mp is None:
            raise InputError(f"{p}: no mask file with number {_num(p)} in {mask_dir}")
        img, mask = read_pair(p, mp)
        imgs.append(img)
        masks.append(mask)
        labels.append(float(mask is not None and (mask == 1).any()))
        names.append(p.stem)
    have = all(m is not None for m in masks)
    return ChipSet(np.stack(imgs), np.asarray(labels, np.float32), np.stack(masks) if have else None, names)
