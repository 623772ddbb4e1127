"""In-memory resampling between a raster's own grid and a model's working grid (torch ops on numpy
arrays): images area-weighted down, 0/1/255 targets by majority, probabilities bilinear back."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

IGNORE = 255


def resample_image(img: np.ndarray, factor: float) -> np.ndarray:
    """(C, H, W) -> (C, round(H/factor), round(W/factor)); factor > 1 shrinks (antialiased bilinear)."""
    if abs(factor - 1) < 1e-3:
        return img
    c, h, w = img.shape
    size = (max(1, round(h / factor)), max(1, round(w / factor)))
    x = torch.from_numpy(np.ascontiguousarray(img, np.float32))[None]
    y = F.interpolate(x, size=size, mode="bilinear", antialias=factor > 1, align_corners=False)[0]
    y = y.round().clamp(0, 255).to(torch.uint8) if img.dtype == np.uint8 else y
    return y.numpy()


def resample_target(t: np.ndarray, size) -> np.ndarray:
    """0/1/255 target to `size` (h, w): the majority of the covered area, 255 where no class has half."""
    if t.shape == tuple(size):
        return t
    x = torch.from_numpy(np.stack([t == 0, t == 1]).astype(np.float32))[None]
    frac = F.interpolate(x, size=tuple(size), mode="area")[0].numpy() if size[0] <= t.shape[0] else \
        F.interpolate(x, size=tuple(size), mode="nearest")[0].numpy()
    out = np.full(tuple(size), IGNORE, np.uint8)
    out[frac[0] > 0.5] = 0
    out[frac[1] >= 0.5] = 1
    return out


def resize_prob(p: np.ndarray, size) -> np.ndarray:
    if p.shape == tuple(size):
        return p
    x = torch.from_numpy(np.ascontiguousarray(p, np.float32))[None, None]
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)[0, 0].numpy()
