"""The Bijie landslide dataset folder: images/NAME.png, masks/NAME.png, split lists.

Image-level label from the file name prefix: `ls_` = 1 (landslide), `nls_` = 0. Masks are 0/255 on
disk and become 0/1. Two loaders: `load_bijie_native` keeps every image at its own resolution and
`centre_crops` cuts one chip per image from it (what classifier training uses: resizing whole
images would leak a scale cue, the landslide-free images being larger); `load_bijie` resizes
whole images to the chip size (bilinear with antialias, masks nearest; the CycleGAN's chips,
training/cyclegan.py). Evaluation keeps the original images and masks (see evaluation.py).
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import List, Optional

import numpy as np
from PIL import Image

from ..errors import InputError
from .common import ChipSet


def label_from_name(name: str) -> int:
    stem = Path(name).stem
    if stem.startswith("nls_"):
        return 0
    if stem.startswith("ls_"):
        return 1
    raise InputError(f"{name}: Bijie names start with ls_ (landslide) or nls_ (landslide-free)")


def read_split(path) -> List[str]:
    """Names (without extension) listed one a line; blank lines and # comments skipped."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: split list not found")
    names = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.append(Path(line).stem if line.endswith(".png") else line)
    if not names:
        raise InputError(f"{path}: split list is empty")
    return names


def _find(folder: Path, name: str) -> Path:
    for ext in (".png", ".jpg", ".tif"):
        p = folder / (name + ext)
        if p.is_file():
            return p
    raise InputError(f"{folder / name}: image not found (.png/.jpg/.tif)")


def load_image(root, name: str, jpeg_quality: Optional[int] = None) -> np.ndarray:
    """Original RGB image as uint8 (3, H, W); with `jpeg_quality`, after one JPEG round trip at that
    quality (the training split is stored as JPEG 95, val as PNG: measuring val both ways shows what
    the format change alone does)."""
    img = Image.open(_find(Path(root) / "images", name)).convert("RGB")
    if jpeg_quality is not None:
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=int(jpeg_quality))
        img = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    return np.asarray(img).transpose(2, 0, 1).copy()


def load_mask(root, name: str, shape=None) -> np.ndarray:
    """Original mask as uint8 (H, W) with 0/1 (255 on disk -> 1). Missing mask of an nls_ image -> zeros."""
    folder = Path(root) / "masks"
    try:
        m = np.asarray(Image.open(_find(folder, name)).convert("L"))
    except InputError:
        if label_from_name(name) == 0 and shape is not None:
            return np.zeros(shape, np.uint8)
        raise
    return (m > 127).astype(np.uint8)


def resize_image(img: np.ndarray, size: int) -> np.ndarray:
    """(C, H, W) uint8 -> (C, size, size) uint8, bilinear with antialias."""
    out = [np.asarray(Image.fromarray(b).resize((size, size), Image.BILINEAR, reducing_gap=None)) for b in img]
    return np.stack(out)


def resize_mask(mask: np.ndarray, size: int) -> np.ndarray:
    return np.asarray(Image.fromarray(mask).resize((size, size), Image.NEAREST))


def load_bijie(root, split, size: int = 128, with_masks: bool = True, names: Optional[List[str]] = None) -> ChipSet:
    """All images of a split list resized to `size` x `size`, held in memory (uint8)."""
    root = Path(root)
    if not (root / "images").is_dir():
        raise InputError(f"{root}: not a Bijie folder (no images/ inside)")
    if names is None:
        split = Path(split)
        names = read_split(split if split.is_absolute() or split.exists() else root / split)
    imgs, labels, masks = [], [], []
    for n in names:
        img = load_image(root, n)
        imgs.append(resize_image(img, size))
        labels.append(label_from_name(n))
        if with_masks:
            masks.append(resize_mask(load_mask(root, n, img.shape[1:]), size))
    return ChipSet(np.stack(imgs), np.asarray(labels, np.float32), np.stack(masks) if with_masks else None, list(names))


def load_bijie_native(root, split, min_size: int = 128, names: Optional[List[str]] = None, with_masks: bool = False):
    """Images of a split at their own resolution (no scale change: the Bijie landslide-free images
    are larger on average, so resizing every image to one size leaks a scale cue into the labels).
    Images smaller than `min_size` on a side are enlarged to it. Returns (images list of uint8
    (3, H, W), labels array, masks list or None, names)."""
    root = Path(root)
    if names is None:
        split = Path(split)
        names = read_split(split if split.is_absolute() or split.exists() else root / split)
    imgs, masks = [], []
    for n in names:
        img = load_image(root, n)
        mask = load_mask(root, n, img.shape[1:]) if with_masks else None
        h, w = img.shape[1:]
        if min(h, w) < min_size:
            s = min_size / min(h, w)
            nh, nw = max(min_size, round(h * s)), max(min_size, round(w * s))
            img = np.stack([np.asarray(Image.fromarray(b).resize((nw, nh), Image.BILINEAR)) for b in img])
            if mask is not None:
                mask = np.asarray(Image.fromarray(mask).resize((nw, nh), Image.NEAREST))
        imgs.append(img)
        masks.append(mask)
    labels = np.asarray([label_from_name(n) for n in names], np.float32)
    return imgs, labels, (masks if with_masks else None), list(names)


def centre_crops(imgs, labels, size: int, rng: np.random.Generator, masks=None):
    """One `size` crop per image: landslide images (label 1) get a crop that contains the image
    centre (Bijie landslide images are framed around their landslide; no pixel mask is used),
    landslide-free images a uniform random crop. Returns ChipSet (uint8)."""
    out, mout = [], []
    for k, img in enumerate(imgs):
        h, w = img.shape[1:]
        if labels[k] > 0:
            r_lo, r_hi = max(0, h // 2 - size + 1), min(h - size, h // 2)
            c_lo, c_hi = max(0, w // 2 - size + 1), min(w - size, w // 2)
        else:
            r_lo, r_hi, c_lo, c_hi = 0, h - size, 0, w - size
        r = int(rng.integers(r_lo, max(r_lo, r_hi) + 1))
        c = int(rng.integers(c_lo, max(c_lo, c_hi) + 1))
        out.append(img[:, r:r + size, c:c + size])
        if masks is not None:
            mout.append(masks[k][r:r + size, c:c + size])
    return ChipSet(np.stack(out), np.asarray(labels, np.float32), np.stack(mout) if masks is not None else None)
