"""`landslide-wsss train weak`: a model for your own region from image-level labels.

Labels (landslide_wsss.labels): a ticked polygon grid (any tile size), an inventory of points,
or rough outlines, in any CRS. The run is the second stage of the default model, on your scenes:

1. tiles of `tile_m` metres get image-level labels from the layer; a seeded 15 % of them (at least
   one of each label) is held out;
2. teacher: the start model's classifier gives multi-scale + flipped CAMs on the landslide tiles, cut
   into three bands with the start model's hold-out-chosen thresholds; landslide-free tiles are
   exact background; every unlabelled pixel is ignored (seen as context, never as a label);
3. student: the start model's student, fine-tuned at its working GSD on those pseudo-masks for
   FINE_TUNE_STEPS steps (resumable), then one self-training round by the rebuild's own rule
   (training/selftrain.py); `--minutes` only stops either early (the file then says where);
4. the measure, on the held-out tiles (training/holdout.py): pixel IoU against what the labels
   say there (a landslide-free tile is background everywhere, a landslide tile carries the
   teacher's confident bands) at the best threshold; the fine-tuned student replaces the start one
   unless the start one scores better there.

The classifier itself is not retrained (it is the teacher as shipped). The output is a complete
model file: the start model with the new student and metadata saying what it was trained on.
"""
from __future__ import annotations

import hashlib
import inspect
import json
import shutil
import time
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ..errors import InputError
from ..params import DEFAULT_TILE_M
from ..resample import resample_target
from . import holdout
from . import student as st
from .selftrain import SELFTRAIN_STEPS, keeps, self_train

HOLDOUT_FRAC = 0.15
MIN_MINUTES = 0.2
BLOCK = 320            # working-grid blocks cut around the labelled tiles
FINE_TUNE_STEPS = 1200  # what the fine-tune's share of a 30-minute budget gave on a 2-core CPU (0.85 s/step)
FINE_TUNE_LR = 3e-4
SET = "user_holdout"   # the name of the user's hold-out set in the figures


def _inputs_key(images, labels, options) -> str:
    h = hashlib.sha256()
    for p in list(images) + [labels]:
        st_ = Path(p).stat()
        h.update(f"{Path(p).resolve()}|{st_.st_size}|{st_.st_mtime_ns}".encode())
    h.update(json.dumps(options, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def _split(tiles, seed):
    """Seeded stratified hold-out of the labelled tiles: (train, holdout) lists."""
    rng = np.random.default_rng(seed)
    train, hold = [], []
    for lab in (0, 1):
        idx = [i for i, t in enumerate(tiles) if t[1].label == lab]
        rng.shuffle(idx)
        k = max(1, int(round(HOLDOUT_FRAC * len(idx)))) if len(idx) >= 2 else 0
        hold += [tiles[i] for i in idx[:k]]
        train += [tiles[i] for i in idx[k:]]
    return train, hold


def _scene_samples(path, tiles, hold, teacher, bands, gsd, log, radiometry="auto", record=None):
    """Working-grid blocks of one scene with their three-band targets (held-out tiles ignored),
    and the held-out tiles as hold-out items (working image, reference at the scene's grid, valid). The
    scene is read as detect reads it: red/green/blue picked as there, band values mapped onto the start
    model's radiometry."""
    import logging

    from rasterio.windows import Window

    from ..evaluation import maps_at_gsd
    from ..radiometry import map_scene
    from ..raster import fit_bands, needs_resampling, open_scene, resampled_scene
    from .affinity import refine, teacher_map
    held = []
    with open_scene(path) as opened:
        sc = map_scene(fit_bands(opened, teacher.in_bands, logging.getLogger("landslide_wsss")), radiometry, record)
        ws = resampled_scene(sc, gsd) if needs_resampling(sc, gsd) else sc
        try:
            f = ws.width / sc.width  # working px per scene px
            img, valid = ws.read(Window(0, 0, ws.width, ws.height))
            target = np.full((ws.height, ws.width), st.IGNORE, np.uint8)
            for tl in tiles:
                r0, c0 = int(round(tl.row_off * f)), int(round(tl.col_off * f))
                n = max(1, int(round(tl.size * f)))
                data, v = sc.read(Window(tl.col_off, tl.row_off, tl.size, tl.size))
                if tl.label == 0:
                    ref = np.where(v, 0, st.IGNORE).astype(np.uint8)
                else:
                    cam = teacher_map(maps_at_gsd(teacher, data.astype(np.float32), v, sc.gsd))
                    cam = refine(cam, data, bands["refine"], sc.gsd)  # the start model's teacher recipe
                    ref = st.pseudo_mask(cam, bands["t_fg"], bands["t_bg"], v)
                if tl in hold:  # judged against what its label says, never trained on
                    held.append((img[:, r0:r0 + n, c0:c0 + n].copy(), ref, valid[r0:r0 + n, c0:c0 + n].copy()))
                    continue
                target[r0:r0 + n, c0:c0 + n] = resample_target(ref, target[r0:r0 + n, c0:c0 + n].shape)
            target[~valid] = st.IGNORE
            samples = st.cut_blocks(np.clip(img, 0, 255).astype(np.uint8), target, sc.name, BLOCK)
        finally:
            if ws is not sc:
                ws.close()
    log(event="scene", scene=str(path), tiles=len(tiles), held_out=len(held), blocks=len(samples))
    return samples, held


STATE_FILES = {"key.txt", "fit.safetensors", "selftrain.safetensors"}
STATE_ARCHITECTURE = "student-training-state"


def state_folder(out, state_dir=None) -> Path:
    return Path(state_dir) if state_dir else Path(out).parent / (Path(out).name + ".state")


def _drop_cut_short_output(out: Path) -> None:
    """A kill while the output model was being written leaves atomic_output's hidden temporary file
    beside it; the next run of the same command removes it (only train weak writes a model there,
    and two runs to one output would share, and refuse, one state folder)."""
    from ..raster import cut_short_writes
    for part in cut_short_writes(out):
        part.unlink(missing_ok=True)


def _check_state(state: Path, key: str) -> None:
    """A resume state folder is ours and whole before anything resumes from it, else one InputError:
    a file, or a folder holding files not ours, is never written into nor removed; our state of
    other inputs is removed (a fresh start); a damaged or foreign checkpoint in it is refused."""
    from ..checkpoint import read_metadata
    from ..errors import ModelError
    from ..raster import cut_short_writes

    if not state.exists():
        return
    if not state.is_dir():
        raise InputError(f"{state}: the resume state path is a file, not a train weak state folder; "
                         "remove it or give another output")
    for name in STATE_FILES:  # a write a kill cut short: its temporary file (atomic_output's name), never read
        for part in cut_short_writes(state / name):
            part.unlink(missing_ok=True)
    names = {p.name for p in state.iterdir()}
    if not names:
        return
    if names - STATE_FILES or "key.txt" not in names:
        raise InputError(f"{state}: not a train weak state folder (it holds {sorted(names - STATE_FILES)[:3] or 'no key.txt'}); "
                         "remove it or give another output")
    try:
        stored = (state / "key.txt").read_text().strip()
    except (OSError, UnicodeDecodeError):
        stored = None
    if stored is None or len(stored) != len(key) or any(c not in "0123456789abcdef" for c in stored):
        raise InputError(f"{state}: damaged resume state (key.txt unreadable); remove the folder to start afresh")
    if stored != key:
        shutil.rmtree(state)  # our state of other inputs: start afresh
        return
    for name in sorted(names - {"key.txt"}):
        try:
            meta = read_metadata(state / name)
        except ModelError as exc:
            raise InputError(f"{state}: damaged resume state ({exc}); remove the folder to start afresh") from None
        if meta.get("architecture") != STATE_ARCHITECTURE or "optimizer" not in meta or "step" not in meta:
            raise InputError(f"{state / name}: not a student training state (architecture {meta.get('architecture')!r}); "
                             "remove the folder to start afresh")


def train_weak(images: Sequence, labels, out, *, state_dir=None, **options) -> dict:
    """Train a model from image-level labels (see the module docstring; options as _train_weak's).
    A failed write (a full disk) removes the resume state folder this run made: nothing is left."""
    from ..errors import OutputError

    state = state_folder(out, state_dir)
    made = not state.exists()
    try:
        return _train_weak(images, labels, out, state_dir=state_dir, **options)
    except OutputError:
        if made:
            shutil.rmtree(state, ignore_errors=True)
        raise


def _train_weak(images: Sequence, labels, out, *, layer: Optional[str] = None, label_field: Optional[str] = "label",
               init=None, minutes: float = 30.0, tile_m: float = DEFAULT_TILE_M, negative_distance_m: float = 100.0,
               seed: int = 0, overwrite: bool = False, state_dir=None, progress: bool = True, log=None,
               radiometry: str = "auto", steps: int = FINE_TUNE_STEPS, selftrain_steps: Optional[int] = None) -> dict:
    """Train a model from image-level labels (see the module docstring). Returns its metadata summary.
    radiometry: auto | stretch | none, how the scenes' values are mapped onto the start model's
    (landslide_wsss.radiometry); the output keeps the start model's radiometry record."""
    import torch

    from ..checkpoint import dequantize, load_checkpoint, save_checkpoint
    from ..labels import labels_for_scenes
    from ..raster import atomic_output, check_output
    from ..scorers.student import load_segmentation
    from ..wsss import DEFAULT_MODEL, load_model
    t0 = time.time()
    log = log or (lambda **r: None)
    images = [Path(p) for p in images]
    if not images:
        raise InputError("train weak: give at least one --image")
    if not np.isfinite(minutes) or minutes < MIN_MINUTES:
        raise InputError(f"--minutes {minutes:g}: a budget below {MIN_MINUTES:g} minutes cannot train anything")
    if int(steps) < 1:
        raise InputError(f"--steps {steps}: expected at least 1")
    if not np.isfinite(tile_m) or tile_m <= 0:
        raise InputError(f"--tile-m {tile_m:g}: expected a positive size in metres")
    if not np.isfinite(negative_distance_m) or negative_distance_m < 0:
        raise InputError(f"--negative-distance {negative_distance_m:g}: expected >= 0 metres")
    from ..radiometry import check_mode
    check_mode(radiometry)
    out = check_output(out, overwrite)
    if out.suffix != ".safetensors":
        raise InputError(f"{out}: a model file is written as *.safetensors")
    init_path = Path(init) if init is not None else DEFAULT_MODEL
    tensors, meta = load_checkpoint(init_path, raw=True)  # copied into the output as stored
    base = load_segmentation(dequantize(tensors), meta, init_path, "student", "student")
    if base is None:
        raise InputError(f"{init_path}: --init needs a model file with a student network (the embedded one has it)")
    comp = meta["student"]
    gsd = float(comp["gsd"])
    bands = {k: (comp.get("teacher") or {}).get(k, d) for k, d in (("t_fg", 0.4), ("t_bg", 0.3), ("refine", "none"))}
    teacher_method = (comp.get("teacher") or {}).get("method", "gradcam++")

    def tile_px(scene):
        return max(8, int(round(tile_m / scene.gsd)))

    per_scene = labels_for_scenes(images, labels, layer=layer, label_field=label_field, tile_px=tile_px,
                                  negative_distance_m=negative_distance_m)
    tiles = [(p, t) for p, tl in per_scene.items() for t in tl]
    counts = {"landslide_tiles": sum(t.label == 1 for _, t in tiles), "free_tiles": sum(t.label == 0 for _, t in tiles)}
    log(event="labels", **counts)
    state = state_folder(out, state_dir)
    key = _inputs_key(images, labels, {"layer": layer, "field": label_field, "init": str(init_path), "tile_m": tile_m,
                                       "neg": negative_distance_m, "seed": seed, "radiometry": radiometry,
                                       "steps": steps})
    _check_state(state, key)
    _drop_cut_short_output(out)
    state.mkdir(parents=True, exist_ok=True)
    with atomic_output(state / "key.txt", overwrite=True) as tmp:
        tmp.write_text(key)
    train_tiles, hold = _split(tiles, seed)
    held_set = {id(t) for _, t in hold}
    teacher = load_model(init_path, method=teacher_method, device="cpu",
                         params=dict(st.TEACHER_PARAMS))
    from ..radiometry import model_record
    record = meta.get("radiometry") or model_record(None, init_path)
    samples, held = [], []
    for p in images:
        mine = [t for q, t in tiles if q == p]
        s, h = _scene_samples(p, mine, [t for t in mine if id(t) in held_set], teacher, bands, gsd, log,
                              radiometry, record)
        samples += s
        held += h
    if not any(s.positive for s in samples):
        raise InputError("no landslide tile is left for training after the hold-out; label more landslide tiles")
    sets = {SET: held}

    def measure(n):
        return holdout.score(n, sets)

    def minutes_left(reserve=0.05):  # a share of the budget for the hold-out and saving
        return max(0.0, minutes * (1 - reserve) - (time.time() - t0) / 60)
    start_score = measure(base.net)
    start_state = {k: v.clone() for k, v in base.net.state_dict().items()}
    torch.manual_seed(seed)
    net, run = st.fit_student(samples, base.net, steps, lr=FINE_TUNE_LR, seed=seed, max_minutes=minutes_left(0.1),
                              state_path=state / "fit.safetensors", log=log, progress=progress)
    score = measure(net)
    selftraining = None
    if minutes_left() > 0:
        net, score, selftraining = self_train(
            net, samples, measure, score, rounds=1, steps=selftrain_steps or SELFTRAIN_STEPS, seed=seed,
            state_path=lambda r: state / "selftrain.safetensors", max_minutes=minutes_left(), log=log,
            progress=progress)
    keep = not keeps(start_score, score)  # the start model's student only when the hold-out prefers it
    if not keep:
        net.load_state_dict(start_state)
        score = start_score
    log(event="holdout", start_model=start_score, trained=score, kept=keep)
    new = {k: v for k, v in tensors.items() if not k.startswith(("student.", "onnx.student."))}
    new.update(st.student_tensors(net))
    meta = dict(meta)
    meta["onnx"] = {c: g for c, g in (meta.get("onnx") or {}).items() if c != "student"}
    plain = {k: v for k, v in comp.items() if k not in ("gate_high", "gate")}  # the hold-out chose a plain threshold
    meta["student"] = {**plain, "threshold": score["threshold"], "holdout": score, "trained_from_labels": True}
    meta["method_default"] = "student"
    meta["trained_on"] = {
        "scenes": [str(p) for p in images], "labels": str(labels), "layer": layer, "label_field": label_field,
        **counts, "held_out_tiles": len(hold), "gsd": gsd, "tile_m": tile_m, "negative_distance_m": negative_distance_m,
        "init": str(init_path), "teacher": teacher_method, "bands": bands, "radiometry": radiometry,
        "minutes_budget": minutes,
        "seconds": round(time.time() - t0, 1), "seed": seed, "fine_tune": run,
        "self_training": selftraining, "self_training_rounds": (selftraining or {}).get("kept_rounds", 0),
        "stopped_early": run["stopped_early"] or next((r["stopped_early"] for r in (selftraining or {}).get("runs", [])
                                                       if r["stopped_early"]), None),
        "holdout_measure": "pixel IoU against the held-out tiles' labels (landslide-free: background; landslide: "
                           "the teacher's confident bands) at the best threshold",
        "holdout_start_model": start_score, "holdout": score, "fine_tuned_student_kept": keep,
    }
    from ..runtime import available
    with atomic_output(out, overwrite=overwrite) as tmp:  # the output appears only whole, graphs included
        save_checkpoint(tmp, new, meta)
        if available("onnx"):  # the new student's graph: the model runs on the light runtime too
            from ..onnx_export import embed_graphs
            embed_graphs(tmp, components=("student",))
    shutil.rmtree(state, ignore_errors=True)
    return meta["trained_on"]


def main(argv=None) -> int:
    import argparse

    from ..cliutil import Parser as _Parser
    from .common import Logger, set_threads
    ap = _Parser(prog="landslide-wsss train weak", description=__doc__,
                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--image", action="append", required=True, help="a GeoTIFF scene (repeat for more)")
    ap.add_argument("--labels", required=True, help="label layer file (GeoPackage, shapefile, GeoJSON)")
    ap.add_argument("--layer", help="layer name inside the labels file")
    default = {k: v.default for k, v in inspect.signature(_train_weak).parameters.items()}  # one set of defaults
    ap.add_argument("--label-field", default=default["label_field"], help="1/0 field of labelled polygons (default %(default)s)")
    ap.add_argument("--init", help="model file to start from (default: the embedded model)")
    ap.add_argument("--minutes", type=float, default=default["minutes"],
                    help="wall-clock budget: stops training early when reached (default %(default)g)")
    ap.add_argument("--steps", type=int, default=default["steps"], help="fine-tune steps of the student (default %(default)s)")
    ap.add_argument("--tile-m", type=float, default=default["tile_m"], help="label tile size in metres (default %(default)g)")
    ap.add_argument("--negative-distance", type=float, default=default["negative_distance_m"],
                    help="points/outlines: tiles farther than this (m) from every label are landslide-free (default %(default)g)")
    ap.add_argument("--threads", type=int, help="torch threads (default: all cores)")
    ap.add_argument("--seed", type=int, default=default["seed"])
    ap.add_argument("--radiometry", default=default["radiometry"], choices=("auto", "stretch", "none"),
                    help="how the scenes' band values are mapped onto the start model's (default auto; see detect --help)")
    ap.add_argument("-o", "--output", required=True, help="output model file (.safetensors)")
    ap.add_argument("--overwrite", action="store_true")
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("--jsonl", action="store_true", help="JSON-lines progress on stdout (the QGIS plugin)")
    a = ap.parse_args(argv)
    set_threads(a.threads)
    if a.jsonl:
        from ..cliutil import emit as _emit
        t_budget = a.minutes * 60
        t_start = time.time()

        def log(**rec):
            _emit({"event": "progress", "percent": round(min(99.0, 100 * (time.time() - t_start) / t_budget), 1)})
            _emit({"event": "message", "level": "info", "text": json.dumps(rec)})
    else:
        log = Logger(quiet=a.quiet)
    res = train_weak(a.image, a.labels, a.output, layer=a.layer, label_field=a.label_field, init=a.init,
                     minutes=a.minutes, tile_m=a.tile_m, negative_distance_m=a.negative_distance, seed=a.seed,
                     overwrite=a.overwrite, progress=not (a.quiet or a.jsonl), log=log, radiometry=a.radiometry,
                     steps=a.steps)
    if a.jsonl:
        _emit({"event": "result", "output": str(Path(a.output).resolve()), **{k: res[k] for k in (
            "landslide_tiles", "free_tiles", "held_out_tiles", "seconds")}, "holdout": res["holdout"]})
    elif not a.quiet:
        print(f"{a.output}: trained on {res['landslide_tiles']} landslide + {res['free_tiles']} landslide-free tiles "
              f"in {res['seconds']:.0f} s; hold-out IoU {res['holdout']['mean_iou']:.3f}"
              + ("" if res["fine_tuned_student_kept"] else " (the start model's student scored better there: kept)"))
    return 0
