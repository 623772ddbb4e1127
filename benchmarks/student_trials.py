"""Short students on variants of a rebuild's pseudo-masks, measured on its hold-out only (neither val
nor area B is read): how the student's samples are drawn and labelled, one ingredient at a time.

    python benchmarks/student_trials.py WORK MODEL [--trial NAME ...] [--seeds 0 1] [--steps 400]

WORK is the rebuild's --log-dir, MODEL its model file (the teacher's classifier and generator).
Trials (each a 400-step student per seed, the length rule's short candidate, with the rebuild's
area share, split and seeds; no self-training or hard-negative round):

    even             the Bijie images drawn evenly (28 % landslide images on the whole train.txt)
    landslide-share  the landslide images at 60 % of the Bijie draw (the earlier subset's share)
    no-background    `even`, with pseudo-masks remade without a background band in landslide
                     images and tiles (t_bg 0: background only from landslide-free ones)

Writes benchmarks/results/student_trials.json (per trial: per-seed hold-out figures, mean, spread)."""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import save  # noqa: E402
from landslide_wsss.paths import DATA_DIR  # noqa: E402

TRIALS = ("even", "landslide-share", "no-background")
TRIAL_SHARE = 0.6  # the `landslide-share` trial: the 543 + 350 subset's 61 %


def trial_samples(trial: str, work: Path, model, data, seed: int, folder: Path, log) -> Path:
    """The samples file of a trial (made once under `folder`), weighted as the trial says."""
    from landslide_wsss.training.rebuild import teacher as tc
    from landslide_wsss.training.rebuild.workdir import read_json
    second = work / "second_stage"
    path = folder / f"{trial}_samples.safetensors"
    if path.is_file():
        return path
    source = second / "weak_samples.safetensors"
    if trial == "no-background":
        choice = {**read_json(second / "teacher.json"), "t_bg": 0.0}
        gsd = float(read_json(second / "scale.json")["gsd"])
        tc.make_samples(data, folder / "no_background", seed, gsd, tc.teacher_targets(data, seed, choice, model, log), log)
        source = folder / "no_background" / "weak_samples.safetensors"
    samples, meta = tc.load_samples(source)
    area = float(read_json(second / "area_share.json")["share"])
    share = TRIAL_SHARE if trial == "landslide-share" else tc.even_landslide_share(samples)
    tc.save_samples(path, tc.weights(samples, area, share), {**meta, "landslide_share": share})
    return path


def main(argv=None) -> int:
    from landslide_wsss.training.common import set_threads
    from landslide_wsss.training.holdout import over_seeds
    from landslide_wsss.training.rebuild.networks import SHORT_STEPS, train_network

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("work", help="the rebuild's --log-dir")
    ap.add_argument("model", help="the rebuild's model file")
    ap.add_argument("--trial", nargs="+", choices=TRIALS, default=list(TRIALS))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    ap.add_argument("--steps", type=int, default=SHORT_STEPS)
    ap.add_argument("--data", default=str(DATA_DIR))
    ap.add_argument("--seed", type=int, default=0, help="the rebuild's --seed (its hold-out split)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--trials-dir", help="where the trials' samples and students go (default WORK/student_trials)")
    a = ap.parse_args(argv)
    work = Path(a.work)
    if not (work / "second_stage" / "weak_samples.safetensors").is_file():
        ap.error(f"{work}: no second_stage/weak_samples.safetensors (run the rebuild's pseudo stage first)")
    set_threads(a.threads)
    folder = Path(a.trials_dir) if a.trials_dir else work / "student_trials"
    folder.mkdir(parents=True, exist_ok=True)
    logfile = (folder / "log.jsonl").open("a")

    def log(**rec):
        logfile.write(json.dumps(rec) + "\n")
        logfile.flush()
    out = {"work": str(work), "steps": a.steps, "seeds": a.seeds, "trials": {}}
    for trial in a.trial:
        samples = trial_samples(trial, work, a.model, a.data, a.seed, folder, log)
        per_seed = []
        for seed in a.seeds:
            t0 = time.time()
            rec = train_network(a.data, samples, folder / f"{trial}_seed{seed}", name="student", steps=a.steps,
                                seed=seed, split_seed=a.seed, log=log)
            per_seed.append({"seed": seed, **rec["holdout"], "seconds": round(time.time() - t0, 1)})
            print(trial, json.dumps(per_seed[-1]), flush=True)
        out["trials"][trial] = over_seeds(per_seed)
    save("student_trials", out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
