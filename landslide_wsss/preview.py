"""Preview PNG: the scene, the stitched raw maps (CAM, CycleGAN difference, ...) and the polygons side by side."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Sequence

import numpy as np
import rasterio
from rasterio.enums import Resampling

MAX_SIDE = 900


def _decimated(path_or_ds, shape, bands=None):
    ds = rasterio.open(path_or_ds) if isinstance(path_or_ds, (str, Path)) else path_or_ds
    try:
        idx = bands or list(range(1, ds.count + 1))
        return ds.read(idx, out_shape=(len(idx),) + shape, resampling=Resampling.average)
    finally:
        if isinstance(path_or_ds, (str, Path)):
            ds.close()


def _stretch(rgb: np.ndarray, valid: np.ndarray) -> np.ndarray:
    out = np.zeros(rgb.shape[1:] + (3,), np.float32)
    for k in range(min(3, rgb.shape[0])):
        v = rgb[k][valid] if valid.any() else rgb[k].ravel()
        lo, hi = np.percentile(v, [2, 98]) if v.size else (0, 1)
        out[..., k] = np.clip((rgb[k] - lo) / max(hi - lo, 1e-6), 0, 1)
    if rgb.shape[0] < 3:
        out[..., 1] = out[..., 2] = out[..., 0]
    out[~valid] = 1.0
    return out


def render_preview(scene, paths: Dict[str, Path], gdf, out_png, map_names: Sequence[str]) -> None:
    """Write a PNG: scene with polygons | each stitched map | fused score."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scale = max(scene.width, scene.height) / MAX_SIDE
    shape = (max(1, int(scene.height / max(scale, 1))), max(1, int(scene.width / max(scale, 1))))
    rgb = _decimated(scene.dataset, shape, list(scene.bands[:3]))
    valid = _decimated(paths["valid"], shape)[0] > 0.5
    maps = _decimated(paths["maps"], shape)
    score = _decimated(paths["score"], shape)[0]
    b = scene.dataset.bounds
    extent = (b.left, b.right, b.bottom, b.top)
    panels = [("scene + polygons", None)] + [(n, maps[k]) for k, n in enumerate(map_names)] + [("fused score", score)]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4.6), squeeze=False)
    for ax, (title, arr) in zip(axes[0], panels):
        if arr is None:
            ax.imshow(_stretch(rgb, valid), extent=extent)
            if len(gdf):
                gdf.boundary.plot(ax=ax, color="red", linewidth=0.8)
            title = f"{scene.name}: {len(gdf)} polygon(s)"
        else:
            shown = np.ma.masked_where(~valid, arr)
            ax.imshow(shown, extent=extent, cmap="magma", vmin=0, vmax=float(np.nanmax(arr)) or 1.0)
        ax.set_title(title, fontsize=9)
        ax.set_xticks([]), ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(out_png, dpi=100, format="png")
    plt.close(fig)
