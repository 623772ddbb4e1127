"""Trivial baselines on the validation sets, counted exactly as `evaluate` counts (landslide-class
pixel counts summed over the split, 255 ignored). Prints and writes JSON.

  every-landslide-image   every pixel of every landslide image marked (uses the true image labels)
  every-pixel             every covered pixel marked
  nothing                 no pixel marked

    .venv/bin/python benchmarks/baselines.py [--data ../shared/data] [--out benchmarks/results/baselines.json]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from landslide_wsss.datasets.bijie import label_from_name, load_mask, read_split
from landslide_wsss.evaluation import read_mask
from landslide_wsss.metrics import Confusion
from landslide_wsss.paths import DATA_DIR

ROOT = Path(__file__).resolve().parents[1]


def bijie(data: Path, split: str) -> dict:
    root = data / "bijie"
    rules = {"every-landslide-image": Confusion(), "every-pixel": Confusion(), "nothing": Confusion()}
    for n in read_split(root / split):
        from PIL import Image
        with Image.open(root / "images" / f"{n}.png") as im:
            shape = im.size[::-1]
        m = load_mask(root, n, shape)
        rules["every-landslide-image"].update(np.full(shape, label_from_name(n) == 1), m)
        rules["every-pixel"].update(np.ones(shape, bool), m)
        rules["nothing"].update(np.zeros(shape, bool), m)
    return {k: _round(v.as_dict()) for k, v in rules.items()}


def scene(mask_path: Path) -> dict:
    m = read_mask(mask_path)
    return {"every-pixel": _round(Confusion().update(np.ones(m.shape, bool), m).as_dict()),
            "nothing": _round(Confusion().update(np.zeros(m.shape, bool), m).as_dict())}


def _round(d):
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in d.items()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(DATA_DIR))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "baselines.json"))
    a = ap.parse_args(argv)
    data = Path(a.data)
    res = {"bijie_val": bijie(data, "val.txt"), "areaB": scene(data / "amunet" / "areaB_mask.tif")}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(res, indent=1))
    for where, rows in res.items():
        for k, v in rows.items():
            print(f"{where:10} {k:24} iou {v['iou']:.3f} precision {v['precision']:.3f} recall {v['recall']:.3f}")


if __name__ == "__main__":
    main()
