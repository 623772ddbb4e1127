"""Fusion of a CAM with the CycleGAN difference map into a landslide score and mask.

Difference map (`difference_map`, per tile, inside predict_tiles)
    D = sqrt(mean_c (x_c - G_A(x)_c)^2) over the spectral bands normalized to [-1, 1]
    (root-mean-square over bands, so D is in [0, 2] whatever the band count), then a light
    Gaussian smoothing (sigma 1 px by default) over the two spatial axes only. Un-normalized.
    Variant mode="brighter": D = max(mean_c (x_c - G_A(x)_c), 0), only the brightening that G_A
    removes. The mode belongs to the generator: metadata "difference" of the model file, loaded
    as `generator.difference_mode` (models/cyclegan.py: load_generator), which callers pass as
    `mode=`. The shipped default model stores "l2"; benchmarks/cyclegan_eval.py scores both modes
    on the tuning hold-outs, and the fusion settings found for "brighter" are kept in the
    generator metadata under "fusion_tuning".

Fusion rule (`fuse_maps`, once per scene, block by block with the same scene statistics)
    1. CAM normalization by the scene: camn = clip(cam / r_C, 0, 1) with
       r_C = max(q-quantile of the scene's CAM histogram (q = `cam_quantile`, 0.99), `cam_floor`);
       quantiles and Otsu skip the histogram's bin 0 (pixels ~0: tiles the classifier gate
       skipped, blank areas), so a scene with many gated tiles is not judged by its zeros.
       `cam_floor` is an absolute reference from the model (e.g. a high CAM quantile over
       landslide training chips) so a scene with only weak activations is not stretched; 0 turns it off.
       Never per tile or per block.
    2. CAM dilation: grey dilation (square window, radius `cam_dilate` px, default 4) of camn, so
       the gate reaches the landslide edges that CAMs under-cover.
    3. Difference threshold t_D, from the scene's difference histogram only:
       `diff_rule="otsu"` (default): Otsu's threshold of the scene-wide histogram of D (valid,
       non-zero pixels; Otsu inside the CAM region would need a CAM-conditioned histogram, and the
       core hands over whole-scene histograms only, so this is Otsu over the scene),
       `diff_rule="percentile"`: the `diff_percentile` quantile of D over the scene.
       Then t_D = max(diff_scale * t_D, diff_floor).
    4. mask = [D > t_D] AND [dilated camn > t_C] (t_C = `t_cam`, default 0.2).
    5. Clean-up: binary opening with a disk of radius `open_radius` (default 1), then removal of
       8-connected components smaller than `min_component_px` (default 32 px).
       All neighbourhood radii are <= scoring.FUSE_HALO, so dilation and opening are seamless
       block by block. Component sizes are measured inside block + halo: a component that leaves
       the halo still holds >= FUSE_HALO px there, so with min_component_px <= FUSE_HALO it is
       never dropped wrongly; above that (default 32 with FUSE_HALO 16) a thin sliver that crosses
       a block edge can, rarely, be dropped on one side.
    Statistics with values (count > 0, vmax > 0) but an empty histogram are a caller's bug: a
    RuntimeWarning is raised and r_C = vmax, t_D = 0.25 * vmax * diff_scale are used instead.
    Score: diffn = clip(D / (2 t_D), 0, 1) (0.5 at the threshold);
       score = sqrt(dilated camn * diffn), float32 in [0, 1] (geometric mean, high only where both
       agree); polygons take score_mean / score_max of it over the mask.
"""
from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from typing import Mapping, Optional, Tuple, Union

import numpy as np
from scipy import ndimage

from .morphology import clean_mask
from .scoring import FUSE_HALO, MapStats, SceneStats, histogram


@dataclass
class FusionParams:
    t_cam: float = 0.2
    cam_quantile: float = 0.99
    cam_floor: float = 0.0
    cam_dilate: int = 4
    diff_rule: str = "otsu"
    diff_percentile: float = 0.85
    diff_scale: float = 1.0
    diff_floor: float = 0.0
    open_radius: int = 1
    min_component_px: int = 32

    def __post_init__(self):
        if self.diff_rule not in ("otsu", "percentile"):
            raise ValueError(f"diff_rule must be 'otsu' or 'percentile', not {self.diff_rule!r}")
        if max(self.cam_dilate, self.open_radius) > FUSE_HALO:
            raise ValueError(f"fusion radii must be <= FUSE_HALO ({FUSE_HALO})")

    @classmethod
    def from_any(cls, params) -> "FusionParams":
        from .params import from_mapping
        return from_mapping(cls, params)

    def to_dict(self) -> dict:
        return asdict(self)


# ----------------------------------------------------------------------------------------------
# difference map


DIFF_MODES = ("l2", "brighter")


def normalize_spectral(x, scale: float = 255.0):
    """Map raw spectral values in [0, scale] to [-1, 1] (x / 127.5 - 1 for uint8): the CycleGAN's
    input. numpy or torch."""
    return x * (2.0 / scale) - 1.0


def denormalize_spectral(x, scale: float = 255.0):
    return (x + 1.0) * (scale / 2.0)


def difference_map(x, g_x, sigma: float = 1.0, mode: str = "l2") -> np.ndarray:
    """Per-pixel distance between x and G(x), both normalized to [-1, 1].

    mode: the generator's own mode, `generator.difference_mode` (set by
    models.cyclegan.load_generator from the model file); "l2" when not given.
    mode "l2" (default): RMS over bands, sqrt(mean_c (x_c - G(x)_c)^2).
    mode "brighter": max(mean_c (x_c - G(x)_c), 0), how much brighter the real pixel is than its
        landslide-free rendering (fresh scars are bright bare soil or rock that G_A turns into
        darker vegetation); ignores changes the other way (shadows, darkened fields).
    x, g_x: (C, H, W) or (N, C, H, W), numpy or torch (spectral bands only). Returns float32
    (H, W) or (N, H, W), >= 0, Gaussian-smoothed over the spatial axes by `sigma` px.
    """
    x = _np(x)
    g = _np(g_x)
    if x.shape != g.shape:
        raise ValueError(f"x {x.shape} and G(x) {g.shape} differ in shape")
    if mode == "l2":
        d = np.sqrt(np.mean((x - g) ** 2, axis=-3, dtype=np.float32)).astype(np.float32)
    elif mode == "brighter":
        d = np.maximum(np.mean(x - g, axis=-3, dtype=np.float32), 0).astype(np.float32)
    else:
        raise ValueError(f"difference mode must be one of {DIFF_MODES}, not {mode!r}")
    if sigma and sigma > 0:
        sig = (0,) * (d.ndim - 2) + (sigma, sigma)
        d = ndimage.gaussian_filter(d, sig, mode="nearest")
    return np.maximum(d, 0, out=d)


def _np(a) -> np.ndarray:
    if hasattr(a, "detach"):
        a = a.detach().float().cpu().numpy()
    return np.asarray(a, dtype=np.float32)


# ----------------------------------------------------------------------------------------------
# scene statistics and thresholds


def map_stats(values: np.ndarray, valid: Optional[np.ndarray] = None, vmax: Optional[float] = None) -> MapStats:
    """MapStats of one whole map (for tests, and for callers that hold a scene in memory)."""
    v = np.asarray(values, np.float32)
    if valid is not None:
        v = v[np.asarray(valid, bool)]
    v = v[np.isfinite(v)].ravel()
    top = float(v.max()) if v.size and vmax is None else float(vmax or 0.0)
    return MapStats(vmax=top, count=int(v.size), hist=histogram(v, top))


def otsu_from_hist(hist: np.ndarray, vmax: float) -> float:
    """Otsu's threshold (value between the two classes) from a histogram over [0, vmax]."""
    h = np.asarray(hist, np.float64)
    if h.sum() <= 0 or vmax <= 0:
        return 0.0
    p = h / h.sum()
    centers = (np.arange(len(h)) + 0.5) * vmax / len(h)
    w0 = np.cumsum(p)
    mu = np.cumsum(p * centers)
    mu_t = mu[-1]
    w1 = 1.0 - w0
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (mu_t * w0 - mu) ** 2 / (w0 * w1)
    between[~np.isfinite(between)] = -1
    k = int(np.argmax(between))
    return float((k + 1) * vmax / len(h))  # upper edge of the last bin of the lower class


def thresholds(stats: SceneStats, params: Union[None, FusionParams, Mapping] = None,
               cam_key: str = "cam", diff_key: str = "diff") -> Tuple[float, float]:
    """(r_C, t_D): the CAM normalization reference and the difference threshold of a scene."""
    p = FusionParams.from_any(params)
    cs, ds = stats.maps[cam_key], stats.maps[diff_key]
    broken = [k for k, ms in ((cam_key, cs), (diff_key, ds))
              if ms.count > 0 and ms.vmax > 0 and float(np.sum(ms.hist)) <= 0]
    if broken:  # a map with values but an empty histogram: the statistics were not gathered
        warnings.warn(f"scene statistics of {broken} have an empty histogram although the maps are not empty; "
                      "falling back to r_C = vmax and t_D = 0.25 * vmax * diff_scale", RuntimeWarning, stacklevel=2)
        r_c = max(cs.vmax, p.cam_floor, 1e-12)
        t_d = max(0.25 * ds.vmax * p.diff_scale, p.diff_floor, 1e-12)
        return float(r_c), float(t_d)
    r_c = max(cs.quantile(p.cam_quantile, skip_zero=True), p.cam_floor, 1e-12)
    if p.diff_rule == "otsu":
        h = np.asarray(ds.hist, np.float64).copy()
        h[0] = 0  # gated / blank pixels (D == 0) are not part of the two classes
        t_d = otsu_from_hist(h, ds.vmax)
    else:
        t_d = ds.quantile(p.diff_percentile, skip_zero=True)
    t_d = max(p.diff_scale * t_d, p.diff_floor, 1e-12)
    return float(r_c), float(t_d)


def fuse_maps(cam: np.ndarray, diff: np.ndarray, stats: SceneStats,
              params: Union[None, FusionParams, Mapping] = None,
              cam_key: str = "cam", diff_key: str = "diff") -> Tuple[np.ndarray, np.ndarray]:
    """Fuse a block of stitched CAM and difference maps: (score float32 in [0, 1], mask bool).

    Thresholds come from `stats` (whole scene), never from the block. See the module docstring.
    """
    p = FusionParams.from_any(params)
    cam = np.nan_to_num(np.asarray(cam, np.float32))
    diff = np.nan_to_num(np.asarray(diff, np.float32))
    if cam.shape != diff.shape:
        raise ValueError(f"cam {cam.shape} and diff {diff.shape} differ in shape")
    r_c, t_d = thresholds(stats, p, cam_key, diff_key)
    camn = np.clip(cam / r_c, 0, 1)
    if p.cam_dilate > 0:
        camn = ndimage.maximum_filter(camn, size=2 * p.cam_dilate + 1, mode="nearest")
    diffn = np.clip(diff / (2 * t_d), 0, 1)
    score = np.sqrt(camn * diffn).astype(np.float32)
    mask = clean_mask((diff > t_d) & (camn > p.t_cam), p.open_radius, p.min_component_px)
    return score, mask
