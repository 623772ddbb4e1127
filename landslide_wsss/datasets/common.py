"""Shared pieces: an in-memory chip set and per-band normalization statistics."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Sequence

import numpy as np


@dataclass
class ChipSet:
    """Chips held in memory: images (N, C, H, W) raw values, labels (N,) 0/1, optional masks
    (N, H, W) uint8 with 0 background, 1 landslide, 255 ignore."""

    images: np.ndarray
    labels: np.ndarray
    masks: Optional[np.ndarray] = None
    names: List[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.labels)

    def __post_init__(self):
        if len(self.images) != len(self.labels):
            raise ValueError("images and labels differ in length")
        if self.masks is not None and len(self.masks) != len(self.labels):
            raise ValueError("images and masks differ in length")

    @staticmethod
    def concat(sets: Sequence["ChipSet"]) -> "ChipSet":
        sets = [s for s in sets if len(s)]
        masks = None
        if all(s.masks is not None for s in sets):
            masks = np.concatenate([s.masks for s in sets])
        return ChipSet(np.concatenate([s.images.astype(np.float32) if s.images.dtype != sets[0].images.dtype
                                       else s.images for s in sets]),
                       np.concatenate([s.labels for s in sets]), masks,
                       [n for s in sets for n in s.names])

    def subset(self, idx) -> "ChipSet":
        idx = np.asarray(idx)
        return ChipSet(self.images[idx], self.labels[idx], None if self.masks is None else self.masks[idx],
                       [self.names[i] for i in idx] if self.names else [])


def band_stats(images: np.ndarray, valid: Optional[np.ndarray] = None) -> tuple[list, list]:
    """Per-band mean and std over (N, C, H, W) images; `valid` (N, H, W) restricts the pixels.

    Computed in float64 band by band, so it stays cheap on a few thousand chips."""
    images = np.asarray(images)
    c = images.shape[1]
    mean, std = [], []
    for b in range(c):
        band = images[:, b].astype(np.float64)
        vals = band[valid] if valid is not None else band.ravel()
        if vals.size == 0:
            mean.append(0.0), std.append(1.0)
            continue
        m = float(vals.mean())
        s = float(vals.std())
        mean.append(m)
        std.append(s if s > 1e-6 else 1.0)
    return mean, std
