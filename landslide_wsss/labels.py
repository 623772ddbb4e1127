"""What a geologist has, turned into image-level tile labels (1 landslide, 0 none) for training.

Three kinds of label layer are understood (see `read_labels`):

polygons-field
    Polygons with an integer field (default ``label``): 1 = landslide, 0 = none, empty = not
    looked at. Typically the grid from `label_grid`, ticked in QGIS, but any polygons do. A model
    tile is 1 if it overlaps a 1 polygon, 0 if at least `min_overlap` of it lies in 0 polygons.
points
    An inventory, one point per landslide. Tiles holding a point are 1; tiles farther than the
    negative distance (default 100 m) from every point are 0; the band in between is not used,
    since a landslide larger than its point may reach into it.
outlines
    Rough landslide outlines (polygons without the field), treated like points.

For points and outlines, every tile beyond the negative distance is taken as landslide-free: an
inventory that misses landslides teaches the model to miss them. Give only inventories that are
complete over the scenes, or tick 0 tiles on a grid instead.

No torch here.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely
from rasterio.windows import Window

from .errors import InputError
from .params import DEFAULT_TILE_M, GRID_LAYER
from .raster import Scene, atomic_output, check_output, open_scene
from .tiling import TileGrid

KINDS = ("polygons-field", "points", "outlines")
# Columns of at most this many pixels are read at once when checking tiles for valid data.
_CHUNK_PX = 1 << 22


@dataclass
class LabelSet:
    """A label layer in its own CRS: `kind` is one of KINDS, `field` the 0/1 field or None."""

    gdf: gpd.GeoDataFrame
    kind: str
    field: Optional[str]
    source: str = ""


@dataclass(frozen=True)
class TileLabel:
    """One model tile (pixel offsets in the scene, `size` px square) with its label, 1 or 0."""

    row_off: int
    col_off: int
    size: int
    label: int


# ---------------------------------------------------------------------------------------------
# The grid to tick


def label_grid(scenes, out=None, tile_m: float = DEFAULT_TILE_M, overwrite: bool = False) -> gpd.GeoDataFrame:
    """Square tiles of `tile_m` metres over the scenes, with an empty ``label`` field to tick in QGIS.

    Parameters
    ----------
    scenes : path or sequence of paths
        GeoTIFF scenes, all in one projected CRS in metres.
    out : path, optional
        GeoPackage to write (layer ``label_grid``), atomically; None writes nothing.
    tile_m : float
        Tile side in metres, rounded to whole pixels (at least 1).
    overwrite : bool
        Replace an existing `out`.

    Returns
    -------
    GeoDataFrame with columns scene, row, col, label (nullable Int64, all empty) in the scenes' CRS.
    Tiles are aligned to each scene's top-left pixel, clipped at its edges; tiles without any
    valid pixel are left out.
    """
    paths = [scenes] if isinstance(scenes, (str, Path)) else list(scenes)
    if not paths:
        raise InputError("label grid: no scene given")
    if not np.isfinite(tile_m) or tile_m <= 0:
        raise InputError(f"tile size {tile_m} m: must be > 0")
    if out is not None:
        if Path(out).suffix.lower() != ".gpkg":
            raise InputError(f"{out}: the label grid is written as a GeoPackage; name it *.gpkg")
        check_output(out, overwrite)
    frames, crs = [], None
    for path in paths:
        with open_scene(path) as scene:
            _check_projected(scene, "a label grid")
            if crs is not None and scene.crs != crs:
                raise InputError(
                    f"{scene.path}: CRS {scene.crs.to_string()} differs from {crs.to_string()} of the other "
                    "scenes; make one grid per CRS"
                )
            crs = scene.crs
            frames.append(_scene_grid(scene, tile_m))
    grid = gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), geometry="geometry", crs=crs)
    if len(grid) == 0:
        raise InputError("label grid: the scenes have no valid pixels")
    grid["label"] = pd.array([pd.NA] * len(grid), dtype="Int64")
    if out is not None:
        _write_grid(grid, out, overwrite)
    return grid


def _check_projected(scene: Scene, what: str) -> float:
    """Metres per CRS unit; InputError for geographic CRSs."""
    if scene.crs.is_geographic or not scene.crs.is_projected:
        raise InputError(
            f"{scene.path}: {what} needs a projected CRS in metres, not {scene.crs.to_string()}; "
            "warp the scene to UTM first (gdalwarp -t_srs)"
        )
    factor = scene.crs.linear_units_factor
    return float(factor[1]) if factor else 1.0


def _tile_px(scene: Scene, tile_m: float) -> Tuple[int, int]:
    """(width, height) of a tile_m tile in pixels, rounded half up; InputError below 1 px."""
    unit = _check_projected(scene, "a label grid")
    px = [int(np.floor(tile_m / (abs(s) * unit) + 0.5)) for s in (scene.transform.a, scene.transform.e)]
    if min(px) < 1:
        raise InputError(
            f"tile size {tile_m} m is below one pixel of {scene.path.name} "
            f"({abs(scene.transform.a) * unit:g} m); give a larger tile size"
        )
    return px[0], px[1]


def _scene_grid(scene: Scene, tile_m: float) -> pd.DataFrame:
    tw, th = _tile_px(scene, tile_m)
    col_starts = np.arange(0, scene.width, tw)
    col_stops = np.minimum(col_starts + tw, scene.width)
    parts = []
    for i, r0 in enumerate(range(0, scene.height, th)):
        r1 = min(r0 + th, scene.height)
        ok = _valid_spans(scene, r0, r1, col_starts, col_stops)
        cols = np.flatnonzero(ok)
        geoms = _boxes(scene, np.full(len(cols), r0), np.full(len(cols), r1), col_starts[cols], col_stops[cols])
        parts.append(pd.DataFrame({"scene": scene.name, "row": i, "col": cols, "geometry": geoms}))
    return pd.concat(parts, ignore_index=True)


def _write_grid(grid: gpd.GeoDataFrame, out, overwrite: bool) -> None:
    # vectorize.write_gpkg keeps only the detection columns, so the grid is written here.
    with atomic_output(out, overwrite) as tmp:
        pyogrio.write_dataframe(
            grid, str(tmp), layer=GRID_LAYER, driver="GPKG", geometry_type="Polygon",
            dataset_options={"VERSION": "1.2"},  # read without warnings by QGIS 3.22's GDAL
        )


# ---------------------------------------------------------------------------------------------
# Reading a label layer


def read_labels(path, layer: Optional[str] = None, label_field: Optional[str] = "label") -> LabelSet:
    """Read a label layer and tell its kind (polygons-field, points or outlines).

    Parameters
    ----------
    path : path
        Any vector file GDAL reads (GeoPackage, shapefile, GeoJSON, ...).
    layer : str, optional
        Layer name; needed only when the file has several layers.
    label_field : str or None
        The 0/1 field of polygons. The default ``label`` falls back to points/outlines when the
        layer lacks it; a field given explicitly must exist. None ignores fields (outlines/points).

    Returns
    -------
    LabelSet, geometries repaired (make_valid), empty ones and unticked (null) polygons dropped.
    """
    path = Path(path)
    layer = _pick_layer(path, layer)
    gdf = _read_layer(path, layer)
    where = f"{path}" + (f" layer {layer!r}" if layer else "")
    if len(gdf) == 0:
        raise InputError(f"{where} has no features")
    if gdf.crs is None:
        raise InputError(f"{where} has no CRS; assign one in QGIS (Layer > Set CRS) and save again")
    geoms = gdf.geometry.to_numpy()
    gdf = gdf[~shapely.is_missing(geoms) & ~shapely.is_empty(geoms)]
    shape = _shape_kind(gdf, where) if len(gdf) else None
    if shape == "polygon":
        gdf = _repair(gdf)
    if len(gdf) == 0:
        raise InputError(f"{where} has no features with a usable geometry")
    field = _find_field(gdf, label_field, where)
    if field is not None and shape == "point":
        raise InputError(
            f"{where}: points with a {field!r} field are not supported: a point inventory marks landslides "
            "only; pass no label field to use every point as a landslide, or tick polygons instead"
        )
    if field is None:
        kind = "points" if shape == "point" else "outlines"
        return LabelSet(gdf.reset_index(drop=True), kind, None, str(path))
    gdf = _check_field(gdf, field, where)
    return LabelSet(gdf.reset_index(drop=True), "polygons-field", field, str(path))


def _pick_layer(path: Path, layer: Optional[str]) -> Optional[str]:
    if not path.exists():
        raise InputError(f"{path}: no such file")
    try:
        layers = [str(name) for name, _ in pyogrio.list_layers(path)]
    except Exception as exc:
        raise InputError(f"{path}: not a readable vector file ({_short(exc)})") from None
    if not layers:
        raise InputError(f"{path}: not a vector file (no layers)")
    if layer is None:
        if len(layers) > 1:
            raise InputError(f"{path} has several layers ({', '.join(layers)}); choose one with --layer")
        return None
    if layer not in layers:
        raise InputError(f"{path}: no layer {layer!r}; layers: {', '.join(layers)}")
    return layer


def _read_layer(path: Path, layer: Optional[str]) -> gpd.GeoDataFrame:
    try:
        gdf = pyogrio.read_dataframe(path, layer=layer)
    except Exception as exc:
        raise InputError(f"{path}: cannot read labels ({_short(exc)})") from None
    if not isinstance(gdf, gpd.GeoDataFrame) or gdf.geometry.name not in gdf.columns:
        raise InputError(f"{path}: layer has no geometry (a table, not labels)")
    return gdf


def _shape_kind(gdf: gpd.GeoDataFrame, where: str) -> str:
    """'point' or 'polygon'; InputError for lines, collections or a mix."""
    types = set(gdf.geom_type)
    if types <= {"Point", "MultiPoint"}:
        return "point"
    if types <= {"Polygon", "MultiPolygon"}:
        return "polygon"
    raise InputError(
        f"{where}: unsupported geometry {', '.join(sorted(types))}; labels are points or polygons, "
        "all of one kind (lines and geometry collections are not labels)"
    )


def _repair(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """make_valid the invalid polygons, keep only their polygonal part, drop what became empty."""
    geoms = gdf.geometry.to_numpy()
    bad = ~shapely.is_valid(geoms)
    if bad.any():
        geoms = geoms.copy()
        geoms[bad] = [_polygonal(g) for g in shapely.make_valid(geoms[bad])]
    gdf = gdf.set_geometry(gpd.GeoSeries(geoms, index=gdf.index, crs=gdf.crs))
    return gdf[~gdf.geometry.is_empty]


def _polygonal(geom):
    # make_valid may turn a bow-tie or a spike into a collection with lines; only areas are labels.
    if geom.geom_type in ("Polygon", "MultiPolygon"):
        return geom
    parts = [p for p in shapely.get_parts(geom) if p.geom_type in ("Polygon", "MultiPolygon")]
    return shapely.union_all(parts) if parts else shapely.Polygon()


def _find_field(gdf: gpd.GeoDataFrame, label_field: Optional[str], where: str) -> Optional[str]:
    if label_field is None:
        return None
    columns = [c for c in gdf.columns if c != gdf.geometry.name]
    # GeoPackage and shapefile field names are case-insensitive, and QGIS users type "Label".
    for name in [label_field] + [c for c in columns if c.lower() == label_field.lower()]:
        if name in columns:
            return name
    if label_field != "label":
        raise InputError(
            f"{where}: no field {label_field!r}; fields: {', '.join(map(str, columns)) or 'none'}"
        )
    return None


def _check_field(gdf: gpd.GeoDataFrame, field: str, where: str) -> gpd.GeoDataFrame:
    """Keep ticked rows, values 0/1 as int; InputError naming any other value."""
    values = gdf[field]
    ticked = values.notna()
    numeric = pd.to_numeric(values[ticked], errors="coerce")
    bad = values[ticked][~numeric.isin([0, 1])]
    if len(bad):
        shown = ", ".join(repr(v) for v in sorted({str(v) for v in bad})[:8])
        raise InputError(
            f"{where}: field {field!r} holds {shown}; expected 1 (landslide), 0 (none) or empty "
            "(not looked at). If these polygons are landslide outlines, give no label field"
        )
    gdf = gdf[ticked].copy()
    if len(gdf) == 0:
        raise InputError(f"{where}: field {field!r} is empty everywhere; tick tiles 1 (landslide) or 0 (none)")
    gdf[field] = numeric.astype(int).to_numpy()
    return gdf


# ---------------------------------------------------------------------------------------------
# Labels -> model tiles


def tile_labels(
    scene: Scene,
    labels: LabelSet,
    tile_px: int,
    negative_distance_m: float = 100.0,
    min_overlap: float = 0.5,
) -> List[TileLabel]:
    """Image-level labels of the model's `tile_px` tiles of `scene` (row-major order).

    Parameters
    ----------
    scene : Scene
        An open scene (raster.open_scene).
    labels : LabelSet
        From `read_labels`; reprojected to the scene's CRS here.
    tile_px : int
        Model tile size: a grid from (0, 0), edge tiles pulled back inside the scene.
    negative_distance_m : float
        points/outlines: tiles farther than this from every label are 0.
    min_overlap : float
        polygons-field: share of a tile that must lie in 0 polygons to make it 0.

    Returns
    -------
    list of TileLabel; tiles in no rule (and tiles without valid pixels) are left out.
    """
    tile_px = _check_tile_args(scene, tile_px, negative_distance_m, min_overlap)
    windows = TileGrid(scene.width, scene.height, tile_px).windows()
    rows = np.array([int(w.row_off) for w in windows])
    cols = np.array([int(w.col_off) for w in windows])
    valid = _valid_tiles(scene, rows, cols, tile_px)
    tiles = _boxes(scene, rows, rows + tile_px, cols, cols + tile_px)
    gdf = labels.gdf.to_crs(scene.crs)
    work = None if scene.crs.is_projected else gdf.estimate_utm_crs()
    if work is not None:  # distances and areas in metres, not degrees
        tiles = gpd.GeoSeries(tiles, crs=scene.crs).to_crs(work).to_numpy()
        gdf = gdf.to_crs(work)
    if labels.kind == "polygons-field":
        label = _label_by_field(tiles, gdf, labels.field, min_overlap, _sliver_area(tiles, tile_px))
    else:
        unit = 1.0 if work is not None else _check_projected(scene, "a negative distance in metres")
        label = _label_by_distance(tiles, gdf.geometry.to_numpy(), negative_distance_m / unit)
    keep = np.flatnonzero(valid & (label >= 0))
    return [TileLabel(int(rows[i]), int(cols[i]), tile_px, int(label[i])) for i in keep]


def _check_tile_args(scene: Scene, tile_px, negative_distance_m, min_overlap) -> int:
    if int(tile_px) != tile_px or tile_px < 8:
        raise InputError(f"tile size {tile_px} px: expected a whole number >= 8")
    tile_px = int(tile_px)
    if scene.width < tile_px or scene.height < tile_px:
        raise InputError(
            f"{scene.path}: scene of {scene.width}x{scene.height} px is smaller than one {tile_px} px tile"
        )
    if not np.isfinite(negative_distance_m) or negative_distance_m < 0:
        raise InputError(f"negative distance {negative_distance_m} m: must be >= 0")
    if not 0 < min_overlap <= 1:
        raise InputError(f"min overlap {min_overlap}: expected a share in (0, 1]")
    return tile_px


def _label_by_field(tiles, gdf, field: str, min_overlap: float, sliver: float) -> np.ndarray:
    """1 where a tile overlaps a 1 polygon, 0 where >= min_overlap of it is in 0 polygons, else -1."""
    label = np.full(len(tiles), -1, dtype=np.int8)
    geoms, values = gdf.geometry.to_numpy(), gdf[field].to_numpy()
    pos, neg = geoms[values == 1], geoms[values == 0]
    if len(neg):
        share = _covered_area(tiles, neg) / shapely.area(tiles)
        label[share >= min_overlap - 1e-9] = 0
    if len(pos):
        # Overlap of more than a sliver: with a ticked grid equal to the model grid, tiles that only
        # share an edge with a landslide square (up to reprojection noise) must not become landslides.
        label[_covered_area(tiles, pos, total=False) > sliver] = 1
    return label


def _covered_area(tiles, geoms, total: bool = True) -> np.ndarray:
    """Per tile, the area covered by `geoms` (union, when total) or the largest single overlap."""
    tree = shapely.STRtree(geoms)
    ti, gi = tree.query(tiles, predicate="intersects")
    out = np.zeros(len(tiles))
    if len(ti) == 0:
        return out
    pieces = shapely.intersection(tiles[ti], geoms[gi])
    areas = shapely.area(pieces)
    if not total:
        np.maximum.at(out, ti, areas)
        return out
    np.add.at(out, ti, areas)
    # Overlapping label polygons would be counted twice; union only where a tile has several.
    order = np.argsort(ti, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(ti[order]) != 0])
    for group in np.split(order, starts[1:]):
        if len(group) > 1:
            out[ti[group[0]]] = shapely.area(shapely.union_all(pieces[group]))
    return out


def _label_by_distance(tiles, geoms, distance: float) -> np.ndarray:
    """1 where a tile touches a label, 0 where all labels are farther than `distance`, else -1."""
    tree = shapely.STRtree(geoms)
    near = np.zeros(len(tiles), bool)
    near[tree.query(tiles, predicate="dwithin", distance=distance)[0]] = True
    hit = np.zeros(len(tiles), bool)
    hit[tree.query(tiles, predicate="intersects")[0]] = True
    return np.where(hit, 1, np.where(near, -1, 0)).astype(np.int8)


def _sliver_area(tiles, tile_px: int) -> float:
    """Half a pixel's area: overlaps below it are edge contact or reprojection noise."""
    return float(shapely.area(tiles[0])) / tile_px**2 / 2 if len(tiles) else 0.0


# ---------------------------------------------------------------------------------------------
# Several scenes


def labels_for_scenes(
    scene_paths: Sequence,
    labels_path,
    layer: Optional[str] = None,
    label_field: Optional[str] = "label",
    tile_px=256,
    negative_distance_m: float = 100.0,
) -> Dict[object, List[TileLabel]]:
    """Tile labels for each scene from one label layer, refusing labels that cannot train a model.
    `tile_px`: the model tile size in pixels, or a function of the open Scene giving it.

    Returns
    -------
    dict scene path (as given) -> list of TileLabel.

    Raises
    ------
    InputError
        When the labels overlap no scene, no tile is a landslide, or no tile is landslide-free.
    """
    if not len(scene_paths):
        raise InputError("no scene given for the labels")
    labels = read_labels(labels_path, layer=layer, label_field=label_field)
    result, footprints, overlaps = {}, [], False
    for path in scene_paths:
        with open_scene(path) as scene:
            footprints.append(f"{scene.name} {_fmt(scene.dataset.bounds)} ({scene.crs.to_string()})")
            overlaps |= _overlaps(labels, scene)
            size = tile_px(scene) if callable(tile_px) else tile_px
            result[path] = tile_labels(scene, labels, size, negative_distance_m)
    if not overlaps:
        raise InputError(
            f"{labels_path}: the labels overlap none of the scenes: labels cover "
            f"{_fmt(labels.gdf.total_bounds)} ({labels.gdf.crs.to_string()}), scenes: {'; '.join(footprints)}"
        )
    found = {v for tl in result.values() for v in (t.label for t in tl)}
    if 1 not in found:
        raise InputError(
            f"{labels_path}: no landslide label overlaps the scenes (no tile with valid pixels gets label 1)"
        )
    if 0 not in found:
        raise InputError(
            f"{labels_path}: no landslide-free tile: tick some 0 tiles, or for an inventory lower "
            f"--negative-distance (now {negative_distance_m:g} m) / cover more ground"
        )
    return result


def _overlaps(labels: LabelSet, scene: Scene) -> bool:
    footprint = shapely.box(*scene.dataset.bounds)
    geoms = labels.gdf.geometry.to_crs(scene.crs).to_numpy()
    return bool(shapely.intersects(geoms, footprint).any())


# ---------------------------------------------------------------------------------------------
# Helpers


def _boxes(scene: Scene, r0, r1, c0, c1) -> np.ndarray:
    """Polygons of pixel windows rows [r0, r1) x cols [c0, c1) in the scene's CRS (north-up)."""
    t = scene.transform
    xs = (t.c + np.asarray(c0) * t.a, t.c + np.asarray(c1) * t.a)
    ys = (t.f + np.asarray(r0) * t.e, t.f + np.asarray(r1) * t.e)
    return shapely.box(np.minimum(*xs), np.minimum(*ys), np.maximum(*xs), np.maximum(*ys))


def _valid_cols(scene: Scene, r0: int, r1: int) -> np.ndarray:
    """Per column, whether rows [r0, r1) hold a valid pixel; read in chunks to bound memory."""
    step = max(1, _CHUNK_PX // max(1, r1 - r0))
    parts = [
        scene.read_valid(Window(c, r0, min(step, scene.width - c), r1 - r0)).any(axis=0)
        for c in range(0, scene.width, step)
    ]
    return np.concatenate(parts)


def _valid_spans(scene: Scene, r0: int, r1: int, c0: np.ndarray, c1: np.ndarray) -> np.ndarray:
    """Whether each window rows [r0, r1) x cols [c0[i], c1[i]) holds a valid pixel."""
    counts = np.concatenate([[0], np.cumsum(_valid_cols(scene, r0, r1))])
    return counts[c1] > counts[c0]


def _valid_tiles(scene: Scene, rows: np.ndarray, cols: np.ndarray, tile: int) -> np.ndarray:
    valid = np.zeros(len(rows), bool)
    for r in np.unique(rows):
        sel = rows == r
        valid[sel] = _valid_spans(scene, int(r), int(r) + tile, cols[sel], cols[sel] + tile)
    return valid


def _fmt(bounds) -> str:
    return "(" + ", ".join(f"{v:.8g}" for v in bounds) + ")"


def _short(exc: Exception) -> str:
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__


__all__ = ["LabelSet", "TileLabel", "label_grid", "read_labels", "tile_labels", "labels_for_scenes", "KINDS"]
