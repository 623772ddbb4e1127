"""Ablation of the CAM refinements on Bijie val and AMU-Net area B.

    nice .venv/bin/python benchmarks/ablation.py [--data ../shared/data] [--only NAME,...] [--table-only]

Runs `landslide-wsss evaluate ... --json` for every row (one subprocess each, resumable: rows already
in runs/ablation_results.jsonl are kept), then writes runs/ablation.json and runs/ablation.md.
Model files (runs/models/, made by the commands in runs/ablation.md):
  base.safetensors                 the classifier every refinement starts from (unchanged)
  base_slopegate.safetensors       the same with params.terrain_crop.slope_gate = 0.2
  base_nomatch.safetensors         the same with params.terrain_crop.match = "none"
  bce_finetune.safetensors         control: same fine-tune budget, plain BCE on the same chips
  terrain_crop.safetensors         classifier retrained on CAM-guided crops
  rcm_mam.safetensors              MainNet after RCM + MAM
  adversarial_erasing.safetensors  EADER localizer
`NAME-cyclegan` rows need a CycleGAN generator embedded in the model file (generator.*).
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

from landslide_wsss.paths import DATA_DIR

REPO = Path(__file__).resolve().parents[1]
M = "runs/models/"
ROWS = [  # (row name, method, model file, what it measures)
    ("cam", "cam", M + "base.safetensors", "baseline: plain CAM of the starting classifier"),
    ("cam (BCE fine-tune control)", "cam", M + "bce_finetune.safetensors", "same fine-tune budget, no refinement"),
    ("terrain-crop (inference only)", "terrain-crop", M + "base.safetensors", "cropping at inference, starting classifier"),
    ("terrain-crop + slope gate q=0.2 (inference only)", "terrain-crop", M + "base_slopegate.safetensors",
     "CAM zeroed below the scene's 20 % slope quantile (needs the DSM: area B only)"),
    ("terrain-crop, raw crop CAMs (inference only)", "terrain-crop", M + "base_nomatch.safetensors",
     "crop CAMs pasted at their own magnitude (match='none') instead of peak-matched"),
    ("terrain-crop (retrained on crops)", "terrain-crop", M + "terrain_crop.safetensors", "cropping + classifier retrained on crops"),
    ("rcm-mam", "rcm-mam", M + "rcm_mam.safetensors", "RCM + MAM fine-tune"),
    ("adversarial-erasing", "adversarial-erasing", M + "adversarial_erasing.safetensors", "EADER fine-tune"),
    ("cam-cyclegan", "cam-cyclegan", M + "base.safetensors", "baseline + CycleGAN difference"),
    ("terrain-crop-cyclegan (inference only)", "terrain-crop-cyclegan", M + "base.safetensors", ""),
    ("terrain-crop-cyclegan (retrained)", "terrain-crop-cyclegan", M + "terrain_crop.safetensors", ""),
    ("rcm-mam-cyclegan", "rcm-mam-cyclegan", M + "rcm_mam.safetensors", ""),
    ("adversarial-erasing-cyclegan", "adversarial-erasing-cyclegan", M + "adversarial_erasing.safetensors", ""),
]


def commands(data: str, method: str, model: str):
    cli = ".venv/bin/landslide-wsss"
    d = Path(data)
    bijie = [cli, "evaluate", "bijie", str(d / "bijie"), "--split", str(d / "bijie/val.txt"),
             "--method", method, "--model", model, "--json"]
    scene = [cli, "evaluate", "scene", "--image", str(d / "amunet/areaB_rgb.tif"), "--dsm",
             str(d / "amunet/areaB_dsm.tif"), "--mask", str(d / "amunet/areaB_mask.tif"),
             "--method", method, "--model", model, "--json"]
    return {"bijie_val": bijie, "areaB": scene}


def train_seconds(model: str):
    from landslide_wsss.checkpoint import read_metadata
    p = REPO / model
    if not p.is_file():
        return None
    t = read_metadata(p).get("training") or {}
    return t.get("train_seconds"), t


def load_results(path: Path) -> dict:
    out = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                out[(r["row"], r["dataset"])] = r
    return out


def run(args):
    res_path = REPO / "runs/ablation_results.jsonl"
    done = load_results(res_path)
    only = set(args.only.split(",")) if args.only else None
    for name, method, model, _ in ROWS:
        if only and name not in only and method not in only:
            continue
        for ds, cmd in commands(args.data, method, model).items():
            if args.dataset and ds != args.dataset:
                continue
            if (name, ds) in done and "error" not in done[(name, ds)]:
                continue
            if not (REPO / model).is_file():
                print(f"skip {name} {ds}: {model} missing", file=sys.stderr)
                continue
            print(f"run {name} {ds}: {shlex.join(cmd)}", file=sys.stderr, flush=True)
            p = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
            rec = {"row": name, "dataset": ds, "method": method, "model": model, "command": shlex.join(cmd),
                   "code": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                                          text=True).stdout.strip(),
                   "omp_threads": os.environ.get("OMP_NUM_THREADS")}
            if p.returncode == 0:
                rec.update(json.loads(p.stdout.strip().splitlines()[-1]))
                rec["dataset"], rec["method"] = ds, method
            else:
                rec["error"] = (p.stderr.strip().splitlines() or ["?"])[-1]
            with open(res_path, "a") as fh:
                fh.write(json.dumps(rec) + "\n")
            done[(name, ds)] = rec


def table(args):
    done = load_results(REPO / "runs/ablation_results.jsonl")
    rows, lines = [], []
    lines.append("| method | model file | dataset | landslide IoU | F1 | precision | recall | mIoU (2-class) | "
                 "extra train s | inference s (extra vs cam) |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|")
    base_sec = {ds: done.get(("cam", ds), {}).get("seconds") for ds in ("bijie_val", "areaB")}
    base_cyc = {ds: done.get(("cam-cyclegan", ds), {}).get("seconds") for ds in ("bijie_val", "areaB")}
    for ds in ("bijie_val", "areaB"):
        for name, method, model, note in ROWS:
            r = done.get((name, ds))
            ts = train_seconds(model)
            tsec = ts[0] if ts else None
            if Path(model).name.startswith("base"):
                tsec = 0.0
            rec = {"row": name, "dataset": ds, "method": method, "model": model, "note": note,
                   "extra_train_seconds": tsec, "training": ts[1] if ts else None}
            if r is None:
                rec["status"] = "not run"
            elif "error" in r:
                rec["status"] = "error: " + r["error"]
            else:
                ref = base_cyc[ds] if method.endswith("-cyclegan") else base_sec[ds]
                rec.update({k: r.get(k) for k in ("iou", "f1", "precision", "recall", "miou", "seconds", "command",
                                                  "code", "tp", "fp", "fn")})
                rec["extra_inference_seconds"] = None if ref is None else round(r["seconds"] - ref, 1)
                rec["status"] = "ok"
            rows.append(rec)
            if rec["status"] == "ok":
                ex = "" if rec["extra_inference_seconds"] is None else f" ({rec['extra_inference_seconds']:+.0f})"
                lines.append(f"| {name} | {Path(model).name} | {ds} | {rec['iou']:.3f} | {rec['f1']:.3f} | "
                             f"{rec['precision']:.3f} | {rec['recall']:.3f} | {rec['miou']:.3f} | "
                             f"{'' if tsec is None else round(tsec)} | {rec['seconds']:.0f}{ex} |")
            else:
                lines.append(f"| {name} | {Path(model).name} | {ds} | {rec['status']} | | | | | | |")
    (REPO / "runs/ablation.json").write_text(json.dumps(rows, indent=1))
    md = ["# Ablation of the CAM refinements", "",
          "Landslide-class IoU / F1 / precision / recall (pixel counts over the whole split; mask 255 ignored) "
          "and the two-class mIoU. Extra inference seconds are against the plain `cam` row (`cam-cyclegan` for the "
          "`-cyclegan` rows), measured on a shared, heavily loaded 2-core CPU: compare orders of magnitude only.",
          "", *lines, "", "## Commands", "", "```"]
    for name, method, model, _ in ROWS:
        for ds, cmd in commands(args.data, method, model).items():
            md.append(shlex.join(cmd))
    md += ["```", ""]
    timing = REPO / "runs/ablation_timing.json"
    if timing.is_file():
        tj = json.loads(timing.read_text())
        md += ["## Inference cost measured alone (`benchmarks/ablation_timing.py`)", "",
               f"CPU seconds per 128 px tile of `predict_tiles`, one thread, {tj['tiles']} landslide-bearing area B "
               "tiles: " + ", ".join(f"{k} {v * 1000:.1f} ms" for k, v in tj.items()
                                      if isinstance(v, float) and not k.endswith("gated_in")) +
               ". rcm-mam and adversarial-erasing cost exactly what cam costs at inference (same network, same "
               "CAM); their cost is all in training.", ""]
    extra = REPO / "runs/ablation_notes.md"
    if extra.is_file():
        md += [extra.read_text()]
    (REPO / "runs/ablation.md").write_text("\n".join(md) + "\n")
    print("\n".join(lines))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(DATA_DIR))
    ap.add_argument("--only", help="comma-separated row names or methods")
    ap.add_argument("--dataset", choices=["bijie_val", "areaB"])
    ap.add_argument("--table-only", action="store_true")
    args = ap.parse_args(argv)
    if not args.table_only:
        run(args)
    table(args)


if __name__ == "__main__":
    main()
