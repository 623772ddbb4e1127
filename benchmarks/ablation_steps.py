"""Ablation of the second stage's steps on Bijie val and AMU-Net area B, measured after every choice
was made (the figures here chose nothing): the teacher as a detector, each working-scale sweep
student (400 steps at 1.0 / 1.6 / 2.4 / 3.2 m on the same pseudo-masks), and the full-budget student
(+ its self-training round) beside the short one the length rule compares it with, and the supervised
student of the same budget (the same network, GSD and 400 steps on the true masks: `--supervised`).

    .venv/bin/python benchmarks/ablation_steps.py --model runs/new/default.safetensors --work runs/new/log/second_stage

Each row puts that student into a copy of the model file (the teacher rows use the file as it is)
and runs the `evaluate` path; JSON to benchmarks/results/ablation_steps.json, a table on stdout.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from landslide_wsss.evaluation import evaluate_bijie, evaluate_scene  # noqa: E402
from landslide_wsss.training.rebuild.networks import embed  # noqa: E402
from landslide_wsss.wsss import load_model  # noqa: E402
from landslide_wsss.paths import DATA_DIR  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
KEEP = ("iou", "precision", "recall", "free_images_flagged_share", "free_pixels_flagged_share", "false_alarm")


def measure(model_file, method, data):
    d = Path(data)
    v = evaluate_bijie(d / "bijie", d / "bijie" / "val.txt", model=load_model(model_file, method=method, device="cpu"))
    b = evaluate_scene(d / "amunet" / "areaB_rgb.tif", d / "amunet" / "areaB_mask.tif",
                       model=load_model(model_file, method=method, device="cpu"))
    return {"val": {k: round(v[k], 4) for k in KEEP if k in v}, "areaB": {k: round(b[k], 4) for k in KEEP if k in b}}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(DATA_DIR))
    ap.add_argument("--model", required=True)
    ap.add_argument("--work", required=True, help="the default command's second_stage folder")
    ap.add_argument("--teachers", default="gradcam++,cam")
    ap.add_argument("--supervised", action="store_true",
                    help="also train (once; cached beside the sweep student) and measure the same-budget supervised student "
                         "at the chosen GSD")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "ablation_steps.json"))
    a = ap.parse_args(argv)
    work = Path(a.work)
    rows = {}
    for m in a.teachers.split(","):
        rows[f"teacher {m} as detector"] = measure(a.model, m, a.data)
        print(m, json.dumps(rows[f"teacher {m} as detector"]), flush=True)
    students = {f"student 400 steps at {p.parent.name[3:]} m": p
                for p in sorted(work.glob("scale/gsd*/student.safetensors"))}
    if (work / "student.safetensors").is_file():
        students["student full budget (+ kept self-training)"] = work / "student.safetensors"
    if a.supervised:
        from landslide_wsss.training.common import Logger
        from landslide_wsss.training.rebuild.networks import SHORT_STEPS as SCALE_STEPS, train_network
        gsd = json.loads((work / "scale.json").read_text())["gsd"]
        sub = work / "scale" / f"gsd{gsd:g}"
        if not (sub / "supervised.safetensors").is_file():
            train_network(a.data, sub / "supervised_samples.safetensors", sub, name="supervised", steps=SCALE_STEPS,
                          seed=0, split_seed=0, log=Logger(sub / "supervised.jsonl"))
        students[f"supervised, same network and budget ({SCALE_STEPS} steps at {gsd:g} m)"] = sub / "supervised.safetensors"
    with tempfile.TemporaryDirectory() as tmp:
        for name, comp in students.items():
            copy = Path(tmp) / "model.safetensors"
            shutil.copy(a.model, copy)
            embed(copy, comp, "student")
            rows[name] = measure(copy, "student", a.data)
            print(name, json.dumps(rows[name]), flush=True)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(rows, indent=1))
    print("| row | val IoU | val P | free img | area B IoU | B P | B FA |\n|---|---|---|---|---|---|---|")
    for name, r in rows.items():
        v, b = r["val"], r["areaB"]
        print(f"| {name} | {v['iou']:.3f} | {v['precision']:.3f} | {v.get('free_images_flagged_share', 0):.3f} | "
              f"{b['iou']:.3f} | {b['precision']:.3f} | {b.get('false_alarm', 0):.3f} |")


if __name__ == "__main__":
    main()
