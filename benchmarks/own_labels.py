"""Your own labels, measured as a new user would on ground the embedded model never saw: AMU-Net area
B's 64 m tiles ticked from its mask over its western half (any landslide pixel or none), `train weak`
from the embedded model on them, then `evaluate scene` on the eastern half (the western half's mask
set to ignored) for the trained model beside the embedded one, in the same run, for each seed.

    .venv/bin/python benchmarks/own_labels.py [--seeds 0,1] [--steps N] [--name own_labels]

The done-when this measures: the trained model beats the embedded one on the eastern half by at least
0.02 IoU (mean over seeds, with their spread).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import rasterio

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common as C  # noqa: E402
from region_area_a import ticked_grid  # noqa: E402


def halves(mask_path: Path, work: Path):
    """The column splitting area B in two, and the mask with its western half ignored (255)."""
    with rasterio.open(mask_path) as ds:
        m, profile, transform = ds.read(1), ds.profile, ds.transform
    mid = m.shape[1] // 2
    east = m.copy()
    east[:, :mid] = 255
    path = work / "areaB_mask_east.tif"
    with rasterio.open(path, "w", **profile) as out:
        out.write(east, 1)
    return transform.c + mid * transform.a, path


def main(argv=None) -> int:
    from landslide_wsss.evaluation import evaluate_scene
    from landslide_wsss.training.weak import FINE_TUNE_STEPS, train_weak

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--steps", type=int, default=FINE_TUNE_STEPS)
    ap.add_argument("--work", default=str(C.ROOT / "runs" / "own_labels"))
    ap.add_argument("--name", default="own_labels")
    a = ap.parse_args(argv)
    if not C.AMUNET.is_dir():
        print("error: needs ../shared/data/amunet", file=sys.stderr)
        return 2
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    image, mask = C.AMUNET / "areaB_rgb.tif", C.AMUNET / "areaB_mask.tif"
    mid_x, east_mask = halves(mask, work)
    tiles, grid = ticked_grid(image, mask, work / "ticked_all.gpkg")
    west = tiles[tiles.geometry.bounds.maxx <= mid_x]
    west.to_file(work / "ticked_west.gpkg", layer="label_grid")
    keys = ("iou", "precision", "recall", "false_alarm")
    embedded = evaluate_scene(image, east_mask)
    rows = {"grid": grid, "west_tiles": int(len(west)), "west_landslide_tiles": int(west.label.sum()),
            "embedded_east": {k: round(float(embedded[k]), 4) for k in keys}, "trained": []}
    for seed in (int(s) for s in a.seeds.split(",")):
        out = work / f"west_seed{seed}.safetensors"
        t0 = time.time()
        summary = train_weak([image], work / "ticked_west.gpkg", out, seed=seed, steps=a.steps, overwrite=True,
                             progress=False)
        r = evaluate_scene(image, east_mask, model_path=out)
        rows["trained"].append({"seed": seed, "wall_s": round(time.time() - t0, 1),
                                "kept_fine_tuned": summary["fine_tuned_student_kept"],
                                "holdout_start_model": summary["holdout_start_model"],
                                "holdout_fine_tuned": summary["holdout_fine_tuned"],
                                "east": {k: round(float(r[k]), 4) for k in keys}})
        print(rows["trained"][-1], flush=True)
    ious = [t["east"]["iou"] for t in rows["trained"]]
    rows["gain"] = {"mean": round(float(np.mean(ious)) - rows["embedded_east"]["iou"], 4),
                    "spread": round(float(max(ious) - min(ious)), 4)}
    print(C.save(a.name, {"env": C.env_info("cpu"), **rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
