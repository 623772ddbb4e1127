"""The training data of the embedded model: paths under the shared data folder, the classifier's chip
sets (training_chips), the seeded Bijie hold-out and the area A strip (both kept for rule-based
choices, never trained on)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
CONFIG = {"arch": "resnet18", "in_bands": 3, "output_stride": 16, "width": 32}
TILE = 128
HOLDOUT_FRAC = 0.1
STRIP_FRAC = 0.2  # bottom rows of area A kept for tuning


def _paths(data):
    data = Path(data)
    return {"bijie": data / "bijie", "a_rgb": data / "amunet/areaA_rgb.tif", "a_mask": data / "amunet/areaA_mask.tif",
            "a_dsm": data / "amunet/areaA_dsm.tif",
            "b_rgb": data / "amunet/areaB_rgb.tif", "b_mask": data / "amunet/areaB_mask.tif",
            "b_dsm": data / "amunet/areaB_dsm.tif"}


def scene_gsd(path) -> float:
    """A GeoTIFF's ground sampling distance in metres, as detect reads it (raster.Scene.gsd)."""
    from ..raster import open_scene
    with open_scene(path) as scene:
        return scene.gsd


def split_holdout(names, labels, frac=HOLDOUT_FRAC, seed=0):
    """Seeded stratified hold-out of the Bijie train list: (train_idx, holdout_idx)."""
    rng = np.random.default_rng(seed)
    hold = []
    for lab in (0, 1):
        idx = np.flatnonzero(np.asarray(labels) == lab)
        rng.shuffle(idx)
        hold.extend(idx[: int(round(frac * len(idx)))].tolist())
    hold = np.sort(np.asarray(hold, int))
    train = np.setdiff1d(np.arange(len(names)), hold)
    return train, hold


def training_chips(data, seed=0, with_masks=False, gsd=None):
    """(first-epoch ChipSet, epoch_chips callable, hold-out ChipSet, strip row).

    Bijie images at their own resolution, or resampled to `gsd` metres (a 128 px crop per image and
    epoch, containing the image centre for landslide images: see datasets.bijie.centre_crops; images
    smaller than a crop are mirrored up to it, so no size or scale cue remains); area A gives fixed
    128 px chips (stride 64, at `gsd` when given) above the held-out strip."""
    import rasterio

    from ..datasets.bijie import centre_crops, load_bijie_native
    from ..datasets.common import ChipSet
    from ..datasets.scene_chips import scene_chips
    from ..evaluation import AMUNET_GSD, BIJIE_GSD
    p = _paths(data)
    imgs, labels, masks, names = load_bijie_native(p["bijie"], p["bijie"] / "train.txt", min_size=0 if gsd else TILE,
                                                   with_masks=with_masks)
    if gsd:
        imgs, masks = _at_gsd(imgs, masks, gsd / BIJIE_GSD)
    tr, ho = split_holdout(names, labels, seed=seed)
    f_a = gsd / AMUNET_GSD if gsd else 1.0
    a = scene_chips(p["a_rgb"], p["a_mask"], size=TILE, stride=max(8, round(64 / f_a)), factor=f_a)  # 32 m apart at any GSD
    with rasterio.open(p["a_rgb"]) as ds:
        cut = int(ds.height * (1 - STRIP_FRAC))
    keep = [i for i, n in enumerate(a.names) if (int(n.rsplit("_r", 1)[1].split("_")[0]) + TILE) * f_a <= cut]
    a = a.subset(keep)
    tr_imgs, tr_labels = [imgs[i] for i in tr], labels[tr]
    tr_masks = [masks[i] for i in tr] if with_masks else None
    if not with_masks:
        a = ChipSet(a.images, a.labels, None, a.names)

    def epoch_chips(epoch):
        rng = np.random.default_rng(seed * 100_003 + epoch)
        return ChipSet.concat([centre_crops(tr_imgs, tr_labels, TILE, rng, tr_masks), a])

    hold = centre_crops([imgs[i] for i in ho], labels[ho], TILE, np.random.default_rng(seed + 7))
    return epoch_chips(0), epoch_chips, hold, cut


def _at_gsd(imgs, masks, factor):
    """Bijie images (and masks) `factor` coarser; those smaller than a tile mirrored up to it (masks: 255)."""
    from ..resample import resample_image, resample_target
    out_i, out_m = [], []
    for k, img in enumerate(imgs):
        small = resample_image(img, factor)
        h, w = small.shape[1:]
        ph, pw = max(0, TILE - h), max(0, TILE - w)
        out_i.append(np.pad(small, ((0, 0), (0, ph), (0, pw)), mode="symmetric") if ph or pw else small)
        if masks is not None:
            m = resample_target(masks[k], (h, w))
            out_m.append(np.pad(m, ((0, ph), (0, pw)), constant_values=255) if ph or pw else m)
    return out_i, (out_m if masks is not None else None)
