"""Evaluation time for the Bijie val list with the default method (evaluation.evaluate_bijie).

Also the per-image time and the landslide IoU it reports (so a speed change that changes the
result is visible). Runs the same call the CLI runs for `landslide-wsss evaluate bijie DIR --split val.txt`.

    python benchmarks/bench_evaluate.py [--device auto] [--method NAME] [--limit N] [--repeat 1]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common as C  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--method", default=None, help="default: the model's default method")
    ap.add_argument("--limit", type=int, default=0, help="first N images of val.txt (0 = all)")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--model", default=None)
    ap.add_argument("--name", default="evaluate")
    args = ap.parse_args(argv)

    device = C.resolve_device(args.device)
    env = C.env_info(device)
    if not C.BIJIE.is_dir():
        print(f"Bijie data not found at {C.BIJIE}: nothing to evaluate")
        C.save(args.name, {"env": env, "rows": [], "note": "no Bijie data"})
        return 0
    from landslide_wsss.evaluation import evaluate_bijie
    from landslide_wsss.wsss import load_model

    path, desc = C.model_file(args.model)
    print(f"# evaluate benchmark — device {device} ({env['gpu']}); {desc}; load {env['loadavg_start']}", flush=True)
    rows = []
    methods = [args.method] if args.method else [None]
    for method in methods:
        model = load_model(path, method=method, device=device)  # loaded once: the timing is the evaluation
        t = C.timed(lambda: evaluate_bijie(C.BIJIE, "val.txt", model=model, limit=args.limit or None),
                    repeat=args.repeat, device=device)
        res = t["result"]
        rows.append({"method": res["method"], "images": res["images"], "seconds_min": t["min_s"],
                     "seconds_median": t["median_s"], "s_per_image": t["min_s"] / res["images"],
                     "iou": res["iou"], "f1": res["f1"], "miou": res["miou"],
                     "loadavg": t["loadavg"], "loadavg_after": t["loadavg_after"]})
        print(f"  {res['method']}: {t['min_s']:.1f} s for {res['images']} images (IoU {res['iou']:.4f}; load "
              f"{t['loadavg']} -> {t['loadavg_after']})", flush=True)
    md = C.table(rows, ["method", "images", "seconds_min", "s_per_image", "iou", "f1", "miou", "loadavg"],
                 f"Bijie val evaluation, device {device} ({env['gpu']})") + f"\n\nModel: {desc}"
    print()
    print(md)
    out = C.save(args.name, {"env": env, "model": desc, "rows": rows, "markdown": md})
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
