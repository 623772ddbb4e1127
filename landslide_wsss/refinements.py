"""The CAM refinements as scoring models: `terrain-crop`, `rcm-mam`, `adversarial-erasing`,
each also as `NAME-cyclegan` (the refined CAM fused with the CycleGAN difference by fusion.fuse_maps).

`RefinedScorer` is a WeakScorer whose CAM comes from
  terrain-crop         any classifier (the default one, or one retrained on crops by
                       `landslide-wsss train terrain-crop`) + terrain-guided cropping at inference
                       (cam/terrain_crop.py); uses the DSM/slope when given.
  rcm-mam              a classifier fine-tuned with RCM + MAM (training/rcm_mam.py), plain CAM.
  adversarial-erasing  the EADER localizer (training/adversarial_erasing.py), Grad-CAM.
rcm-mam and adversarial-erasing need their own weights: a model file whose metadata says
`"refinement": NAME` (`--model runs/models/rcm_mam.safetensors`); the embedded default model has
none unless a refinement wins the ablation (runs/ablation.md).
"""
from __future__ import annotations

from typing import Mapping, Optional

import numpy as np

from .errors import ModelError
from .registry import METHODS, REFINEMENTS
from .scoring import SceneStats
from .scorers.weak import WeakScorer



class RefinedScorer(WeakScorer):
    def __init__(self, classifier, meta: dict, method: Optional[str] = None, generator=None,
                 device: str = "cpu", params: Optional[dict] = None, networks=None):
        spec = METHODS.get(method or meta.get("method_default"))
        ref = spec.refinement if spec is not None else None
        if ref is None:
            raise ModelError(f"method {method!r} is not a refinement ({', '.join(REFINEMENTS)})")
        if METHODS[ref].component != "classifier" and meta.get("refinement") != ref:  # needs its own weights
            raise ModelError(f"method {ref!r} needs its own weights: train them with `landslide-wsss train {ref} "
                             f"--out FILE` and pass --model FILE")
        cam_method = meta.get("refinement_cam") or REFINEMENTS[ref]
        super().__init__(classifier, meta, method=cam_method + ("-cyclegan" if spec.generator else ""), generator=generator,
                         device=device, params=params, networks=networks)
        self.name = spec.name
        self.refinement = ref
        self.uses_terrain = ref == "terrain-crop"
        if self.uses_terrain:
            from .cam.terrain_crop import CropParams
            self.crop = CropParams.from_any(self.merged.get("terrain_crop"))
            self.map_names = tuple(self.map_names) + ("slope",)

    def predict_tiles(self, tiles, valid, terrain=None):
        out = super().predict_tiles(tiles, valid, terrain)
        if self.refinement != "terrain-crop":
            return out
        from .cam.terrain_crop import refine_batch
        valid = np.asarray(valid, bool)
        slope = None if terrain is None else np.asarray(terrain, np.float32)[:, 1] * valid
        keep = self.last_kept
        if len(keep):
            x = np.ascontiguousarray(np.asarray(tiles, np.float32)[keep, : self.in_bands])
            out["cam"][keep] = refine_batch(self.networks.cam_maps, x, out["cam"][keep], self.crop,
                                            None if slope is None else slope[keep], valid[keep])
        out["slope"] = slope if slope is not None else np.zeros(valid.shape, np.float32)
        return out

    def fuse(self, maps: Mapping[str, np.ndarray], stats: SceneStats):
        if self.refinement == "terrain-crop" and self.crop.slope_gate is not None and "slope" in stats.maps:
            from .cam.terrain_crop import slope_gate
            ms = stats.maps["slope"]
            if ms.vmax > 0:
                maps = dict(maps)
                maps["cam"] = slope_gate(maps["cam"], maps["slope"], ms.quantile(float(self.crop.slope_gate)))
        return super().fuse(maps, stats)
