"""Label inputs -> tile labels: the grid to tick, the three label kinds, and every refused input.

Scene: 256 x 256 px of 0.5 m (128 m square) in EPSG:32647 whose bottom-right 64 x 64 px are
nodata. Model tiles of 64 px (32 m) make a 4 x 4 grid; tile (3, 3) has no valid pixel.
"""
from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import rasterio
from rasterio.transform import from_origin
from shapely.geometry import LineString, Point, Polygon, box

from landslide_wsss.errors import InputError, OutputError
from landslide_wsss.labels import (
    LabelSet, TileLabel, label_grid, labels_for_scenes, read_labels, tile_labels,
)
from landslide_wsss.raster import open_scene

X0, Y0, PX, N, T = 400_000.0, 3_500_000.0, 0.5, 256, 64
ALL_TILES = {(r, c) for r in range(4) for c in range(4)} - {(3, 3)}  # (3, 3) is nodata


def make_scene(path, crs="EPSG:32647", x0=X0, y0=Y0, px=PX, size=N):
    data = np.random.default_rng(0).integers(1, 255, size=(1, size, size), dtype=np.uint8)
    data[:, size - 64 :, size - 64 :] = 0
    profile = dict(driver="GTiff", width=size, height=size, count=1, dtype="uint8", crs=crs,
                   transform=from_origin(x0, y0, px, px), nodata=0)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return path


@pytest.fixture
def scene_path(tmp_path):
    return make_scene(tmp_path / "scene.tif")


def m(x, y):
    """Scene coordinates of a point x m right and y m down from the scene's top-left corner."""
    return X0 + x, Y0 - y


def mbox(x0, y0, x1, y1):
    (a, b), (c, d) = m(x0, y0), m(x1, y1)
    return box(a, d, c, b)


def write(tmp_path, geoms, name="labels.gpkg", crs="EPSG:32647", **columns):
    gdf = gpd.GeoDataFrame(columns, geometry=gpd.GeoSeries(geoms, crs=crs), crs=crs)
    path = tmp_path / name
    gdf.to_file(path, layer="labels")
    return path


def tiles_of(path, labels, **kw):
    with open_scene(path) as sc:
        out = tile_labels(sc, labels, T, **kw)
    assert all(t.size == T for t in out)
    return {(t.row_off // T, t.col_off // T): t.label for t in out}


# ---------------------------------------------------------------------------------------------
# label_grid


def test_label_grid_clips_edges_skips_nodata_and_writes_null_labels(scene_path, tmp_path):
    out = tmp_path / "grid.gpkg"
    grid = label_grid([scene_path], out, tile_m=48.0)  # 96 px: 3 x 3 tiles, the last ones 64 px
    assert sorted(zip(grid["row"], grid["col"])) == [(r, c) for r in range(3) for c in range(3) if (r, c) != (2, 2)]
    edge = grid[(grid["row"] == 0) & (grid["col"] == 2)].geometry.iloc[0]
    assert edge.bounds == pytest.approx((X0 + 96, Y0 - 48, X0 + 128, Y0))
    assert set(grid["scene"]) == {"scene"} and str(grid["label"].dtype) == "Int64"
    info = pyogrio.read_info(out, layer="label_grid")
    assert info["features"] == 8 and info["crs"] == "EPSG:32647"
    assert dict(zip(info["fields"], info["ogr_types"]))["label"].startswith("OFTInteger")
    back = gpd.read_file(out, layer="label_grid")
    assert back["label"].isna().all() and back.crs.to_epsg() == 32647
    with pytest.raises(OutputError, match="exists"):
        label_grid([scene_path], out, tile_m=48.0)
    assert len(label_grid([scene_path], out, tile_m=32.0, overwrite=True)) == 15  # 4 x 4 minus nodata


def test_label_grid_refusals(scene_path, tmp_path):
    with pytest.raises(InputError, match="> 0"):
        label_grid(scene_path, None, tile_m=0)
    with pytest.raises(InputError, match="below one pixel"):
        label_grid(scene_path, None, tile_m=0.2)
    other = make_scene(tmp_path / "other.tif", crs="EPSG:32648")
    with pytest.raises(InputError, match="differs"):
        label_grid([scene_path, other], None)
    geo = make_scene(tmp_path / "geo.tif", crs="EPSG:4326", x0=100.0, y0=30.0, px=1e-5)
    with pytest.raises(InputError, match="needs a projected CRS in metres"):
        label_grid([geo], None)
    (tmp_path / "taken.gpkg").write_bytes(b"x")
    with pytest.raises(OutputError):  # refused before any scene is opened
        label_grid([tmp_path / "missing.tif"], tmp_path / "taken.gpkg")


# ---------------------------------------------------------------------------------------------
# polygons with a 0/1 field


def test_ticked_grid_in_another_crs(scene_path, tmp_path):
    grid = label_grid([scene_path], None, tile_m=64.0)  # 2 x 2 squares of 128 px = 2 x 2 model tiles each
    ticks = {(0, 0): 1, (0, 1): 0, (1, 0): 0}  # (1, 1) left empty: not looked at
    grid["label"] = pd.array([ticks.get((r, c)) for r, c in zip(grid["row"], grid["col"])], dtype="Int64")
    path = tmp_path / "ticked.gpkg"
    grid.to_crs("EPSG:4326").to_file(path, layer="label_grid")
    labels = read_labels(path)
    assert (labels.kind, labels.field, len(labels.gdf)) == ("polygons-field", "label", 3)
    # Model tiles sharing only an edge with the landslide square stay 0.
    expected = {(r, c): 1 for r in (0, 1) for c in (0, 1)}
    expected.update({(r, c): 0 for r in (0, 1) for c in (2, 3)})
    expected.update({(r, c): 0 for r in (2, 3) for c in (0, 1)})
    assert tiles_of(scene_path, labels) == expected


def test_unaligned_polygons_and_min_overlap(scene_path, tmp_path):
    geoms = [mbox(40, 40, 50, 50), mbox(0, 64, 80, 128), mbox(100, 100, 110, 110)]
    path = write(tmp_path, geoms, Label=[1, 0, None])  # field name matched case-insensitively
    labels = read_labels(path)
    assert labels.field == "Label" and len(labels.gdf) == 2
    expected = {(1, 1): 1, (2, 0): 0, (3, 0): 0, (2, 1): 0, (3, 1): 0, (2, 2): 0, (3, 2): 0}
    assert tiles_of(scene_path, labels) == expected  # column 2 is half inside the 0 polygon
    del expected[(2, 2)], expected[(3, 2)]
    assert tiles_of(scene_path, labels, min_overlap=0.6) == expected


# ---------------------------------------------------------------------------------------------
# inventories: points and outlines


def test_points_inventory(scene_path, tmp_path):
    path = write(tmp_path, [Point(*m(16, 16))], id=[7])
    labels = read_labels(path)
    assert (labels.kind, labels.field) == ("points", None)
    # Tile (0, 1) and (1, 0) are 16 m from the point (band), (1, 1) 22.6 m (beyond 20 m).
    expected = {t: 0 for t in ALL_TILES - {(0, 1), (1, 0)}}
    expected[(0, 0)] = 1
    assert tiles_of(scene_path, labels, negative_distance_m=20) == expected
    out = labels_for_scenes([scene_path], path, negative_distance_m=20, tile_px=T)
    assert out[scene_path][0] == TileLabel(0, 0, T, 1) and len(out[scene_path]) == len(expected)


def test_outlines(scene_path, tmp_path):
    path = write(tmp_path, [mbox(24, 8, 40, 16)], name="outlines.gpkg", kind=["slide"])
    labels = read_labels(path)
    assert labels.kind == "outlines"
    expected = {t: 0 for t in ALL_TILES - {(1, 0), (1, 1)}}  # row 1 is 16 m below: band
    expected[(0, 0)] = expected[(0, 1)] = 1
    assert tiles_of(scene_path, labels, negative_distance_m=20) == expected


def test_invalid_polygon_repaired(scene_path, tmp_path):
    bowtie = Polygon([m(4, 4), m(12, 12), m(12, 4), m(4, 12)])
    path = write(tmp_path, [bowtie, Polygon()], label=[1, 0])
    labels = read_labels(path)
    assert len(labels.gdf) == 1 and labels.gdf.geometry.is_valid.all()
    assert labels.gdf.geometry.iloc[0].area == pytest.approx(32.0)
    assert tiles_of(scene_path, labels)[(0, 0)] == 1


# ---------------------------------------------------------------------------------------------
# refused inputs


def test_read_labels_refusals(scene_path, tmp_path):
    with pytest.raises(InputError, match="no such file"):
        read_labels(tmp_path / "nope.gpkg")
    with pytest.raises(InputError, match="not a readable vector"):
        read_labels(scene_path)
    path = write(tmp_path, [mbox(0, 0, 10, 10)], label=[1])
    with pytest.raises(InputError, match="no layer 'ticks'; layers: labels"):
        read_labels(path, layer="ticks")
    with pytest.raises(InputError, match="no field 'ticked'; fields: label"):
        read_labels(path, label_field="ticked")
    empty = gpd.GeoDataFrame({"label": []}, geometry=gpd.GeoSeries([], crs="EPSG:32647"))
    empty.to_file(tmp_path / "empty.gpkg", layer="labels")
    with pytest.raises(InputError, match="has no features"):
        read_labels(tmp_path / "empty.gpkg")
    with pytest.warns(UserWarning):  # geopandas warns about the missing CRS too
        gpd.GeoDataFrame({"label": [1]}, geometry=[mbox(0, 0, 10, 10)]).to_file(tmp_path / "nocrs.gpkg")
    with pytest.raises(InputError, match="no CRS"):
        read_labels(tmp_path / "nocrs.gpkg")
    with pytest.raises(InputError, match="empty everywhere"):
        read_labels(write(tmp_path, [mbox(0, 0, 10, 10)], name="nulls.gpkg", label=pd.array([None], dtype="Int64")))


@pytest.mark.parametrize(
    "values, shown", [([1, 2, -1], "'-1', '2'"), (["1", "yes", "0"], "'yes'"), ([0.5, 1.0, 0.0], "'0.5'")]
)
def test_non_binary_field_values(tmp_path, values, shown):
    path = write(tmp_path, [mbox(0, 0, 10, 10), mbox(10, 0, 20, 10), mbox(20, 0, 30, 10)], label=values)
    with pytest.raises(InputError, match=f"holds {shown};"):
        read_labels(path)


@pytest.mark.parametrize(
    "geoms",
    [
        [LineString([m(0, 0), m(10, 10)])],
        [Point(*m(5, 5)), mbox(0, 0, 10, 10)],
        [Point(*m(5, 5)).union(LineString([m(0, 0), m(1, 1)]))],
    ],
    ids=["lines", "mixed", "collection"],
)
def test_unsupported_geometry(tmp_path, geoms):
    path = write(tmp_path, geoms, name="bad.geojson")
    with pytest.raises(InputError, match="unsupported geometry"):
        read_labels(path)


def test_labels_for_scenes_refusals(scene_path, tmp_path):
    far = write(tmp_path, [Point(*m(5000, 16))], name="far.gpkg")
    with pytest.raises(InputError, match=r"overlap none of the scenes: labels cover \(405000"):
        labels_for_scenes([scene_path], far, tile_px=T)
    zeros = write(tmp_path, [mbox(0, 0, 64, 64)], name="zeros.gpkg", label=[0])
    with pytest.raises(InputError, match="no landslide label overlaps the scenes"):
        labels_for_scenes([scene_path], zeros, tile_px=T)
    near = write(tmp_path, [Point(*m(16, 16))], name="near.gpkg")
    with pytest.raises(InputError, match="no landslide-free tile: tick some 0 tiles.*--negative-distance"):
        labels_for_scenes([scene_path], near, tile_px=T)  # 100 m reaches the whole 128 m scene
    with pytest.raises(InputError, match="smaller than one 512 px tile"):
        labels_for_scenes([scene_path], near, tile_px=512)


def test_labelset_reprojected_from_scene_crs_only(scene_path):
    # A LabelSet built in code (not read) works the same; labels outside the scene give no tiles.
    gdf = gpd.GeoDataFrame(geometry=[Point(*m(-500, -500))], crs="EPSG:32647")
    assert tiles_of(scene_path, LabelSet(gdf, "points", None), negative_distance_m=20) == {t: 0 for t in ALL_TILES}


def test_overlapping_zero_polygons_are_not_counted_twice(scene_path, tmp_path):
    # Tile (0, 3) spans x 96..128 m: each 0 polygon covers 40 % of it, together only 45 %.
    geoms = [mbox(96, 0, 108.8, 32), mbox(97.6, 0, 110.4, 32), mbox(40, 40, 50, 50), mbox(0, 0, 32, 32)]
    labels = read_labels(write(tmp_path, geoms, label=[0, 0, 1, 0]))
    assert tiles_of(scene_path, labels) == {(1, 1): 1, (0, 0): 0}
    assert tiles_of(scene_path, labels, min_overlap=0.45) == {(1, 1): 1, (0, 0): 0, (0, 3): 0}


def test_geographic_scene_measures_distance_in_metres(tmp_path):
    geo = make_scene(tmp_path / "geo.tif", crs="EPSG:4326", x0=100.0, y0=30.0, px=1e-5)
    gdf = gpd.GeoDataFrame(geometry=[Point(100.0 + 32e-5, 30.0 - 32e-5)], crs="EPSG:4326")
    # 64 px tiles are ~62 m wide and ~71 m high here: (0, 1) and (1, 0) lie within 40 m, (1, 1) beyond.
    got = tiles_of(geo, LabelSet(gdf.to_crs("EPSG:32647"), "points", None), negative_distance_m=40)
    assert got == {**{t: 0 for t in ALL_TILES - {(0, 0), (0, 1), (1, 0)}}, (0, 0): 1}
