import geopandas as gpd
import numpy as np
import pyogrio
import pytest

from rasterio.transform import from_origin

from conftest import write_tif
from landslide_wsss.vectorize import empty_frame, vectorize, write_gpkg


def _rasters(tmp_path, mask, crs, transform, score=None):
    m = write_tif(tmp_path / "mask.tif", mask.astype(np.uint8), crs=crs, transform=transform)
    s = write_tif(tmp_path / "score.tif", (mask * 0.8 if score is None else score).astype(np.float32),
                  crs=crs, transform=transform)
    return m, s


def test_polygon_lands_where_the_mask_is_with_hole(tmp_path):
    mask = np.zeros((100, 120), bool)
    mask[20:60, 30:90] = True
    mask[35:45, 50:60] = False  # a hole
    tr = from_origin(500_000.0, 4_000_000.0, 2.0, 2.0)
    m, s = _rasters(tmp_path, mask, "EPSG:32633", tr)
    gdf = vectorize(m, s, scene="t", method="x", model_version="v", simplify_px=0, min_area_m2=0)
    assert len(gdf) == 1
    poly = gdf.geometry.iloc[0]
    assert poly.bounds == pytest.approx((500_060.0, 3_999_880.0, 500_180.0, 3_999_960.0))
    assert len(poly.interiors) == 1
    assert gdf.area_m2.iloc[0] == pytest.approx((40 * 60 - 100) * 4.0)
    assert gdf.score_mean.iloc[0] == pytest.approx(0.8) and gdf.score_max.iloc[0] == pytest.approx(0.8)
    assert gdf.crs.to_epsg() == 32633 and gdf.is_valid.all()


def test_min_area_in_m2_projected(tmp_path):
    mask = np.zeros((50, 50), bool)
    mask[5:10, 5:10] = True  # 25 px * 4 m² = 100 m²
    mask[20:40, 20:40] = True  # 1600 m²
    m, s = _rasters(tmp_path, mask, "EPSG:32647", from_origin(400_000, 3_500_000, 2, 2))
    gdf = vectorize(m, s, scene="t", method="x", model_version="v", simplify_px=0, min_area_m2=500)
    assert len(gdf) == 1 and gdf.area_m2.iloc[0] == pytest.approx(1600)


def test_min_area_in_m2_geographic(tmp_path):
    # 1e-4 degree pixels at the equator: about 11.1 m x 11.1 m.
    mask = np.zeros((40, 40), bool)
    mask[2:4, 2:4] = True  # ~490 m²
    mask[10:30, 10:30] = True  # ~49,000 m²
    m, s = _rasters(tmp_path, mask, "EPSG:4326", from_origin(10.0, 0.002, 1e-4, 1e-4))
    gdf = vectorize(m, s, scene="t", method="x", model_version="v", simplify_px=0, min_area_m2=1000)
    assert len(gdf) == 1
    assert gdf.area_m2.iloc[0] == pytest.approx(400 * 11.13 * 11.06, rel=0.02)
    assert gdf.crs.to_epsg() == 4326


def test_polygon_spanning_strips_is_merged(tmp_path):
    mask = np.zeros((300, 40), bool)
    mask[50:250, 10:30] = True
    m, s = _rasters(tmp_path, mask, "EPSG:32647", from_origin(0, 300, 1, 1))
    gdf = vectorize(m, s, scene="t", method="x", model_version="v", simplify_px=0, strip_rows=64)
    assert len(gdf) == 1 and gdf.area_m2.iloc[0] == pytest.approx(200 * 20)


def test_empty_layer_is_valid_gpkg(tmp_path):
    out = write_gpkg(empty_frame("EPSG:32647"), tmp_path / "e.gpkg")
    info = pyogrio.read_info(out, layer="landslides")
    assert info["features"] == 0 and info["geometry_type"] == "Polygon"
    back = gpd.read_file(out)
    assert back.crs.to_epsg() == 32647 and {"area_m2", "score_mean", "scene", "model_version"} <= set(back.columns)
