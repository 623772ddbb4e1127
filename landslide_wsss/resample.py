"""In-memory resampling between a raster's own grid and a model's working grid, on numpy + scipy
(no torch, so `evaluate` runs on the light install): images area-weighted down, 0/1/255 targets by
majority, probabilities bilinear back.

Each resize is separable: one sparse (n_out, n_in) weight matrix per axis, applied as
rows @ band @ cols.T. The weights are torch's `F.interpolate` formulas (bilinear with and without
antialiasing, "area", "nearest"), so maps made here match those the networks were trained on."""
from __future__ import annotations

from typing import Tuple

import numpy as np
from scipy import sparse

IGNORE = 255


def _matrix(rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, n_out: int, n_in: int) -> sparse.csr_matrix:
    return sparse.csr_matrix((vals, (rows, cols)), shape=(n_out, n_in))


def bilinear_weights(n_in: int, n_out: int) -> sparse.csr_matrix:
    """Two-tap bilinear with half-pixel centres, no antialiasing (align_corners=False)."""
    src = np.maximum((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    frac = src - i0
    out = np.arange(n_out)
    return _matrix(np.r_[out, out], np.r_[i0, i1], np.r_[1.0 - frac, frac], n_out, n_in)


def antialiased_weights(n_in: int, n_out: int) -> sparse.csr_matrix:
    """Bilinear shrink with antialiasing: a triangle filter as wide as the scale (torch's and PIL's)."""
    scale = n_in / n_out
    support = max(scale, 1.0)
    centre = (np.arange(n_out) + 0.5) * scale
    lo = np.maximum((centre - support + 0.5).astype(np.int64), 0)
    hi = np.minimum((centre + support + 0.5).astype(np.int64), n_in)
    width = int((hi - lo).max())
    taps = lo[:, None] + np.arange(width)[None, :]
    w = np.clip(1.0 - np.abs((taps - centre[:, None] + 0.5) / support), 0.0, None)
    w[taps >= hi[:, None]] = 0.0
    w /= w.sum(axis=1, keepdims=True)
    keep = w > 0
    rows = np.broadcast_to(np.arange(n_out)[:, None], taps.shape)
    return _matrix(rows[keep], taps[keep], w[keep], n_out, n_in)


def area_weights(n_in: int, n_out: int) -> sparse.csr_matrix:
    """The mean over each output cell's span of input pixels (adaptive average pooling)."""
    i = np.arange(n_out)
    start = (i * n_in) // n_out
    end = -((-(i + 1) * n_in) // n_out)
    counts = end - start
    rows = np.repeat(i, counts)
    cols = np.concatenate([np.arange(s, e) for s, e in zip(start, end)])
    return _matrix(rows, cols, np.repeat(1.0 / counts, counts), n_out, n_in)


def nearest_weights(n_in: int, n_out: int) -> sparse.csr_matrix:
    scale = np.float32(n_in / n_out)  # torch computes the source index in float32
    src = np.minimum(np.floor(np.arange(n_out, dtype=np.float32) * scale).astype(np.int64), n_in - 1)
    return _matrix(np.arange(n_out), src, np.ones(n_out), n_out, n_in)


def _apply(a: np.ndarray, rows: sparse.csr_matrix, cols: sparse.csr_matrix) -> np.ndarray:
    """(..., H, W) -> (..., h, w) in float32, each band rows @ band @ cols.T."""
    lead = a.shape[:-2]
    flat = np.asarray(a, np.float32).reshape((-1,) + a.shape[-2:])
    rows, cols = rows.astype(np.float32), cols.astype(np.float32)
    out = np.stack([(cols @ (rows @ b).T).T for b in flat])
    return out.reshape(lead + out.shape[-2:]).astype(np.float32, copy=False)


def resize_bilinear(a: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
    """(..., H, W) -> (..., h, w) bilinear (half-pixel centres, no antialiasing), float32."""
    h, w = int(size[0]), int(size[1])
    return _apply(a, bilinear_weights(a.shape[-2], h), bilinear_weights(a.shape[-1], w))


def resample_image(img: np.ndarray, factor: float) -> np.ndarray:
    """(C, H, W) -> (C, round(H/factor), round(W/factor)); factor > 1 shrinks (antialiased bilinear)."""
    if abs(factor - 1) < 1e-3:
        return img
    c, h, w = img.shape
    size = (max(1, round(h / factor)), max(1, round(w / factor)))
    weights = antialiased_weights if factor > 1 else bilinear_weights
    y = _apply(img, weights(h, size[0]), weights(w, size[1]))
    return np.clip(np.rint(y), 0, 255).astype(np.uint8) if img.dtype == np.uint8 else y


def resample_target(t: np.ndarray, size) -> np.ndarray:
    """0/1/255 target to `size` (h, w): the majority of the covered area, 255 where no class has half."""
    if t.shape == tuple(size):
        return t
    weights = area_weights if size[0] <= t.shape[0] else nearest_weights
    frac = _apply(np.stack([t == 0, t == 1]), weights(t.shape[0], size[0]), weights(t.shape[1], size[1]))
    out = np.full(tuple(size), IGNORE, np.uint8)
    out[frac[0] > 0.5] = 0
    out[frac[1] >= 0.5] = 1
    return out


def resize_prob(p: np.ndarray, size) -> np.ndarray:
    if p.shape == tuple(size):
        return p
    return resize_bilinear(p, size)
