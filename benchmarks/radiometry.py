"""The same scene in four encodings through the default model: does the radiometry rule give the same masks?

AMU-Net area B (uint8 RGB, 0.5 m) is written as uint8 (as is), uint16 x16 (a 12-bit product), uint16 x257
(16-bit full scale) and float32 reflectance 0..1 (nodata NaN); each is scored with the embedded default
model (`predict_scene`, the `detect` path) under --radiometry auto and stretch, and under none (what
the package did before it had a radiometry step). For every run: mask IoU against the uint8 auto
mask, landslide IoU / precision / recall against area B's reference mask, the warnings raised.

    python benchmarks/radiometry.py [--device cpu] [--modes auto,stretch,none] [--out benchmarks/results/radiometry.json]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common as C  # noqa: E402

ENCODINGS = ("uint8", "uint16x16", "uint16x257", "float01")


def write_encoding(src: Path, dst: Path, encoding: str) -> Path:
    """area B's pixels in `encoding`, same grid; nodata as in the source (NaN for the float scene)."""
    import rasterio

    with rasterio.open(src) as ds:
        data = ds.read()
        valid = np.all(ds.read_masks() > 0, axis=0)
        profile = ds.profile
    if encoding == "uint8":
        out, nodata = data, 0
    elif encoding == "uint16x16":
        out, nodata = data.astype(np.uint16) * 16, 0
    elif encoding == "uint16x257":
        out, nodata = data.astype(np.uint16) * 257, 0
    else:
        out = (data / 255.0).astype(np.float32)
        out[:, ~valid] = np.nan
        nodata = float("nan")
    profile.update(dtype=out.dtype, nodata=nodata, predictor=3 if out.dtype.kind == "f" else 2)
    with rasterio.open(dst, "w", **profile) as w:
        w.write(out)
        w.colorinterp = [rasterio.enums.ColorInterp.red, rasterio.enums.ColorInterp.green, rasterio.enums.ColorInterp.blue]
    return dst


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--modes", default="auto,stretch,none")
    ap.add_argument("--out", default=str(C.RESULTS / "radiometry.json"))
    a = ap.parse_args(argv)
    from landslide_wsss.evaluation import read_mask
    from landslide_wsss.metrics import Confusion
    from landslide_wsss.pipeline import load_scoring_model, predict_scene

    ref = read_mask(C.AMUNET / "areaB_mask.tif")
    model = load_scoring_model(None, None, C.resolve_device(a.device))
    info = C.env_info(a.device)
    rows, base = [], None
    with tempfile.TemporaryDirectory(prefix="radiometry-") as tmp:
        for enc in ENCODINGS:
            path = write_encoding(C.AMUNET / "areaB_rgb.tif", Path(tmp) / f"areaB_{enc}.tif", enc)
            for mode in a.modes.split(","):
                t0 = time.time()
                (_, pred, valid), caught = C.package_warnings(lambda: predict_scene(path, model, radiometry=mode))
                pred &= valid
                if enc == "uint8" and mode == "auto":
                    base = pred
                conf = Confusion().update(pred, ref).as_dict()
                row = {"encoding": enc, "radiometry": mode, "mask_iou_vs_uint8": round(mask_iou(pred, base), 4),
                       "landslide_iou": round(conf["iou"], 4), "precision": round(conf["precision"], 4),
                       "recall": round(conf["recall"], 4), "marked_share": round(float(pred[valid].mean()), 4),
                       "seconds": round(time.time() - t0, 1), "warnings": caught}
                C.add_row(rows, row)
    C.write_rows(a.out, {"benchmark": "radiometry", "scene": "AMU-Net area B", "model": "embedded default",
                         "method": model.name}, info, rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
