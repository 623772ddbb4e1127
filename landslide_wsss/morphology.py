"""The one home of the mask clean-up every scorer uses: opening with a disk, then dropping small
8-connected components; and the hysteresis gate of the segmentation scorers."""
from __future__ import annotations

import numpy as np
from scipy import ndimage


def disk(r: int) -> np.ndarray:
    """Boolean disk of radius `r` px (a (2r+1)² structuring element)."""
    y, x = np.ogrid[-r:r + 1, -r:r + 1]
    return x * x + y * y <= r * r


def _keep_components(mask: np.ndarray, keep) -> np.ndarray:
    """`mask` with only the 8-connected components for which keep(labels, n) -> bool[n + 1] is set."""
    lab, n = ndimage.label(mask, structure=np.ones((3, 3), bool))
    kept = keep(lab, n)
    kept[0] = False
    return kept[lab]


def remove_small(mask: np.ndarray, min_px: int) -> np.ndarray:
    """`mask` without its 8-connected components of fewer than `min_px` pixels."""
    if min_px <= 1 or not mask.any():
        return mask
    return _keep_components(mask, lambda lab, n: np.bincount(lab.ravel(), minlength=n + 1) >= min_px)


def clean_mask(mask: np.ndarray, open_radius: int, min_px: int) -> np.ndarray:
    """Opening with a disk of `open_radius` px (0: none), then components below `min_px` dropped."""
    if open_radius > 0 and mask.any():
        mask = ndimage.binary_opening(mask, structure=disk(open_radius))
    return remove_small(mask, min_px)


def hysteresis(mask: np.ndarray, strong: np.ndarray) -> np.ndarray:
    """`mask` keeping only its 8-connected components that contain a `strong` pixel (the
    low/high-threshold gate: a weak blob with no confident core is dropped whole)."""
    if not mask.any():
        return mask

    def cored(lab, n):
        keep = np.zeros(n + 1, bool)
        keep[np.unique(lab[strong & mask])] = True
        return keep
    return _keep_components(mask, cored)
