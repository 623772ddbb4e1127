"""Second-stage stages of the embedded default model (called by training/default.py).

Data (never Bijie val, never area B): the Bijie train list minus the seeded 10 % hold-out, and
AMU-Net area A above its bottom 20 % strip. Area A's image-level labels are 64 m squares (any
landslide pixel or none), the labels a user would tick. The hold-out (Bijie hold-out + area A
strip, with their masks) makes every choice: the teacher's CAM method and bands, the mask
threshold, whether a self-training round is kept.

pseudo      teacher = the shipped classifier (multi-scale 0.5/1/1.5/2 + flip CAMs at the images'
            own resolution) -> three-band pseudo-masks -> samples at the working GSD, cached
student     the segmentation student on the pseudo-masks, then self-training rounds
supervised  the same network, data, crops and budget on the true masks (the yardstick)
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import List

import numpy as np
import torch

from .. import __version__
from ..checkpoint import load_checkpoint, save_checkpoint
from ..evaluation import BIJIE_GSD
from ..resample import resample_image, resample_target
from . import student as st
from .affinity import teacher_map

GSD = 1.6            # working ground sampling distance (m) when none is chosen (stage_scale chooses)
AREA_TILE_M = 64.0   # area A's image-level labels: 64 m squares
BLOCK = 256          # area A is cut into blocks of this many working pixels (samples)
AREA_SHARE = 0.3     # share of the crops drawn from area A (Bijie has ~800 images, area A 2 km²)
TEACHERS = ("cam", "gradcam++")
REFINES = ("none", "slic")  # affinity.REFINEMENTS minus crf (it collapsed the landslide band on the hold-out)
CUE_MARGIN = 0.01    # the CycleGAN difference enters the pseudo-masks only if it adds this much hold-out IoU
INFER_TILE = 256     # student inference tile at the working GSD


def _teacher(method: str, model=None, device: str = "cpu"):
    """The teacher from model file `model` (None: the embedded one) with the teacher's CAM settings."""
    from ..wsss import load_model
    return load_model(model, method=method, device=device, params=dict(st.TEACHER_PARAMS))


def _area_a(data):
    """Area A as arrays, and the first row of its held-out bottom strip."""
    from ..datasets.scene_chips import read_scene_arrays
    p = Path(data) / "amunet"
    img, valid, mask = read_scene_arrays(p / "areaA_rgb.tif", p / "areaA_mask.tif")
    return img, valid, mask, _area_a_cut(mask.shape[0])


def _area_a_gsd(data) -> float:
    """Area A's pixel size in metres, as its GeoTIFF states it."""
    from .data import scene_gsd
    return scene_gsd(Path(data) / "amunet" / "areaA_rgb.tif")


def _area_a_cut(height: int) -> int:
    from .data import STRIP_FRAC
    return int(height * (1 - STRIP_FRAC))


def _bijie_split(data, seed):
    """Bijie train names, their image-level labels, and the seeded (train, hold-out) indexes."""
    from ..datasets.bijie import label_from_name, read_split
    from .data import split_holdout
    names = read_split(Path(data) / "bijie" / "train.txt")
    labels = np.asarray([label_from_name(n) for n in names])
    tr, ho = split_holdout(names, labels, seed=seed)
    return names, labels, tr, ho


def _tile_labels(mask: np.ndarray, tile: int):
    """Image-level labels of `tile`-px squares from a mask: 1 any landslide, 0 none, -1 not covered."""
    h, w = mask.shape
    out = {}
    for r in range(0, h, tile):
        for c in range(0, w, tile):
            m = mask[r:r + tile, c:c + tile]
            cov = m != 255
            out[(r, c)] = -1 if cov.mean() < 0.1 else int((m == 1).any())
    return out


def area_target(cam: np.ndarray, mask: np.ndarray, valid: np.ndarray, tile: int, t_fg: float, t_bg: float,
                gsd: float, image: np.ndarray = None, refine: str = "none"):
    """Pseudo-mask of a scene from tile labels: landslide tiles get the CAM's bands (refined and
    normalized in the tile), landslide-free tiles exact background, uncovered tiles ignored."""
    from .affinity import refine as _refine
    out = np.full(mask.shape, st.IGNORE, np.uint8)
    for (r, c), lab in _tile_labels(mask, tile).items():
        sl = (slice(r, r + tile), slice(c, c + tile))
        if lab == 1:
            m = _refine(cam[sl], None if image is None else image[(slice(None),) + sl], refine, gsd)
            out[sl] = st.pseudo_mask(m, t_fg, t_bg, valid[sl])
        elif lab == 0:
            out[sl] = np.where(valid[sl], 0, st.IGNORE)
    return out


def _write_json(path, obj) -> None:
    """A stage's record (a resume marker too), written whole or not at all."""
    from ..raster import atomic_output
    with atomic_output(path, overwrite=True) as tmp:
        tmp.write_text(json.dumps(obj, indent=1))


def _save_samples(path, samples: List[st.Sample], meta: dict) -> None:
    tensors = {}
    for i, s in enumerate(samples):
        tensors[f"img.{i}"] = torch.from_numpy(np.ascontiguousarray(s.image))
        tensors[f"tgt.{i}"] = torch.from_numpy(np.ascontiguousarray(s.target))
    meta = {**meta, "samples": [{"name": s.name, "positive": s.positive, "weight": s.weight} for s in samples]}
    save_checkpoint(path, tensors, {"architecture": "sample-cache", "in_bands": 3, "version": __version__, **meta})


def load_samples(path):
    tensors, meta = load_checkpoint(path)
    out = [st.Sample(tensors[f"img.{i}"].numpy(), tensors[f"tgt.{i}"].numpy(), d["name"], d["positive"], d["weight"])
           for i, d in enumerate(meta["samples"])]
    return out, meta


def _weights(samples, share=AREA_SHARE):
    """`share` of the crops from area A blocks, the rest from Bijie images."""
    a = [s for s in samples if s.name.startswith("areaA")]
    b = [s for s in samples if not s.name.startswith("areaA")]
    for s in a:
        s.weight = share / max(len(a), 1)
    for s in b:
        s.weight = (1 - share) / max(len(b), 1)
    return samples


def _holdout_teacher_maps(teacher, root, ho_pos, a_img, a_valid, a_mask, cut, a_tile, a_gsd):
    """The teacher's maps (with images, masks and pixel sizes) on the hold-out landslide images and
    the landslide tiles of the area A strip."""
    from ..datasets.bijie import load_image, load_mask
    from ..evaluation import maps_at_gsd
    cams, masks, images, gsds = [], [], [], []
    for n in ho_pos:  # each image read once: its CAM, and the image for the affinity refinement
        img = load_image(root, n)
        cams.append(teacher_map(maps_at_gsd(teacher, img, None, BIJIE_GSD)))
        masks.append(load_mask(root, n, img.shape[1:]))
        images.append(img)
        gsds.append(BIJIE_GSD)
    area = teacher_map(maps_at_gsd(teacher, a_img, a_valid, a_gsd))
    for rs, cs in _pos_tiles(a_mask[cut:], a_tile):
        rs = slice(rs.start + cut, rs.stop + cut)
        cams.append(area[rs, cs])
        masks.append(a_mask[rs, cs])
        images.append(a_img[:, rs, cs])
        gsds.append(a_gsd)
    return cams, masks, images, gsds


def choose_teacher(data, seed=0, log=print, model=None) -> dict:
    """The teacher: a CAM method, with or without the CycleGAN difference cue, with or without an
    affinity refinement (training/affinity.py), and its bands. The rule: the best confident-band IoU
    on the hold-out landslide images + the area A strip's landslide tiles; the cue only where it adds
    CUE_MARGIN over the best choice without it. Independent of the working GSD (teachers see the
    images at their own resolution)."""
    from .affinity import refine
    root = Path(data) / "bijie"
    names, labels, _, ho = _bijie_split(data, seed)
    ho_pos = [names[i] for i in ho if labels[i] == 1]
    a_img, a_valid, a_mask, cut = _area_a(data)
    a_gsd = _area_a_gsd(data)
    a_tile = int(round(AREA_TILE_M / a_gsd))
    choice = {}
    for m in TEACHERS:
        for cue in ("none", "cyclegan"):
            name = m if cue == "none" else m + "-cyclegan"
            cams, masks, images, gsds = _holdout_teacher_maps(
                _teacher(name, model), root, ho_pos, a_img, a_valid, a_mask, cut, a_tile, a_gsd)
            for how in REFINES:
                refined = [refine(c, im, how, g) for c, im, g in zip(cams, images, gsds)]
                q = st.choose_bands(refined, masks)
                key = f"{name}+{how}"
                choice[key] = {"teacher": name, "refine": how, **q}
                log(event="teacher", key=key, **{k: round(v, 4) if isinstance(v, float) else v for k, v in q.items()})
    plain = max((k for k in choice if "-cyclegan" not in k), key=lambda k: choice[k]["fg_iou"])
    cued = max((k for k in choice if "-cyclegan" in k), key=lambda k: choice[k]["fg_iou"])
    key = cued if choice[cued]["fg_iou"] >= choice[plain]["fg_iou"] + CUE_MARGIN else plain
    return {"method": choice[key]["teacher"], "refine": choice[key]["refine"], "t_fg": choice[key]["t_fg"],
            "t_bg": choice[key]["t_bg"], "params": st.TEACHER_PARAMS, "holdout": choice,
            "rule": f"best confident-band IoU on the hold-out; the CycleGAN cue only with +{CUE_MARGIN} over the best without it"}


def teacher_targets(data, seed=0, teacher: dict = None, model=None, log=print) -> dict:
    """The chosen teacher's pseudo-masks at the images' own resolution (they do not depend on the
    working GSD, so the scale sweep computes them once): {"bijie": {name: mask of a landslide
    image}, "areaA": the scene's mask, "teacher": the choice, "quality": band quality on the train
    part's landslide images}."""
    from ..datasets.bijie import label_from_name, load_image, load_mask
    from ..evaluation import maps_at_gsd
    from .affinity import refine
    t0 = time.time()
    root = Path(data) / "bijie"
    names, labels, tr, _ = _bijie_split(data, seed)
    a_img, a_valid, a_mask, _ = _area_a(data)
    a_gsd = _area_a_gsd(data)
    a_tile = int(round(AREA_TILE_M / a_gsd))
    choice = dict(teacher or choose_teacher(data, seed, log, model))
    method, how, t_fg, t_bg = choice["method"], choice["refine"], choice["t_fg"], choice["t_bg"]
    net = _teacher(method, model)
    bijie, refined, masks = {}, [], []
    for n in (names[i] for i in tr):
        if label_from_name(n) != 1:
            continue
        img = load_image(root, n)
        cam = refine(teacher_map(maps_at_gsd(net, img, None, BIJIE_GSD)), img, how, BIJIE_GSD)
        bijie[n] = st.pseudo_mask(cam, t_fg, t_bg)
        refined.append(cam)
        masks.append(load_mask(root, n, img.shape[1:]))
    area = area_target(teacher_map(maps_at_gsd(net, a_img, a_valid, a_gsd)), a_mask, a_valid, a_tile, t_fg, t_bg,
                       a_gsd, image=a_img, refine=how)
    quality = st.band_quality(refined, masks, t_fg, t_bg)
    log(event="teacher_targets", n=len(bijie), teacher=method, refine=how, seconds=round(time.time() - t0, 1))
    return {"bijie": bijie, "areaA": area, "teacher": choice, "quality": quality, "seconds": round(time.time() - t0, 1)}


def stage_pseudo(data, work, seed=0, log=print, gsd=GSD, teacher: dict = None, model=None, targets: dict = None):
    """Pseudo-masks of the training part by the chosen teacher (`teacher_targets`, or the `targets`
    given), cached as weak + supervised samples at the working GSD."""
    from ..datasets.bijie import load_image, load_mask
    t0 = time.time()
    work = Path(work)
    root = Path(data) / "bijie"
    names, _, tr, _ = _bijie_split(data, seed)
    a_img, _, a_mask, cut = _area_a(data)
    targets = targets or teacher_targets(data, seed, teacher, model, log)
    f_b, f_a = gsd / BIJIE_GSD, gsd / _area_a_gsd(data)
    weak, sup = [], []
    for n in (names[i] for i in tr):  # each image read once
        img = load_image(root, n)
        small = resample_image(img, f_b)
        size = small.shape[1:]
        tgt = targets["bijie"].get(n)
        positive = tgt is not None
        if not positive:
            tgt = np.zeros(img.shape[1:], np.uint8)
        weak.append(st.Sample(small, resample_target(tgt, size), n, positive))
        sup.append(st.Sample(small, resample_target(load_mask(root, n, img.shape[1:]), size), n, positive))
    a_small = resample_image(a_img[:, :cut].astype(np.uint8), f_a)  # the strip (rows >= cut) stays out
    size = a_small.shape[1:]
    block = int(round(BLOCK * GSD / gsd))  # the same ground per block at every working GSD
    weak += st.cut_blocks(a_small, resample_target(targets["areaA"][:cut], size), "areaA", block, min_labelled=0.05)
    sup += st.cut_blocks(a_small, resample_target(a_mask[:cut], size), "areaA", block, min_labelled=0.05)
    choice = targets["teacher"]
    meta = {"gsd": gsd, "teacher": {**choice, "train_band_quality": targets["quality"]},
            "seed": seed, "strip_row": cut, "seconds": round(time.time() - t0 + targets["seconds"], 1)}
    _save_samples(work / "weak_samples.safetensors", _weights(weak), meta)
    _save_samples(work / "supervised_samples.safetensors", _weights(sup), meta)
    log(event="pseudo", n_weak=len(weak), n_pos=sum(s.positive for s in weak), teacher=choice["method"],
        refine=choice["refine"], t_fg=choice["t_fg"], t_bg=choice["t_bg"], gsd=gsd, seconds=round(time.time() - t0, 1))
    return meta


def _pos_tiles(mask, tile):
    return [(slice(r, r + tile), slice(c, c + tile)) for (r, c), lab in _tile_labels(mask, tile).items() if lab == 1]


def holdout_items(data, seed=0, gsd=GSD):
    """Hold-out items for the threshold rule: {set: [(img at working GSD, mask, valid)]}."""
    from ..datasets.bijie import load_image, load_mask
    root = Path(data) / "bijie"
    names, _, _, ho = _bijie_split(data, seed)
    bij = []
    for i in ho:
        img = load_image(root, names[i])
        bij.append((resample_image(img, gsd / BIJIE_GSD), load_mask(root, names[i], img.shape[1:]), None))
    a_img, a_valid, a_mask, cut = _area_a(data)
    strip_img = resample_image(a_img[:, cut:].astype(np.uint8), gsd / _area_a_gsd(data))
    strip_valid = resample_target(np.where(a_valid[cut:], 1, 0).astype(np.uint8), strip_img.shape[1:]) == 1
    return {"bijie_holdout": bij, "areaA_strip": [(strip_img, a_mask[cut:], strip_valid)]}


def evaluate_holdout(net, items) -> dict:
    hists = {k: st.holdout_histograms(net, v) for k, v in items.items()}
    return st.choose_threshold(hists)


def new_student(samples):
    from ..models.student import StudentNet
    mean, std = st.band_stats(samples)
    return StudentNet(in_bands=3, mean=mean, std=std)


def stage_student(data, work, minutes, selftrain_minutes, rounds=1, seed=0, log=print, name="student", steps=None,
                  area_share=None):
    """Student on the weak samples (or `name`="supervised": the yardstick on the true masks);
    `area_share`: re-weight the crops to this share from area A (None: the samples' own weights)."""
    work = Path(work)
    torch.manual_seed(seed)
    samples, meta = load_samples(work / ("weak_samples.safetensors" if name == "student" else "supervised_samples.safetensors"))
    gsd = float(meta.get("gsd", GSD))
    if area_share is not None:
        samples = _weights(samples, area_share)
    items = holdout_items(data, seed, gsd)
    net = new_student(samples)
    net, hist = st.fit_student(samples, net, minutes, seed=seed, state_path=work / f"{name}.state.safetensors", log=log,
                               steps=steps)
    best = evaluate_holdout(net, items)
    log(event="holdout", stage=name, round=0, **best)
    record = {"rounds": [best], "kept_rounds": 0, "history": hist[-3:], "minutes": minutes, "steps": steps}
    best_sd = {k: v.clone() for k, v in net.state_dict().items()}
    for r in range(1, rounds + 1):
        relabelled = st.relabel(net, samples)
        net, h = st.fit_student(relabelled, net, selftrain_minutes, lr=3e-4, seed=seed + r,
                                state_path=work / f"{name}.st{r}.state.safetensors", log=log)
        res = evaluate_holdout(net, items)
        log(event="holdout", stage=name, round=r, **res)
        record["rounds"].append(res)
        if res["mean_iou"] > best["mean_iou"]:  # the rule: keep a round only when the hold-out improves
            best, best_sd, samples = res, {k: v.clone() for k, v in net.state_dict().items()}, relabelled
            record["kept_rounds"] = r
        else:
            break
    net.load_state_dict(best_sd)
    out = {"config": net.config(), "gsd": gsd, "tile_size": INFER_TILE, "overlap": INFER_TILE // 8,
           "crop": st.CROP, "threshold": best["threshold"], "holdout": best, "training": record,
           "teacher": meta["teacher"] if name == "student" else None,
           "area_share": area_share if area_share is not None else AREA_SHARE}
    save_checkpoint(work / f"{name}.safetensors", st.student_tensors(net), {"architecture": name, "in_bands": 3, "version": __version__, **out})
    _write_json(work / f"{name}.json", out)
    return out


SCALE_GSDS = (1.0, 1.6, 2.4)  # working GSDs tried (m); Bijie is 0.8 m, AMU-Net 0.5 m
SCALE_STEPS = 400             # steps per trial (a short run: the ranking, not the final network)
SCALE_STEP, SCALE_MAX = 0.8, 3.2  # while the coarsest GSD wins, the grid grows by this step, up to this
# (3.2 m = 4x Bijie's 0.8 m: coarser, most Bijie images would be smaller than one training crop)


def teacher_cached(data, work, seed=0, log=print, model=None) -> dict:
    """choose_teacher (teacher from model file `model`, None: the embedded one), cached in
    WORK/teacher.json (it does not depend on the student's working GSD)."""
    path = Path(work) / "teacher.json"
    if path.is_file():
        return json.loads(path.read_text())
    choice = choose_teacher(data, seed, log, model)
    _write_json(path, choice)
    return choice


def sweep_upward(values, trial, step: float, limit: float):
    """The sweep rule of the working scale and the area A share: `trial(v)` (hold-out figures with
    "mean_iou") for each value; while the largest value tried wins, one `step` more is tried (up to
    `limit`). Returns ({f"{v:g}": figures}, the best key)."""
    values, table = list(values), {}
    k = 0
    while k < len(values):
        v = values[k]
        k += 1
        table[f"{v:g}"] = trial(v)
        best = max(table, key=lambda key: table[key]["mean_iou"])
        if v == values[-1] and float(best) == max(values) and v + step <= limit + 1e-9:
            values.append(round(v + step, 2))  # the best is the largest tried: try one step more
    return table, max(table, key=lambda key: table[key]["mean_iou"])


def stage_scale(data, work, seed=0, log=print, gsds=SCALE_GSDS, steps=SCALE_STEPS, model=None) -> dict:
    """The working scale, by the rule: a student of SCALE_STEPS steps on the pseudo-masks at each GSD,
    no self-training; the GSD with the best mean hold-out IoU wins, and while the coarsest one tried
    wins, one SCALE_STEP coarser is tried too (up to SCALE_MAX). Writes WORK/scale.json."""
    work = Path(work)
    out = work / "scale.json"
    if out.is_file():
        return json.loads(out.read_text())
    teacher = teacher_cached(data, work, seed, log, model)
    targets = None  # the teacher's pseudo-masks: computed once, at the first GSD that needs them

    def trial(g):
        nonlocal targets
        sub = work / "scale" / f"gsd{g:g}"
        sub.mkdir(parents=True, exist_ok=True)
        if not (sub / "weak_samples.safetensors").is_file():
            targets = targets or teacher_targets(data, seed, teacher, model, log)
            stage_pseudo(data, sub, seed, log, gsd=g, targets=targets)
        if not (sub / "student.json").is_file():
            stage_student(data, sub, 0, 0, 0, seed, log, "student", steps=steps)
        res = json.loads((sub / "student.json").read_text())["holdout"]
        log(event="scale", gsd=g, **res)
        return res
    table, best = sweep_upward(gsds, trial, SCALE_STEP, SCALE_MAX)
    result = {"gsd": float(best), "table": table, "steps": steps,
              "rule": "best mean hold-out IoU (Bijie hold-out + area A strip) of a short student per GSD; "
                      "one step coarser while the coarsest tried wins"}
    _write_json(out, result)
    return result


AREA_SHARES = (0.3, 0.5)               # shares of the crops from area A tried at the working GSD
AREA_SHARE_STEP, AREA_SHARE_MAX = 0.2, 0.7  # while the largest share wins, one step more, up to this


def stage_area_share(data, work, seed=0, log=print, shares=AREA_SHARES, steps=SCALE_STEPS) -> dict:
    """The share of the student's crops drawn from area A, by the scale sweep's rule at the working
    GSD: a SCALE_STEPS student per share on WORK's weak samples, no self-training; the best mean
    hold-out IoU wins, and while the largest share tried wins, one AREA_SHARE_STEP more is tried.
    The sweep's own student (made at AREA_SHARE, same samples, seed and steps) stands for that share.
    Writes WORK/area_share.json; the trials' students lie under WORK/area_share/share*/ and are
    reused (a resumed sweep) only when made at the samples' GSD."""
    import shutil

    from ..checkpoint import read_metadata
    work = Path(work)
    out = work / "area_share.json"
    samples = work / "weak_samples.safetensors"
    gsd = float(read_metadata(samples).get("gsd") or GSD)

    def at_gsd(path):
        return path.is_file() and abs(float(json.loads(path.read_text()).get("gsd") or -1) - gsd) < 1e-6
    if at_gsd(out):
        return json.loads(out.read_text())
    swept = work / "scale" / f"gsd{gsd:g}"

    def trial(share):
        sub = work / "area_share" / f"share{share:g}"
        sub.mkdir(parents=True, exist_ok=True)
        if not at_gsd(sub / "student.json"):
            if abs(share - AREA_SHARE) < 1e-9 and (swept / "student.json").is_file():
                for f in ("student.safetensors", "student.json"):
                    shutil.copyfile(swept / f, sub / f)
            else:
                link = sub / "weak_samples.safetensors"
                link.unlink(missing_ok=True)
                link.symlink_to(samples.resolve())
                stage_student(data, sub, 0, 0, 0, seed, log, "student", steps=steps, area_share=share)
        res = json.loads((sub / "student.json").read_text())["holdout"]
        log(event="area_share", share=share, **res)
        return res
    table, best = sweep_upward(list(shares), trial, AREA_SHARE_STEP, AREA_SHARE_MAX)
    result = {"share": float(best), "gsd": gsd, "table": table, "steps": steps,
              "rule": "best mean hold-out IoU (Bijie hold-out + area A strip) of a short student per share of "
                      "area A crops; one step more while the largest tried wins"}
    _write_json(out, result)
    return result


def main(argv=None):
    import argparse

    from ..paths import DATA_DIR
    from .common import Logger, set_threads
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("stage", choices=["scale", "pseudo", "student", "supervised", "all"])
    ap.add_argument("--data", default=str(DATA_DIR))
    ap.add_argument("--work", default="runs/second_stage")
    ap.add_argument("--minutes", type=float, default=25)
    ap.add_argument("--selftrain-minutes", type=float, default=12)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--gsd", type=float, default=GSD, help="working GSD of the samples (m)")
    ap.add_argument("--steps", type=int, default=None, help="train exactly this many steps instead of --minutes")
    a = ap.parse_args(argv)
    set_threads(a.threads)
    Path(a.work).mkdir(parents=True, exist_ok=True)
    log = Logger(Path(a.work) / "log.jsonl")
    if a.stage == "scale":
        stage_scale(a.data, a.work, a.seed, log)
        return
    if a.stage in ("pseudo", "all") and not (Path(a.work) / "weak_samples.safetensors").is_file():
        stage_pseudo(a.data, a.work, a.seed, log, gsd=a.gsd, teacher=teacher_cached(a.data, a.work, a.seed, log))
    if a.stage in ("student", "all"):
        stage_student(a.data, a.work, a.minutes, a.selftrain_minutes, a.rounds, a.seed, log, "student", a.steps)
    if a.stage in ("supervised", "all"):
        stage_student(a.data, a.work, a.minutes, 0, 0, a.seed, log, "supervised", a.steps)


# ---------------------------------------------------------------------------------------------
# Into the model file, and the rule that picks the default method

SELECT_CANDIDATES = ("student", "cam", "gradcam", "gradcam++", "gradcam-cyclegan", "rcm-mam", "adversarial-erasing")  # scorecam: 10x the cost


def embed(out, component_file, prefix: str, int8: bool = False) -> None:
    """Put a trained network (a file of stage_student) into the model file under `prefix` (its
    weights int8 when `int8`: the yardstick, so that every method fits the file's 25 MB)."""
    from ..checkpoint import INT8_STORAGE, int8_tensors, update_model_file
    comp_t, comp_meta = load_checkpoint(component_file, raw=not int8)
    state = {k.split(".", 1)[1]: v for k, v in comp_t.items()}  # without the file's own prefix
    if int8:
        tensors, comp_meta = int8_tensors(state, prefix), {**comp_meta, "storage": INT8_STORAGE}
    else:
        tensors = {f"{prefix}.{k}": v for k, v in state.items()}

    def put(meta):
        meta[prefix] = {k: v for k, v in comp_meta.items() if k not in ("architecture", "format", "in_bands", "version")}
    update_model_file(out, tensors, drop=(prefix,), meta=put)


def _strip_mask(data, work) -> Path:
    """Area A's mask with everything above the hold-out strip set to 255 (ignored)."""
    import rasterio
    src = Path(data) / "amunet" / "areaA_mask.tif"
    dst = Path(work) / "areaA_strip_mask.tif"
    with rasterio.open(src) as ds:
        m = ds.read(1)
        profile = ds.profile
    m[:_area_a_cut(m.shape[0])] = 255
    with rasterio.open(dst, "w", **profile) as out:
        out.write(m, 1)
    return dst


def holdout_evaluation(data, work, seed=0):
    """measure(model) -> the hold-out figures of a scoring model by the `evaluate` path users run
    (Bijie train hold-out + area A strip); validation data is never looked at."""
    from ..evaluation import evaluate_bijie, evaluate_scene
    work = Path(work)
    root = Path(data) / "bijie"
    names, _, _, ho = _bijie_split(data, seed)
    split = work / "holdout.txt"
    split.write_text("\n".join(names[i] for i in ho) + "\n")
    strip = _strip_mask(data, work)

    def measure(model) -> dict:
        b = evaluate_bijie(root, split, model=model)
        a = evaluate_scene(Path(data) / "amunet" / "areaA_rgb.tif", strip, model=model)
        return {"bijie_holdout_iou": round(b["iou"], 4), "areaA_strip_iou": round(a["iou"], 4),
                "bijie_holdout_precision": round(b["precision"], 4), "areaA_strip_precision": round(a["precision"], 4),
                "mean_iou": round((b["iou"] + a["iou"]) / 2, 4)}
    return measure


SCALE_TIE = 0.01  # sweep students this close to the best are re-ranked by the evaluate path


def break_scale_tie(data, out, work, scale: dict, seed=0, log=print) -> dict:
    """The sweep ranks GSDs by a cheap in-memory hold-out; GSDs within SCALE_TIE of its best are
    re-ranked by the evaluate path (each sweep student put into a copy of the model file), and the
    best there wins. Updates and returns `scale` (and WORK/scale.json)."""
    import shutil
    import tempfile

    from ..wsss import load_model
    work = Path(work)
    top = max(r["mean_iou"] for r in scale["table"].values())
    near = [g for g, r in scale["table"].items() if r["mean_iou"] >= top - SCALE_TIE]
    if len(near) < 2:
        return scale
    measure = holdout_evaluation(data, work, seed)
    ranked = {}
    with tempfile.TemporaryDirectory(dir=work) as tmp:
        for g in near:
            copy = Path(tmp) / "model.safetensors"
            shutil.copy(out, copy)
            embed(copy, work / "scale" / f"gsd{g}" / "student.safetensors", "student")
            ranked[g] = measure(load_model(copy, method="student", device="cpu"))
            log(event="scale_tie", gsd=g, **ranked[g])
    best = max(ranked, key=lambda k: ranked[k]["mean_iou"])
    scale = {**scale, "gsd": float(best), "tie_break": {"within": SCALE_TIE, "evaluate_path": ranked, "chosen": best}}
    _write_json(work / "scale.json", scale)
    return scale


def cache_maps(scorer):
    """The scorer with its network maps memoized per tile batch: the gate rule re-runs the same
    hold-out tiles for every (low, high) and only the fuse step changes."""
    import hashlib
    cache, run = {}, scorer.predict_tiles

    def predict_tiles(tiles, valid, terrain=None):
        t, v = np.ascontiguousarray(tiles), np.ascontiguousarray(valid)
        h = hashlib.blake2b(digest_size=16)
        for a in (t, v):
            h.update(f"{a.dtype}{a.shape}".encode())
            h.update(a.tobytes())
        key = h.hexdigest()
        if key not in cache:
            cache[key] = run(tiles, valid, terrain)
        return {k: m.copy() for k, m in cache[key].items()}
    scorer.predict_tiles = predict_tiles
    return scorer


def stage_gate(data, out, work, seed=0, log=print, prefixes=("student", "unet")) -> dict:
    """The hysteresis gate of the segmentation networks in model file `out`, by the rule
    (student.choose_gate) on the `evaluate` path's hold-out figures; writes threshold, gate_high
    and the table into each component's metadata. Starts from the component's plain threshold."""
    from ..checkpoint import read_metadata, update_model_file
    from ..wsss import load_model
    measure = holdout_evaluation(data, work, seed)
    done = {}
    for prefix in prefixes:
        comp = read_metadata(out).get(prefix)
        if not comp or "config" not in comp:
            continue
        scorer = cache_maps(load_model(out, method="student" if prefix == "student" else "unet", device="cpu"))
        plain = float(comp.get("gate", {}).get("plain", {}).get("low", comp["threshold"]))

        def score(low, high, scorer=scorer, prefix=prefix):
            scorer.threshold, scorer.gate_high = low, high
            r = {"low": low, "high": high, **measure(scorer)}
            log(event="gate", component=prefix, **r)
            return r
        gate = st.choose_gate(score, plain)

        def put(meta, prefix=prefix, gate=gate):
            c = meta[prefix]
            c.update(threshold=gate["chosen"]["low"], gate_high=gate["chosen"]["high"], gate=gate)
        update_model_file(out, meta=put)
        done[prefix] = gate
    return done


def stage_select(data, out, work, seed=0, candidates=SELECT_CANDIDATES, log=print) -> dict:
    """The rule: the default method is the candidate with the best mean landslide IoU over the Bijie
    train hold-out and the area A strip, measured by the same `evaluate` path users run. Validation
    data (Bijie val, area B) is never looked at."""
    from ..wsss import load_model
    from .tune import _update_meta
    measure = holdout_evaluation(data, work, seed)
    table = {}
    for m in candidates:
        table[m] = measure(load_model(out, method=m, device="cpu"))
        log(event="select", method=m, **table[m])
    best = max(table, key=lambda k: table[k]["mean_iou"])

    def apply(meta):
        meta["method_default"] = best
        meta.setdefault("params", {})["method"] = best
        meta["selection"] = {"rule": "best mean landslide IoU over the Bijie train hold-out and the area A strip "
                                     "(evaluate bijie / evaluate scene on them); validation data never used",
                             "table": table, "chosen": best}
    _update_meta(out, apply)
    return table


if __name__ == "__main__":
    main()
