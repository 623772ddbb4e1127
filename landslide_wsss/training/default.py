"""The embedded default model, reproducible by one command (stage times in the README):

    nice .venv/bin/python -m landslide_wsss.training.default --threads 1 [--data ../shared/data] [--out landslide_wsss/weights/default.safetensors]
    (same as `landslide-wsss train default ...`)

Stages (all by default, in this order; each can be re-run alone with --stage):
  train     one RGB classifier (ResNet-18 layout, width 32, output stride 16, 128 px tiles, 10 epochs,
            bf16 autocast + channels_last) on the Bijie train list minus a seeded 10 % hold-out (native
            resolution, a fresh 128 px crop per image and epoch; crops of landslide images contain the
            image centre, since Bijie frames each landslide; resizing whole images instead leaked a scale
            cue: landslide-free images are larger, and the CAMs then lit the image borders), plus 128 px
            chips (stride 64) from AMU-Net area A above a held-out bottom strip (20 % of the rows).
            Neither Bijie val nor area B is seen. Writes a fresh model file (classifier.* only).
  tune      per CAM method, normalization and threshold chosen on the hold-outs only (training/tune.py):
            area A strip -> scene parameters (detect), Bijie hold-out -> profile "bijie".
  evaluate  landslide IoU/F1/precision/recall/mIoU on the Bijie val list and AMU-Net area B for every
            method; figures written into the model metadata and runs/default_eval.json.
  cyclegan  the CycleGAN (ngf 16, 6 blocks, 128 px, 2 constant + 3 decay epochs, training/cyclegan.py) on
            landslide / landslide-free chips of the same training data; its G_A is stored as generator.*
            with the fusion settings FUSION below (chosen on the same hold-outs by benchmarks/cyclegan_eval.py).
  refine    rcm-mam and adversarial-erasing fine-tuned from this file's classifier (8 min each, their
            trainers' settings) and embedded under their names, int8 (every method runs from the file).
  student   the second stage (training/second_stage.py): the shipped classifier as teacher; its CAM
            method, the CycleGAN cue, the affinity refinement (none / SLIC superpixels) and the bands
            chosen on the hold-outs (choose_teacher) -> three-band pseudo-masks; the working GSD chosen
            by stage_scale (400-step students at 1.0 / 1.6 / 2.4 m, best mean hold-out IoU) -> the
            share of crops from area A by stage_area_share (the same rule over 0.3 / 0.5 ...) -> the
            segmentation student (10 min) -> one self-training round (5 min, kept only if the hold-out
            improves); the length rule then keeps it or the sweep's 400-step student; embedded as student.*.
  unet      the supervised yardstick: the student's network, data, GSD, area share, crops and budget on the true
            masks (--unet-minutes, 25 min), embedded as unet.* (int8).
  gate      the student's and the yardstick's mask threshold + hysteresis gate (blobs kept only with a
            confident core), by the rule in student.choose_gate on the evaluate path's hold-out figures
            (the network's maps computed once per hold-out tile, second_stage.cache_maps).
  select    the default method by the rule: best mean landslide IoU over the Bijie hold-out and the area A
            strip among the candidates (second_stage.SELECT_CANDIDATES), written as method_default.
Re-running `train` replaces the file, so the other stages follow it in `all`.
Training states under runs/ allow resume after interruption.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from ..paths import DATA_DIR, DEFAULT_MODEL as DEFAULT_OUT
from .data import CONFIG, REPO, TILE, training_chips

# The classifier's training length, judged as a teacher (benchmarks/classifier_gsd.py --epochs 10,20,50:
# the best confident-band IoU of choose_teacher's recipes on the hold-out, 0.287 / 0.284 / 0.211):
# a classifier trained longer fits its tile labels from ever fewer pixels, and its CAMs shrink.
CLASSIFIER_EPOCHS = 10

# CAM x difference fusion settings of the shipped model: the best mean landslide IoU over the Bijie
# train hold-out and the area A strip (benchmarks/cyclegan_eval.py); validation data not used.
FUSION = {"cam_dilate": 4, "cam_floor": 0.0, "cam_quantile": 0.99, "diff_floor": 0.0, "diff_percentile": 0.85,
          "diff_rule": "otsu", "diff_scale": 0.6, "min_component_px": 32, "open_radius": 1, "t_cam": 0.2}


def stage_train(data, out, epochs, seed, log_dir, threads, gsd=None):
    from ..checkpoint import fp16_tensors, save_checkpoint
    from .classifier import train_classifier
    from .common import Logger
    t0 = time.time()
    train, epoch_chips, hold, cut = training_chips(data, seed, gsd=gsd)
    tag = f"_gsd{gsd:g}" if gsd else ""  # a state of another GSD is never resumed
    log = Logger(Path(log_dir) / f"default_train{tag}.jsonl")
    log(event="data", n_train=len(train), n_pos=int(train.labels.sum()), n_holdout=len(hold), strip_row=cut, gsd=gsd)
    model, hist = train_classifier(train, CONFIG, val=hold, epochs=epochs, seed=seed,
                                   state_path=Path(log_dir) / f"default_classifier{tag}.state.safetensors",
                                   log=log, threads=threads, epoch_chips=epoch_chips)
    from ..wsss import DEFAULT_PARAMS, classifier_metadata
    meta = classifier_metadata(model, tile=TILE, training={
        "command": "python -m landslide_wsss.training.default",
        "data": [f"bijie train.txt minus 10 percent hold-out (seed {seed})",
                 f"AMU-Net areaA rows < {cut} (128 px chips, " + (f"{gsd:g} m GSD, 32 m apart)" if gsd else "stride 64)")],
        "n_chips": len(train), "epochs": epochs, "seed": seed, "seconds": round(time.time() - t0, 1),
        "history": hist[-3:]}, params=dict(DEFAULT_PARAMS), gsd=gsd)
    tensors = fp16_tensors(model, "classifier")
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(out, tensors, meta)
    log(event="saved", path=str(out), seconds=round(time.time() - t0, 1))


def stage_cyclegan(data, out, seed, log_dir, threads):
    from ..models.cyclegan import add_generator_to_model
    from .cyclegan import main as cyclegan_main

    work = Path(log_dir) / "cyclegan"
    cyclegan_main(["--data", str(data), "--out", str(work), "--seed", str(seed), "--threads", str(threads)])
    add_generator_to_model(out, work / "state.safetensors", fusion_params=FUSION)


def stage_second(data, out, seed, log_dir, threads, minutes, selftrain_minutes, which):
    """student / unet: the second stage's networks, trained under runs/second_stage and embedded.
    The working GSD is stage_scale's choice (short students at 1.0 / 1.6 / 2.4 m on the hold-out)."""
    from ..checkpoint import read_metadata
    from . import second_stage as ss
    from .common import Logger, set_threads
    set_threads(threads)
    work = Path(log_dir) / "second_stage"
    work.mkdir(parents=True, exist_ok=True)
    log = Logger(work / "log.jsonl")
    scale = ss.stage_scale(data, work, seed, log, model=out)  # the teacher: this file's classifier
    if "tie_break" not in scale:
        scale = ss.break_scale_tie(data, out, work, scale, seed, log)
    gsd = scale["gsd"]
    samples = work / "weak_samples.safetensors"
    if samples.is_file() and abs(float(read_metadata(samples).get("gsd") or 0) - gsd) > 1e-6:
        for f in ("weak_samples", "supervised_samples", "student", "supervised"):  # made at another GSD
            (work / f"{f}.safetensors").unlink(missing_ok=True)
    swept = work / "scale" / f"gsd{gsd:g}"
    if not samples.is_file() and (swept / "supervised_samples.safetensors").is_file():
        import shutil  # the sweep made this GSD's samples with the same teacher and split
        for f in ("weak_samples", "supervised_samples"):
            shutil.copyfile(swept / f"{f}.safetensors", work / f"{f}.safetensors.part")
            (work / f"{f}.safetensors.part").replace(work / f"{f}.safetensors")
    if not samples.is_file():
        ss.stage_pseudo(data, work, seed, log, gsd=gsd, teacher=ss.teacher_cached(data, work, seed, log, out), model=out)
    shares = ss.stage_area_share(data, work, seed, log)
    share = shares["share"]  # the yardstick draws its crops alike
    name = "student" if which == "student" else "supervised"
    made = work / f"{name}.json"
    if not made.is_file() or abs(json.loads(made.read_text()).get("area_share", -1) - share) > 1e-9:
        ss.stage_student(data, work, minutes, selftrain_minutes, 1 if which == "student" else 0, seed, log, name,
                         area_share=share)
    prefix = "student" if which == "student" else "unet"
    chosen = work / f"{name}.safetensors"
    if which == "student":
        chosen = training_length(chosen, work / "area_share" / f"share{share:g}" / "student.safetensors", log)
    ss.embed(out, chosen, prefix, int8=which == "unet")
    record_scale(out, prefix, scale, shares)


def training_length(full, short, log=print):
    """The rule for how long the student trains: the full-budget student (with its self-training
    round when kept) or the working-scale sweep's short student at the same GSD, whichever has the
    better mean hold-out IoU (long training on pseudo-masks can learn their noise). The choice is
    written into the chosen file's metadata."""
    from ..checkpoint import read_metadata, update_model_file
    cands = [p for p in (full, short) if Path(p).is_file()]
    scores = {str(p): read_metadata(p)["holdout"]["mean_iou"] for p in cands}
    best = max(cands, key=lambda p: scores[str(p)])
    log(event="training_length", scores=scores, chosen=str(best))

    def note(m):
        m.setdefault("training", {})["length_rule"] = {
            "rule": "best mean hold-out IoU of the full-budget student and the sweep's short student",
            "mean_iou": {("full" if Path(p) == Path(full) else "short"): v for p, v in scores.items()},
            "chosen": "full" if Path(best) == Path(full) else "short"}
    update_model_file(best, meta=note)
    return best


def record_scale(out, prefix: str, scale: dict, shares: dict = None) -> None:
    """The working-scale sweep that chose the component's GSD (and the area-share sweep), into its
    metadata (only when the component was trained at that GSD: a yardstick kept from an earlier run is not)."""
    from ..checkpoint import update_model_file

    def put(m):
        if abs(float(m[prefix].get("gsd") or 0) - float(scale["gsd"])) < 1e-6:
            m[prefix]["scale"] = scale
            if shares:
                m[prefix]["area_share_rule"] = shares
    update_model_file(out, meta=put)


REFINE_MINUTES = 8.0  # per refinement fine-tune (rcm-mam, adversarial-erasing)


def stage_refine(data, out, seed, log_dir, threads, minutes=REFINE_MINUTES):
    """rcm-mam and adversarial-erasing, each fine-tuned from this file's classifier for `minutes`
    (their trainers' own settings otherwise) and embedded under their names (int8), so every
    registry method runs from the one model file."""
    from importlib import import_module

    from ..wsss import embed_refinement
    work = Path(log_dir) / "models"
    for name, module in (("rcm-mam", "rcm_mam"), ("adversarial-erasing", "adversarial_erasing")):
        dst = work / f"{module}.safetensors"
        if not dst.is_file():
            import_module(f".{module}", __package__).main(
                ["--data", str(data), "--init", str(out), "--out", str(dst), "--seed", str(seed),
                 "--threads", str(threads), "--max-minutes", str(minutes), "--steps", "100000"])
        embed_refinement(out, dst, name)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(DATA_DIR))
    ap.add_argument("--out", default=str(DEFAULT_OUT))
    ap.add_argument("--stage", default="all",
                    choices=["all", "train", "tune", "cyclegan", "refine", "student", "unet", "gate", "select", "evaluate"])
    ap.add_argument("--epochs", type=int, default=CLASSIFIER_EPOCHS)
    ap.add_argument("--classifier-gsd", type=float, default=None,
                    help="train the classifier at this GSD (m) instead of each image's own resolution")
    ap.add_argument("--minutes", type=float, default=10.0,
                    help="the full-budget student (the length rule weighs it against the 400-step sweep student)")
    ap.add_argument("--selftrain-minutes", type=float, default=5.0)
    ap.add_argument("--unet-minutes", type=float, default=25.0, help="the supervised yardstick's budget")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--log-dir", default=str(REPO / "runs"))
    ap.add_argument("--methods", default="student,cam,gradcam,gradcam++,gradcam-cyclegan,rcm-mam,adversarial-erasing,unet",
                    help="methods the evaluate stage measures (scorecam: add it; ten times the CAM cost)")
    args = ap.parse_args(argv)
    if args.stage in ("all", "train"):
        stage_train(args.data, args.out, args.epochs, args.seed, args.log_dir, args.threads, args.classifier_gsd)
    if args.stage in ("all", "tune"):
        from ..registry import CAM_METHODS
        from .tune import stage_tune
        stage_tune(args.data, args.out, args.seed, args.log_dir, methods=list(CAM_METHODS))
    if args.stage in ("all", "cyclegan"):
        stage_cyclegan(args.data, args.out, args.seed, args.log_dir, args.threads)
    if args.stage in ("all", "refine"):
        stage_refine(args.data, args.out, args.seed, args.log_dir, args.threads)
    for which in ("student", "unet"):
        if args.stage in ("all", which):
            stage_second(args.data, args.out, args.seed, args.log_dir, args.threads,
                         args.minutes if which == "student" else args.unet_minutes, args.selftrain_minutes, which)
    if args.stage in ("all", "gate"):
        from .second_stage import stage_gate
        from .common import Logger
        stage_gate(args.data, args.out, Path(args.log_dir) / "second_stage", args.seed,
                   log=Logger(Path(args.log_dir) / "second_stage" / "log.jsonl"))
    if args.stage in ("all", "select"):
        from .second_stage import stage_select
        from .common import Logger
        stage_select(args.data, args.out, Path(args.log_dir) / "second_stage", args.seed,
                     log=Logger(Path(args.log_dir) / "second_stage" / "log.jsonl"))
    if args.stage in ("all", "evaluate"):
        from .tune import stage_evaluate
        stage_evaluate(args.data, args.out, args.methods.split(","), args.log_dir)


def train_default(data=None, out=None, epochs=CLASSIFIER_EPOCHS, seed=0, stage="all"):
    argv = ["--stage", stage, "--epochs", str(epochs), "--seed", str(seed)]
    if data:
        argv += ["--data", str(data)]
    if out:
        argv += ["--out", str(out)]
    main(argv)


if __name__ == "__main__":
    main()
