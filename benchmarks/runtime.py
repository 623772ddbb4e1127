"""Torch runtime against onnxruntime, side by side in one run: the whole `landslide-wsss detect`
process (start-up, model load, tiles, fusion, polygons) on AMU-Net area B and a synthetic 36-Mpx
scene, with the default method. Wall time and the process's own peak RSS (os.wait4's rusage),
each configuration run `--repeat` times, alternating, so that load on the machine hits both alike;
the polygons of the two runtimes compared (count and area IoU).

    python benchmarks/runtime.py [--scenes areaB,6000] [--repeat 2]

Writes benchmarks/results/runtime.json (+ a table on stdout).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common as C  # noqa: E402
from bench_detect import scene_path  # noqa: E402


def detect_process(scene: Path, out: Path, runtime: str) -> dict:
    """One whole detect process: wall seconds and its peak RSS (MB)."""
    cmd = [sys.executable, "-m", "landslide_wsss.cli", "detect", str(scene), "-o", str(out), "--overwrite",
           "--quiet", "--runtime", runtime]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    err = proc.stderr.read().decode()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"detect failed ({runtime}): {err.strip()[-400:]}")
    return {"wall_s": wall, "peak_rss_mb": usage.ru_maxrss / 1024}


def polygon_agreement(a: Path, b: Path) -> dict:
    import geopandas as gpd

    ga, gb = gpd.read_file(a), gpd.read_file(b)
    ua, ub = ga.union_all(), gb.union_all()
    union = ua.union(ub).area
    return {"polygons": [len(ga), len(gb)], "area_iou": float(ua.intersection(ub).area / union) if union else 1.0}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scenes", default="areaB,6000", help="areaB and/or a synthetic side in px (6000 = 36 Mpx)")
    ap.add_argument("--repeat", type=int, default=2)
    a = ap.parse_args(argv)
    rows, load0 = [], C.loadavg()
    with tempfile.TemporaryDirectory(prefix="lwsss-runtime-") as work:
        work = Path(work)
        for name in a.scenes.split(","):
            scene, what = scene_path(name)
            if scene is None:
                print(f"skipped {name}: {what}")
                continue
            runs = {"torch": [], "onnx": []}
            for _ in range(a.repeat):
                for runtime in ("torch", "onnx"):
                    runs[runtime].append(detect_process(scene, work / f"{name}-{runtime}.gpkg", runtime))
            agree = polygon_agreement(work / f"{name}-onnx.gpkg", work / f"{name}-torch.gpkg")
            for runtime, rs in runs.items():
                rows.append({"scene": name, "what": what, "runtime": runtime,
                             "wall_s": min(r["wall_s"] for r in rs), "wall_s_runs": [r["wall_s"] for r in rs],
                             "peak_rss_mb": max(r["peak_rss_mb"] for r in rs), "polygons": agree["polygons"],
                             "area_iou_onnx_vs_torch": agree["area_iou"]})
    print(C.table(rows, ["scene", "runtime", "wall_s", "peak_rss_mb", "area_iou_onnx_vs_torch"],
                  "whole detect process, default method (best wall of the repeats, worst peak RSS)"))
    C.save("runtime", {"rows": rows, "loadavg_before": load0, "loadavg_after": C.loadavg(), "env": C.env_info("cpu")})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
