"""Where detect's memory goes: RSS after each import and after loading the model, then a sampler
thread (every 20 ms) records the RSS and the innermost landslide_wsss function the main thread is
in, so every stage's peak is attributed without patching anything. One fresh process per run.

    python benchmarks/memory_profile.py SCENE [--method M] [--out benchmarks/results/memory_SCENE.json]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _stage(frame) -> str:
    """The innermost frame inside the package (file:function), else the outermost library frame."""
    inner = None
    while frame is not None:
        f = frame.f_code.co_filename
        if "landslide_wsss" in f and "benchmarks" not in f:
            inner = inner or f"{Path(f).stem}.{frame.f_code.co_name}"
        frame = frame.f_back
    return inner or "other"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("scene")
    ap.add_argument("--method", default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    steps = [("python", rss_mb())]
    import numpy  # noqa: F401  (imported one by one to measure each)
    steps.append(("numpy", rss_mb()))
    import torch
    torch.set_num_threads(a.threads)
    steps.append(("torch", rss_mb()))
    import rasterio  # noqa: F401
    steps.append(("rasterio", rss_mb()))
    import geopandas  # noqa: F401
    steps.append(("geopandas", rss_mb()))
    from landslide_wsss import api
    steps.append(("landslide_wsss.api", rss_mb()))
    model = api.load_scoring_model(None, method=a.method, device="cpu")
    steps.append((f"model ({model.name})", rss_mb()))
    main_id = threading.get_ident()
    samples, stop = [], threading.Event()

    def sample():
        while not stop.is_set():
            frame = sys._current_frames().get(main_id)
            samples.append((rss_mb(), _stage(frame)))
            time.sleep(0.02)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    t0 = time.time()
    with tempfile.TemporaryDirectory() as d:
        api.detect(a.scene, Path(d) / "out.gpkg", model=model)
    wall = time.time() - t0
    stop.set()
    th.join()
    peaks = {}
    for r, s in samples:
        peaks[s] = max(peaks.get(s, 0.0), r)
    timeline, last = [], None  # (stage, RSS at entry) each time the stage changes
    for r, s in samples:
        if s != last:
            timeline.append((s, round(r)))
            last = s
    import resource
    res = {"scene": a.scene, "method": model.name, "imports_and_model_mb": dict(steps),
           "detect_stage_peak_rss_mb": dict(sorted(peaks.items(), key=lambda kv: -kv[1])),
           "timeline": timeline[:400], "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "wall_s": round(wall, 2)}
    print(json.dumps(res, indent=1))
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
