"""Collect benchmarks/results/{scorecam,detect,evaluate}.json into one report with their targets.

Prints the report and writes benchmarks/results/report.md (benchmarks/RESULTS.md is the committed copy
of a chosen run's figures).

    python benchmarks/report.py [--scorecam NAME] [--detect NAME] [--evaluate NAME]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common as C  # noqa: E402


def _load(name):
    p = C.RESULTS / f"{name}.json"
    return json.loads(p.read_text()) if p.is_file() else None


def _mark(ok):
    return "n/a" if ok is None else ("MET" if ok else "NOT MET")


def targets(sc, det, ev) -> list:
    rows = []
    if sc:
        lib = {r["method"]: r for r in sc["libraries"]}
        modes = {r["method"]: r for r in sc["modes"]}
        r = lib.get("ours exact fp32, grad-cam definition")
        if r:  # equal maps: our implementation with grad-cam's mask definition
            ok = r["speedup_vs_gradcam"] >= 3 and r["max_diff_vs_gradcam"] <= 1e-4
            rows.append({"target": "exact >= 3x grad-cam ScoreCAM at equal maps (ours with grad-cam's mask definition)",
                         "measured": f"{r['speedup_vs_gradcam']:.2f}x; max|diff| {r['max_diff_vs_gradcam']:.2g}; "
                                     f"load {r['loadavg_1m']}",
                         "status": _mark(ok)})
        for name in ("ours exact fp32", "ours exact bf16"):
            r = lib.get(name)
            if r:
                rows.append({"target": f"{name} (paper definition) vs grad-cam: speed, map difference (info)",
                             "measured": f"{r['speedup_vs_gradcam']:.2f}x; max|diff| {r['max_diff_vs_gradcam']:.2g} vs grad-cam, "
                                         f"{r['max_diff_vs_torchcam']:.2g} vs torchcam (definitions differ); "
                                         f"mask IoU vs grad-cam {r['mask_iou_vs_gradcam']:.3f}",
                             "status": "info"})
        ev_rows = {r["mode"]: r for r in sc.get("bijie_eval", [])}
        for name, evname in (("ours fast top-32 bf16", "fast top-32"), ("ours fast top-32 by std bf16", "fast top-32 by std"),
                             ("ours fast top-64 by std bf16", "fast top-64 by std"),
                             ("ours fast top-32, 64 px bf16", "fast top-32, 64 px")):
            r = modes.get(name)
            if not r:
                continue
            e = ev_rows.get(evname)
            d_iou = e["iou_change_vs_exact"] if e else None
            ok = r["speedup_vs_gradcam"] >= 30 and r["spearman_vs_exact_mean"] >= 0.95 and (d_iou is None or abs(d_iou) <= 0.01)
            rows.append({"target": f"{name}: >= 30x grad-cam, rank corr >= 0.95, |dIoU| <= 0.01",
                         "measured": f"{r['speedup_vs_gradcam']:.1f}x grad-cam ({r['speedup_vs_exact_fp32']:.1f}x exact); "
                                     f"Spearman {r['spearman_vs_exact_mean']:.3f} (min {r['spearman_vs_exact_min']:.3f}); "
                                     f"mask IoU {r['mask_iou_vs_exact_mean']:.3f}; dIoU "
                                     f"{'n/a' if d_iou is None else f'{d_iou:+.4f}'} ({e['images'] if e else 0} images)",
                         "status": _mark(ok)})
    if det:
        for r in det["rows"]:
            if r["scene"] == "areaB":
                rows.append({"target": "detect 9 Mpx < 60 s on 2 CPU cores, default model",
                             "measured": f"{r['wall_s']:.1f} s wall ({r['mpx']:.1f} Mpx, {r['method']}) at load {r['loadavg']}; "
                                         f"{r.get('cpu_s', float('nan')):.1f} CPU s = {r.get('cpu_s_per_2_cores', float('nan')):.1f} s "
                                         f"on 2 idle cores (estimate)",
                             "status": _mark(r["wall_s"] < 60)})
        big = [r for r in det["rows"] if r["scene"] in ("10k", "20k")]
        if big:
            ok = all(r["peak_rss_mb"] < 1536 for r in big)
            rows.append({"target": "peak RSS 10k² and 20k² < 1.5 GB, not growing with scene size",
                         "measured": "; ".join(f"{r['scene']}: {r['peak_rss_mb']:.0f} MB ({r['method']})" for r in big),
                         "status": _mark(ok)})
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scorecam", default="scorecam")
    ap.add_argument("--detect", default="detect")
    ap.add_argument("--evaluate", default="evaluate")
    args = ap.parse_args(argv)
    sc, det, ev = _load(args.scorecam), _load(args.detect), _load(args.evaluate)
    parts = ["# Benchmark report", ""]
    for d in (sc, det, ev):
        if d and d.get("markdown"):
            env = d["env"]
            parts += [d["markdown"], "",
                      f"_run {env['time_utc']}, commit {env.get('git_commit')}, {env['cpu_count']} CPUs, "
                      f"{env['gpu']}, load average at start {env['loadavg_start']}, at end {env.get('loadavg_end')}_", ""]
    parts.append(C.table(targets(sc, det, ev), ["target", "measured", "status"], "Targets"))
    md = "\n".join(parts)
    print(md)
    C.RESULTS.mkdir(parents=True, exist_ok=True)
    (C.RESULTS / "report.md").write_text(md + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
