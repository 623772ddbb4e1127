"""Terrain-guided cropping (after depth-guided CAM cropping, adapted to overhead imagery).

Per tile the classifier calls landslide:
  1. confident CAM: the CAM relative to its tile maximum, values < 0.1 set to 0, then threshold at
     min + 0.5·(max − min) of the non-zero values (relative values only choose the crop; the maps
     returned stay raw, never normalized per tile);
  2. each 8-connected confident component (at most `max_crops`, default 1, the largest CAM mass first; with
     terrain, mass × (0.5 + slope rank) so components on steep ground come first) gives its tight
     box grown by `grow`·width/height (half on each side), at least `min_box` px, clipped;
  3. zoom = clip(k / sqrt(component area), 1, `max_zoom`) (no depth-versus-size relation from
     above: small components are enlarged), capped so the zoomed crop stays <= `max_crop_px`
     (default 128 = the tile size, so each crop costs at most one more tile pass);
  4. the CAM is rerun on the zoomed crop, resized back and pasted into a zero canvas (max where
     crops overlap); `match="peak"` rescales the crop CAM so its peak equals the full CAM's peak
     inside the box (the crop CAM brings its shape, the tile keeps its own magnitude);
  5. fused = max(full CAM, canvas) element-wise, so fused >= full everywhere.
Optional slope gating (`slope_gate`): CAM set to 0 where slope < the q-quantile of the scene's slope
(quantile of the stitched "slope" map, from SceneStats, in fuse(); never a fixed degree value).

The CAM used inside is plain CAM (fc weights): on this GAP + linear classifier Grad-CAM equals
CAM / (feature positions), so plain CAM is the size-invariant choice for comparing crops of other
sizes with the full tile.

The crops are cut from the raw bands and resized here in numpy; the CAM of a crop is the scorer's own
CAM forward (`cam_fn`, raw tiles in, the network's normalization inside: bilinear resizing commutes
with it), so the refinement is the same on either runtime.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, List, Optional, Tuple

import numpy as np
from scipy import ndimage

from ..resample import resize_bilinear


@dataclass
class CropParams:
    low: float = 0.1           # relative CAM values below are zeroed before the confident threshold
    rel: float = 0.5           # confident threshold: min + rel·(max − min) of the non-zero CAM
    grow: float = 0.5          # box grown by grow·size (grow/2 on each side)
    min_box: int = 32          # box side at least this many px
    k: float = 64.0            # zoom = clip(k / sqrt(area), 1, max_zoom)
    max_zoom: float = 4.0
    max_crop_px: int = 128     # zoomed crop side cap: at most the tile size (one extra tile pass per crop)
    max_crops: int = 1         # crops per tile (the original crops every positive class; CPU budget)
    match: str = "peak"        # "peak" or "none"
    slope_weight: float = 1.0  # with terrain: component priority × (0.5 + slope_weight·slope rank)
    slope_gate: Optional[float] = None  # quantile q of the scene's slope below which CAM is zeroed

    @classmethod
    def from_any(cls, params) -> "CropParams":
        from ..params import from_mapping
        return from_mapping(cls, params)


def confident_mask(cam: np.ndarray, low: float = 0.1, rel: float = 0.5) -> np.ndarray:
    """Boolean mask of the confident CAM (step 1). All False for an all-zero CAM."""
    cam = np.asarray(cam, np.float64)
    peak = cam.max() if cam.size else 0.0
    if peak <= 0:
        return np.zeros(cam.shape, bool)
    c = cam / peak
    c = np.where(c < low, 0.0, c)
    nz = c[c > 0]
    if nz.size == 0:
        return np.zeros(cam.shape, bool)
    t = nz.min() + rel * (nz.max() - nz.min())
    return c >= t


def grow_box(box: Tuple[int, int, int, int], shape: Tuple[int, int], grow: float = 0.5,
             min_box: int = 32) -> Tuple[int, int, int, int]:
    """(r0, c0, r1, c1) exclusive ends -> grown by grow·size (half each side), >= min_box, clipped."""
    r0, c0, r1, c1 = box
    h, w = shape
    out = []
    for a0, a1, lim in ((r0, r1, h), (c0, c1, w)):
        size = a1 - a0
        new = max(size * (1.0 + grow), float(min(min_box, lim)))
        mid = 0.5 * (a0 + a1)
        b0 = int(np.floor(mid - new / 2))
        b1 = int(np.ceil(mid + new / 2))
        if b0 < 0:  # shift inside before clipping, so the minimum size survives at the edges
            b1, b0 = b1 - b0, 0
        if b1 > lim:
            b0, b1 = max(0, b0 - (b1 - lim)), lim
        out.append((b0, b1))
    return out[0][0], out[1][0], out[0][1], out[1][1]


def zoom_factor(area: float, k: float = 64.0, max_zoom: float = 4.0) -> float:
    return float(np.clip(k / np.sqrt(max(area, 1.0)), 1.0, max_zoom))


def slope_rank(slope: np.ndarray, region: np.ndarray, valid: Optional[np.ndarray] = None) -> float:
    """Fraction of the tile's (valid) pixels with a slope below the region's mean slope, in [0, 1]."""
    ref = slope[valid] if valid is not None and valid.any() else slope.ravel()
    if ref.size == 0 or not region.any():
        return 0.5
    return float((ref < slope[region].mean()).mean())


def plan_crops(cam: np.ndarray, p: CropParams, slope: Optional[np.ndarray] = None,
               valid: Optional[np.ndarray] = None) -> List[Tuple[Tuple[int, int, int, int], float]]:
    """[(box, zoom)] for one tile's CAM (steps 1–3)."""
    conf = confident_mask(cam, p.low, p.rel)
    if not conf.any():
        return []
    lab, n = ndimage.label(conf, structure=np.ones((3, 3), bool))
    objs = ndimage.find_objects(lab)
    cand = []
    for i, sl in enumerate(objs, start=1):
        region = lab == i
        prio = float(cam[region].sum())
        if slope is not None and p.slope_weight:
            prio *= 0.5 + p.slope_weight * slope_rank(slope, region, valid)
        cand.append((prio, i, sl, int(region.sum())))
    cand.sort(key=lambda t: -t[0])
    plans = []
    for _, _, sl, area in cand[: p.max_crops]:
        box = grow_box((sl[0].start, sl[1].start, sl[0].stop, sl[1].stop), cam.shape, p.grow, p.min_box)
        side = max(box[2] - box[0], box[3] - box[1])
        z = min(zoom_factor(area, p.k, p.max_zoom), p.max_crop_px / max(side, 1))
        plans.append((box, z))  # < 1 only for boxes larger than max_crop_px
    return plans


def crop_cam(cam_fn: Callable[[np.ndarray], np.ndarray], x: np.ndarray, full: np.ndarray,
             plans, match: str = "peak") -> np.ndarray:
    """Steps 4–5 for one tile: x raw bands (C, H, W), full CAM (H, W) -> fused CAM (H, W);
    cam_fn: raw tiles (N, C, h, w) -> CAM (N, h, w)."""
    canvas = np.zeros_like(full, dtype=np.float32)
    for (r0, c0, r1, c1), z in plans:
        h, w = r1 - r0, c1 - c0
        zh, zw = max(16, int(round(h * z))), max(16, int(round(w * z)))
        zc = resize_bilinear(x[:, r0:r1, c0:c1], (zh, zw))
        m = resize_bilinear(np.asarray(cam_fn(zc[None]), np.float32)[0], (h, w))
        if match == "peak":
            pk, ref = float(m.max()), float(full[r0:r1, c0:c1].max())
            m = m * (ref / pk) if pk > 0 else m * 0
        canvas[r0:r1, c0:c1] = np.maximum(canvas[r0:r1, c0:c1], m)
    return np.maximum(full, canvas).astype(np.float32)


def refine_batch(cam_fn, x: np.ndarray, cams: np.ndarray, p: CropParams, slope: Optional[np.ndarray] = None,
                 valid: Optional[np.ndarray] = None) -> np.ndarray:
    """Terrain-guided crop refinement of a batch: x raw bands (N, C, H, W), cams (N, H, W)."""
    out = np.array(cams, np.float32, copy=True)
    for i in range(len(out)):
        if out[i].max() <= 0:
            continue
        plans = plan_crops(out[i], p, None if slope is None else slope[i], None if valid is None else valid[i])
        if plans:
            out[i] = crop_cam(cam_fn, x[i], out[i], plans, p.match)
    if valid is not None:
        out *= valid
    return out


def slope_gate(cam: np.ndarray, slope: np.ndarray, threshold: float) -> np.ndarray:
    """Zero the CAM where slope < threshold (threshold = a slope quantile from the scene statistics)."""
    return np.where(np.asarray(slope) < threshold, 0.0, cam).astype(np.float32)
