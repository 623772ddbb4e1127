"""The rebuild's work directory: every path and resume marker of the pipeline, in one object.

Layout (under ROOT, `--log-dir`, runs/ by default):

    markers/STAGE.json               a finished stage (seed, model file, data): `all` skips it
    default_train[_gsdG].jsonl, default_classifier[_gsdG].state.safetensors   the classifier
    default_tune.json, default_eval.json                                      tune / evaluate reports
    cyclegan/                        the CycleGAN's run (its own resumable state)
    models/rcm_mam.safetensors, models/adversarial_erasing.safetensors        the refinements
    second_stage/                    the second stage:
        log.jsonl, teacher.json, scale.json, area_share.json, length.json
        weak_samples.safetensors, supervised_samples.safetensors             pseudo-masks / true masks
        student.safetensors|json, supervised.safetensors|json, NAME.state.safetensors, NAME.stR.state.safetensors
        scale/gsdG/[seedS/]          a scale trial (samples at G; the student of rule seed S)
        area_share/shareV/[seedS/]   an area-share trial
        length/seedS/                a full-length student of another rule seed
        holdout.txt, areaA_strip_mask.tif                                    the evaluate path's hold-out
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional


def write_json(path, obj) -> None:
    """A record (a resume marker too), written whole or not at all."""
    from ...raster import atomic_output
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path, overwrite=True) as tmp:
        tmp.write_text(json.dumps(obj, indent=1))


def read_json(path) -> Optional[dict]:
    path = Path(path)
    return json.loads(path.read_text()) if path.is_file() else None


@dataclass(frozen=True)
class WorkDir:
    root: Path

    def __post_init__(self):
        object.__setattr__(self, "root", Path(self.root))

    # -- stage markers ------------------------------------------------------------------------
    def marker(self, stage: str) -> Path:
        return self.root / "markers" / f"{stage}.json"

    def is_done(self, stage: str, key: dict) -> bool:
        """The stage finished for these inputs (seed, model file, data, settings)."""
        return read_json(self.marker(stage)) == key

    def mark_done(self, stage: str, key: dict) -> None:
        write_json(self.marker(stage), key)

    def forget(self, stage: str) -> None:
        self.marker(stage).unlink(missing_ok=True)

    # -- first stage ----------------------------------------------------------------------------
    def classifier_log(self, tag: str = "") -> Path:
        return self.root / f"default_train{tag}.jsonl"

    def classifier_state(self, tag: str = "") -> Path:
        return self.root / f"default_classifier{tag}.state.safetensors"

    @property
    def tune_report(self) -> Path:
        return self.root / "default_tune.json"

    @property
    def eval_report(self) -> Path:
        return self.root / "default_eval.json"

    @property
    def cyclegan(self) -> Path:
        return self.root / "cyclegan"

    def refinement(self, module: str) -> Path:
        return self.root / "models" / f"{module}.safetensors"

    # -- second stage ---------------------------------------------------------------------------
    @property
    def second(self) -> Path:
        return self.root / "second_stage"

    @property
    def log(self) -> Path:
        return self.second / "log.jsonl"

    @property
    def teacher(self) -> Path:
        return self.second / "teacher.json"

    @property
    def scale(self) -> Path:
        return self.second / "scale.json"

    @property
    def area_share(self) -> Path:
        return self.second / "area_share.json"

    @property
    def length(self) -> Path:
        return self.second / "length.json"

    @property
    def holdout_split(self) -> Path:
        return self.second / "holdout.txt"

    @property
    def strip_mask(self) -> Path:
        return self.second / "areaA_strip_mask.tif"

    def samples(self, kind: str, folder: Optional[Path] = None) -> Path:
        """kind "weak" (pseudo-masks) or "supervised" (true masks)."""
        return (folder or self.second) / f"{kind}_samples.safetensors"

    def network(self, name: str, folder: Optional[Path] = None) -> Path:
        return (folder or self.second) / f"{name}.safetensors"

    def record(self, name: str, folder: Optional[Path] = None) -> Path:
        return (folder or self.second) / f"{name}.json"

    def state(self, name: str, folder: Optional[Path] = None, round: int = 0) -> Path:
        return (folder or self.second) / (f"{name}.state.safetensors" if round == 0 else f"{name}.st{round}.state.safetensors")

    def scale_trial(self, gsd: float) -> Path:
        return self.second / "scale" / f"gsd{gsd:g}"

    def share_trial(self, share: float) -> Path:
        return self.second / "area_share" / f"share{share:g}"

    def length_trial(self, seed: int) -> Path:
        return self.second / "length" / f"seed{seed}"

    @staticmethod
    def seed_folder(trial: Path, seed: int, first_seed: int) -> Path:
        """A trial's folder for one rule seed: the trial folder itself for the first seed."""
        return trial if seed == first_seed else trial / f"seed{seed}"
