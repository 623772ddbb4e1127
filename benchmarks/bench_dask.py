"""Throughput of detect_directory on a real dask.distributed LocalCluster with 1, 2 and 4 worker
processes over a directory of synthetic scenes. Prints a table, writes benchmarks/results/dask.json.

    .venv/bin/python benchmarks/bench_dask.py [--scenes 8] [--size 1024] [--model PATH]
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from landslide_wsss import api
from landslide_wsss.sample import make_sample_scene

HERE = Path(__file__).resolve().parent


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenes", type=int, default=8)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--workers", default="1,2,4")
    ap.add_argument("--model", help="model file (default: the embedded model)")
    ap.add_argument("--out", default=str(HERE / "results" / "dask.json"))
    args = ap.parse_args(argv)
    from distributed import LocalCluster

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        scenes = tmp / "scenes"
        scenes.mkdir()
        for k in range(args.scenes):
            make_sample_scene(scenes / f"scene{k:02d}.tif", size=args.size, seed=k)
        mpx = args.scenes * args.size**2 / 1e6
        for n in [int(w) for w in args.workers.split(",")]:
            with LocalCluster(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                              dashboard_address=None) as cluster:
                t0 = time.perf_counter()
                gdf = api.detect_directory(scenes, tmp / f"out{n}.gpkg", model=args.model,
                                           scheduler=cluster.scheduler_address)
                dt = time.perf_counter() - t0
            rows.append({"workers": n, "scenes": args.scenes, "megapixels": mpx, "seconds": round(dt, 2),
                         "scenes_per_min": round(60 * args.scenes / dt, 2), "mpx_per_s": round(mpx / dt, 3),
                         "polygons": int(len(gdf)), "load_avg_1min": round(os.getloadavg()[0], 2)})
    base = rows[0]["seconds"]
    for r in rows:
        r["speedup_vs_1"] = round(base / r["seconds"], 2)
    print(f"{'workers':>7} {'seconds':>8} {'Mpx/s':>7} {'speed-up':>8} {'load':>5}")
    for r in rows:
        print(f"{r['workers']:>7} {r['seconds']:>8.1f} {r['mpx_per_s']:>7.3f} {r['speedup_vs_1']:>8.2f} {r['load_avg_1min']:>5.1f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"cpu_count": os.cpu_count(), "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
