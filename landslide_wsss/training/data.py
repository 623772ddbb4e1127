"""The training data of the embedded model: paths under the shared data folder, the seeded Bijie
hold-out and the area A strip (both kept for rule-based choices, never trained on)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
CONFIG = {"arch": "resnet18", "in_bands": 3, "output_stride": 16, "width": 32}
TILE = 128
HOLDOUT_FRAC = 0.1
STRIP_FRAC = 0.2  # bottom rows of area A kept for tuning


def _paths(data):
    data = Path(data)
    return {"bijie": data / "bijie", "a_rgb": data / "amunet/areaA_rgb.tif", "a_mask": data / "amunet/areaA_mask.tif",
            "a_dsm": data / "amunet/areaA_dsm.tif",
            "b_rgb": data / "amunet/areaB_rgb.tif", "b_mask": data / "amunet/areaB_mask.tif",
            "b_dsm": data / "amunet/areaB_dsm.tif"}


def split_holdout(names, labels, frac=HOLDOUT_FRAC, seed=0):
    """Seeded stratified hold-out of the Bijie train list: (train_idx, holdout_idx)."""
    rng = np.random.default_rng(seed)
    hold = []
    for lab in (0, 1):
        idx = np.flatnonzero(np.asarray(labels) == lab)
        rng.shuffle(idx)
        hold.extend(idx[: int(round(frac * len(idx)))].tolist())
    hold = np.sort(np.asarray(hold, int))
    train = np.setdiff1d(np.arange(len(names)), hold)
    return train, hold
