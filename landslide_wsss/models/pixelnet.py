"""PixelNetScorer: a small fully convolutional per-pixel scorer.

It is the simplest real ScoringModel (one map, "prob"): the geospatial core is tested end to
end with a tiny randomly initialised one, and anything that outputs per-pixel logits can be
wrapped the same way. Saved and loaded with checkpoint.py (architecture "pixelnet").
"""
from __future__ import annotations

from typing import Dict, Mapping, Optional, Sequence

import numpy as np
import torch
from scipy import ndimage
from torch import nn

from ..checkpoint import check_state_dict, load_checkpoint, save_checkpoint
from ..errors import ModelError
from ..scoring import SceneStats

ARCHITECTURE = "pixelnet"


def build_pixelnet(in_bands: int, width: int = 8) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(in_bands, width, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(width, width, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(width, 1, 1),
    )


class PixelNetScorer:
    map_names: Sequence[str] = ("prob",)
    uses_terrain = False

    def __init__(self, net: nn.Module, meta: dict, device: str = "cpu"):
        self.net = net.to(device).eval()
        self.meta = meta
        self.device = device
        self.name = meta.get("method", ARCHITECTURE)
        self.version = meta["version"]
        self.in_bands = int(meta["in_bands"])
        self.tile_size = int(meta.get("tile_size", 256))
        self.threshold = float(meta.get("threshold", 0.5))
        self.mean = np.asarray(meta.get("mean", [0.0] * self.in_bands), np.float32)[:, None, None]
        self.std = np.asarray(meta.get("std", [1.0] * self.in_bands), np.float32)[:, None, None]

    @classmethod
    def random(cls, in_bands: int = 3, width: int = 8, seed: int = 0, **meta) -> "PixelNetScorer":
        torch.manual_seed(seed)
        net = build_pixelnet(in_bands, width)
        m = {"architecture": ARCHITECTURE, "in_bands": in_bands, "width": width, "version": f"pixelnet-random-{seed}"}
        m.update(meta)
        return cls(net, m)

    def save(self, path) -> None:
        save_checkpoint(path, self.net.state_dict(), {k: v for k, v in self.meta.items() if k != "format"})

    @classmethod
    def load(cls, path, device: str = "cpu") -> "PixelNetScorer":
        tensors, meta = load_checkpoint(path)
        if meta["architecture"] != ARCHITECTURE:
            raise ModelError(f"{path}: architecture {meta['architecture']!r} is not {ARCHITECTURE!r}")
        net = build_pixelnet(int(meta["in_bands"]), int(meta.get("width", 8)))
        check_state_dict(net, tensors, path)
        net.load_state_dict(tensors)
        return cls(net, meta, device)

    @torch.inference_mode()
    def predict_tiles(self, tiles: np.ndarray, valid: np.ndarray, terrain: Optional[np.ndarray] = None) -> Dict[str, np.ndarray]:
        x = torch.from_numpy((tiles - self.mean) / self.std).to(self.device)
        prob = torch.sigmoid(self.net(x))[:, 0].float().cpu().numpy()
        return {"prob": np.where(valid, prob, 0.0).astype(np.float32)}

    def fuse(self, maps: Mapping[str, np.ndarray], stats: SceneStats):
        score = np.clip(maps["prob"], 0.0, 1.0).astype(np.float32)
        mask = ndimage.binary_opening(score >= self.threshold, iterations=1)
        return score, mask
