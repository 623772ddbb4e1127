"""The one scene path: Scene (resampled to the model's working GSD when it has one) -> TileGrid ->
model.predict_tiles -> Stitcher (scene-sized raw maps) -> SceneStats -> model.fuse block by block ->
score + mask GeoTIFFs on the scene's grid -> vectorize -> GeoPackage. `detect` and `predict_scene`
drive it for one scene; batch.py runs it over directories; api.py is the public façade.
"""
from __future__ import annotations

import contextlib
import copy
import logging
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Callable, Dict, Optional, Sequence, Union

import geopandas as gpd
import numpy as np
import rasterio
from rasterio.windows import Window

from .errors import InputError, NothingToDetect
from .params import DEFAULT_BATCH, DEFAULT_LAYER, DEFAULT_MIN_AREA_M2, DEFAULT_SIMPLIFY_PX
from .runtime import RUNTIMES
from .raster import (
    Scene, atomic_output, block_windows, check_crs, check_output, fit_bands, geotiff_profile, needs_resampling,
    open_scene, open_terrain, resampled_scene,
)
from .scoring import FUSE_HALO, HIST_BINS, MapStats, SceneStats, ScoringModel, histogram
from .tiling import TileGrid, grid_size, stitch_grid
from .vectorize import vectorize, write_gpkg

log = logging.getLogger("landslide_wsss")
Progress = Optional[Callable[[float], None]]

STRIP_ROWS = 256  # stats/fusion strips: memory is STRIP_ROWS (+2 FUSE_HALO) x scene width
# GDAL's block cache defaults to 5 % of RAM; the scratch rasters' dirty blocks then stay in memory until
# close, so peak memory grew with the scene size (1.8 GB RSS on a 10k x 10k scene). Bounded here: 32 MB
# holds a few 256-row strips of every scratch raster (writes are whole blocks); 128 MB cost 85 MB more
# peak RSS on a 36 Mpx scene for no measurable speed (benchmarks/memory_profile.py).
GDAL_CACHE_MB = int(os.environ.get("LANDSLIDE_WSSS_GDAL_CACHE_MB", "32"))


def _gdal_env():
    return rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB * 2**20)



def load_scoring_model(model=None, method: Optional[str] = None, device: str = "auto",
                       runtime: str = "auto") -> ScoringModel:
    """A ScoringModel from an instance, a model file path, or None (the embedded default model);
    `runtime` (auto | onnx | torch) picks the engine of the network forward."""
    if model is not None and hasattr(model, "predict_tiles"):
        return model
    if runtime not in RUNTIMES:
        raise InputError(f"--runtime {runtime!r}: expected one of {', '.join(RUNTIMES)}")
    from .wsss import load_model
    return load_model(model, method=method, device=device, runtime=runtime)


def predict_scene(
    scene: Union[str, Path, Scene],
    model=None,
    *,
    method: Optional[str] = None,
    device: str = "auto",
    runtime: str = "auto",
    tile: Optional[int] = None,
    overlap: Optional[int] = None,
    bands: Optional[Sequence[int]] = None,
    dsm=None,
    batch_size: int = DEFAULT_BATCH,
    assume_crs: Optional[str] = None,
    radiometry: str = "auto",
    progress: Progress = None,
):
    """Score a whole scene and return in-memory arrays (score float32, mask bool, valid bool).

    Same path as detect() without the polygons; meant for evaluation on scenes that fit in memory.
    """
    check_options(tile, overlap, batch_size=batch_size, bands=bands, assume_crs=assume_crs, radiometry=radiometry)
    with _gdal_env(), tempfile.TemporaryDirectory(prefix="lwsss-") as work:
        with scene_context(scene, bands, assume_crs) as sc:
            source = model
            model = load_scoring_model(model, method, device, runtime)  # after the scene checks, as in detect
            sc = prepare_scene(sc, model, radiometry, source)
            paths = _run_scene(sc, model, Path(work), tile, overlap, dsm, batch_size, progress)
        with rasterio.open(paths["score"]) as s, rasterio.open(paths["mask"]) as m, rasterio.open(paths["valid"]) as v:
            return s.read(1), m.read(1) > 0, v.read(1) > 0


def detect(
    scene: Union[str, Path],
    out: Union[str, Path, None] = None,
    model=None,
    device: str = "auto",
    *,
    method: Optional[str] = None,
    runtime: str = "auto",
    tile: Optional[int] = None,
    overlap: Optional[int] = None,
    bands: Optional[Sequence[int]] = None,
    dsm=None,
    threshold: Optional[float] = None,
    min_area_m2: float = DEFAULT_MIN_AREA_M2,
    simplify_px: float = DEFAULT_SIMPLIFY_PX,
    layer: str = DEFAULT_LAYER,
    overwrite: bool = False,
    batch_size: int = DEFAULT_BATCH,
    assume_crs: Optional[str] = None,
    target_crs: Optional[str] = None,
    radiometry: str = "auto",
    score_raster=None,
    preview=None,
    progress: Progress = None,
) -> gpd.GeoDataFrame:
    """Detect landslides in one GeoTIFF scene and return polygons in the scene's CRS.

    out:          GeoPackage to write (atomically); None returns the frame only.
    model:        a ScoringModel, a model file (.safetensors), or None for the embedded default.
    method:       --method name (default: the model's own default).
    runtime:      auto | onnx | torch: the engine of the network forward (auto: onnxruntime where the
                  method and model file allow it, else torch).
    threshold:    override the model's main threshold (0..1; the CAM threshold of the weak methods).
    min_area_m2:  drop polygons smaller than this (m², through UTM for geographic CRSs).
    simplify_px:  simplification tolerance in pixels (0 = exact pixel outlines).
    target_crs:   reproject the polygons into this CRS (the score raster stays on the scene's grid).
    radiometry:   auto | stretch | none: how band values are mapped onto the model's (radiometry.py).
    score_raster: optional GeoTIFF path for the fused score (float32, 0..1).
    preview:      optional PNG path: scene, stitched maps and polygons side by side.
    """
    check_options(tile, overlap, threshold, min_area_m2, simplify_px, batch_size, bands, assume_crs=assume_crs,
                  target_crs=target_crs, radiometry=radiometry)
    if preview is not None:
        from .runtime import available
        if not available("matplotlib"):
            raise InputError("--preview needs matplotlib: pip install 'landslide_wsss[preview]'")
    for target in (out, score_raster, preview):
        if target is not None:
            check_output(target, overwrite)
    with _gdal_env(), scene_context(scene, bands, assume_crs) as sc, tempfile.TemporaryDirectory(prefix="lwsss-") as work:
        source = model
        model = load_scoring_model(model, method, device, runtime)  # after the scene checks: bad input fails fast
        if threshold is not None:
            model = with_threshold(model, threshold)
        sc = prepare_scene(sc, model, radiometry, source)
        work = Path(work)
        paths = _run_scene(sc, model, work, tile, overlap, dsm, batch_size, progress)
        gdf = vectorize(
            paths["mask"], paths["score"], paths["valid"], scene=sc.name, method=model.name,
            model_version=model.version, simplify_px=simplify_px, min_area_m2=min_area_m2,
        )
        if target_crs is not None:
            gdf = gdf.to_crs(check_crs("--target-crs", target_crs))
        written = []  # a later output that fails takes the earlier ones of this run with it
        try:
            if preview is not None:
                from .preview import render_preview

                with atomic_output(preview, overwrite) as tmp:
                    render_preview(sc, paths, gdf, tmp, model.map_names)
                written.append(Path(preview))
            if score_raster is not None:
                with atomic_output(score_raster, overwrite) as tmp:
                    shutil.copyfile(paths["score"], tmp)
                written.append(Path(score_raster))
            if out is not None:
                write_gpkg(gdf, out, layer=layer, overwrite=overwrite)
        except BaseException:
            for done in written:
                done.unlink(missing_ok=True)
            raise
    if progress:
        progress(1.0)
    return gdf


def with_threshold(model, threshold: float):
    """A copy of `model` with its main threshold replaced; the caller's object is left as it was."""
    out = copy.copy(model)  # the threshold setters replace typed settings, never change them in place
    out.threshold = float(threshold)
    return out


def check_options(tile=None, overlap=None, threshold=None, min_area_m2=0.0, simplify_px=0.0, batch_size=1,
                  bands=None, assume_crs=None, target_crs=None, radiometry=None) -> None:
    """Numeric, list, CRS and choice options, checked before any model loads or any file is made."""
    def bad(flag, value, want):
        raise InputError(f"{flag} {value}: expected {want}")

    if tile is not None and (int(tile) != tile or tile < 16 or tile % 16):
        bad("--tile", tile, "a whole number of pixels >= 16 and a multiple of 16 (the networks' stride)")
    if overlap is not None:
        if int(overlap) != overlap or overlap < 0:
            bad("--overlap", overlap, "a whole number of pixels >= 0")
        if tile is not None and overlap > tile // 2:
            bad("--overlap", overlap, f"at most half the tile ({int(tile) // 2} px)")
    if threshold is not None and not 0.0 <= threshold <= 1.0:
        bad("--threshold", threshold, "a value between 0 and 1")
    for flag, value in (("--min-area", min_area_m2), ("--simplify", simplify_px)):
        if value is not None and not (np.isfinite(value) and value >= 0):
            bad(flag, value, "a number >= 0")
    if batch_size is not None and (int(batch_size) != batch_size or batch_size < 1):
        bad("--batch-size", batch_size, "a whole number >= 1")
    if bands is not None and (not len(bands) or any(int(b) != b or b < 1 for b in bands)):
        bad("--bands", ",".join(str(b) for b in bands) or "''", "1-based band numbers, e.g. 1,2,3")
    check_crs("--assume-crs", assume_crs)
    check_crs("--target-crs", target_crs)
    if radiometry is not None:
        from .radiometry import check_mode
        check_mode(radiometry)


def preview(scene, png, model=None, device: str = "auto", *, overwrite: bool = False, **options) -> gpd.GeoDataFrame:
    """Render `png`: the scene with detected polygons beside the stitched maps (CAM, CycleGAN
    difference, ...) and the fused score. Returns the polygons (not written anywhere)."""
    return detect(scene, None, model=model, device=device, preview=png, overwrite=overwrite, **options)


def scene_context(scene, bands, assume_crs):
    """A Scene as a context manager: a path is opened (and closed after); a Scene passes through."""
    if isinstance(scene, Scene):
        return contextlib.nullcontext(scene)
    return open_scene(scene, bands=bands, assume_crs=assume_crs)


def prepare_scene(sc: Scene, model, radiometry: str = "auto", source=None) -> Scene:
    """The scene as the model takes it, decided once per scene before any tile is read: its bands
    (raster.fit_bands), its radiometry map onto the model's training values (radiometry.map_scene;
    `source`: the model file, for its record), and a warning when its GSD is far from the model's."""
    from .radiometry import map_scene, model_record

    sc = fit_bands(sc, model.in_bands, log)
    sc = map_scene(sc, radiometry, model_record(model, source))
    warn_resolution(sc, getattr(model, "gsd", None))
    return sc


# A scene's native GSD within [GSD_RANGE[0], GSD_RANGE[1]] x the model's working GSD is read without a
# word (resampled to the working GSD either way); outside, one ResolutionWarning. On area B (0.5 m) the
# default model (1 m) loses <= 0.02 IoU from 0.25 m to 2 m, 0.05 at 3 m, 0.08 at 4 m (docs/imagery.md).
GSD_RANGE = (0.1, 2.0)


def warn_resolution(sc: Scene, gsd: Optional[float]) -> None:
    if not gsd:
        return
    ratio = sc.gsd / float(gsd)
    if not GSD_RANGE[0] / 1.02 <= ratio <= GSD_RANGE[1] * 1.02:  # 2 %: a grid rounded to whole pixels stays in
        from .errors import ResolutionWarning

        how = "finer" if ratio < 1 else "coarser"
        warnings.warn(f"{sc.path.name}: native GSD {sc.gsd:.3g} m is far {how} than the model's working GSD {gsd:g} m "
                      f"(outside {GSD_RANGE[0]:g}..{GSD_RANGE[1]:g} x); it is read at {gsd:g} m, results may be poorer",
                      ResolutionWarning, stacklevel=3)


def _run_scene(sc: Scene, model, work: Path, tile, overlap, dsm, batch_size, progress) -> Dict[str, Path]:
    """Tiles -> stitched raw maps -> scene stats -> fused score/mask GeoTIFFs in `work`, on the
    scene's grid (a scene already through prepare_scene). A model with a working GSD sees the scene
    resampled to it (a WarpedVRT); its results are mapped back to the scene's grid."""
    if len(sc.bands) != model.in_bands:
        raise InputError(
            f"{sc.path}: {len(sc.bands)} band(s) chosen but the model expects {model.in_bands}; choose bands with --bands"
        )
    gsd = getattr(model, "gsd", None)
    if not needs_resampling(sc, gsd):
        return _run_grid(sc, model, work, tile, overlap, dsm, batch_size, progress)
    (work / "working").mkdir(exist_ok=True)
    with resampled_scene(sc, gsd) as ws:
        wpaths = _run_grid(ws, model, work / "working", tile, overlap, dsm, batch_size, progress)
    return _to_scene_grid(sc, wpaths, work)


def _to_scene_grid(sc: Scene, wpaths: Dict[str, Path], work: Path) -> Dict[str, Path]:
    """Working-grid results -> the scene's grid, strip by strip: the score bilinear, the mask bilinear
    then >= 0.5 (smooth outlines), valid from the scene itself. The raw maps stay on the working grid:
    only the preview reads them, decimated to a few hundred pixels anyway."""
    from rasterio.enums import Resampling
    from rasterio.vrt import WarpedVRT

    paths = {k: work / f"{k}.tif" for k in ("valid", "score", "mask")}
    grid = dict(crs=sc.crs, transform=sc.transform, width=sc.width, height=sc.height, resampling=Resampling.bilinear)
    with rasterio.open(wpaths["score"]) as s0, rasterio.open(wpaths["mask"]) as m0, WarpedVRT(s0, **grid) as s, \
            WarpedVRT(m0, **dict(grid, dtype="float32", src_nodata=None, nodata=None)) as m, \
            rasterio.open(paths["score"], "w", **_work_profile(sc, 1, "float32")) as sdst, \
            rasterio.open(paths["mask"], "w", **_work_profile(sc, 1, "uint8")) as mdst, \
            rasterio.open(paths["valid"], "w", **_work_profile(sc, 1, "uint8")) as vdst:
        for win in block_windows(sc.width, sc.height, STRIP_ROWS):
            valid = sc.read_valid(win)
            vdst.write(valid.astype(np.uint8), 1, window=win)
            sdst.write(np.where(valid, s.read(1, window=win), 0).astype(np.float32), 1, window=win)
            mdst.write((valid & (m.read(1, window=win) >= 0.5)).astype(np.uint8), 1, window=win)
    return {**paths, "maps": wpaths["maps"]}


def _run_grid(sc: Scene, model, work: Path, tile, overlap, dsm, batch_size, progress) -> Dict[str, Path]:
    tile, overlap = grid_size(model, tile, overlap)
    try:
        grid = TileGrid(sc.width, sc.height, tile, overlap)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    # A given DSM is always checked (bad input fails the same way for every method), but only read
    # tile by tile for a model that uses terrain, as scoring.py promises.
    names = list(model.map_names)
    paths = {k: work / f"{k}.tif" for k in ("maps", "valid", "score", "mask")}
    with open_terrain(dsm, sc) if dsm is not None else contextlib.nullcontext() as terrain:
        used = terrain if getattr(model, "uses_terrain", False) else None
        _stitch_maps(sc, model, grid, used, names, paths["maps"], batch_size, progress)
    stats = _scene_stats(sc, paths["maps"], paths["valid"], names)
    if stats.maps[names[0]].count == 0:
        warnings.warn(f"{sc.path}: no valid pixel (all nodata); nothing to detect", NothingToDetect, stacklevel=3)
    _fuse(sc, model, paths, names, stats)
    return paths


def _work_profile(sc: Scene, count: int, dtype: str) -> dict:
    # Scratch rasters: tiled, fast deflate (gated-out tiles are zeros and compress to nothing).
    return geotiff_profile(sc, dtype=dtype, count=count, zlevel=1, BIGTIFF="IF_SAFER")


def _stitch_maps(sc, model, grid, terrain, names, maps_path, batch_size, progress) -> None:
    def read(batch):
        out = []
        for w in batch:
            boundless = w.col_off + w.width > sc.width or w.row_off + w.height > sc.height
            data, valid = sc.read(w, boundless=boundless)
            terr = terrain.read(w) if terrain is not None else None
            out.append((w, data, valid, terr))
        return out

    with rasterio.open(maps_path, "w", **_work_profile(sc, len(names), "float32")) as dst:
        stitch_grid(model, grid.windows(), read, dst, grid.tile, grid.overlap, batch_size, progress)


def _scene_stats(sc: Scene, maps_path, valid_path, names) -> SceneStats:
    """Two windowed passes: per-map maximum, then histograms on [0, max] (valid pixels only)."""
    vmax = np.zeros(len(names))
    count = 0
    with rasterio.open(maps_path) as src:
        with rasterio.open(valid_path, "w", **_work_profile(sc, 1, "uint8")) as vdst:
            for win in block_windows(sc.width, sc.height, STRIP_ROWS):
                valid = sc.read_valid(win)
                vdst.write(valid.astype(np.uint8), 1, window=win)
                if valid.any():
                    m = src.read(window=win)
                    vmax = np.maximum(vmax, m[:, valid].max(axis=1))
                    count += int(valid.sum())
        hists = np.zeros((len(names), HIST_BINS), np.int64)
        with rasterio.open(valid_path) as vsrc:  # read back only after the writer closed (flushed)
            for win in block_windows(sc.width, sc.height, STRIP_ROWS):
                valid = vsrc.read(1, window=win) > 0
                if not valid.any():
                    continue
                m = src.read(window=win)[:, valid]
                for k in range(len(names)):
                    hists[k] += histogram(m[k], vmax[k])
    return SceneStats({n: MapStats(float(vmax[k]), count, hists[k]) for k, n in enumerate(names)})


def _fuse(sc: Scene, model, paths, names, stats: SceneStats) -> None:
    """model.fuse block by block, each block read with a FUSE_HALO halo and cropped."""
    with rasterio.open(paths["maps"]) as src, rasterio.open(paths["valid"]) as vsrc, \
            rasterio.open(paths["score"], "w", **_work_profile(sc, 1, "float32")) as sdst, \
            rasterio.open(paths["mask"], "w", **_work_profile(sc, 1, "uint8")) as mdst:
        for win in block_windows(sc.width, sc.height, STRIP_ROWS):
            top = max(0, win.row_off - FUSE_HALO)
            bottom = min(sc.height, win.row_off + win.height + FUSE_HALO)
            big = Window(0, top, sc.width, bottom - top)
            m = src.read(window=big)
            score, mask = model.fuse({n: m[k] for k, n in enumerate(names)}, stats)
            r0 = win.row_off - top
            valid = vsrc.read(1, window=win) > 0
            score = np.where(valid, score[r0 : r0 + win.height], 0).astype(np.float32)
            mask = (mask[r0 : r0 + win.height] & valid).astype(np.uint8)
            sdst.write(score, 1, window=win)
            mdst.write(mask, 1, window=win)
