"""Train on your own region, measured: `train weak` on AMU-Net area A from (a) ticked 64 m tiles made
from its mask (any landslide pixel or none) and (b) a point inventory (one point inside each
landslide of area A), then `evaluate scene` on area B beside the embedded model. JSON out.

    .venv/bin/python benchmarks/region_area_a.py [--minutes 10] [--data ../shared/data]

Caveat, stated with the figures: the embedded model's student was itself trained on tile labels of
area A above its bottom strip, so (a) measures what a focused fine-tune on one region adds.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
from rasterio.features import geometry_mask, shapes
from shapely.geometry import shape

from landslide_wsss.evaluation import evaluate_scene
from landslide_wsss.labels import label_grid
from landslide_wsss.training.weak import train_weak
from landslide_wsss.paths import DATA_DIR

ROOT = Path(__file__).resolve().parents[1]


def ticked_grid(image, mask_path, out):
    """The label grid over `image` ticked from its mask (written to `out`): (tiles, counts)."""
    grid = label_grid([image], None, tile_m=64.0)
    with rasterio.open(mask_path) as ds:
        m, transform = ds.read(1), ds.transform
    labels = []
    for g in grid.geometry:
        inside = ~geometry_mask([g], m.shape, transform)
        cov = m[inside & (m != 255)]
        labels.append(None if cov.size < 0.1 * inside.sum() else int((cov == 1).any()))
    grid["label"] = labels
    grid = grid[grid.label.notna()].copy()
    grid["label"] = grid.label.astype(int)
    grid.to_file(out, layer="label_grid")
    return grid, {"tiles": int(len(grid)), "landslide": int(grid.label.sum())}


def point_inventory(mask_path, out):
    with rasterio.open(mask_path) as ds:
        m, transform, crs = ds.read(1), ds.transform, ds.crs
    polys = [shape(g) for g, v in shapes((m == 1).astype(np.uint8), mask=m == 1, transform=transform) if v == 1]
    pts = gpd.GeoDataFrame(geometry=[p.representative_point() for p in polys if p.area >= 25.0], crs=crs)
    pts.to_file(out, layer="inventory")
    return {"points": int(len(pts))}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(DATA_DIR))
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--work", default=str(ROOT / "runs" / "region_area_a"))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "region_area_a.json"))
    a = ap.parse_args(argv)
    d = Path(a.data) / "amunet"
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    res = {"minutes_budget": a.minutes, "load_before": os.getloadavg()}
    _, res["grid"] = ticked_grid(d / "areaA_rgb.tif", d / "areaA_mask.tif", work / "ticked.gpkg")
    res["inventory"] = point_inventory(d / "areaA_mask.tif", work / "points.gpkg")
    runs = {"embedded": None}
    for name, labels in (("tiles", work / "ticked.gpkg"), ("points", work / "points.gpkg")):
        t0 = time.time()
        summary = train_weak([d / "areaA_rgb.tif"], labels, work / f"{name}.safetensors", minutes=a.minutes,
                             overwrite=True, progress=False)
        res[f"train_{name}"] = {"wall_s": round(time.time() - t0, 1), **{k: summary[k] for k in (
            "landslide_tiles", "free_tiles", "held_out_tiles", "holdout", "fine_tuned_student_kept")}}
        runs[name] = work / f"{name}.safetensors"
    evals = [(n, m, "student") for n, m in runs.items()] + [("embedded_yardstick", None, "unet")]
    for name, model, method in evals:
        r = evaluate_scene(d / "areaB_rgb.tif", d / "areaB_mask.tif", model_path=model, method=method)
        res[f"areaB_{name}"] = {k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()
                                if k in ("iou", "f1", "precision", "recall", "false_alarm", "seconds")}
        print(name, res[f"areaB_{name}"], flush=True)
    res["load_after"] = os.getloadavg()
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(res, indent=1, default=str))
    print(json.dumps(res, indent=1, default=str))


if __name__ == "__main__":
    main()
