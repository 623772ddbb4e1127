"""The share of the student's training crops drawn from AMU-Net area A (second_stage.AREA_SHARE),
chosen like the working scale: a 400-step student per share on the same pseudo-masks at the working
GSD (the default command's runs/second_stage/weak_samples.safetensors), no self-training; the best
mean hold-out IoU (Bijie train hold-out + area A strip) wins, and while the largest share tried wins,
one SHARE_STEP more is tried (up to SHARE_MAX). Never looks at Bijie val or area B.

    .venv/bin/python benchmarks/area_share.py --work runs/second_stage --out benchmarks/results/area_share.json

Area A is the only scene among the training data (the product's input), Bijie the larger set of
framed images; the share was 0.3 by judgement before this rule.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from landslide_wsss.training import second_stage as ss
from landslide_wsss.training.common import Logger, set_threads

REPO = Path(__file__).resolve().parents[1]
SHARES = (0.3, 0.5)
SHARE_STEP, SHARE_MAX = 0.2, 0.7


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument("--work", default=str(REPO / "runs" / "second_stage"))
    ap.add_argument("--shares", default=",".join(map(str, SHARES)))
    ap.add_argument("--steps", type=int, default=ss.SCALE_STEPS)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "area_share.json"))
    a = ap.parse_args(argv)
    set_threads(a.threads)
    work = Path(a.work)
    samples = work / "weak_samples.safetensors"
    if not samples.is_file():
        print(f"error: {samples} is missing (run the default command's student stage first)", file=sys.stderr)
        return 2
    log = Logger(work / "area_share" / "log.jsonl")

    def trial(share):
        sub = work / "area_share" / f"share{share:g}"
        sub.mkdir(parents=True, exist_ok=True)
        link = sub / "weak_samples.safetensors"
        if not link.exists():
            link.symlink_to(samples.resolve())
        if not (sub / "student.json").is_file():
            ss.stage_student(a.data, sub, 0, 0, 0, a.seed, log, "student", steps=a.steps, area_share=share)
        res = json.loads((sub / "student.json").read_text())["holdout"]
        log(event="area_share", share=share, **res)
        return res
    table, best = ss.sweep_upward([float(s) for s in a.shares.split(",")], trial, SHARE_STEP, SHARE_MAX)
    result = {"chosen": float(best), "table": table, "steps": a.steps,
              "rule": "best mean hold-out IoU of a short student per share; one step more while the largest wins"}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(a.out).with_suffix(".part")
    tmp.write_text(json.dumps(result, indent=1))
    tmp.replace(a.out)
    for s, r in table.items():
        print(f"share {s}: Bijie hold-out {r['bijie_holdout_iou']:.3f}  strip {r['areaA_strip_iou']:.3f}  "
              f"mean {r['mean_iou']:.3f}  (threshold {r['threshold']})")
    print(f"chosen: {best}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
