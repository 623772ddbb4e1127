"""The rebuild as one declared pipeline: the table of stages (name, inputs, outputs, the settings
its resume marker covers) and the one driver that runs it.

Inputs and outputs name parts of the model file (`model:COMPONENT`) or files of the work directory
(`work:NAME`, paths owned by workdir.WorkDir). A finished stage writes its marker
(WORK/markers/NAME.json: the model file, data, seed and the stage's settings); `all` skips a stage
whose marker matches, so an interrupted rebuild resumes at the stage it was in (and inside a stage,
at its trials and training states). When a stage runs, the markers of every stage downstream of it
are dropped: they follow it. `--stage NAME` runs NAME even when marked, after the stages that make
its missing `work:` inputs; `model:` inputs are the caller's model file, never rebuilt behind its back.
"""
from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, List, Optional, Tuple

from ..selftrain import SELFTRAIN_STEPS
from .first_stage import CLASSIFIER_EPOCHS
from .networks import YARDSTICK_STEPS
from .sweeps import Rules
from .workdir import WorkDir, read_json, write_json

EVALUATE_METHODS = ("student", "cam", "gradcam", "gradcam++", "gradcam-cyclegan", "rcm-mam", "adversarial-erasing",
                    "unet")  # scorecam: ten times the CAM cost


@dataclass(frozen=True)
class Settings:
    """Everything a rebuild depends on. Lengths are step counts; the *_max_minutes only stop a run
    early (the model file's metadata then says at which step)."""
    data: Path
    out: Path
    work: WorkDir
    seed: int = 0
    threads: int = 2
    epochs: int = CLASSIFIER_EPOCHS
    classifier_gsd: Optional[float] = None
    rules: Rules = field(default_factory=Rules)
    selftrain_steps: int = SELFTRAIN_STEPS
    yardstick_steps: int = YARDSTICK_STEPS
    student_max_minutes: Optional[float] = None
    selftrain_max_minutes: Optional[float] = None
    yardstick_max_minutes: Optional[float] = None
    refine_max_minutes: Optional[float] = None
    methods: Tuple[str, ...] = EVALUATE_METHODS


@dataclass(frozen=True)
class Stage:
    name: str
    inputs: Tuple[str, ...]
    outputs: Tuple[str, ...]
    settings: Tuple[str, ...]  # the Settings fields its marker covers (beyond model file, data, seed)
    run: Callable[[Settings, Callable], None]

    def key(self, s: Settings) -> dict:
        values = asdict(s)
        key = {"stage": self.name, "out": str(Path(s.out).resolve()), "data": str(s.data), "seed": s.seed,
               **{k: values[k] for k in self.settings}}
        return json.loads(json.dumps(key, default=str))  # as the marker file reads back


# ---------------------------------------------------------------------------------------------
# What each stage does


def _train(s: Settings, log) -> None:
    from .first_stage import train_classifier_stage
    train_classifier_stage(s.data, s.out, s.work, s.seed, s.threads, s.epochs, s.classifier_gsd)


def _tune(s: Settings, log) -> None:
    from ...registry import CAM_METHODS
    from ..tune import stage_tune
    stage_tune(s.data, s.out, s.seed, s.work.tune_report, methods=list(CAM_METHODS))


def _cyclegan(s: Settings, log) -> None:
    from .first_stage import cyclegan_stage
    cyclegan_stage(s.data, s.out, s.work, s.seed, s.threads)


def _refine(s: Settings, log) -> None:
    from .first_stage import refine_stage
    refine_stage(s.data, s.out, s.work, s.seed, s.threads, s.refine_max_minutes)


def _teacher(s: Settings, log) -> None:
    """A new teacher makes every second-stage sample, trial and network of the work directory stale."""
    from .teacher import choose_teacher
    wd = s.work
    for p in (wd.second / "scale", wd.second / "area_share", wd.second / "length"):
        shutil.rmtree(p, ignore_errors=True)
    for f in wd.second.glob("*.safetensors") if wd.second.is_dir() else ():
        f.unlink()
    for f in (wd.scale, wd.area_share, wd.length) + tuple(wd.record(n) for n in ("student", "supervised")):
        f.unlink(missing_ok=True)
    write_json(wd.teacher, choose_teacher(s.data, s.seed, log, model=s.out))


def _scale(s: Settings, log) -> None:
    from .sweeps import scale
    write_json(s.work.scale, scale(s.data, s.work, s.seed, s.rules, model=s.out, log=log))


def _pseudo(s: Settings, log) -> None:
    """The samples at the chosen GSD: the scale trial's (same teacher and split), else made anew."""
    from .teacher import make_samples, teacher_targets
    wd = s.work
    gsd = float(read_json(wd.scale)["gsd"])
    swept = wd.scale_trial(gsd)
    if wd.samples("supervised", swept).is_file():
        for kind in ("weak", "supervised"):
            part = wd.samples(kind).with_suffix(".part")
            shutil.copyfile(wd.samples(kind, swept), part)
            part.replace(wd.samples(kind))
    else:
        make_samples(s.data, wd.second, s.seed, gsd, teacher_targets(s.data, s.seed, read_json(wd.teacher), s.out, log),
                     log)


def _area_share(s: Settings, log) -> None:
    from .sweeps import area_share
    write_json(s.work.area_share, area_share(s.data, s.work, s.seed, s.rules, log=log))


def _rules(wd: WorkDir, with_length: bool) -> dict:
    return {"scale": read_json(wd.scale), "area_share": read_json(wd.area_share),
            "length": read_json(wd.length) if with_length else None}


def _student(s: Settings, log) -> None:
    from .networks import embed, record_rules
    from .sweeps import length
    chosen = length(s.data, s.work, s.seed, s.rules, read_json(s.work.area_share), s.selftrain_steps,
                    s.student_max_minutes, s.selftrain_max_minutes, log)
    embed(s.out, chosen["file"], "student")
    record_rules(s.out, "student", _rules(s.work, True))


def _unet(s: Settings, log) -> None:
    """The supervised yardstick: the student's network, data, GSD, area share and crops on the true masks."""
    from .networks import embed, made_as, record_rules, train_network
    from .teacher import samples_gsd
    wd = s.work
    share = float(read_json(wd.area_share)["share"])
    if made_as(wd.record("supervised"), samples_gsd(wd.samples("supervised")), share, s.yardstick_steps) is None:
        train_network(s.data, wd.samples("supervised"), wd.second, name="supervised", steps=s.yardstick_steps,
                      seed=s.seed, split_seed=s.seed, area_share=share, max_minutes=s.yardstick_max_minutes, log=log)
    embed(s.out, wd.network("supervised"), "unet", int8=True)
    record_rules(s.out, "unet", _rules(wd, False))


def _gate(s: Settings, log) -> None:
    from .gate import gate
    gate(s.data, s.out, s.work, s.seed, log)


def _select(s: Settings, log) -> None:
    from .select import select
    select(s.data, s.out, s.work, s.seed, log=log)


def _graphs(s: Settings, log) -> None:
    """The ONNX graphs of the forward-only networks, so that the light runtime (and the evaluate
    stage after it) runs the file as users do."""
    from ...onnx_export import embed_graphs
    log(event="graphs", made=embed_graphs(s.out))


def _evaluate(s: Settings, log) -> None:
    from ..tune import stage_evaluate
    stage_evaluate(s.data, s.out, list(s.methods), s.work.eval_report)


_RULES = ("rules",)
STAGES: List[Stage] = [
    Stage("train", ("data",), ("model:classifier",), ("epochs", "classifier_gsd"), _train),
    Stage("tune", ("model:classifier",), ("model:params", "work:default_tune.json"), (), _tune),
    Stage("cyclegan", ("data",), ("model:generator",), (), _cyclegan),
    Stage("refine", ("model:classifier",), ("model:rcm-mam", "model:adversarial-erasing"), ("refine_max_minutes",),
          _refine),
    Stage("teacher", ("model:classifier", "model:generator"), ("work:teacher.json",), (), _teacher),
    Stage("scale", ("work:teacher.json",), ("work:scale.json",), _RULES, _scale),
    Stage("pseudo", ("work:teacher.json", "work:scale.json"), ("work:weak_samples", "work:supervised_samples"), (),
          _pseudo),
    Stage("area-share", ("work:weak_samples",), ("work:area_share.json",), _RULES, _area_share),
    Stage("student", ("work:weak_samples", "work:area_share.json"), ("model:student", "work:length.json"),
          _RULES + ("selftrain_steps", "student_max_minutes", "selftrain_max_minutes"), _student),
    Stage("unet", ("work:supervised_samples", "work:area_share.json"), ("model:unet",),
          ("yardstick_steps", "yardstick_max_minutes"), _unet),
    Stage("gate", ("model:student", "model:unet"), ("model:student", "model:unet"), (), _gate),
    Stage("select", ("model:student", "model:params", "model:rcm-mam", "model:adversarial-erasing"),
          ("model:method_default",), (), _select),
    Stage("graphs", ("model:classifier", "model:generator", "model:student", "model:unet", "model:rcm-mam"),
          ("model:onnx",), (), _graphs),
    Stage("evaluate", ("model:classifier", "model:params", "model:generator", "model:rcm-mam", "model:adversarial-erasing",
                       "model:student", "model:unet", "model:method_default", "model:onnx"),
          ("model:validation", "work:default_eval.json"), ("methods",), _evaluate),
]
STAGE_NAMES = tuple(s.name for s in STAGES)


def _by_name(name: str) -> Stage:
    return next(s for s in STAGES if s.name == name)


def downstream(name: str) -> List[Stage]:
    """The stages that read, directly or not, what stage `name` writes (in table order)."""
    made, out = set(_by_name(name).outputs), []
    for s in STAGES[STAGE_NAMES.index(name) + 1:]:
        if made & set(s.inputs):
            out.append(s)
            made |= set(s.outputs)
    return out


def prerequisites(name: str, settings: Settings) -> List[Stage]:
    """The unfinished stages that make stage `name`'s missing `work:` inputs (in table order)."""
    need, found = {i for i in _by_name(name).inputs if i.startswith("work:")}, []
    for s in reversed(STAGES[:STAGE_NAMES.index(name)]):
        if need & set(s.outputs) and not settings.work.is_done(s.name, s.key(settings)):
            found.append(s)
            need |= {i for i in s.inputs if i.startswith("work:")}
    return found[::-1]


def run(settings: Settings, which: str = "all", log: Optional[Callable] = None) -> List[str]:
    """Run the pipeline (`all`: every stage not finished for these settings) or one stage (after
    the stages making its missing work inputs). Returns the names of the stages that ran."""
    from ..common import Logger, set_threads
    if which != "all" and which not in STAGE_NAMES:
        raise ValueError(f"unknown stage {which!r}: one of all, {', '.join(STAGE_NAMES)}")
    set_threads(settings.threads)
    wd = settings.work
    log = log or Logger(wd.log)
    plan = STAGES if which == "all" else prerequisites(which, settings) + [_by_name(which)]
    ran = []
    for stage in plan:
        key = stage.key(settings)
        if stage.name != which and wd.is_done(stage.name, key):
            log(event="stage", stage=stage.name, status="done before")
            continue
        log(event="stage", stage=stage.name, status="start", at=time.strftime("%Y-%m-%dT%H:%M:%S"))
        t0 = time.time()
        stage.run(settings, log)
        for later in downstream(stage.name):
            wd.forget(later.name)
        wd.mark_done(stage.name, key)
        ran.append(stage.name)
        # wall seconds of this run of the stage (a resumed stage counts only its last run)
        log(event="stage", stage=stage.name, status="done", seconds=round(time.time() - t0, 1))
    return ran
