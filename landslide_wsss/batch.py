"""Directory runs: one GeoPackage from many scenes, resumable through a journal of finished scenes,
on local worker processes (which die with their parent) or on a Dask cluster."""
from __future__ import annotations

import concurrent.futures as cf
import hashlib
import json
import logging
import os
import shutil
import sys
import warnings
from pathlib import Path
from typing import Optional

import geopandas as gpd
import pandas as pd

from .errors import InputError, InputWarning, NothingToDetect
from .pipeline import Progress, check_options, detect
from .raster import check_output, list_rasters, open_scene
from .params import DEFAULT_LAYER
from .vectorize import empty_frame, write_gpkg

log = logging.getLogger("landslide_wsss")

def _options_key(options: dict) -> str:
    blob = json.dumps({k: str(v) for k, v in sorted(options.items())}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _scene_key(path: Path, options_key: str) -> str:
    st = path.stat()
    return hashlib.sha256(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{options_key}".encode()).hexdigest()[:16]


def _die_with_parent() -> None:
    """Pool workers end when the parent dies (even by SIGKILL), so no orphan keeps writing parts."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: workers finish their scene and exit
        pass


def _detect_part(scene_path: str, part_path: str, options: dict) -> str:
    """One task of detect_directory: detect one scene into its own small GeoPackage (atomic)."""
    from . import runtime

    threads = options.pop("threads", None)
    if threads:
        runtime.set_threads(threads)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", InputWarning)
        warnings.simplefilter("ignore", NothingToDetect)
        detect(scene_path, out=part_path, overwrite=True, **options)
    for w in caught:  # a worker process has no CLI hook: one line each, as the CLI writes them
        if issubclass(w.category, InputWarning):
            sys.stderr.write(f"warning: {w.message}\n")
        else:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    return part_path


def detect_directory(
    scene_dir,
    out_gpkg,
    model=None,
    device: str = "auto",
    *,
    workers: Optional[int] = None,
    scheduler: Optional[str] = None,
    target_crs: Optional[str] = None,
    overwrite: bool = False,
    progress: Progress = None,
    **options,
) -> gpd.GeoDataFrame:
    """Detect every raster in `scene_dir` into one GeoPackage `out_gpkg`.

    Output: one layer "landslides" with a `scene` attribute. Scenes in different CRSs are
    refused unless `target_crs` is given (then every scene's polygons are reprojected to it).
    Resumable: finished scenes are kept in a journal folder `<out_gpkg>.parts/` beside the
    output; a run killed at any point and started again redoes only unfinished scenes. The
    journal is removed once the output is written. With `scheduler` ("tcp://host:port") the
    scenes run as tasks on a Dask distributed cluster (one task per scene); else on `workers`
    local processes (default: one per CPU core, at most one per scene, each with an equal share
    of the cores as torch threads).
    """
    out_gpkg = check_output(out_gpkg, overwrite)
    check_options(**{k: options[k] for k in ("tile", "overlap", "threshold", "min_area_m2", "simplify_px", "batch_size",
                                             "bands", "assume_crs", "radiometry") if k in options},
                  target_crs=target_crs)  # before the journal: bad options leave nothing
    scenes = list_rasters(scene_dir)
    crss = {}
    for p in scenes:
        with open_scene(p, bands=options.get("bands"), assume_crs=options.get("assume_crs")) as sc:
            crss[p] = sc.crs
    if target_crs is None and len({c.to_wkt() for c in crss.values()}) > 1:
        listing = ", ".join(sorted({c.to_string() for c in crss.values()}))
        raise InputError(f"{scene_dir}: scenes are in different CRSs ({listing}); give --target-crs to reproject into one layer")
    if model is not None and not isinstance(model, (str, Path)):
        raise InputError("detect_directory takes a model file path (each worker loads its own copy)")
    options = dict(options, model=str(model) if model is not None else None, device=device)
    journal = out_gpkg.parent / (out_gpkg.name + ".parts")
    journal.mkdir(exist_ok=True)
    okey = _options_key(options)
    parts = {p: journal / f"{p.stem}-{_scene_key(p, okey)}.gpkg" for p in scenes}
    todo = [p for p in scenes if not parts[p].exists()]
    if len(todo) < len(scenes):
        log.info("resuming: %d of %d scenes already done (journal %s)", len(scenes) - len(todo), len(scenes), journal)
    _run_parts(todo, parts, options, workers, scheduler, progress, len(scenes))
    frames = []
    for p in scenes:
        gdf = gpd.read_file(parts[p], layer=DEFAULT_LAYER, engine="pyogrio")
        if target_crs is not None and len(gdf):
            gdf = gdf.to_crs(target_crs)
        frames.append(gdf)
    crs = target_crs or next(iter(crss.values()))
    merged = [f for f in frames if len(f)]
    gdf = gpd.GeoDataFrame(pd.concat(merged, ignore_index=True), crs=crs) if merged else empty_frame(crs)
    if len(gdf) == 0:
        gdf = empty_frame(crs)
    write_gpkg(gdf, out_gpkg, overwrite=True)  # check_output above already honoured --overwrite
    shutil.rmtree(journal, ignore_errors=True)
    return gdf


def _run_parts(todo, parts, options, workers, scheduler, progress, total) -> None:
    done0 = total - len(todo)
    if progress:
        progress(done0 / max(total, 1))
    if not todo:
        return
    if scheduler:
        from distributed import Client, as_completed

        with Client(scheduler) as client:
            futs = [client.submit(_detect_part, str(p), str(parts[p]), dict(options), pure=False) for p in todo]
            for k, fut in enumerate(as_completed(futs), 1):
                fut.result()
                if progress:
                    progress((done0 + k) / total)
        return
    if workers is None:
        workers = min(len(todo), os.cpu_count() or 1)
    if workers <= 1 or len(todo) == 1:
        for k, p in enumerate(todo, 1):
            _detect_part(str(p), str(parts[p]), dict(options))
            if progress:
                progress((done0 + k) / total)
        return
    import multiprocessing as mp

    opts = dict(options, threads=max(1, (os.cpu_count() or 1) // workers))
    with cf.ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"),
                                initializer=_die_with_parent) as pool:
        futs = [pool.submit(_detect_part, str(p), str(parts[p]), dict(opts)) for p in todo]
        for k, fut in enumerate(cf.as_completed(futs), 1):
            fut.result()
            if progress:
                progress((done0 + k) / total)
