"""How the default model does on one scene at other ground sampling distances.

AMU-Net area B (0.5 m) is resampled to each GSD (area-averaged when coarser, bilinear when finer; same
CRS and extent) and measured by `evaluate scene` with the embedded default model: the image at that
GSD, area B's own 0.5 m mask aligned onto its grid (nearest, evaluation.mask_on_grid). The model reads
every scene at its working GSD (the student's 1.0 m), so the figures show what the scene's own
resolution costs; a ResolutionWarning is noted where the package raises one.

    python benchmarks/resolution.py [--gsd 0.25,0.5,1,2,3,4] [--device cpu] [--out benchmarks/results/resolution.json]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common as C  # noqa: E402


def resample_to(src: Path, dst: Path, gsd: float) -> Path:
    import rasterio
    from rasterio.enums import Resampling

    with rasterio.open(src) as ds:
        f = gsd / ds.res[0]
        w, h = max(1, round(ds.width / f)), max(1, round(ds.height / f))
        data = ds.read(out_shape=(ds.count, h, w), resampling=Resampling.average if f > 1 else Resampling.bilinear)
        valid = ds.read_masks(out_shape=(ds.count, h, w), resampling=Resampling.nearest).min(axis=0) > 0
        data[:, ~valid] = 0
        profile = dict(ds.profile, width=w, height=h, transform=ds.transform * ds.transform.scale(ds.width / w, ds.height / h))
    with rasterio.open(dst, "w", **profile) as out:
        out.write(data)
    return dst


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gsd", default="0.25,0.5,1,2,3,4")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default=str(C.RESULTS / "resolution.json"))
    a = ap.parse_args(argv)
    from landslide_wsss.evaluation import evaluate_scene
    from landslide_wsss.pipeline import load_scoring_model

    model = load_scoring_model(None, None, C.resolve_device(a.device))
    info = C.env_info(a.device)
    rows = []
    with tempfile.TemporaryDirectory(prefix="resolution-") as tmp:
        for gsd in [float(g) for g in a.gsd.split(",")]:
            img = C.AMUNET / "areaB_rgb.tif" if gsd == 0.5 else resample_to(C.AMUNET / "areaB_rgb.tif", Path(tmp) / f"b_{gsd:g}.tif", gsd)
            r, caught = C.package_warnings(lambda: evaluate_scene(img, C.AMUNET / "areaB_mask.tif", model=model))
            C.add_row(rows, {"gsd_m": gsd, **{k: round(r[k], 4) for k in ("iou", "precision", "recall", "f1")},
                             "seconds": r["seconds"], "warnings": caught})
    C.write_rows(a.out, {"benchmark": "resolution",
                         "scene": "AMU-Net area B (native 0.5 m), its 0.5 m mask aligned onto each grid",
                         "model": "embedded default", "method": model.name,
                         "working_gsd_m": getattr(model, "gsd", None)}, info, rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
