"""The classifier's working GSD and training length, judged as the second stage uses it: as a
teacher. For each GSD and length a classifier is trained by the default command's train stage
(`--classifier-gsd`, `--epochs`; the same data and hold-outs), the embedded CycleGAN generator is added, and `rebuild.teacher.choose_teacher`
reports the confident-band IoU of every teacher recipe on the hold-out (Bijie train hold-out
landslide images + the landslide tiles of the area A strip). Never looks at Bijie val or area B.

    .venv/bin/python benchmarks/classifier_gsd.py --gsds native,1.6,2.4 --out benchmarks/results/classifier_gsd.json
    .venv/bin/python benchmarks/classifier_gsd.py --gsds native --epochs 10,20,50 --out benchmarks/results/classifier_epochs.json

Each configuration is keyed GSD (20 epochs) or GSD@EPOCHS; its model file stays under --work, so the
winner can be carried on by the default command's later stages (`--out` that file).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from landslide_wsss.models.cyclegan import add_generator_to_model
from landslide_wsss.training.rebuild import teacher as ss
from landslide_wsss.training.common import Logger
from landslide_wsss.training.default import DEFAULT_OUT, FUSION
from landslide_wsss.paths import DATA_DIR

REPO = Path(__file__).resolve().parents[1]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(DATA_DIR))
    ap.add_argument("--gsds", default="native,1.6,2.4")
    ap.add_argument("--epochs", default="20", help="comma list of classifier epochs to try")
    ap.add_argument("--work", default=str(REPO / "runs" / "classifier_gsd"))
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "classifier_gsd.json"))
    a = ap.parse_args(argv)
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    result = {}
    configs = [(g, int(e)) for g in a.gsds.split(",") for e in a.epochs.split(",")]
    for g, e in configs:
        key = g if e == 20 else f"{g}@{e}"
        model = work / f"classifier_{key}.safetensors"
        t0 = time.time()
        if not model.is_file():
            subprocess.run([sys.executable, "-m", "landslide_wsss.training.default", "--stage", "train", "--data", a.data,
                            "--out", str(model), "--log-dir", str(work / key), "--threads", "2", "--epochs", str(e)]
                           + ([] if g == "native" else ["--classifier-gsd", g]), check=True)
            add_generator_to_model(model, DEFAULT_OUT, fusion_params=FUSION)
        choice = ss.choose_teacher(a.data, 0, Logger(work / f"teacher_{key}.jsonl"), model=str(model))
        result[key] = {"fg_iou": {k: round(v["fg_iou"], 4) for k, v in choice["holdout"].items()},
                     "chosen": f"{choice['method']}+{choice['refine']}", "seconds": round(time.time() - t0, 1)}
        print(key, json.dumps(result[key]), flush=True)
    Path(a.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
