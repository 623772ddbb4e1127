"""Pseudo-mask quality on the hold-out only (Bijie train hold-out landslide images + the landslide
64 m tiles of the area A strip): teacher CAM method x difference cue x affinity refinement.

For each combination the three bands are chosen by the same rule as the second stage
(`student.choose_bands`: best confident-band IoU, background band >= 90 % true background) and the
confident band's IoU against the true masks is reported. The difference cue multiplies the
max-normalized CAM by the max-normalized CycleGAN difference (trained generator, or the same
architecture untrained: the control). Never looks at Bijie val or area B.

    .venv/bin/python benchmarks/pseudo_masks.py --out benchmarks/results/pseudo_masks.json
"""
from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path


import torch

from landslide_wsss.training import affinity
from landslide_wsss.training import holdout
from landslide_wsss.training.rebuild import teacher as ss
from landslide_wsss.training import student as st
from landslide_wsss.training.common import set_threads
from landslide_wsss.paths import DATA_DIR


def _untrained(teacher):
    """The control: the same generator architecture with the weights it had before training."""
    from landslide_wsss.models.cyclegan import init_weights
    g = copy.deepcopy(teacher.generator)
    torch.manual_seed(0)
    teacher.generator = init_weights(g).eval()
    return teacher


def holdout_maps(data, method, cue, seed=0):
    """(teacher maps, masks, images, pixel sizes) on the hold-out landslide images and strip tiles:
    the second stage's own hold-out (holdout.teacher_maps), with the teacher's
    generator swapped for its untrained control when asked."""
    teacher = ss.load_teacher(method + ("-cyclegan" if cue != "none" else ""))
    if cue == "untrained":
        teacher = _untrained(teacher)
    return holdout.teacher_maps(teacher, data, seed)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(DATA_DIR))
    ap.add_argument("--out", default="benchmarks/results/pseudo_masks.json")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cues", default="none,trained,untrained")
    a = ap.parse_args()
    set_threads(a.threads)
    rows = []
    for method in ss.TEACHERS:
        for cue in a.cues.split(","):
            t0 = time.time()
            maps, masks, images, gsds = holdout_maps(a.data, method, cue)
            t_maps = time.time() - t0
            for how in affinity.REFINEMENTS:
                t1 = time.time()
                cams = [affinity.refine(c, img, how, g) for c, img, g in zip(maps, images, gsds)]
                q = st.choose_bands(cams, masks)
                row = {"teacher": method, "cue": cue, "refine": how, **{k: round(v, 4) for k, v in q.items()},
                       "n": len(maps), "seconds_maps": round(t_maps, 1), "seconds_refine": round(time.time() - t1, 1)}
                rows.append(row)
                print(json.dumps(row), flush=True)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps({"rows": rows}, indent=1))


if __name__ == "__main__":
    main()
