"""`landslide-wsss train weak`: a model for your own region from image-level labels.

Labels (landslide_wsss.labels): a ticked polygon grid (any tile size), an inventory of points,
or rough outlines, in any CRS. The run fine-tunes the start model's student on your scenes:

1. tiles of `tile_m` metres get image-level labels from the layer; a seeded 15 % of them (at least
   one of each label) is held out;
2. targets: landslide-free tiles are exact background (the false alarms the start model makes
   there are what the labels correct); in a landslide tile the start student's own confident
   pixels: landslide where it would mark them (its detection threshold), background below
   TARGET_BG, the band between ignored; a landslide tile where it marks nothing is ignored whole
   (its own background there would contradict the label). Unlabelled pixels are never labels;
3. the student, fine-tuned at its working GSD on those targets for FINE_TUNE_STEPS steps
   (resumable); `--minutes` only stops it early (the file then says where);
4. the keep rule, on the held-out tiles, from what their labels say exactly (holdout.tile_facts,
   at the model's own threshold): the share of landslide-free pixels marked, and the share of
   landslide tiles where something is marked. The fine-tuned student replaces the start one only
   when it is no worse on either and better on one.

The classifier is not retrained, and the detection settings (threshold, gate, working GSD) stay the
start model's. The output is a complete model file: the start model with the new student and
metadata saying what it was trained on.
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
from . import holdout
from . import student as st

HOLDOUT_FRAC = 0.15
MIN_MINUTES = 0.2
BLOCK = 320            # working-grid blocks cut around the labelled tiles
FINE_TUNE_STEPS = 400  # 9 minutes on a 2-core CPU (1.4 s/step at 1 m GSD); the measured recipe's length
FINE_TUNE_LR = 3e-4
TARGET_BG = st.ST_LO   # below this the start student's pixels in a landslide tile are background targets
CONTEXT = 64           # working px around each held-out tile that its prediction sees (as in a scene)


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


def tile_targets(prob: np.ndarray, label: int, valid: np.ndarray, threshold: float) -> np.ndarray:
    """One labelled tile's targets (0/1/IGNORE) from the start student's probability there (step 2
    of the module docstring)."""
    out = np.full(prob.shape, st.IGNORE, np.uint8)
    if label == 0:
        out[valid] = 0
        return out
    fg = (prob > threshold) & valid  # above detect's threshold (a gate, where the model has one, is not applied)
    if fg.any():  # a landslide tile the start student marks nothing in teaches nothing
        out[(prob < TARGET_BG) & valid] = 0
        out[fg] = 1
    return out


def _scene_samples(path, tiles, hold, start, gsd, log, radiometry="auto", record=None):
    """Working-grid blocks of one scene with their targets from the start student `start` (a
    scorer: its tiled maps, as detect makes them; held-out tiles ignored), and the held-out tiles as
    holdout.TileItem (working image with CONTEXT px around, label, valid, the tile's slice), and the
    number of training landslide tiles the start student marks nothing in. The scene is read as
    detect reads it: red/green/blue picked as there, band values mapped onto the start model's
    radiometry."""
    import logging

    from rasterio.windows import Window

    from ..evaluation import maps_at_gsd
    from ..radiometry import map_scene
    from ..raster import fit_bands, needs_resampling, open_scene, resampled_scene
    held, unmarked = [], 0
    with open_scene(path) as opened:
        sc = map_scene(fit_bands(opened, start.in_bands, logging.getLogger("landslide_wsss")), radiometry, record)
        ws = resampled_scene(sc, gsd) if needs_resampling(sc, gsd) else sc
        try:
            f = ws.width / sc.width  # working px per scene px
            img, valid = ws.read(Window(0, 0, ws.width, ws.height))
            img = np.clip(img, 0, 255).astype(np.uint8)
            prob = maps_at_gsd(start, img.astype(np.float32), valid, gsd)["prob"]
            target = np.full((ws.height, ws.width), st.IGNORE, np.uint8)
            for tl in tiles:
                r0, c0 = int(round(tl.row_off * f)), int(round(tl.col_off * f))
                n = max(1, int(round(tl.size * f)))
                rs, cs = slice(max(r0, 0), r0 + n), slice(max(c0, 0), c0 + n)
                if tl in hold:  # judged by what its label says, never trained on
                    R = slice(max(rs.start - CONTEXT, 0), rs.stop + CONTEXT)
                    C = slice(max(cs.start - CONTEXT, 0), cs.stop + CONTEXT)
                    inner = (slice(rs.start - R.start, rs.stop - R.start), slice(cs.start - C.start, cs.stop - C.start))
                    held.append(holdout.TileItem(img[:, R, C].copy(), tl.label, valid[R, C].copy(), inner))
                    continue
                target[rs, cs] = t = tile_targets(prob[rs, cs], tl.label, valid[rs, cs], start.threshold)
                unmarked += tl.label == 1 and not (t == 1).any()
            target[~valid] = st.IGNORE
            samples = st.cut_blocks(img, target, sc.name, BLOCK)
        finally:
            if ws is not sc:
                ws.close()
    log(event="scene", scene=str(path), tiles=len(tiles), held_out=len(held), blocks=len(samples),
        landslide_tiles_unmarked=unmarked)
    return samples, held, unmarked


STATE_FILES = {"key.txt", "fit.safetensors"}
STATE_ARCHITECTURE = "student-training-state"


def state_folder(out, state_dir=None) -> Path:
    return Path(state_dir) if state_dir else Path(out).parent / (Path(out).name + ".state")


def _check_state(state: Path, key: str) -> None:
    """A resume state folder is ours and whole before anything resumes from it, else one InputError:
    a file, or a folder holding files not ours, is never written into nor removed; our state of
    other inputs is removed (a fresh start); a damaged or foreign checkpoint in it is refused."""
    from ..checkpoint import read_metadata
    from ..errors import ModelError
    from ..raster import drop_cut_short_writes

    if not state.exists():
        return
    if not state.is_dir():
        raise InputError(f"{state}: the resume state path is a file, not a train weak state folder; "
                         "remove it or give another output")
    for name in STATE_FILES:  # a write a kill cut short: its temporary file (atomic_output's name), never read
        drop_cut_short_writes(state / name)
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
    A failed write (a full disk) or a refusal removes the resume state folder this run made: nothing
    is left."""
    from ..errors import OutputError

    state = state_folder(out, state_dir)
    made = not state.exists()
    try:
        return _train_weak(images, labels, out, state_dir=state_dir, **options)
    except (InputError, OutputError):
        if made:
            shutil.rmtree(state, ignore_errors=True)
        raise


def _train_weak(images: Sequence, labels, out, *, layer: Optional[str] = None, label_field: Optional[str] = "label",
               init=None, minutes: float = 30.0, tile_m: float = DEFAULT_TILE_M, negative_distance_m: float = 100.0,
               seed: int = 0, overwrite: bool = False, state_dir=None, progress: bool = True, log=None,
               radiometry: str = "auto", steps: int = FINE_TUNE_STEPS) -> dict:
    """Train a model from image-level labels (see the module docstring). Returns its metadata summary.
    radiometry: auto | stretch | none, how the scenes' values are mapped onto the start model's
    (landslide_wsss.radiometry); the output keeps the start model's radiometry record."""
    import torch

    from ..checkpoint import dequantize, load_checkpoint, save_checkpoint
    from ..labels import labels_for_scenes
    from ..raster import atomic_output, check_output
    from ..scorers.student import load_segmentation
    from ..wsss import DEFAULT_MODEL
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
    start = load_segmentation(dequantize(tensors), meta, init_path, "student", "student")
    if start is None:
        raise InputError(f"{init_path}: --init needs a model file with a student network (the embedded one has it)")
    comp = meta["student"]
    gsd = float(start.gsd)

    def tile_px(scene):
        return max(8, int(round(tile_m / scene.gsd)))

    per_scene = labels_for_scenes(images, labels, layer=layer, label_field=label_field, tile_px=tile_px,
                                  negative_distance_m=negative_distance_m)
    tiles = [(p, t) for p, tl in per_scene.items() for t in tl]
    counts = {"landslide_tiles": sum(t.label == 1 for _, t in tiles), "free_tiles": sum(t.label == 0 for _, t in tiles)}
    log(event="labels", **counts)
    train_tiles, hold = _split(tiles, seed)
    if not any(t.label == 1 for _, t in train_tiles):
        raise InputError("no landslide tile is left for training after the hold-out; label more landslide tiles")
    state = state_folder(out, state_dir)
    key = _inputs_key(images, labels, {"layer": layer, "field": label_field, "init": str(init_path), "tile_m": tile_m,
                                       "neg": negative_distance_m, "seed": seed, "radiometry": radiometry,
                                       "steps": steps, "targets": "start student"})
    _check_state(state, key)
    state.mkdir(parents=True, exist_ok=True)
    with atomic_output(state / "key.txt", overwrite=True) as tmp:
        tmp.write_text(key)
    held_set = {id(t) for _, t in hold}
    from ..radiometry import model_record
    record = meta.get("radiometry") or model_record(None, init_path)
    samples, held, unmarked = [], [], 0
    for p in images:
        mine = [t for q, t in tiles if q == p]
        s, h, u = _scene_samples(p, mine, [t for t in mine if id(t) in held_set], start, gsd, log, radiometry, record)
        samples, held, unmarked = samples + s, held + h, unmarked + u
    if not samples:  # labels_for_scenes asks for landslide-free tiles; all of theirs may be nodata
        raise InputError("nothing to learn from: the start model marks nothing in the landslide tiles and the "
                         "landslide-free tiles hold no valid pixel")

    def measure(n):
        return holdout.tile_facts(n, held, start.threshold, start.gate_high)

    start_facts = measure(start.net)
    start_state = {k: v.clone() for k, v in start.net.state_dict().items()}
    torch.manual_seed(seed)
    budget = max(0.0, minutes * 0.9 - (time.time() - t0) / 60)  # a tenth kept for the hold-out and saving
    net, run = st.fit_student(samples, start.net, steps, lr=FINE_TUNE_LR, seed=seed, max_minutes=budget,
                              state_path=state / "fit.safetensors", log=log, progress=progress)
    facts = measure(net)
    keep = holdout.facts_prefer(facts, start_facts)  # else the start model's student stays
    if not keep:
        net.load_state_dict(start_state)
    log(event="holdout", start_model=start_facts, trained=facts, kept=keep)
    new = {k: v for k, v in tensors.items() if not k.startswith(("student.", "onnx.student."))}
    new.update(st.student_tensors(net))
    meta = dict(meta)
    meta["onnx"] = {c: g for c, g in (meta.get("onnx") or {}).items() if c != "student"}
    meta["student"] = {**comp, "holdout": facts if keep else start_facts, "trained_from_labels": True}
    meta["method_default"] = "student"
    meta["trained_on"] = {
        "scenes": [str(p) for p in images], "labels": str(labels), "layer": layer, "label_field": label_field,
        **counts, "held_out_tiles": len(hold), "landslide_tiles_unmarked_by_start": unmarked, "gsd": gsd,
        "tile_m": tile_m, "negative_distance_m": negative_distance_m,
        "init": str(init_path), "radiometry": radiometry, "minutes_budget": minutes,
        "targets": {"landslide": f"start student > {start.threshold:g}", "background": f"start student < {TARGET_BG:g}",
                    "landslide_free_tiles": "background"},
        "seconds": round(time.time() - t0, 1), "seed": seed, "fine_tune": run, "stopped_early": run["stopped_early"],
        "holdout_measure": "held-out tiles at the model's threshold: share of landslide-free pixels marked, share of "
                           "landslide tiles with a mark (kept: no worse on both, better on one)",
        "holdout_start_model": start_facts, "holdout_fine_tuned": facts, "fine_tuned_student_kept": keep,
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
    kept = res["holdout_fine_tuned"] if res["fine_tuned_student_kept"] else res["holdout_start_model"]
    if a.jsonl:
        _emit({"event": "result", "output": str(Path(a.output).resolve()), **{k: res[k] for k in (
            "landslide_tiles", "free_tiles", "held_out_tiles", "seconds", "fine_tuned_student_kept")}, "holdout": kept})
    elif not a.quiet:
        print(f"{a.output}: trained on {res['landslide_tiles']} landslide + {res['free_tiles']} landslide-free tiles "
              f"in {res['seconds']:.0f} s; held-out tiles: {kept['landslide_tiles_found']:.0%} of "
              f"{kept['landslide_tiles']} landslide tiles found, {kept['free_pixels_marked']:.1%} of the landslide-free "
              f"pixels marked" + ("" if res["fine_tuned_student_kept"] else
                                  " (the start model's student: the fine-tuned one was not better there)"))
        if res["landslide_tiles_unmarked_by_start"]:
            print(f"{res['landslide_tiles_unmarked_by_start']} landslide tile(s) taught nothing: the start model marks "
                  "nothing there")
    return 0
