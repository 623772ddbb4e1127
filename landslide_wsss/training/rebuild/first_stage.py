"""The first stage of the rebuild: the classifier, the CycleGAN generator and the CAM refinements,
each trained for a fixed length (epochs or steps) from the rebuild's seed."""
from __future__ import annotations

import time
from pathlib import Path

from ..data import CONFIG, TILE, training_chips
from .workdir import WorkDir

# The classifier's training length, judged as a teacher (benchmarks/classifier_gsd.py --epochs 10,20,50:
# the best confident-band IoU of choose_teacher's recipes on the hold-out, 0.287 / 0.284 / 0.211):
# a classifier trained longer fits its tile labels from ever fewer pixels, and its CAMs shrink.
CLASSIFIER_EPOCHS = 10

# CAM x difference fusion settings of the shipped model: the best mean landslide IoU over the Bijie
# train hold-out and the area A strip (benchmarks/cyclegan_eval.py); validation data not used.
FUSION = {"cam_dilate": 4, "cam_floor": 0.0, "cam_quantile": 0.99, "diff_floor": 0.0, "diff_percentile": 0.85,
          "diff_rule": "otsu", "diff_scale": 0.6, "min_component_px": 32, "open_radius": 1, "t_cam": 0.2}

# The refinements' fine-tune lengths: what their former 8-minute budgets gave on this CPU
# (rcm-mam steps; adversarial erasing counts localizer steps, the adversary's alternate with them).
REFINE_STEPS = {"rcm-mam": 2910, "adversarial-erasing": 2750}
REFINE_MODULES = {"rcm-mam": "rcm_mam", "adversarial-erasing": "adversarial_erasing"}


def train_classifier_stage(data, out, wd: WorkDir, seed: int, threads: int, epochs: int = CLASSIFIER_EPOCHS,
                           gsd=None) -> None:
    """One RGB classifier on the Bijie train list minus the hold-out and area A above its strip;
    writes a fresh model file (classifier.* only)."""
    from ...checkpoint import fp16_tensors, save_checkpoint
    from ...wsss import DEFAULT_PARAMS, classifier_metadata
    from ..classifier import train_classifier
    from ..common import Logger
    t0 = time.time()
    train, epoch_chips, hold, cut = training_chips(data, seed, gsd=gsd)
    tag = f"_gsd{gsd:g}" if gsd else ""  # a state of another GSD is never resumed
    log = Logger(wd.classifier_log(tag))
    log(event="data", n_train=len(train), n_pos=int(train.labels.sum()), n_holdout=len(hold), strip_row=cut, gsd=gsd)
    model, hist = train_classifier(train, CONFIG, val=hold, epochs=epochs, seed=seed,
                                   state_path=wd.classifier_state(tag), log=log, threads=threads,
                                   epoch_chips=epoch_chips)
    meta = classifier_metadata(model, tile=TILE, training={
        "command": "python -m landslide_wsss.training.default",
        "data": [f"bijie train.txt minus 10 percent hold-out (seed {seed})",
                 f"AMU-Net areaA rows < {cut} (128 px chips, " + (f"{gsd:g} m GSD, 32 m apart)" if gsd else "stride 64)")],
        "n_chips": len(train), "epochs": epochs, "seed": seed, "seconds": round(time.time() - t0, 1),
        "history": hist[-3:]}, params=dict(DEFAULT_PARAMS), gsd=gsd)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(out, fp16_tensors(model, "classifier"), meta)
    log(event="saved", path=str(out), seconds=round(time.time() - t0, 1))


def cyclegan_stage(data, out, wd: WorkDir, seed: int, threads: int) -> None:
    """The CycleGAN (its own fixed epochs, resumable) and its G_A into the model file as generator.*."""
    from ...models.cyclegan import add_generator_to_model
    from ..cyclegan import main as cyclegan_main
    cyclegan_main(["--data", str(data), "--out", str(wd.cyclegan), "--seed", str(seed), "--threads", str(threads)])
    add_generator_to_model(out, wd.cyclegan / "state.safetensors", fusion_params=FUSION)


def refine_stage(data, out, wd: WorkDir, seed: int, threads: int, max_minutes=None) -> None:
    """rcm-mam and adversarial-erasing, each fine-tuned REFINE_STEPS from this file's classifier
    (their trainers' own settings otherwise; `max_minutes` only stops one early) and embedded under
    their names (int8), so every registry method runs from the one model file."""
    from importlib import import_module

    from ...wsss import embed_refinement
    for name, module in REFINE_MODULES.items():
        dst = wd.refinement(module)
        if not dst.is_file():
            argv = ["--data", str(data), "--init", str(out), "--out", str(dst), "--seed", str(seed),
                    "--threads", str(threads), "--steps", str(REFINE_STEPS[name])]
            import_module(f"..{module}", __package__).main(argv + (["--max-minutes", str(max_minutes)] if max_minutes else []))
        embed_refinement(out, dst, name)
