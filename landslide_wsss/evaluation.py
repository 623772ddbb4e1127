"""Evaluation on the real data: the Bijie folder (per-image PNGs) and georeferenced scenes.

evaluate_bijie(data_dir, split_list, method=None, model_path=None, device="auto")
    Each image is treated as a small scene at its own resolution: tiled with the model's tile size
    and the core's default overlap (model.predict_tiles, same blend weights as the stitcher),
    SceneStats over that image, model.fuse gives the mask, compared with the original mask.
    A weak model switches to its tuned "bijie" parameter profile when it has one (thresholds tuned
    on the Bijie train hold-out; the scene parameters are tuned on the area A strip).
evaluate_scene(image, mask, dsm=None, method=None, model_path=None, device="auto", bands=None, radiometry="auto")
    Checks that the mask shares the image's grid or can be aligned with it (CRS, overlap), then runs
    api.predict_scene (the same bands, radiometry, tiling / stitching / fusion path as `detect`) and
    compares with the mask (255 = not covered, ignored).
Both return {"iou", "f1", "precision", "recall", "miou", "method", "seconds", ...}: landslide-class
IoU etc. with pixel counts accumulated over the whole split; miou is the 2-class mean. evaluate_bijie
also says where its false pixels lie: on the landslide-free images, within NEAR_M metres of a
landslide (its mask drawn too wide), or elsewhere in a landslide image (a false landslide).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from .errors import InputError
from .metrics import Confusion
from .scoring import SceneStats

BIJIE_GSD = 0.8  # TripleSat crops of the Bijie dataset (PNG files: no pixel size of their own)
NEAR_M = 10.0  # false pixels this close to a landslide are its mask drawn too wide, not a false landslide


def _model(model, model_path, method, device, params=None, runtime: str = "auto"):
    if model is not None:
        return model
    from .wsss import load_model
    return load_model(model_path, method=method, device=device, params=params, runtime=runtime)


def image_stats(maps: Dict[str, np.ndarray], valid: Optional[np.ndarray] = None) -> SceneStats:
    from .fusion import map_stats
    return SceneStats({k: map_stats(v, valid) for k, v in maps.items()})


def bijie_maps(model, root, names: List[str], batch_size: int = 32, gsd: float = BIJIE_GSD,
               jpeg_quality: Optional[int] = None):
    """Yield (name, stitched maps, mask) for Bijie images (taken as `gsd` metres; through a JPEG round
    trip at `jpeg_quality` when given), maps at the image's own resolution (see maps_at_gsd)."""
    from .datasets.bijie import load_image, load_mask
    root = Path(root)
    for n in names:
        native = load_image(root, n, jpeg_quality)
        maps = maps_at_gsd(model, native, None, gsd, batch_size=batch_size)
        yield n, maps, load_mask(root, n, native.shape[1:])


def maps_at_gsd(model, img: np.ndarray, valid: Optional[np.ndarray], gsd: float, batch_size: int = 32) -> Dict[str, np.ndarray]:
    """The model's stitched maps of an in-memory (C, H, W) image of `gsd` metres, at the image's own grid
    (valid None: every pixel valid).

    Each image is tiled like a scene (model tile size and overlap, the core's blend weights); an
    image smaller than a tile is padded with invalid pixels and cropped back. A model with a working
    GSD sees the image resampled to it, and its maps are resampled back."""
    from .resample import resample_image, resize_prob
    tile = int(model.tile_size)
    factor = float(getattr(model, "gsd", None) or gsd) / float(gsd)
    x = resample_image(img, factor).astype(np.float32)
    h, w = x.shape[1:]
    if valid is None:  # every pixel valid at any grid: nothing to resample
        v = np.ones((h, w), bool)
    else:
        v = valid if (h, w) == valid.shape else resize_prob(valid.astype(np.float32), (h, w)) >= 0.5
    H, W = max(h, tile), max(w, tile)
    full = np.zeros((x.shape[0], H, W), np.float32)
    full[:, :h, :w] = x
    fvalid = np.zeros((H, W), bool)
    fvalid[:h, :w] = v
    maps = stitch_in_memory(model, full, fvalid, batch_size=batch_size)
    return {k: resize_prob(m[:h, :w], img.shape[1:]) for k, m in maps.items()}


PR_BINS = 100


def _tint(rgb: np.ndarray, mask: np.ndarray, color) -> np.ndarray:
    out = rgb.astype(np.float32)
    out[mask] = 0.55 * out[mask] + 0.45 * np.asarray(color, np.float32)
    return out.astype(np.uint8)


def save_overlay(path, image: np.ndarray, reference: np.ndarray, prediction: np.ndarray) -> None:
    """One gallery PNG: image | reference mask (green) | prediction (red); 255 in the reference = ignored."""
    from PIL import Image

    rgb = np.clip(np.moveaxis(image[:3], 0, -1), 0, 255).astype(np.uint8)
    if rgb.shape[2] < 3:
        rgb = np.repeat(rgb[..., :1], 3, axis=2)
    gap = np.full((rgb.shape[0], 4, 3), 255, np.uint8)
    panels = [rgb, gap, _tint(rgb, reference == 1, (0, 220, 0)), gap, _tint(rgb, prediction, (230, 0, 0))]
    Image.fromarray(np.concatenate(panels, axis=1)).save(path)


def save_pr_plot(path, hist_pos: np.ndarray, hist_neg: np.ndarray, title: str) -> dict:
    """Precision / recall / IoU of `score >= t` for t on the PR_BINS grid, from score histograms of
    landslide and background pixels; writes the PNG and returns the curves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tp = np.cumsum(hist_pos[::-1])[::-1].astype(float)  # pixels with score >= t
    fp = np.cumsum(hist_neg[::-1])[::-1].astype(float)
    fn = hist_pos.sum() - tp
    t = np.arange(PR_BINS) / PR_BINS
    prec, rec, iou = tp / np.maximum(tp + fp, 1), tp / np.maximum(tp + fn, 1), tp / np.maximum(tp + fp + fn, 1)
    fig, ax = plt.subplots(figsize=(5, 3.4))
    for y, name in ((prec, "precision"), (rec, "recall"), (iou, "landslide IoU")):
        ax.plot(t, y, label=name)
    ax.set_xlabel("threshold on the fused score")
    ax.set_ylim(0, 1)
    ax.set_title(title, fontsize=9)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return {"threshold": t.tolist(), "precision": prec.tolist(), "recall": rec.tolist(), "iou": iou.tolist()}


def evaluate_bijie(data_dir, split_list, method: Optional[str] = None, model_path=None, device: str = "auto",
                   model=None, limit: Optional[int] = None, params: Optional[dict] = None,
                   gallery=None, gallery_max: int = 48, pr_plot=None, gsd: float = BIJIE_GSD,
                   runtime: str = "auto", jpeg_quality: Optional[int] = None) -> dict:
    """See the module docstring. gsd: the images' ground sampling distance (metres). gallery: a folder for per-image overlay PNGs (the first
    `gallery_max` images); pr_plot: a PNG of precision/recall/IoU against the score threshold;
    jpeg_quality: measure each image after a JPEG round trip at this quality (1-95)."""
    from scipy.ndimage import distance_transform_edt

    from .datasets.bijie import read_split
    from .runtime import available
    if pr_plot is not None and not available("matplotlib"):
        raise InputError("--pr-plot needs matplotlib: pip install 'landslide_wsss[preview]'")
    if jpeg_quality is not None and not 1 <= int(jpeg_quality) <= 95:
        raise InputError(f"JPEG quality {jpeg_quality}: give 1 to 95")
    t0 = time.time()
    data_dir = Path(data_dir)
    if not (data_dir / "images").is_dir():
        raise InputError(f"{data_dir}: not a Bijie folder (no images/ inside)")
    split = Path(split_list)
    if not split.is_file() and (data_dir / split).is_file():
        split = data_dir / split
    names = read_split(split)[:limit] if limit else read_split(split)
    model = _model(model, model_path, method, device, params, runtime)
    saved = getattr(model, "settings", None)  # typed, replaced (never changed in place) by use_profile
    profile = bool(getattr(model, "use_profile", None) and model.use_profile("bijie"))
    conf = Confusion()
    free = Confusion()  # the landslide-free images alone
    free_flagged = 0
    false_near = false_far = 0  # false pixels of the landslide images: within NEAR_M of a landslide, beyond
    hist_pos, hist_neg = np.zeros(PR_BINS, np.int64), np.zeros(PR_BINS, np.int64)
    if gallery is not None:
        Path(gallery).mkdir(parents=True, exist_ok=True)
    try:
        for k, (name, maps, mask) in enumerate(bijie_maps(model, data_dir, names, gsd=gsd, jpeg_quality=jpeg_quality)):
            score, pred = model.fuse(maps, image_stats(maps))
            conf.update(pred, mask)
            if not (mask == 1).any():
                free.update(pred, mask)
                free_flagged += bool(pred.any())
            else:
                false = pred & (mask == 0)
                near = distance_transform_edt(mask != 1) * gsd <= NEAR_M
                false_near += int((false & near).sum())
                false_far += int((false & ~near).sum())
            if pr_plot is not None:
                bins = np.clip((score * PR_BINS).astype(np.int64), 0, PR_BINS - 1)
                hist_pos += np.bincount(bins[mask == 1], minlength=PR_BINS)
                hist_neg += np.bincount(bins[mask == 0], minlength=PR_BINS)
            if gallery is not None and k < gallery_max:
                from .datasets.bijie import load_image
                save_overlay(Path(gallery) / f"{Path(name).stem}.png", load_image(data_dir, name, jpeg_quality), mask, pred)
    finally:
        if saved is not None:  # the profile applies to this evaluation only
            model.settings = saved
    out = conf.as_dict()
    n_free = sum(1 for n in names if Path(n).stem.startswith("nls_"))
    out.update(free_images=n_free, free_images_flagged=free_flagged,
               free_images_flagged_share=free_flagged / n_free if n_free else 0.0,
               free_pixels_flagged_share=free.false_alarm,
               false_pixels_free_images=int(free.fp), false_pixels_near_landslide=false_near,
               false_pixels_elsewhere=false_far, near_m=NEAR_M)
    out.update(method=model.name, seconds=round(time.time() - t0, 2), images=len(names), dataset="bijie",
               split=str(split), profile="bijie" if profile else "scene", jpeg_quality=jpeg_quality)
    if pr_plot is not None:
        save_pr_plot(pr_plot, hist_pos, hist_neg, f"{model.name} on {len(names)} images of {split.name}")
        out["pr_plot"] = str(pr_plot)
    if gallery is not None:
        out["gallery"] = str(gallery)
    return out


def read_mask(path) -> np.ndarray:
    import rasterio
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: mask not found")
    with rasterio.open(path) as ds:
        m = ds.read(1)
        nod = ds.nodata
    m = m.astype(np.int64)
    out = np.where(m > 0, 1, 0).astype(np.uint8)
    out[m == 255] = 255
    if nod is not None and nod != 255 and nod != 0:
        out[m == nod] = 255
    return out


def mask_on_grid(mask, scene) -> np.ndarray:
    """The reference mask (read_mask's 0 / 1 / 255) on the scene's grid, checked before any figure:
    as read when both share a grid (a mask without a CRS must match the scene's size and geotransform,
    or have none); reprojected (nearest) when both have a CRS and overlap, the scene's pixels the mask
    does not cover being 255 (ignored); else InputError."""
    import rasterio
    from rasterio.warp import Resampling, reproject

    path = Path(mask)
    ref = read_mask(path)
    with rasterio.open(path) as ds:
        crs, transform = ds.crs, ds.transform
    same_size = ref.shape == (scene.height, scene.width)
    if crs is None:
        if same_size and (transform.is_identity or transform.almost_equals(scene.transform)):
            return ref
        raise InputError(f"{path}: mask has no CRS and is not on the scene's grid "
                         f"({ref.shape[1]}x{ref.shape[0]} px, scene {scene.width}x{scene.height}); cannot align them")
    if crs == scene.crs and same_size and transform.almost_equals(scene.transform):
        return ref
    out = np.full((scene.height, scene.width), 255, np.uint8)
    try:
        reproject(ref, out, src_transform=transform, src_crs=crs, src_nodata=255, dst_transform=scene.transform,
                  dst_crs=scene.crs, dst_nodata=255, resampling=Resampling.nearest)
    except Exception as exc:  # noqa: BLE001 - GDAL/PROJ raise several types for CRS pairs it cannot transform
        raise InputError(f"{path}: mask cannot be aligned with the scene ({str(exc).splitlines()[0][:160]})") from None
    if not (out != 255).any():
        raise InputError(f"{path}: mask does not overlap the scene {scene.path.name} (or covers none of it)")
    return out


def evaluate_scene(image, mask, dsm=None, method: Optional[str] = None, model_path=None, device: str = "auto",
                   model=None, tile: Optional[int] = None, overlap: Optional[int] = None,
                   params: Optional[dict] = None, bands=None, radiometry: str = "auto",
                   runtime: str = "auto") -> dict:
    """bands: 1-based bands of the image (default: all, or red/green/blue by its colour interpretation);
    radiometry: auto | stretch | none (radiometry.py). The mask must share the image's grid or be
    alignable with it (mask_on_grid), checked before the model runs."""
    from .pipeline import check_options, predict_scene
    from .raster import open_scene
    t0 = time.time()
    check_options(bands=bands, radiometry=radiometry)
    with open_scene(image, bands=bands) as sc:
        ref = mask_on_grid(mask, sc)
        model = _model(model, model_path, method, device, params, runtime)
        score, pred, valid = predict_scene(sc, model, tile=tile, overlap=overlap, dsm=dsm, radiometry=radiometry)
    conf = Confusion().update(pred & valid, ref)
    out = conf.as_dict()
    out.update(method=model.name, seconds=round(time.time() - t0, 2), dataset="scene", image=str(image))
    return out


# ---------------------------------------------------------------------------------------------
# In-memory scene path (for tuning on hold-out strips; same grid and blend weights as the core)


class _ArrayTarget:
    """An in-memory stand-in for the scratch raster the Stitcher writes to (same blend, no file)."""

    def __init__(self, n: int, height: int, width: int):
        self.data = np.zeros((n, height, width), np.float32)
        self.height, self.width = height, width

    def write(self, arr: np.ndarray, window) -> None:
        r0 = int(window.row_off)
        self.data[:, r0:r0 + int(window.height)] = arr


def stitch_in_memory(model, img: np.ndarray, valid: np.ndarray, tile: Optional[int] = None,
                     overlap: Optional[int] = None, batch_size: int = 32) -> Dict[str, np.ndarray]:
    """The core's grid, predict_tiles and Stitcher over an in-memory (C, H, W) image (H, W >= tile)."""
    from .tiling import TileGrid, grid_size, stitch_grid
    tile, overlap = grid_size(model, tile, overlap)
    c, h, w = img.shape
    names = list(model.map_names)
    target = _ArrayTarget(len(names), h, w)

    def cut(wi):
        return slice(int(wi.row_off), int(wi.row_off) + tile), slice(int(wi.col_off), int(wi.col_off) + tile)

    # windows without a valid pixel are left out before batching (validity is known in memory)
    windows = [wi for wi in TileGrid(w, h, tile, overlap).windows()
               if (v := valid[cut(wi)]).shape == (tile, tile) and v.any()]

    def read(batch):
        return [(wi, img[(slice(None),) + cut(wi)].astype(np.float32), valid[cut(wi)], None) for wi in batch]

    stitch_grid(model, windows, read, target, tile, overlap, batch_size)
    return {n: target.data[k] for k, n in enumerate(names)}
