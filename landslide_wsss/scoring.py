"""The one small interface between the geospatial core and any model that scores pixels.

The core (api.detect) reads tiles, calls `predict_tiles`, blends every returned map into a
scene-sized raster, then lets the model turn the stitched maps into a final score and mask
with `fuse`, once per scene. Raw maps are never normalized per tile: a tile without a
landslide must stay dark. Scene-level statistics come from `SceneStats`, gathered by the core
over the stitched maps before fusion.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Mapping, Optional, Protocol, Sequence, runtime_checkable

import numpy as np

HIST_BINS = 512
FUSE_HALO = 16


@dataclass
class MapStats:
    """Statistics of one stitched map over the valid pixels of a scene.

    `hist` counts values in `HIST_BINS` equal bins over [0, vmax] (values <= 0 land in bin 0);
    enough for percentiles and Otsu thresholds without holding the scene in memory.
    """

    vmax: float
    count: int
    hist: np.ndarray

    def quantile(self, q: float, skip_zero: bool = False) -> float:
        """Approximate q-quantile (0..1) from the histogram (the centre of its bin); 0 when the map
        (or, with `skip_zero`, the map above bin 0) is empty. `skip_zero` leaves out bin 0 (pixels
        <= vmax / HIST_BINS: maps zeroed by the classifier gate, or blank), so gated tiles do not
        drag the quantile down."""
        h = np.asarray(self.hist, np.float64)
        if skip_zero and len(h) > 1:
            h = np.concatenate([[0.0], h[1:]])
        if self.count == 0 or self.vmax <= 0 or h.sum() <= 0:
            return 0.0
        idx = int(np.searchsorted(np.cumsum(h) / h.sum(), q))
        return float((min(idx, len(h) - 1) + 0.5) * self.vmax / len(h))


def histogram(values: np.ndarray, vmax: float) -> np.ndarray:
    """HIST_BINS equal bins over [0, vmax] (values <= 0 in bin 0, >= vmax in the last): the one bin
    convention of MapStats, for a whole map or a strip of one."""
    v = np.asarray(values, np.float32).ravel()
    if vmax <= 0:
        h = np.zeros(HIST_BINS, np.int64)
        h[0] = v.size
        return h
    idx = np.clip((v / vmax * HIST_BINS).astype(np.int64), 0, HIST_BINS - 1)
    return np.bincount(idx, minlength=HIST_BINS).astype(np.int64)


@dataclass
class SceneStats:
    """Per-map statistics of one scene (keys are the model's `map_names`)."""

    maps: Dict[str, MapStats] = field(default_factory=dict)


@runtime_checkable
class ScoringModel(Protocol):
    """What a model must offer to plug into detect().

    Attributes
    ----------
    name:          method name as used by --method (e.g. "scorecam-cyclegan").
    version:       model version string written to the GeoPackage (`model_version`).
    in_bands:      number of image bands the model expects (terrain bands included if any).
    tile_size:     preferred tile size in pixels (the core may be told another).
    map_names:     names of the raw per-pixel maps that predict_tiles returns, e.g. ("cam", "diff").
    uses_terrain:  True when the model can use a DSM (then detect(..., dsm=PATH) passes `terrain`).
    """

    name: str
    version: str
    in_bands: int
    tile_size: int
    map_names: Sequence[str]
    uses_terrain: bool

    def predict_tiles(
        self, tiles: np.ndarray, valid: np.ndarray, terrain: Optional[np.ndarray] = None
    ) -> Dict[str, np.ndarray]:
        """Score a batch of tiles.

        tiles: float32 (N, C, H, W) raw band values as read from the scene (C == in_bands);
               the model applies its own normalization. Invalid pixels hold 0.
        valid: bool (N, H, W), True where the scene has data.
        terrain: None, or float32 (N, 2, H, W): elevation in metres and slope in degrees from the
               co-registered DSM (resampled to the scene grid by the core; 0 where invalid).
        Returns one float32 (N, H, W) array per name in `map_names`, un-normalized, >= 0.
        """
        ...

    def fuse(self, maps: Mapping[str, np.ndarray], stats: SceneStats) -> tuple[np.ndarray, np.ndarray]:
        """Turn a block of stitched maps into (score float32 in [0, 1], mask bool), same shape.

        Called block by block over the scene with the same `stats`; the core gives each block a
        halo of `FUSE_HALO` pixels and crops it afterwards, so small neighbourhood operations
        (smoothing, opening, dilation of radius <= FUSE_HALO) are seamless. Thresholds must come
        from `stats`, never from the block itself.
        """
        ...
