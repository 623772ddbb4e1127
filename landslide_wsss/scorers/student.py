"""ScoringModel for a segmentation network at its working GSD: the weakly supervised student
(`student`, trained on pseudo-masks) and the supervised yardstick (`unet`, the same network on
true masks). One network pass per tile; map "prob"; mask = prob > threshold, and where the model
file has a gate (`gate_high`), only the blobs with a core > gate_high (hysteresis; both chosen on the
hold-out and stored in the model file). Scenes are fused in row blocks with a halo, so a blob whose
core lies farther away than the halo is judged within its block. The core resamples scenes to `gsd` and maps the result
back to the scene's grid.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from .. import __version__
from ..errors import ModelError


def mirror_fill(tile: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """A tile whose valid pixels form its top-left rectangle (a small image or scene padded up to
    the tile) gets the rest mirrored from that rectangle, as in training; other tiles as they are."""
    rows, cols = valid.any(axis=1), valid.any(axis=0)
    if valid.all() or not valid.any():
        return tile
    h, w = int(rows.sum()), int(cols.sum())
    if not (rows[:h].all() and cols[:w].all() and valid[:h, :w].all()):
        return tile
    th, tw = valid.shape
    return np.pad(tile[:, :h, :w], ((0, 0), (0, th - h), (0, tw - w)), mode="symmetric")


class SegmentationScorer:
    uses_terrain = False
    map_names = ("prob",)
    chunk = 2  # tiles per network pass

    def __init__(self, net, component: dict, name: str, version: str, device: str = "cpu"):
        self.device = torch.device(device)
        self.net = net.to(self.device).eval()
        if self.device.type == "cpu":
            self.net = self.net.to(memory_format=torch.channels_last)
        self.name = name
        self.version = version
        self.meta = component
        self.in_bands = int(component["config"].get("in_bands", 3))
        self.tile_size = int(component.get("tile_size", 256))
        self.overlap = int(component.get("overlap", self.tile_size // 8))
        self.gsd = float(component["gsd"]) if component.get("gsd") else None
        self.threshold = float(component.get("threshold", 0.5))
        self.gate_high = component.get("gate_high")  # None: no hysteresis gate
        self.bf16 = self.device.type == "cpu"

    def predict_tiles(self, tiles, valid, terrain=None):
        tiles = np.asarray(tiles, np.float32)
        if tiles.ndim != 4 or tiles.shape[1] < self.in_bands:
            raise ModelError(f"model expects {self.in_bands} band(s), got tiles of shape {tiles.shape}")
        valid = np.asarray(valid, bool)
        tiles = np.stack([mirror_fill(t[: self.in_bands], v) for t, v in zip(tiles, valid)])
        x = torch.from_numpy(np.ascontiguousarray(tiles)).to(self.device)
        out = []
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            for i in range(0, len(x), self.chunk):
                xn = self.net.normalize(x[i:i + self.chunk]).contiguous(memory_format=torch.channels_last)
                out.append(torch.sigmoid(self.net(xn).float())[:, 0].cpu())
        prob = torch.cat(out).numpy() if out else np.zeros((0,) + tiles.shape[2:], np.float32)
        return {"prob": (prob * valid).astype(np.float32)}

    def fuse(self, maps, stats):
        from ..morphology import hysteresis
        p = np.clip(np.asarray(maps["prob"], np.float32), 0, 1)
        mask = p > self.threshold
        if self.gate_high is not None:
            mask = hysteresis(mask, p > float(self.gate_high))
        return p, mask


def load_segmentation(tensors, meta, path, prefix: str, name: str, device: str = "cpu") -> Optional[SegmentationScorer]:
    """The `prefix` component of a model file as a scorer, or None when the file has none."""
    from ..checkpoint import check_state_dict
    from ..models.student import build_student

    comp = meta.get(prefix)
    if not comp:
        return None
    net = build_student(comp["config"])
    sd = {k[len(prefix) + 1:]: v.float() for k, v in tensors.items() if k.startswith(prefix + ".")}
    check_state_dict(net, sd, path)
    net.load_state_dict(sd)
    return SegmentationScorer(net, comp, name, str(meta.get("version", __version__)), device=device)
