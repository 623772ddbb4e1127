"""The share of the student's training crops drawn from AMU-Net area A, chosen like the working scale
(rebuild.sweeps.area_share, also run by the default command's area-share stage): a 400-step student
per share on the same pseudo-masks at the working GSD (runs/second_stage/weak_samples.safetensors), no
self-training; the best mean hold-out IoU (Bijie train hold-out + area A strip) wins, and while the
largest share tried wins, one step more is tried (up to 0.7). Never looks at Bijie val or area B.

    .venv/bin/python benchmarks/area_share.py --work runs/second_stage --out benchmarks/results/area_share.json

Area A is the only scene among the training data (the product's input), Bijie the larger set of
framed images; the share was 0.3 by judgement before this rule.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from landslide_wsss.raster import atomic_output
from landslide_wsss.training.rebuild import sweeps as ss
from landslide_wsss.training.rebuild.workdir import WorkDir
from landslide_wsss.training.common import Logger, set_threads
from landslide_wsss.paths import DATA_DIR

REPO = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(DATA_DIR))
    ap.add_argument("--work", default=str(REPO / "runs" / "second_stage"))
    ap.add_argument("--shares", default=",".join(map(str, ss.AREA_SHARES)))
    ap.add_argument("--steps", type=int, default=ss.SHORT_STEPS)
    ap.add_argument("--seeds", type=int, default=ss.RULE_SEEDS, help="seeds per share")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "area_share.json"))
    a = ap.parse_args(argv)
    set_threads(a.threads)
    work = WorkDir(Path(a.work).parent)  # --work is the second_stage folder
    if not work.samples("weak").is_file():
        print(f"error: {work.samples('weak')} is missing (run the default command's student stage first)",
              file=sys.stderr)
        return 2
    rules = ss.Rules(area_share_seeds=a.seeds, short_steps=a.steps)
    result = ss.area_share(a.data, work, a.seed, rules, Logger(work.log),
                           shares=[float(s) for s in a.shares.split(",")])
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(a.out, overwrite=True) as tmp:
        tmp.write_text(json.dumps(result, indent=1))
    for s, r in result["table"].items():
        print(f"share {s}: mean {r['mean_iou']:.3f} ± {r['spread']:.3f} over seeds "
              f"{[p['mean_iou'] for p in r['per_seed']]}")
    print(f"chosen: {result['share']:g}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
