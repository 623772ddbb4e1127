"""The weak scorers: classifier gate -> CAM method (-> CycleGAN difference) -> per-scene fusion
(`WeakScorer`), and the earlier U-Net yardstick's scorer (`UNetScorer`). See wsss.py for the fusion
rule and the model file; refinements.py subclasses WeakScorer.
"""
from __future__ import annotations

import copy
from typing import Dict, Mapping, Optional

import numpy as np
import torch

from .. import __version__
from ..errors import ModelError
from ..registry import CAM_METHODS
from ..morphology import clean_mask
from ..params import CamParams, defaults, from_mapping
from ..scoring import SceneStats

DEFAULT_PARAMS = defaults()  # params.CamParams: the typed fields, their defaults and checks


def cam_reference(stats: SceneStats, params: Mapping, key: str = "cam") -> float:
    """The scene's CAM normalization reference r (see module docstring)."""
    ms = stats.maps[key]
    norm = params.get("norm", "vmax")
    if norm == "abs":
        r = float(params.get("abs_ref", 1.0))
    elif norm == "quantile":  # above bin 0 (gated tiles left out); the maximum when nothing is
        r = ms.quantile(float(params.get("norm_q", 0.99)), skip_zero=True) or ms.vmax
    else:
        r = ms.vmax
    return float(max(r, float(params.get("abs_floor", 0.0)), 1e-12))


class WeakScorer:
    """ScoringModel: classifier gate -> CAM (-> CycleGAN difference) -> per-scene fusion."""

    uses_terrain = False

    def __init__(self, classifier, meta: dict, method: Optional[str] = None, generator=None,
                 device: str = "cpu", params: Optional[dict] = None):
        from ..cam import make_cam

        self.meta = meta
        self.params = copy.deepcopy(DEFAULT_PARAMS)
        self.params.update(copy.deepcopy(meta.get("params") or {}))
        if params:
            self.params.update(params)
        try:  # typed check of the merged settings: bad metadata is one clean error here, not a crash later
            from_mapping(CamParams, self.params)
        except (ValueError, TypeError) as exc:
            raise ModelError(f"model parameters: {exc}") from None
        method = method or meta.get("method_default") or self.params["method"]
        base = method[:-len("-cyclegan")] if method.endswith("-cyclegan") else method
        if base not in CAM_METHODS:
            raise ModelError(f"method {method!r} is not a CAM method of this model ({', '.join(CAM_METHODS)})")
        self._apply_tuned((self.params.get("per_method") or {}).get(base), base)
        self.cyclegan = method.endswith("-cyclegan")
        if self.cyclegan and generator is None:
            raise ModelError(f"method {method!r} needs a CycleGAN generator, and this model file has none")
        self.name = method
        self.base_method = base
        self.version = str(meta.get("version", __version__))
        self.in_bands = int(meta["in_bands"])
        self.tile_size = int(meta.get("tile_size", 128))
        self.gsd = float(meta["gsd"]) if meta.get("gsd") else None  # working GSD (m); None: the scene's own
        self.map_names = ("cam", "diff") if self.cyclegan else ("cam",)
        self.device = torch.device(device)
        self.classifier = classifier.to(self.device).eval()
        self.generator = generator.to(self.device).eval() if generator is not None else None
        self.bf16 = bool(self.params.get("bf16", True)) and self.device.type == "cpu"
        opts = dict(scales=self.params.get("scales", [1.0]), flip=bool(self.params.get("flip", False)),
                    bf16=self.bf16, target_layer=meta.get("cam_layer", "layer4"))
        if base == "scorecam":
            opts.update({k: v for k, v in (self.params.get("scorecam") or {}).items() if v is not None})
        self.cam = make_cam(base, self.classifier, **opts)
        if self.device.type == "cpu":
            self.classifier = self.classifier.to(memory_format=torch.channels_last)

    def _apply_tuned(self, per: Optional[dict], base: str) -> None:
        """Tuned normalization / threshold of one method (training/tune.py)."""
        if per:
            self.params.update({k: v for k, v in per.items() if k != "threshold"})
            if "threshold" in per:
                self.params["thresholds"] = {**(self.params.get("thresholds") or {}), base: per["threshold"]}

    def use_profile(self, name: str) -> bool:
        """Switch to a tuned parameter profile (e.g. "bijie": image chips instead of scenes).
        Returns False (and changes nothing) when the model has no such profile."""
        per = ((self.params.get("profiles") or {}).get(name) or {}).get(self.base_method)
        if not per:
            return False
        if "norm_q" not in per:
            self.params.pop("norm_q", None)
            self.params["norm_q"] = DEFAULT_PARAMS["norm_q"]
        self._apply_tuned(per, self.base_method)
        return True

    # -- scoring
    @torch.no_grad()
    def probabilities(self, x_norm: torch.Tensor) -> torch.Tensor:
        out = []
        bs = int(self.params.get("batch_size", 32))
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            for i in range(0, len(x_norm), bs):
                out.append(torch.sigmoid(self.classifier(x_norm[i:i + bs]).float()))
        return torch.cat(out) if out else torch.zeros(0)

    def predict_tiles(self, tiles: np.ndarray, valid: np.ndarray, terrain: Optional[np.ndarray] = None) -> Dict[str, np.ndarray]:
        tiles = np.asarray(tiles, np.float32)
        if tiles.ndim != 4 or tiles.shape[1] < self.in_bands:
            raise ModelError(f"model expects {self.in_bands} band(s), got tiles of shape {tiles.shape}")
        tiles = tiles[:, : self.in_bands]
        n, _, h, w = tiles.shape
        valid = np.asarray(valid, bool)
        x = torch.from_numpy(np.ascontiguousarray(tiles)).to(self.device)
        xn = self.classifier.normalize(x).contiguous(memory_format=torch.channels_last)
        probs = self.probabilities(xn).cpu()
        self.last_probs = probs.numpy()
        keep = torch.nonzero(probs >= float(self.params.get("gate", 0.5))).flatten()
        cam = np.zeros((n, h, w), np.float32)
        diff = np.zeros((n, h, w), np.float32) if self.cyclegan else None
        bs = int(self.params.get("batch_size", 32))
        for i in range(0, len(keep), bs):
            idx = keep[i:i + bs]
            cam[idx.numpy()] = self.cam(xn[idx]).float().cpu().numpy()
            if self.cyclegan:
                from ..fusion import difference_map
                from ..models.cyclegan import normalize_spectral, translate
                spec = normalize_spectral(x[idx])
                g = translate(self.generator, spec)
                diff[idx.numpy()] = difference_map(spec, g, mode=self.generator.difference_mode)
        cam *= valid
        out = {"cam": cam}
        if self.cyclegan:
            out["diff"] = diff * valid
        return out

    @property
    def threshold(self) -> float:
        """The CAM threshold t_C of this method (what `detect --threshold` overrides)."""
        if self.cyclegan:
            return float((self.params.get("fusion") or {}).get("t_cam", 0.2))
        return float((self.params.get("thresholds") or {}).get(self.base_method, 0.3))

    @threshold.setter
    def threshold(self, value: float) -> None:
        if self.cyclegan:
            self.params["fusion"] = {**(self.params.get("fusion") or {}), "t_cam": float(value)}
        else:
            self.params["thresholds"] = {**(self.params.get("thresholds") or {}), self.base_method: float(value)}

    def fuse(self, maps: Mapping[str, np.ndarray], stats: SceneStats):
        cam = np.nan_to_num(np.asarray(maps["cam"], np.float32))
        if self.cyclegan:
            from ..fusion import fuse_maps
            return fuse_maps(cam, maps["diff"], stats, self.params.get("fusion"))
        r = cam_reference(stats, self.params)
        score = np.clip(cam / r, 0, 1).astype(np.float32)
        t = float((self.params.get("thresholds") or {}).get(self.base_method, 0.3))
        mask = clean_mask(score > t, int(self.params.get("open_radius", 1)), int(self.params.get("min_component_px", 16)))
        return score, mask


class UNetScorer:
    """ScoringModel for the supervised U-Net baseline: map "prob" (sigmoid), mask = prob > threshold."""

    uses_terrain = False
    map_names = ("prob",)

    def __init__(self, net, meta: dict, device: str = "cpu"):
        self.net = net.to(device).eval()
        self.meta = meta
        self.name = "unet"
        self.version = str(meta.get("version", __version__))
        u = meta.get("unet") or meta
        self.in_bands = int(u.get("in_bands", meta["in_bands"]))
        self.tile_size = int(u.get("tile_size", meta.get("tile_size", 128)))
        self.threshold = float(u.get("threshold", 0.5))
        self.device = torch.device(device)
        self.bf16 = self.device.type == "cpu"

    def predict_tiles(self, tiles, valid, terrain=None):
        tiles = np.asarray(tiles, np.float32)[:, : self.in_bands]
        x = torch.from_numpy(np.ascontiguousarray(tiles)).to(self.device)
        out = []
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            for i in range(0, len(x), 32):
                out.append(torch.sigmoid(self.net(self.net.normalize(x[i:i + 32])).float())[:, 0].cpu())
        prob = torch.cat(out).numpy() if out else np.zeros((0,) + tiles.shape[2:], np.float32)
        return {"prob": (prob * np.asarray(valid, bool)).astype(np.float32)}

    def fuse(self, maps, stats):
        p = np.asarray(maps["prob"], np.float32)
        return np.clip(p, 0, 1), clean_mask(p > self.threshold, 0, 0)
