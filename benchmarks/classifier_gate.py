"""The classifier as a gate on the student, measured on a clean hold-out of the training data.

The embedded model was trained on train_subset.txt; its own seeded 10 % hold-out of that list (54
landslide + 35 landslide-free images) and the 1048 landslide-free images of train.txt outside
train_subset.txt are images it never saw. Landslide-free pixels are weighted so that the hold-out
has val.txt's make-up (2.85 free images per landslide image). For each student threshold and gate
(the classifier's tile probability >= g: the whole image, each pixel, or each student blob by its
highest classifier probability) it reports landslide IoU, precision and the share of free images
flagged. Neither val.txt nor area B is read.

    python benchmarks/classifier_gate.py [--limit N] [--name classifier_gate]   (writes benchmarks/results/NAME.json)
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common as C  # noqa: E402

VAL_FREE_PER_LANDSLIDE = 308 / 108
THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9)
GATES = (0.3, 0.5, 0.7, 0.8, 0.9, 0.95)


class TileProbabilities:
    """The classifier's probability of each tile, spread over the tile: its stitched map is the
    tile-level landslide probability at every pixel."""

    def __init__(self, scorer):
        self.scorer, self.tile_size, self.gsd, self.map_names = scorer, scorer.tile_size, scorer.gsd, ("p",)

    def predict_tiles(self, tiles, valid, terrain=None):
        p = self.scorer.networks.probabilities(np.ascontiguousarray(tiles[:, :3], np.float32), 8)
        return {"p": (np.ones_like(valid, np.float32) * p[:, None, None]) * valid}


def clean_holdout():
    from landslide_wsss.datasets.bijie import label_from_name, read_split
    from landslide_wsss.training.data import split_holdout
    sub, full = read_split(C.BIJIE / "train_subset.txt"), read_split(C.BIJIE / "train.txt")
    _, ho = split_holdout(sub, np.array([label_from_name(n) for n in sub]), seed=0)
    return [sub[i] for i in ho] + sorted(set(full) - set(sub))


def maps(names):
    from landslide_wsss.datasets.bijie import load_image, load_mask
    from landslide_wsss.evaluation import BIJIE_GSD, maps_at_gsd
    from landslide_wsss.wsss import load_model
    student, classifier = load_model(method="student"), TileProbabilities(load_model(method="cam"))
    for n in names:
        img = load_image(C.BIJIE, n)
        yield (n, maps_at_gsd(student, img, None, BIJIE_GSD)["prob"],
               maps_at_gsd(classifier, img, None, BIJIE_GSD)["p"], load_mask(C.BIJIE, n, img.shape[1:]))


def gated(prob, tile_p, t, g, mode):
    from scipy import ndimage
    m = prob > t
    if mode == "none":
        return m
    if mode == "image":
        return m if tile_p.max() >= g else np.zeros_like(m)
    if mode == "pixel":
        return m & (tile_p >= g)
    lab, n = ndimage.label(m, structure=np.ones((3, 3)))
    if n == 0:
        return m
    keep = np.zeros(n + 1, bool)
    keep[1:] = ndimage.maximum(tile_p, lab, index=np.arange(1, n + 1)) >= g
    return keep[lab]


def figures(data, t, g, mode):
    landslide = [d for d in data if d[0].startswith("ls_")]
    free = [d for d in data if not d[0].startswith("ls_")]
    w_free = VAL_FREE_PER_LANDSLIDE * len(landslide) / len(free)
    tp = fp = fn = 0.0
    for _, p, c, ref in landslide:
        m, v, pos = gated(p, c, t, g, mode), ref != 255, ref == 1
        tp += (m & pos & v).sum()
        fp += (m & ~pos & v).sum()
        fn += (~m & pos & v).sum()
    flagged = 0
    for _, p, c, _ in free:
        m = gated(p, c, t, g, mode)
        fp += m.sum() * w_free
        flagged += bool(m.any())
    return {"threshold": t, "gate": g, "mode": mode, "iou": round(tp / (tp + fp + fn), 4),
            "precision": round(tp / max(tp + fp, 1), 4), "free_images_flagged_share": round(flagged / len(free), 4)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--name", default="classifier_gate")
    ap.add_argument("--limit", type=int, default=0, help="the first N landslide and N free images only (a quick check)")
    a = ap.parse_args(argv)
    if not C.BIJIE.is_dir():
        print("error: needs ../shared/data/bijie", file=sys.stderr)
        return 2
    names = clean_holdout()
    if a.limit:
        names = [n for n in names if n.startswith("ls_")][:a.limit] + [n for n in names if not n.startswith("ls_")][:a.limit]
    data = [(n, p.astype(np.float32), c.astype(np.float32), ref) for n, p, c, ref in maps(names)]
    rows = [figures(data, t, None, "none") for t in THRESHOLDS]
    rows += [figures(data, t, g, mode) for mode in ("image", "pixel", "blob") for g in GATES for t in (0.6, 0.8)]
    for r in rows:
        print(r)
    print(C.save(a.name, {"env": C.env_info("cpu"), "holdout_images": len(data), "rows": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
