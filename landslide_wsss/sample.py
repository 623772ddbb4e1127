"""A synthetic sample scene the project makes itself (the real data may not ship): 0.5 m RGB in
UTM 47N, vegetated slopes with a river and bare-soil landslide scars, plus a matching DSM."""
from __future__ import annotations

from pathlib import Path
from typing import Tuple

import numpy as np
import rasterio
from rasterio.transform import from_origin
from scipy import ndimage

from .raster import atomic_output

ORIGIN = (385_000.0, 3_445_000.0)  # Jinsha valley, EPSG:32647
PIXEL = 0.5


def _noise(rng, shape, scales=(64, 16, 4)) -> np.ndarray:
    out = np.zeros(shape, np.float32)
    for k, s in enumerate(scales):
        out += ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), s) * (s ** 0.5)
    out -= out.mean()
    return out / (out.std() + 1e-6)


def make_sample_scene(path, size: int = 1024, seed: int = 7, overwrite: bool = False, dsm_path=None) -> Tuple[Path, np.ndarray]:
    """Write the sample RGB GeoTIFF (and optionally its DSM); returns the path and the scar mask."""
    rng = np.random.default_rng(seed)
    h = w = int(size)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    veg = _noise(rng, (h, w))
    rgb = np.stack([70 + 14 * veg, 92 + 18 * veg, 58 + 10 * veg]).astype(np.float32)
    # River along a meander, grey-green water.
    river = np.abs(xx - (0.55 * w + 0.08 * w * np.sin(yy / h * 2 * np.pi))) < 0.02 * w
    rgb[:, river] = np.array([96, 110, 104], np.float32)[:, None]
    # Landslide scars: elongated downslope, bright bare soil with rough texture.
    scars = np.zeros((h, w), bool)
    for cx, cy, lx, ly, ang in [(0.25, 0.3, 0.10, 0.045, 0.5), (0.75, 0.62, 0.08, 0.035, -0.3), (0.3, 0.78, 0.06, 0.03, 1.1)]:
        c, s = np.cos(ang), np.sin(ang)
        u = ((xx - cx * w) * c + (yy - cy * h) * s) / (lx * w)
        v = (-(xx - cx * w) * s + (yy - cy * h) * c) / (ly * h)
        edge = 0.15 * _noise(rng, (h, w), scales=(8, 3))
        scars |= (u**2 + v**2 + edge) < 1.0
    soil = _noise(rng, (h, w), scales=(6, 2))
    rgb[:, scars] = np.stack([150 + 16 * soil, 132 + 14 * soil, 110 + 12 * soil])[:, scars]
    rgb = np.clip(rgb + rng.normal(0, 3, rgb.shape), 1, 255).astype(np.uint8)
    transform = from_origin(ORIGIN[0], ORIGIN[1], PIXEL, PIXEL)
    profile = dict(driver="GTiff", width=w, height=h, count=3, dtype="uint8", crs="EPSG:32647",
                   transform=transform, nodata=0, tiled=True, blockxsize=256, blockysize=256, compress="deflate")
    with atomic_output(path, overwrite) as tmp:
        with rasterio.open(tmp, "w", **profile) as dst:
            dst.write(rgb)
    if dsm_path is not None:
        z = 3000 + 0.25 * (w - xx) * PIXEL + 20 * _noise(rng, (h, w), scales=(128, 32))
        prof = dict(profile, count=1, dtype="float32", nodata=0, predictor=3)
        with atomic_output(dsm_path, overwrite) as tmp:
            with rasterio.open(tmp, "w", **prof) as dst:
                dst.write(z.astype(np.float32), 1)
    return Path(path), scars
