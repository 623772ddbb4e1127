"""The radiometry record of the embedded model's training data, written into a model file.

    python -m landslide_wsss.training.radiometry --data ../shared/data --model landslide_wsss/weights/default.safetensors

Measures (landslide_wsss.radiometry.measure) the Bijie train.txt images (every `every`-th, at their
own resolution) and AMU-Net area A above its held-out bottom strip (training.data.STRIP_FRAC), the
data the default model's networks were trained on, and stores the result as metadata `radiometry`
(update_model_file: tensors copied as stored). Trainers that use other data call `measure` on theirs.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ..radiometry import measure


def training_images(data, every: int = 4):
    """Yield (C, H, W) uint8 arrays with their valid masks: Bijie train images (pixels 0 in every band
    are nodata), then area A above the strip (its nodata mask)."""
    import rasterio

    from ..datasets.bijie import load_image, read_split
    from .data import STRIP_FRAC, _paths

    p = _paths(data)
    for name in read_split(p["bijie"] / "train.txt")[::every]:
        img = load_image(p["bijie"], name)
        yield img, np.any(img > 0, axis=0)
    with rasterio.open(p["a_rgb"]) as ds:
        cut = int(ds.height * (1 - STRIP_FRAC))
        window = rasterio.windows.Window(0, 0, ds.width, cut)
        img = ds.read(window=window)
        yield img, np.all(ds.read_masks(window=window) > 0, axis=0)


def training_record(data, every: int = 4) -> dict:
    rec = measure(training_images(data, every))
    rec["source"] = (f"Bijie train.txt (every {every}th image, native resolution) + AMU-Net area A above its "
                     "held-out bottom strip; uint8 RGB")
    return rec


def main(argv=None) -> int:
    from ..checkpoint import update_model_file
    from ..cliutil import Parser

    ap = Parser(prog="python -m landslide_wsss.training.radiometry", description=__doc__,
                formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="the shared data folder (bijie/, amunet/)")
    ap.add_argument("--model", required=True, help="model file to record it in (rewritten atomically)")
    ap.add_argument("--every", type=int, default=4, help="measure every N-th Bijie train image (default 4)")
    a = ap.parse_args(argv)
    rec = training_record(a.data, a.every)
    update_model_file(Path(a.model), meta=lambda m: m.__setitem__("radiometry", rec))
    print({k: rec[k] for k in ("p1", "p50", "p99", "mean", "std", "pixels")})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
