"""The share of the student's training crops drawn from AMU-Net area A, chosen like the working scale
(second_stage.stage_area_share, also run by the default command's student stage): a 400-step student
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
from landslide_wsss.training import second_stage as ss
from landslide_wsss.training.common import Logger, set_threads
from landslide_wsss.paths import DATA_DIR

REPO = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(DATA_DIR))
    ap.add_argument("--work", default=str(REPO / "runs" / "second_stage"))
    ap.add_argument("--shares", default=",".join(map(str, ss.AREA_SHARES)))
    ap.add_argument("--steps", type=int, default=ss.SCALE_STEPS)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "area_share.json"))
    a = ap.parse_args(argv)
    set_threads(a.threads)
    work = Path(a.work)
    if not (work / "weak_samples.safetensors").is_file():
        print(f"error: {work / 'weak_samples.safetensors'} is missing (run the default command's student stage first)",
              file=sys.stderr)
        return 2
    result = ss.stage_area_share(a.data, work, a.seed, Logger(work / "log.jsonl"),
                                 shares=[float(s) for s in a.shares.split(",")], steps=a.steps)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(a.out, overwrite=True) as tmp:
        tmp.write_text(json.dumps(result, indent=1))
    for s, r in result["table"].items():
        print(f"share {s}: Bijie hold-out {r['bijie_holdout_iou']:.3f}  strip {r['areaA_strip_iou']:.3f}  "
              f"mean {r['mean_iou']:.3f}  (threshold {r['threshold']})")
    print(f"chosen: {result['share']:g}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
