"""The validation figures of every method on each runtime: Bijie val.txt and AMU-Net area B measured
with onnxruntime and with torch, beside the figures the model file records (`validation`, measured on
torch when the file was built). A method the onnx graphs cannot serve is reported as such.

    python benchmarks/runtime_figures.py [--model FILE] [--methods a,b] [--name runtime_figures]  (writes benchmarks/results/NAME.json)

A figure, never an assert: it shows that only the network forward changes with the runtime.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common as C  # noqa: E402

KEYS = ("iou", "precision", "recall", "free_images_flagged_share", "free_pixels_flagged_share", "false_alarm")


def figures(report: dict) -> dict:
    return {k: round(float(report[k]), 4) for k in KEYS if report.get(k) is not None}


def main(argv=None) -> int:
    from landslide_wsss.checkpoint import read_metadata
    from landslide_wsss.errors import ModelError
    from landslide_wsss.evaluation import evaluate_bijie, evaluate_scene
    from landslide_wsss.paths import DEFAULT_MODEL
    from landslide_wsss.wsss import load_model

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=str(DEFAULT_MODEL))
    ap.add_argument("--methods", default=None, help="default: every method of the file's validation table")
    ap.add_argument("--name", default="runtime_figures")
    a = ap.parse_args(argv)
    if not (C.BIJIE.is_dir() and C.AMUNET.is_dir()):
        print("error: needs ../shared/data (Bijie and AMU-Net)", file=sys.stderr)
        return 2
    stored = read_metadata(a.model).get("validation") or {}
    methods = a.methods.split(",") if a.methods else sorted(k for k, v in stored.items() if isinstance(v, dict))
    rows = []
    for method in methods:
        row = {"method": method, "stored": {k: figures(v) for k, v in (stored.get(method) or {}).items()}}
        for runtime in ("onnx", "torch"):
            try:
                model = load_model(a.model, method=method, runtime=runtime, device="cpu")
            except ModelError as e:
                row[runtime] = {"not_run": str(e)}
                continue
            t0 = time.perf_counter()
            b = evaluate_bijie(C.BIJIE, C.BIJIE / "val.txt", model=model)
            t1 = time.perf_counter()
            s = evaluate_scene(C.AMUNET / "areaB_rgb.tif", C.AMUNET / "areaB_mask.tif", model=model)
            row[runtime] = {"bijie_val": {**figures(b), "seconds": round(t1 - t0, 1)},
                            "areaB": {**figures(s), "seconds": round(time.perf_counter() - t1, 1)}}
        print(method, {k: (v.get("bijie_val", {}).get("iou"), v.get("areaB", {}).get("iou")) if isinstance(v, dict) else v
                       for k, v in row.items() if k in ("onnx", "torch")}, flush=True)
        rows.append(row)
    print(C.save(a.name, {"env": C.env_info("cpu"), "model": str(a.model), "rows": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
