"""The second stage's networks: the student on the pseudo-masks, the supervised yardstick on the
true masks (the same network, data, GSD, area share and crops), the rule for the student's
training length, and putting a network into the model file.

Every length is a step count (measured on this 2-core CPU: the student's former 10-minute budget
ran 706 steps at 2.4 m, the yardstick's 25 minutes 3186 steps); a wall-clock budget may only stop
a run early, and the network's record says so (`training.stopped_early`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch

from ... import __version__
from ...checkpoint import load_checkpoint, save_checkpoint
from .. import holdout
from .. import student as st
from ..selftrain import SELFTRAIN_STEPS, hard_negatives, self_train
from .teacher import AREA_SHARE, GSD, LANDSLIDE_SHARE, load_samples, weights
from .workdir import read_json, write_json

STUDENT_STEPS = 706     # the full-length student (the rebuild's former 10-minute budget on this CPU)
SHORT_STEPS = 400       # the sweeps' students, and the length rule's short candidate
YARDSTICK_STEPS = 3186  # the supervised yardstick (its former 25-minute budget on this CPU)
INFER_TILE = 256        # student inference tile at the working GSD


def new_student(samples):
    from ...models.student import StudentNet
    mean, std = st.band_stats(samples)
    return StudentNet(in_bands=3, mean=mean, std=std)


def train_network(data, samples_file, folder, *, name: str, steps: int, seed: int, split_seed: int,
                  area_share: Optional[float] = None, rounds: int = 0, negative_rounds: int = 0,
                  selftrain_steps: int = SELFTRAIN_STEPS,
                  max_minutes: Optional[float] = None, selftrain_max_minutes: Optional[float] = None,
                  log=print) -> dict:
    """A segmentation network on the samples of `samples_file` (pseudo-masks: the student; true
    masks: the yardstick) for `steps` steps from seed `seed`, then up to `rounds` self-training
    rounds by the one rule (training/selftrain.py); the threshold and figures from the hold-out
    (split seed `split_seed`) at the samples' GSD. `area_share`: re-weight the crops to this share
    from area A (None: the samples' own weights). Writes FOLDER/NAME.safetensors and NAME.json
    (with resumable states beside them) and returns the record."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    samples, meta = load_samples(samples_file)
    gsd = float(meta.get("gsd", GSD))
    if area_share is not None:
        samples = weights(samples, area_share)
    items = holdout.working_items(data, split_seed, gsd)

    def measure(net):
        return holdout.score(net, items)
    net = new_student(samples)
    net, run = st.fit_student(samples, net, steps, seed=seed, state_path=folder / f"{name}.state.safetensors", log=log,
                              max_minutes=max_minutes)
    best = measure(net)
    log(event="holdout", stage=name, round=0, **best)
    net, best, selftraining = self_train(
        net, samples, measure, best, rounds=rounds, steps=selftrain_steps, seed=seed, log=log,
        state_path=lambda r: folder / f"{name}.st{r}.state.safetensors", max_minutes=selftrain_max_minutes)
    net, best, negatives = hard_negatives(
        net, samples, measure, best, rounds=negative_rounds, steps=selftrain_steps, seed=seed, log=log,
        state_path=lambda r: folder / f"{name}.neg{r}.state.safetensors", max_minutes=selftrain_max_minutes)
    record = {"seed": seed, "steps": steps, "run": run, "rounds": selftraining["rounds"],
              "kept_rounds": selftraining["kept_rounds"], "self_training": selftraining, "hard_negatives": negatives,
              "stopped_early": run["stopped_early"] or next((r["stopped_early"] for r in selftraining["runs"]
                                                            + negatives["runs"] if r["stopped_early"]), None)}
    out = {"config": net.config(), "gsd": gsd, "tile_size": INFER_TILE, "overlap": INFER_TILE // 8,
           "crop": st.CROP, "threshold": best["threshold"], "holdout": best, "training": record,
           "teacher": meta["teacher"] if name == "student" else None,
           "area_share": area_share if area_share is not None else AREA_SHARE,
           "landslide_share": (LANDSLIDE_SHARE if area_share is not None else meta.get("landslide_share", LANDSLIDE_SHARE))
           or "even"}
    save_checkpoint(folder / f"{name}.safetensors", st.student_tensors(net),
                    {"architecture": name, "in_bands": 3, "version": __version__, **out})
    write_json(folder / f"{name}.json", out)
    return out


def made_as(record_file, gsd: float, share: Optional[float] = None, steps: Optional[int] = None) -> Optional[dict]:
    """The record of a network made at this GSD (and area share, and step count), else None."""
    rec = read_json(record_file)
    if rec is None or abs(float(rec.get("gsd") or -1) - gsd) > 1e-6:
        return None
    if share is not None and abs(float(rec.get("area_share", -1)) - share) > 1e-9:
        return None
    if steps is not None and int((rec.get("training") or {}).get("steps") or -1) != steps:
        return None
    return rec


def embed(out, component_file, prefix: str, int8: bool = False) -> None:
    """Put a trained network (a file of train_network) into the model file under `prefix` (its
    weights int8 when `int8`: the yardstick, so that every method fits the file's 25 MB)."""
    from ...checkpoint import INT8_STORAGE, int8_tensors, update_model_file
    comp_t, comp_meta = load_checkpoint(component_file, raw=not int8)
    state = {k.split(".", 1)[1]: v for k, v in comp_t.items()}  # without the file's own prefix
    if int8:
        tensors, comp_meta = int8_tensors(state, prefix), {**comp_meta, "storage": INT8_STORAGE}
    else:
        tensors = {f"{prefix}.{k}": v for k, v in state.items()}

    def put(meta):
        meta[prefix] = {k: v for k, v in comp_meta.items() if k not in ("architecture", "format", "in_bands", "version")}
    update_model_file(out, tensors, drop=(prefix,), meta=put)


def record_rules(out, prefix: str, rules: dict) -> None:
    """The rules that shaped a component (scale, area share, length: their tables with per-seed
    figures) into its metadata, when the component was trained at the scale rule's GSD."""
    from ...checkpoint import update_model_file

    def put(m):
        if abs(float(m[prefix].get("gsd") or 0) - float(rules["scale"]["gsd"])) < 1e-6:
            m[prefix]["scale"] = rules["scale"]
            if rules.get("area_share"):
                m[prefix]["area_share_rule"] = rules["area_share"]
            if rules.get("length"):
                m[prefix].setdefault("training", {})["length_rule"] = rules["length"]
    update_model_file(out, meta=put)
