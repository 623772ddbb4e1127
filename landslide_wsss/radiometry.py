"""Radiometry: the band values the networks were trained on, and the one scene-level rule that maps
any scene onto them.

The networks take band values in the 8-bit domain (0..255) through a fixed normalisation, so a 12-bit
product would be marked everywhere and a reflectance scene nowhere. A model file records the
radiometry of its training data in its metadata (`radiometry`: dtype, value range and per-band
p1 / p50 / p99 / mean / std, see `measure`). Every scene is mapped band by band with

    out = clip((x - shift) / divisor + base, 0, 255)

one (shift, divisor, base) per band, computed ONCE per scene from a sample of its valid pixels over
the whole scene (at most SAMPLE_PIXELS: the whole of a small scene, a decimated read through the
file's overviews, else a regular grid of windows; see `sample`), never per tile, and applied by `Scene.read` so that every consumer (detect, evaluate, train weak) sees the
same values. The rules (`--radiometry`):

auto (default)
    uint8: as read, untouched (the results are exactly those of a pipeline without this step).
    other integer types, and floats whose sampled maximum exceeds REFLECTANCE_MAX: the scene's full
    scale onto 255, divided by the whole number nearest to (2**b - 1) / 255, b the smallest bit depth
    >= 8 that holds the sampled maximum (the file's NBITS tag wins when it has one): 10-bit /4,
    12-bit /16, 14-bit /64, 16-bit /257, an 8-bit scene stored as uint16 /1. The whole-number divisor
    gives back 8-bit values stored either way, shifted (x 2**(b-8)) or stretched to full scale
    (x 257), exactly.
    floats whose sampled maximum is <= REFLECTANCE_MAX (1.5): reflectance, multiplied by 255.
stretch
    per band, the scene's p1..p99 onto the model's training p1..p99 (for products whose values use a
    small part of their range, or scenes far darker or brighter than the training data).
none
    values as read.

Warning (one per scene, `RadiometryWarning`): after the mapping, a band's sampled median lies
outside the model's training p1..p99 of that band, or its p1..p99 spread is under
MIN_SPREAD_SHARE of the training spread (a washed-out scene). Either means the scene's values fall
far outside what the model saw, and its results should not be trusted as they are (try
`--radiometry stretch`).
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional, Sequence, Tuple

import numpy as np

from .errors import InputError, RadiometryWarning

MODES = ("auto", "stretch", "none")
TARGET_RANGE = (0.0, 255.0)   # the networks' value domain (8-bit)
SAMPLE_PIXELS = 1_000_000     # a decimated read of at most this many pixels per scene
REFLECTANCE_MAX = 1.5         # floats up to this (sampled maximum) are reflectances 0..1
MIN_SPREAD_SHARE = 0.15       # warn when a band's p1..p99 spread is under this share of the training one
PERCENTILES = (1, 50, 99)
HIST_BINS = 1024              # `measure`: histogram bins over the value range


@dataclass(frozen=True)
class BandMap:
    """A per-band linear map onto the 8-bit domain: clip((x - shift) / divisor + base, 0, 255).
    `rule` says in words what was done (shown in warnings and logs)."""

    shift: Tuple[float, ...]
    divisor: Tuple[float, ...]
    base: Tuple[float, ...]
    rule: str

    def apply(self, data: np.ndarray) -> np.ndarray:
        """float32 (C, h, w) band values -> mapped float32 (C, h, w)."""
        c = data.shape[0]
        shift = np.asarray(self.shift, np.float32).reshape(c, 1, 1)
        divisor = np.asarray(self.divisor, np.float32).reshape(c, 1, 1)
        base = np.asarray(self.base, np.float32).reshape(c, 1, 1)
        # a division, not a multiplication by 1/divisor: uint16 values x257 come back as the exact integers
        out = (data - shift) / divisor + base
        return np.clip(out, *TARGET_RANGE, out=out).astype(np.float32, copy=False)

    def apply_values(self, values: np.ndarray) -> np.ndarray:
        """(C, n) sampled values -> mapped (C, n)."""
        return self.apply(values.astype(np.float32)[:, :, None])[:, :, 0]


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise InputError(f"--radiometry {mode!r}: expected one of {', '.join(MODES)}")
    return mode


# ---------------------------------------------------------------------------------------------
# What the model saw


def measure(images: Iterable, value_range: Tuple[float, float] = TARGET_RANGE, dtype: str = "uint8",
            band_names: Optional[Sequence[str]] = None, source: str = "") -> dict:
    """The `radiometry` record of training data: `images` yields (C, H, W) arrays (or (array, valid)
    pairs; pixels that are 0 in every band count as nodata). Percentiles from a per-band histogram of
    HIST_BINS bins over `value_range`; mean and std exact."""
    lo, hi = float(value_range[0]), float(value_range[1])
    hist = None
    total = sums = squares = None
    for item in images:
        img, valid = item if isinstance(item, tuple) else (item, None)
        img = np.asarray(img, np.float64)
        if valid is None:
            valid = np.any(img != 0, axis=0)
        v = img[:, valid]
        if hist is None:
            c = img.shape[0]
            hist = np.zeros((c, HIST_BINS), np.int64)
            total, sums, squares = 0, np.zeros(c), np.zeros(c)
        for k in range(v.shape[0]):
            hist[k] += np.histogram(np.clip(v[k], lo, hi), bins=HIST_BINS, range=(lo, hi))[0]
        total += v.shape[1]
        sums += v.sum(axis=1)
        squares += (v ** 2).sum(axis=1)
    if hist is None or total == 0:
        raise InputError("radiometry: no valid pixel to measure")
    mean = sums / total
    std = np.sqrt(np.maximum(squares / total - mean ** 2, 0))
    edges = np.linspace(lo, hi, HIST_BINS + 1)
    pct = {p: [] for p in PERCENTILES}
    for k in range(hist.shape[0]):
        cum = np.cumsum(hist[k]) / hist[k].sum()
        for p in PERCENTILES:
            pct[p].append(float(edges[int(np.searchsorted(cum, p / 100.0)) + 1]))
    c = hist.shape[0]
    names = list(band_names) if band_names else (["red", "green", "blue"] if c == 3 else [f"b{i + 1}" for i in range(c)])
    return {
        "dtype": dtype, "range": [lo, hi], "bands": names,
        **{f"p{p}": [round(x, 2) for x in pct[p]] for p in PERCENTILES},
        "mean": [round(float(x), 2) for x in mean], "std": [round(float(x), 2) for x in std],
        "pixels": int(total), "source": source,
        "rule": "scenes are mapped onto this by landslide_wsss.radiometry (--radiometry auto|stretch|none)",
    }


def model_record(model=None, source=None) -> Optional[dict]:
    """The training radiometry of a model: the scorer's own (`radiometry`, or `meta['radiometry']`),
    else the model file's at `source`, else the embedded default model's (every model of this
    package starts from it); None when none records one."""
    for rec in (getattr(model, "radiometry", None), (getattr(model, "meta", None) or {}).get("radiometry")
                if isinstance(getattr(model, "meta", None), dict) else None):
        if isinstance(rec, dict):
            return rec
    from .checkpoint import read_metadata
    from .wsss import DEFAULT_MODEL

    for path in (source if isinstance(source, (str, Path)) else None, DEFAULT_MODEL):
        if path is not None and Path(path).is_file():
            rec = read_metadata(path).get("radiometry")
            if isinstance(rec, dict):
                return rec
    return None


# ---------------------------------------------------------------------------------------------
# A scene's sample and its map


SAMPLE_WINDOWS = 16  # without overviews: a SAMPLE_WINDOWS x SAMPLE_WINDOWS grid of windows


def sample(scene, max_pixels: int = SAMPLE_PIXELS) -> np.ndarray:
    """(C, n) float64 values of valid pixels over the whole scene, at most about `max_pixels`: the one
    sample every per-scene choice is made from. A small scene is read whole; a larger one through a
    decimated read (nearest) when the file has overviews, else as a regular grid of windows (a
    decimated read without overviews would decode every block of a scene larger than memory)."""
    from rasterio.enums import Resampling
    from rasterio.windows import Window

    from .raster import mask_bands

    ds, bands = scene.dataset, scene.bands
    mbands = mask_bands(ds, bands)
    w, h = scene.width, scene.height
    if w * h <= max_pixels:
        parts = [(ds.read(bands), ds.read_masks(mbands))]
    elif ds.overviews(bands[0]):
        f = math.sqrt(w * h / max_pixels)
        shape = (len(bands), max(1, int(h / f)), max(1, int(w / f)))
        parts = [(ds.read(bands, out_shape=shape, resampling=Resampling.nearest),
                  ds.read_masks(mbands, out_shape=(len(mbands),) + shape[1:], resampling=Resampling.nearest))]
    else:
        n = SAMPLE_WINDOWS
        side = max(1, int(math.sqrt(max_pixels / n ** 2)))
        sw, sh = min(side, w), min(side, h)
        parts = []
        for r in np.linspace(0, h - sh, n).astype(int):
            for c in np.linspace(0, w - sw, n).astype(int):
                win = Window(int(c), int(r), sw, sh)
                parts.append((ds.read(bands, window=win), ds.read_masks(mbands, window=win)))
    values = []
    for data, masks in parts:
        data = data.astype(np.float64).reshape(len(bands), -1)
        valid = np.all(masks.reshape(len(mbands), -1) > 0, axis=0) & np.isfinite(data).all(axis=0)
        values.append(data[:, valid])
    return np.concatenate(values, axis=1)


def _scene_dtype(scene) -> np.dtype:
    kinds = [np.dtype(scene.dataset.dtypes[b - 1]) for b in scene.bands]
    floats = [d for d in kinds if d.kind == "f"]
    return floats[0] if floats else max(kinds, key=lambda d: d.itemsize)


def _nbits(scene) -> Optional[int]:
    try:
        text = scene.dataset.tags(scene.bands[0], ns="IMAGE_STRUCTURE").get("NBITS")
        return int(text) if text else None
    except Exception:  # noqa: BLE001 - a driver without the namespace: no tag
        return None


def full_scale_bits(vmax: float, nbits: Optional[int] = None) -> int:
    """The smallest bit depth >= 8 that holds `vmax` (the file's NBITS when it states one)."""
    if nbits and nbits >= 8:
        return int(nbits)
    return max(8, int(math.ceil(math.log2(max(vmax, 0) + 1))))


def scene_map(scene, mode: str, record: Optional[dict], values: Optional[np.ndarray] = None) -> Optional[BandMap]:
    """The scene's BandMap under `mode` (None: the values stay as read). `values`: the scene's
    sample when the caller has it already."""
    check_mode(mode)
    if mode == "none":
        return None
    dtype = _scene_dtype(scene)
    if mode == "auto" and dtype == np.uint8:
        return None  # as trained: untouched, bit for bit
    values = sample(scene) if values is None else values
    c = len(scene.bands)
    if values.shape[1] == 0:
        return None  # no valid pixel: nothing to map (the pipeline says so)
    if mode == "stretch":
        if not record or any(k not in record for k in ("p1", "p99")) or len(record["p1"]) != c:
            raise InputError(f"--radiometry stretch: the model records no training percentiles for {c} band(s)")
        lo, hi = np.percentile(values, 1, axis=1), np.percentile(values, 99, axis=1)
        m_lo, m_hi = np.asarray(record["p1"], float), np.asarray(record["p99"], float)
        span = np.maximum(hi - lo, 1e-12)
        return BandMap(tuple(lo), tuple(span / np.maximum(m_hi - m_lo, 1e-6)), tuple(m_lo),
                       f"per-band stretch of p1..p99 {_fmt(lo)}..{_fmt(hi)} onto the model's {_fmt(m_lo)}..{_fmt(m_hi)}")
    vmax = float(values.max())
    if dtype.kind == "f" and vmax <= REFLECTANCE_MAX:
        return BandMap((0.0,) * c, (1 / 255.0,) * c, (0.0,) * c, f"{dtype} reflectance (max {vmax:.3g}) x255")
    bits = full_scale_bits(vmax, _nbits(scene) if dtype.kind != "f" else None)
    divisor = float(round((2 ** bits - 1) / 255))
    return BandMap((0.0,) * c, (divisor,) * c, (0.0,) * c, f"{dtype} at {bits}-bit full scale (max {vmax:.6g}) /{divisor:g}")


def _fmt(a) -> str:
    return "[" + ",".join(f"{x:.4g}" for x in np.atleast_1d(a)) + "]"


def out_of_range(mapped: np.ndarray, record: Optional[dict]) -> list:
    """Why a scene's mapped sample (C, n) falls far outside the model's training radiometry (the
    module docstring's criterion); [] when it does not, or when the record has no band statistics."""
    if not record or mapped.shape[1] == 0 or any(k not in record for k in ("p1", "p99")) \
            or len(record["p1"]) != mapped.shape[0]:
        return []
    names = record.get("bands") or [f"b{i + 1}" for i in range(mapped.shape[0])]
    lo, med, hi = np.percentile(mapped, PERCENTILES, axis=1)
    reasons = []
    for k in range(mapped.shape[0]):
        m_lo, m_hi = float(record["p1"][k]), float(record["p99"][k])
        if not m_lo <= med[k] <= m_hi:
            reasons.append(f"{names[k]} median {med[k]:.0f} outside the training {m_lo:.0f}..{m_hi:.0f}")
        elif hi[k] - lo[k] < MIN_SPREAD_SHARE * (m_hi - m_lo):
            reasons.append(f"{names[k]} spread {lo[k]:.0f}..{hi[k]:.0f} under {MIN_SPREAD_SHARE:g} of the training "
                           f"{m_lo:.0f}..{m_hi:.0f}")
    return reasons


def map_scene(scene, mode: str = "auto", record: Optional[dict] = None):
    """The scene with its radiometry map attached (`Scene.read` applies it), computed once from the
    scene's sample; warns once (RadiometryWarning) when the mapped values fall far outside the record."""
    import dataclasses

    check_mode(mode)
    if mode == "auto" and _scene_dtype(scene) == np.uint8 and not record:
        return scene
    values = sample(scene)
    bmap = scene_map(scene, mode, record, values)
    mapped = bmap.apply_values(values) if bmap is not None else values
    reasons = out_of_range(mapped, record)
    if reasons:
        how = bmap.rule if bmap is not None else f"values as read ({_scene_dtype(scene)})"
        warnings.warn(f"{scene.path.name}: its values fall far outside what the model was trained on ({'; '.join(reasons)}; "
                      f"{mode} mapping: {how}); results may be wrong: check the scene"
                      + ("" if mode == "stretch" else " or try --radiometry stretch"),
                      RadiometryWarning, stacklevel=2)
    return dataclasses.replace(scene, radiometry=bmap) if bmap is not None else scene
