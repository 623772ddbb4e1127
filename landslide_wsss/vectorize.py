"""Mask raster -> polygons (holes kept, simplified, min area in m², valid, clipped to valid data)
-> GeoPackage layer in the scene's CRS, written atomically. No torch here."""
from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import rasterio
from rasterio import features
from rasterio.windows import Window, from_bounds
from shapely import make_valid
from shapely.geometry import shape
from shapely.ops import unary_union

from .params import DEFAULT_LAYER, DEFAULT_SIMPLIFY_PX
from .raster import atomic_output, block_windows

COLUMNS = ["area_m2", "score_mean", "score_max", "scene", "method", "model_version"]


def empty_frame(crs) -> gpd.GeoDataFrame:
    """An empty polygon layer with the attribute schema (so an all-clear scene still has columns)."""
    gdf = gpd.GeoDataFrame(
        {
            "area_m2": np.array([], float),
            "score_mean": np.array([], float),
            "score_max": np.array([], float),
            "scene": np.array([], object),
            "method": np.array([], object),
            "model_version": np.array([], object),
        },
        geometry=gpd.GeoSeries([], crs=crs),
        crs=crs,
    )
    return gdf


def _polygons_of_strip(mask_ds, window: Window):
    mask = mask_ds.read(1, window=window) > 0
    if not mask.any():
        return []
    tr = mask_ds.window_transform(window)
    return [shape(geom) for geom, _ in features.shapes(mask.astype(np.uint8), mask=mask, transform=tr, connectivity=8)]


def areas_m2(geoms: gpd.GeoSeries) -> np.ndarray:
    """Area in m²: directly in a projected metric CRS, through the local UTM zone when geographic."""
    if len(geoms) == 0:
        return np.array([], float)
    crs = geoms.crs
    if crs is not None and crs.is_geographic:
        geoms = geoms.to_crs(geoms.estimate_utm_crs())
        return geoms.area.to_numpy()
    factor = 1.0
    if crs is not None and crs.axis_info and crs.axis_info[0].unit_conversion_factor:
        factor = crs.axis_info[0].unit_conversion_factor
    return geoms.area.to_numpy() * factor**2


def vectorize(
    mask_path,
    score_path,
    valid_path=None,
    *,
    scene: str,
    method: str,
    model_version: str,
    simplify_px: float = DEFAULT_SIMPLIFY_PX,
    min_area_m2: float = 0.0,
    strip_rows: int = 2048,
) -> gpd.GeoDataFrame:
    """Polygons of mask > 0 with score statistics from `score_path` (both single-band GeoTIFFs on one grid).

    The mask is read in full-width strips; polygons cut by a strip border are merged again, so
    memory is bounded by a strip plus the polygons themselves. `valid_path` (uint8, 1 = data) clips
    simplified polygons back inside the valid data.
    """
    with rasterio.open(mask_path) as mask_ds:
        crs, transform = mask_ds.crs, mask_ds.transform
        polys, cut_ys = [], []
        for win in block_windows(mask_ds.width, mask_ds.height, strip_rows):
            polys.extend(_polygons_of_strip(mask_ds, win))
            if win.row_off > 0:
                cut_ys.append(transform.f + transform.e * win.row_off)
    if not polys:
        return empty_frame(crs)
    if cut_ys:
        polys = _merge_across_cuts(polys, cut_ys)
    geoms = gpd.GeoSeries(polys, crs=crs)
    px = abs(transform.a)
    # Drop small polygons and fill holes below the same area before simplifying: noisy masks make
    # polygons with thousands of pixel holes, and simplification cost grows with every ring.
    area = areas_m2(geoms)
    geoms = geoms[area >= min_area_m2].reset_index(drop=True)
    if len(geoms) == 0:
        return empty_frame(crs)
    hole_px = max(min_area_m2 / _pixel_area_m2(geoms, transform), 1.0)
    geoms = gpd.GeoSeries([_fill_small_holes(g, hole_px * abs(transform.a * transform.e)) for g in geoms], crs=crs)
    if simplify_px > 0:
        geoms = geoms.simplify(simplify_px * px, preserve_topology=True)
        if valid_path is not None:
            geoms = _clip_to_valid(geoms, valid_path)
    geoms = gpd.GeoSeries(make_valid(geoms.to_numpy()), crs=crs)
    geoms = geoms.explode(index_parts=False)
    geoms = geoms[geoms.geom_type == "Polygon"]
    geoms = geoms[~geoms.is_empty].reset_index(drop=True)
    area = areas_m2(geoms)
    keep = area >= min_area_m2
    geoms, area = geoms[keep].reset_index(drop=True), area[keep]
    if len(geoms) == 0:
        return empty_frame(crs)
    mean, vmax = _zonal_scores(geoms, score_path)
    return gpd.GeoDataFrame(
        {
            "area_m2": area.astype(float),
            "score_mean": mean,
            "score_max": vmax,
            "scene": scene,
            "method": method,
            "model_version": model_version,
        },
        geometry=geoms,
        crs=crs,
    )


def _pixel_area_m2(geoms: gpd.GeoSeries, transform) -> float:
    """m² of one pixel (through UTM for geographic CRSs), from the first geometry's location."""
    from shapely.geometry import box

    x, y = geoms.iloc[0].representative_point().coords[0]
    cell = gpd.GeoSeries([box(x, y, x + abs(transform.a), y + abs(transform.e))], crs=geoms.crs)
    return float(areas_m2(cell)[0])


def _fill_small_holes(poly, min_hole_area: float):
    """Drop interior rings smaller than `min_hole_area` (in CRS units²); larger holes are kept."""
    from shapely.geometry import Polygon

    if not poly.interiors:
        return poly
    keep = [r for r in poly.interiors if Polygon(r).area >= min_hole_area]
    return Polygon(poly.exterior, keep)


def _merge_across_cuts(polys, cut_ys):
    """Union the polygons that touch a strip border (they may be halves of one polygon)."""
    ys = np.array(cut_ys)
    touching, rest = [], []
    for p in polys:
        miny, maxy = p.bounds[1], p.bounds[3]
        (touching if np.any(np.isclose(ys, miny) | np.isclose(ys, maxy)) else rest).append(p)
    if not touching:
        return rest
    merged = unary_union(touching)
    parts = list(getattr(merged, "geoms", [merged]))
    return rest + parts


def _clip_to_valid(geoms: gpd.GeoSeries, valid_path) -> gpd.GeoSeries:
    out = []
    with rasterio.open(valid_path) as vds:
        for g in geoms:
            win = from_bounds(*g.bounds, transform=vds.transform)
            c0, r0 = int(np.floor(win.col_off)), int(np.floor(win.row_off))
            win = Window(c0, r0, int(np.ceil(win.width)) + 2, int(np.ceil(win.height)) + 2)
            win = win.intersection(Window(0, 0, vds.width, vds.height))
            valid = vds.read(1, window=win) > 0
            if valid.all():
                out.append(g)
                continue
            tr = vds.window_transform(win)
            vpoly = unary_union(
                [shape(s) for s, _ in features.shapes(valid.astype(np.uint8), mask=valid, transform=tr)]
            )
            out.append(g.intersection(vpoly))
    return gpd.GeoSeries(out, crs=geoms.crs)


def _zonal_scores(geoms: gpd.GeoSeries, score_path):
    means, maxes = np.zeros(len(geoms)), np.zeros(len(geoms))
    with rasterio.open(score_path) as sds:
        full = Window(0, 0, sds.width, sds.height)
        for i, g in enumerate(geoms):
            win = from_bounds(*g.bounds, transform=sds.transform)
            c0, r0 = int(np.floor(win.col_off)), int(np.floor(win.row_off))
            win = Window(c0, r0, int(np.ceil(win.width)) + 2, int(np.ceil(win.height)) + 2).intersection(full)
            score = sds.read(1, window=win)
            inside = features.geometry_mask([g], out_shape=score.shape, transform=sds.window_transform(win), invert=True, all_touched=False)
            if not inside.any():
                inside = features.geometry_mask([g], out_shape=score.shape, transform=sds.window_transform(win), invert=True, all_touched=True)
            vals = score[inside] if inside.any() else score.ravel()
            means[i], maxes[i] = float(vals.mean()), float(vals.max())
    return means, maxes


def write_gpkg(gdf: gpd.GeoDataFrame, path, layer: str = DEFAULT_LAYER, overwrite: bool = False) -> Path:
    """Write one polygon layer to a new GeoPackage atomically (an empty frame gives a valid empty layer)."""
    with atomic_output(path, overwrite) as tmp:
        write_layer(gdf, tmp, layer)
    return Path(path)


def write_layer(gdf: gpd.GeoDataFrame, path, layer: str = DEFAULT_LAYER, append: bool = False) -> None:
    """Write or append one layer to a GeoPackage at `path` (not atomic: callers wrap it)."""
    gdf = gdf[["geometry"] + [c for c in COLUMNS if c in gdf.columns]] if len(gdf.columns) else gdf
    # GeoPackage 1.2: read without warnings by the GDAL of QGIS 3.22 (it only partly knows 1.4).
    extra = {} if append else {"dataset_options": {"VERSION": "1.2"}}
    pyogrio.write_dataframe(
        gdf, str(path), layer=layer, driver="GPKG", geometry_type="Polygon", append=append, promote_to_multi=False,
        **extra,
    )
