"""The embedded default model, reproducible by one command (stage times in the README):

    nice .venv/bin/python -m landslide_wsss.training.default --threads 1 [--data ../shared/data] [--out landslide_wsss/weights/default.safetensors]
    (same as `landslide-wsss train default ...`)

The stages (training/rebuild/stages.py holds the table: inputs, outputs, resume markers; `all` runs
those not yet finished for these settings, in this order; --stage NAME runs one, after the stages
that make its missing work files):
  train       one RGB classifier (ResNet-18 layout, width 32, output stride 16, 128 px tiles, 10 epochs,
              bf16 autocast + channels_last) on the Bijie train list minus a seeded 10 % hold-out (native
              resolution, a fresh 128 px crop per image and epoch; crops of landslide images contain the
              image centre, since Bijie frames each landslide; resizing whole images instead leaked a scale
              cue: landslide-free images are larger, and the CAMs then lit the image borders), plus 128 px
              chips (stride 64) from AMU-Net area A above a held-out bottom strip (20 % of the rows).
              Neither Bijie val nor area B is seen. Writes a fresh model file (classifier.* only).
  tune        per CAM method, normalization and threshold chosen on the hold-outs only (training/tune.py):
              area A strip -> scene parameters (detect), Bijie hold-out -> profile "bijie".
  cyclegan    the CycleGAN (ngf 16, 6 blocks, 128 px, 2 constant + 3 decay epochs, training/cyclegan.py) on
              landslide / landslide-free chips of the same training data; its G_A is stored as generator.*.
  refine      rcm-mam (2910 steps) and adversarial-erasing (2750 localizer steps) fine-tuned from this
              file's classifier with their trainers' settings, embedded under their names, int8.
  teacher     the shipped classifier as teacher: CAM method, CycleGAN cue, affinity refinement (none /
              SLIC) and bands chosen on the hold-outs (rebuild/teacher.py).
  scale       the working GSD: 1.0 m (rebuild/teacher.py says why); with --sweep scale, the rule
              (rebuild/sweeps.py): 400-step students at 1.0 / 1.6 / 2.4 m from --rule-seeds seeds.
  pseudo      the three-band pseudo-masks (and true masks) as samples at that GSD.
  area-share  the share of crops from area A: 0.3; with --sweep area-share, by the scale rule (0.3 / 0.5 ...).
  student     the full-length student (706 steps + one 350-step self-training round + one 350-step hard-negative
              round on its own false alarms over the landslide-free samples, each kept by the hold-out);
              with --sweep length, against the 400-step one from --rule-seeds seeds; embedded as student.*.
  unet        the supervised yardstick: the student's network, data, GSD, area share and crops on the true
              masks, 3186 steps, embedded as unet.* (int8).
  gate        the student's and the yardstick's mask threshold + hysteresis gate (student.choose_gate) on
              the evaluate path's hold-out figures.
  select      the default method: best mean landslide IoU over the Bijie hold-out and the area A strip.
  graphs      the ONNX graphs of the forward-only networks (the light runtime; evaluate runs on it).
  evaluate    landslide IoU/F1/precision/recall/mIoU on Bijie val and AMU-Net area B for every method
              (student and yardstick also on val after a quality-95 JPEG round trip, as the training
              images are stored), written into the model metadata and runs/default_eval.json.
Every length is a step count; the --*-minutes options only stop a run early (the metadata says where).
The rules that train (--sweep; none by default, each then keeps its documented value) compare
candidates on the mean over --rule-seeds seeds, with a margin above their spread.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from .data import REPO
from .rebuild.first_stage import CLASSIFIER_EPOCHS, FUSION  # noqa: F401  (FUSION: benchmarks read it here)
from .rebuild.stages import EVALUATE_METHODS, STAGE_NAMES, Settings, run
from .rebuild.sweeps import RULE_MARGIN, RULE_SEEDS, SWEPT, Rules
from .rebuild.workdir import WorkDir

from ..paths import DATA_DIR, DEFAULT_MODEL as DEFAULT_OUT


def settings_from_args(argv=None) -> tuple:
    from .rebuild.networks import SHORT_STEPS, STUDENT_STEPS, YARDSTICK_STEPS
    from .selftrain import SELFTRAIN_STEPS
    ap = argparse.ArgumentParser(prog="landslide-wsss train default", description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(DATA_DIR))
    ap.add_argument("--out", default=str(DEFAULT_OUT))
    ap.add_argument("--stage", default="all", choices=("all",) + STAGE_NAMES)
    ap.add_argument("--epochs", type=int, default=CLASSIFIER_EPOCHS)
    ap.add_argument("--classifier-gsd", type=float, default=None,
                    help="train the classifier at this GSD (m) instead of each image's own resolution")
    ap.add_argument("--student-steps", type=int, default=STUDENT_STEPS, help="the full-length student's steps")
    ap.add_argument("--short-steps", type=int, default=SHORT_STEPS, help="steps of the rules' short students")
    ap.add_argument("--selftrain-steps", type=int, default=SELFTRAIN_STEPS)
    ap.add_argument("--unet-steps", type=int, default=YARDSTICK_STEPS, help="the supervised yardstick's steps")
    ap.add_argument("--rule-seeds", type=int, default=RULE_SEEDS,
                    help=f"seeds per trial of each rule that trains (default {RULE_SEEDS})")
    ap.add_argument("--sweep", default=",".join(SWEPT),
                    help="the rules that train to choose, of scale, area-share, length (default: none; a rule "
                         "not swept keeps its documented value; each sweep adds half an hour to an hour)")
    ap.add_argument("--minutes", type=float, help="stop the full-length student early after this long")
    ap.add_argument("--selftrain-minutes", type=float, help="stop a self-training or hard-negative round early after this long")
    ap.add_argument("--unet-minutes", type=float, help="stop the yardstick early after this long")
    ap.add_argument("--refine-minutes", type=float, help="stop each refinement's fine-tune early after this long")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--log-dir", default=str(REPO / "runs"), help="the work directory (states, trials, markers)")
    ap.add_argument("--methods", default=",".join(EVALUATE_METHODS),
                    help="methods the evaluate stage measures (scorecam: add it; ten times the CAM cost)")
    a = ap.parse_args(argv)
    for name in ("epochs", "student_steps", "short_steps", "selftrain_steps", "unet_steps", "rule_seeds"):
        if getattr(a, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be at least 1")
    swept = tuple(r for r in a.sweep.split(",") if r)
    bad = set(swept) - {"scale", "area-share", "length"}
    if bad:
        ap.error(f"--sweep: unknown rule(s) {', '.join(sorted(bad))}; of scale, area-share, length")
    s = Settings(data=Path(a.data), out=Path(a.out), work=WorkDir(Path(a.log_dir)), seed=a.seed, threads=a.threads,
                 epochs=a.epochs, classifier_gsd=a.classifier_gsd,
                 rules=Rules.with_seeds(a.rule_seeds, swept, margin=RULE_MARGIN, short_steps=a.short_steps,
                                        full_steps=a.student_steps),
                 selftrain_steps=a.selftrain_steps, yardstick_steps=a.unet_steps, student_max_minutes=a.minutes,
                 selftrain_max_minutes=a.selftrain_minutes, yardstick_max_minutes=a.unet_minutes,
                 refine_max_minutes=a.refine_minutes, methods=tuple(a.methods.split(",")))
    return s, a.stage


def main(argv=None):
    settings, stage = settings_from_args(argv)
    run(settings, stage)


def train_default(data=None, out=None, epochs=CLASSIFIER_EPOCHS, seed=0, stage="all"):
    argv = ["--stage", stage, "--epochs", str(epochs), "--seed", str(seed)]
    if data:
        argv += ["--data", str(data)]
    if out:
        argv += ["--out", str(out)]
    main(argv)


if __name__ == "__main__":
    main()
