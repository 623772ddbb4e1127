"""The hold-outs: every choice of the rebuild and of `train weak` is made on them, never on
validation data (Bijie val, area B).

Rebuild: the seeded 10 % of the Bijie train list (stratified by label) and the bottom strip of
AMU-Net area A (data.STRIP_FRAC of its rows), both with their true masks. `train weak`: a seeded
share of the user's labelled tiles, judged only by what their labels say exactly (`tile_facts`):
a landslide-free tile holds no landslide pixel, a landslide tile holds at least one.

One measure serves every rule that judges a segmentation network (`score`): per hold-out set,
histograms of the network's probability on landslide / background reference pixels; the threshold
with the best mean landslide IoU over the sets, and that mean. Rules that judge a whole scoring
model (gate, default method) run the `evaluate` path users run on the same hold-out (`evaluate_path`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

# A hold-out item: (image at the network's working grid, reference mask at its own grid (0/1/255), valid or None)
Item = Tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]
AREA_TILE_M = 64.0   # area A's image-level labels: 64 m squares


def bijie_split(data, seed=0):
    """Bijie train names, their image-level labels, and the seeded (train, hold-out) indexes."""
    from ..datasets.bijie import label_from_name, read_split
    from .data import split_holdout
    names = read_split(Path(data) / "bijie" / "train.txt")
    labels = np.asarray([label_from_name(n) for n in names])
    tr, ho = split_holdout(names, labels, seed=seed)
    return names, labels, tr, ho


def area_a_cut(height: int) -> int:
    """The first row of area A's held-out bottom strip."""
    from .data import STRIP_FRAC
    return int(height * (1 - STRIP_FRAC))


def area_a_gsd(data) -> float:
    """Area A's pixel size in metres, as its GeoTIFF states it."""
    from .data import scene_gsd
    return scene_gsd(Path(data) / "amunet" / "areaA_rgb.tif")


def area_a(data):
    """Area A as arrays (image, valid, mask) and the first row of its held-out strip."""
    from ..datasets.scene_chips import read_scene_arrays
    p = Path(data) / "amunet"
    img, valid, mask = read_scene_arrays(p / "areaA_rgb.tif", p / "areaA_mask.tif")
    return img, valid, mask, area_a_cut(mask.shape[0])


def tile_labels(mask: np.ndarray, tile: int) -> Dict[tuple, int]:
    """Image-level labels of `tile`-px squares from a mask: 1 any landslide, 0 none, -1 not covered."""
    h, w = mask.shape
    out = {}
    for r in range(0, h, tile):
        for c in range(0, w, tile):
            m = mask[r:r + tile, c:c + tile]
            out[(r, c)] = -1 if (m != 255).mean() < 0.1 else int((m == 1).any())
    return out


def positive_tiles(mask: np.ndarray, tile: int):
    return [(slice(r, r + tile), slice(c, c + tile)) for (r, c), lab in tile_labels(mask, tile).items() if lab == 1]


# ---------------------------------------------------------------------------------------------
# The rebuild's hold-out, in the forms its rules read


def working_items(data, seed=0, gsd=1.6) -> Dict[str, List[Item]]:
    """The hold-out at working GSD `gsd` for `score`: {"bijie_holdout": [...], "areaA_strip": [...]}."""
    from ..datasets.bijie import load_image, load_mask
    from ..evaluation import BIJIE_GSD
    from ..resample import resample_image, resample_target
    root = Path(data) / "bijie"
    names, _, _, ho = bijie_split(data, seed)
    bij = []
    for i in ho:
        img = load_image(root, names[i])
        bij.append((resample_image(img, gsd / BIJIE_GSD), load_mask(root, names[i], img.shape[1:]), None))
    a_img, a_valid, a_mask, cut = area_a(data)
    strip_img = resample_image(a_img[:, cut:].astype(np.uint8), gsd / area_a_gsd(data))
    strip_valid = resample_target(np.where(a_valid[cut:], 1, 0).astype(np.uint8), strip_img.shape[1:]) == 1
    return {"bijie_holdout": bij, "areaA_strip": [(strip_img, a_mask[cut:], strip_valid)]}


def cam_maps(model, data, seed=0):
    """A CAM scorer's maps on the hold-out, for tuning its normalization and threshold:
    (Bijie hold-out [(maps, mask, None)], area A strip [(maps, mask, valid)])."""
    from ..evaluation import bijie_maps, maps_at_gsd
    names, _, _, ho = bijie_split(data, seed)
    bij = [(m, mask, None) for _, m, mask in bijie_maps(model, Path(data) / "bijie", [names[i] for i in ho])]
    img, valid, mask, cut = area_a(data)
    img, valid, mask = img[:, cut:], valid[cut:], mask[cut:]
    return bij, [(maps_at_gsd(model, img, valid, area_a_gsd(data)), mask, valid)]


def teacher_maps(teacher, data, seed=0):
    """A teacher's maps (with images, masks and pixel sizes) on the hold-out landslide images and
    the landslide tiles of the area A strip: (cams, masks, images, gsds)."""
    from ..datasets.bijie import load_image, load_mask
    from ..evaluation import BIJIE_GSD, maps_at_gsd
    from .affinity import teacher_map
    root = Path(data) / "bijie"
    names, labels, _, ho = bijie_split(data, seed)
    a_img, a_valid, a_mask, cut = area_a(data)
    a_gsd = area_a_gsd(data)
    cams, masks, images, gsds = [], [], [], []
    for n in (names[i] for i in ho if labels[i] == 1):  # each image read once: its CAM and the image itself
        img = load_image(root, n)
        cams.append(teacher_map(maps_at_gsd(teacher, img, None, BIJIE_GSD)))
        masks.append(load_mask(root, n, img.shape[1:]))
        images.append(img)
        gsds.append(BIJIE_GSD)
    area = teacher_map(maps_at_gsd(teacher, a_img, a_valid, a_gsd))
    for rs, cs in positive_tiles(a_mask[cut:], int(round(AREA_TILE_M / a_gsd))):
        rs = slice(rs.start + cut, rs.stop + cut)
        cams.append(area[rs, cs])
        masks.append(a_mask[rs, cs])
        images.append(a_img[:, rs, cs])
        gsds.append(a_gsd)
    return cams, masks, images, gsds


def strip_mask(data, dst) -> Path:
    """Area A's mask with everything above the hold-out strip set to 255 (ignored), written to `dst`."""
    import rasterio

    from ..raster import atomic_output
    with rasterio.open(Path(data) / "amunet" / "areaA_mask.tif") as ds:
        m = ds.read(1)
        profile = ds.profile
    m[:area_a_cut(m.shape[0])] = 255
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(dst, overwrite=True) as tmp, rasterio.open(tmp, "w", **profile) as out:
        out.write(m, 1)
    return Path(dst)


def evaluate_path(data, split_file, strip_file, seed=0) -> Callable[[object], dict]:
    """measure(model) -> the hold-out figures of a scoring model by the `evaluate` path users run
    (`evaluate bijie` on the Bijie hold-out, `evaluate scene` on the area A strip); the split and
    strip mask are written to the paths given."""
    from ..evaluation import evaluate_bijie, evaluate_scene
    from ..raster import atomic_output
    root = Path(data) / "bijie"
    names, _, _, ho = bijie_split(data, seed)
    Path(split_file).parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(split_file, overwrite=True) as tmp:
        tmp.write_text("\n".join(names[i] for i in ho) + "\n")
    strip = strip_mask(data, strip_file)

    def measure(model) -> dict:
        b = evaluate_bijie(root, split_file, model=model)
        a = evaluate_scene(Path(data) / "amunet" / "areaA_rgb.tif", strip, model=model)
        return {"bijie_holdout_iou": round(b["iou"], 4), "areaA_strip_iou": round(a["iou"], 4),
                "bijie_holdout_precision": round(b["precision"], 4), "areaA_strip_precision": round(a["precision"], 4),
                "mean_iou": round((b["iou"] + a["iou"]) / 2, 4)}
    return measure


# ---------------------------------------------------------------------------------------------
# The one measure of a segmentation network on a hold-out


def histograms(net, items: Sequence[Item], bins: int = 100):
    """Probability histograms of landslide / background reference pixels over hold-out items."""
    from ..resample import resize_prob
    from .student import predict_prob
    pos, neg = np.zeros(bins, np.int64), np.zeros(bins, np.int64)
    for img, ref, valid in items:
        p = resize_prob(predict_prob(net, img, valid), ref.shape)
        b = np.clip((p * bins).astype(np.int64), 0, bins - 1)
        pos += np.bincount(b[ref == 1], minlength=bins)
        neg += np.bincount(b[ref == 0], minlength=bins)
    return pos, neg


def score(net, sets: Dict[str, Sequence[Item]]) -> dict:
    """The measure every rule on a segmentation network reads: the threshold with the best mean
    landslide IoU over the hold-out sets, with that mean ("mean_iou") and per-set IoU / precision."""
    return choose_threshold({k: histograms(net, v) for k, v in sets.items()})


def iou_at(pos, neg, t: float) -> dict:
    k = int(round(t * len(pos)))
    tp, fp = int(pos[k:].sum()), int(neg[k:].sum())
    fn = int(pos[:k].sum())
    return {"iou": tp / max(tp + fp + fn, 1), "precision": tp / max(tp + fp, 1), "recall": tp / max(tp + fn, 1)}


def choose_threshold(hists: dict) -> dict:
    """The rule: the threshold with the best mean landslide IoU over the hold-out sets."""
    best = None
    from .student import T_GRID
    for t in T_GRID:
        per = {k: iou_at(p, n, t) for k, (p, n) in hists.items()}
        mean = float(np.mean([v["iou"] for v in per.values()]))
        if best is None or mean > best["mean_iou"]:
            best = {"threshold": t, "mean_iou": round(mean, 4),
                    **{f"{k}_iou": round(v["iou"], 4) for k, v in per.items()},
                    **{f"{k}_precision": round(v["precision"], 4) for k, v in per.items()}}
    return best



# ---------------------------------------------------------------------------------------------
# `train weak`'s hold-out: image-level labels, judged by what they say exactly


@dataclass(frozen=True)
class TileItem:
    """A held-out labelled tile: the working image around it (the context a scene gives), its label
    (1 landslide, 0 none), the valid pixels, and the tile's slice of the image."""
    image: np.ndarray
    label: int
    valid: np.ndarray
    inner: Tuple[slice, slice]


def tile_facts(net, items: Sequence[TileItem], threshold: float, gate_high: Optional[float] = None) -> dict:
    """A network's marks on held-out tiles at a detection threshold (and hysteresis gate), as the
    labels judge them exactly: the share of landslide-free pixels marked (of `free_pixels`, the
    valid pixels inside the landslide-free tiles), of landslide-free tiles with a mark, and of
    landslide tiles with a mark. The context around a tile is seen, never counted."""
    from ..scorers.student import detection_mask
    from .student import predict_prob
    free_px = free_marked = free_flagged = n_free = found = n_slide = 0
    for it in items:
        mask = detection_mask(predict_prob(net, it.image, it.valid), threshold, gate_high)
        inner, v = mask[it.inner], it.valid[it.inner]
        marked = int((inner & v).sum())
        if it.label == 0:
            n_free += 1
            free_px += int(v.sum())
            free_marked += marked
            free_flagged += marked > 0
        else:
            n_slide += 1
            found += marked > 0
    return {"threshold": float(threshold), "gate_high": gate_high, "landslide_tiles": n_slide, "free_tiles": n_free,
            "landslide_tiles_found": round(found / max(n_slide, 1), 4),
            "free_tiles_flagged": round(free_flagged / max(n_free, 1), 4),
            "free_pixels_marked": round(free_marked / max(free_px, 1), 6), "free_pixels": free_px}


def facts_prefer(new: dict, old: dict) -> bool:
    """`train weak`'s keep rule: `new` replaces `old` only when it finds no fewer held-out landslide
    tiles, marks no larger share of held-out landslide-free pixels, and is better on one of the two."""
    found, marked = "landslide_tiles_found", "free_pixels_marked"
    no_worse = new[found] >= old[found] and new[marked] <= old[marked]
    return no_worse and (new[found] > old[found] or new[marked] < old[marked])


# ---------------------------------------------------------------------------------------------
# Seeds and margins: how a rule compares candidates


def over_seeds(per_seed: Sequence[dict], key: str = "mean_iou") -> dict:
    """A candidate's figures over several seeds: the mean of `key`, its spread (max - min) and the
    per-seed figures."""
    vals = [float(r[key]) for r in per_seed]
    return {key: round(float(np.mean(vals)), 4), "spread": round(float(max(vals) - min(vals)), 4),
            "per_seed": list(per_seed)}


def choose(table: Dict[str, dict], incumbent: str, min_margin: float, key: str = "mean_iou") -> dict:
    """The rules' comparison: the candidate with the best mean over seeds replaces `incumbent` (the
    documented fixed value) only when it beats it by a margin above the measured seed spread
    (the largest spread in the table, at least `min_margin`). Returns {"chosen", "best", "margin"}."""
    best = max(table, key=lambda k: table[k][key])
    margin = max(float(min_margin), max(float(r.get("spread", 0.0)) for r in table.values()))
    wins = incumbent not in table or table[best][key] >= table[incumbent][key] + margin
    return {"chosen": best if wins else incumbent, "best": best, "margin": round(margin, 4)}
