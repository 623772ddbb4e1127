import numpy as np
import pytest
import rasterio
from rasterio.enums import ColorInterp
from rasterio.transform import Affine, from_origin
from rasterio.windows import Window

from conftest import write_tif
from landslide_wsss.errors import InputError, OutputError
from landslide_wsss.raster import atomic_output, open_scene, write_geotiff


def test_multiband_float_with_nodata_and_nan(tmp_path):
    data = np.full((4, 20, 30), 5.0, np.float32)
    data[:, :5, :] = -9999
    data[2, 10, 10] = np.nan
    p = write_tif(tmp_path / "f.tif", data, nodata=-9999)
    with open_scene(p, bands=[3, 1]) as sc:
        assert sc.bands == (3, 1) and sc.crs.to_epsg() == 32647
        arr, valid = sc.read(Window(0, 0, 30, 20))
    assert arr.shape == (2, 20, 30) and arr.dtype == np.float32
    assert not valid[:5].any() and valid[5:, :].sum() == 15 * 30 - 1
    assert not valid[10, 10] and arr[:, 10, 10].tolist() == [0.0, 0.0]


@pytest.mark.parametrize("dtype,nodata", [("uint8", 0), ("uint16", 65535), ("float32", -9999.5),
                                           ("float32", float("nan"))])
def test_valid_mask_from_values_is_gdals_mask(tmp_path, dtype, nodata):
    """Where a band's mask is its nodata value, the valid mask comes from the values already read
    (GDAL's mask band would read each band again): the same as GDAL's own masks, for plain files,
    a resampled (warped) scene and windows reaching outside."""
    from landslide_wsss.raster import resampled_scene
    rng = np.random.default_rng(0)
    data = rng.integers(1, 200, (3, 40, 50)).astype(dtype)
    data[0, :8, :] = nodata
    data[1, 20:, 30:] = nodata
    data[2, 5, 5] = nodata
    p = write_tif(tmp_path / "n.tif", data, nodata=nodata)
    with open_scene(p) as sc:
        for scene in (sc, resampled_scene(sc, sc.gsd * 1.7)):
            for win, boundless in ((Window(0, 0, scene.width, scene.height), False), (Window(-7, 3, 40, 45), True)):
                _, valid = scene.read(win, boundless=boundless)
                want = scene._padded(lambda w: scene.dataset.read_masks(scene.bands, window=w), win, boundless)
                want = np.all(want > 0, axis=0)
                if np.dtype(dtype).kind == "f":
                    raw = scene._padded(lambda w: scene.dataset.read(scene.bands, window=w), win, boundless)
                    want &= np.isfinite(raw).all(axis=0)
                np.testing.assert_array_equal(valid, want)
                np.testing.assert_array_equal(scene.read_valid(win, boundless=boundless), want)
                assert 0 < valid.sum() and (valid.sum() < valid.size or scene is not sc and not boundless)


def test_a_nodata_value_the_band_cannot_hold_marks_nothing():
    from landslide_wsss.raster import _as_dtype
    assert _as_dtype(-9999, "uint8") is None and _as_dtype(0.5, "uint16") is None
    assert _as_dtype(65535, "uint16") == 65535 and _as_dtype(0.1, "float32") == np.float32(0.1)


def test_internal_mask_is_respected(tmp_path):
    p = tmp_path / "m.tif"
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True):
        with rasterio.open(p, "w", driver="GTiff", width=16, height=16, count=1, dtype="uint8",
                           crs="EPSG:32647", transform=from_origin(0, 16, 1, 1)) as dst:
            dst.write(np.full((1, 16, 16), 7, np.uint8))
            m = np.full((16, 16), 255, np.uint8)
            m[:, :4] = 0
            dst.write_mask(m)
    with open_scene(p) as sc:
        _, valid = sc.read(Window(0, 0, 16, 16))
    assert not valid[:, :4].any() and valid[:, 4:].all()


@pytest.mark.parametrize("kind", ["internal", "alpha", "nodata"])
def test_a_dataset_mask_is_read_once_and_each_band_mask_per_band(tmp_path, kind):
    from landslide_wsss.radiometry import sample
    from landslide_wsss.raster import mask_bands
    p = tmp_path / f"{kind}.tif"
    data = np.full((3, 16, 16), 7, np.uint8)
    data[1, :, 12:] = 0  # nodata in one band only: its pixels are invalid for the scene
    count = 4 if kind == "alpha" else 3
    kw = {"nodata": 0} if kind == "nodata" else {}
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True):
        with rasterio.open(p, "w", driver="GTiff", width=16, height=16, count=count, dtype="uint8",
                           crs="EPSG:32647", transform=from_origin(0, 16, 1, 1), **kw) as dst:
            dst.write(data, indexes=[1, 2, 3])
            keep = np.full((16, 16), 255, np.uint8)
            keep[:, :4] = 0
            if kind == "alpha":
                dst.write(keep, 4)
                dst.colorinterp = [ColorInterp.red, ColorInterp.green, ColorInterp.blue, ColorInterp.alpha]
            elif kind == "internal":
                dst.write_mask(keep)
    with open_scene(p, bands=(1, 2, 3)) as sc:
        _, valid = sc.read(Window(0, 0, 16, 16))
        expected = np.ones((16, 16), bool)
        if kind == "nodata":
            expected[:, 12:] = False
            assert mask_bands(sc.dataset, sc.bands) == (1, 2, 3)
        else:
            expected[:, :4] = False
            assert mask_bands(sc.dataset, sc.bands) == (1,)
        assert (valid == expected).all()
        assert sample(sc).shape == (3, int(expected.sum()))


def test_boundless_read_marks_outside_invalid(tmp_path):
    p = write_tif(tmp_path / "s.tif", np.full((3, 10, 12), 9, np.uint8))
    with open_scene(p) as sc:
        arr, valid = sc.read(Window(0, 0, 16, 16), boundless=True)
    assert valid[:10, :12].all() and not valid[10:].any() and not valid[:, 12:].any()
    assert arr[:, 12:, :].max() == 0


@pytest.mark.parametrize("case", ["missing", "dir", "empty", "text", "truncated", "nocrs", "rotated", "nogeo", "bands", "tiny"])
def test_bad_inputs_raise_input_error(tmp_path, case):
    p = tmp_path / "x.tif"
    kw = {}
    if case == "missing":
        p = tmp_path / "nope.tif"
    elif case == "dir":
        p = tmp_path
    elif case == "empty":
        p.write_bytes(b"")
    elif case == "text":
        p.write_text("hello, not a raster\n")
    elif case == "truncated":
        write_tif(p, np.ones((3, 64, 64), np.uint8))
        p.write_bytes(p.read_bytes()[:300])
    elif case == "nocrs":
        write_tif(p, np.ones((1, 8, 8), np.uint8), crs=None)
    elif case == "rotated":
        write_tif(p, np.ones((1, 8, 8), np.uint8), transform=Affine(1, 0.2, 0, 0.1, -1, 0))
    elif case == "nogeo":
        with rasterio.open(p, "w", driver="GTiff", width=8, height=8, count=1, dtype="uint8") as dst:
            dst.write(np.ones((1, 8, 8), np.uint8))
    elif case == "bands":
        write_tif(p, np.ones((3, 8, 8), np.uint8))
        kw = {"bands": [1, 4]}
    elif case == "tiny":
        write_tif(p, np.ones((1, 1, 1), np.uint8))
    with pytest.raises(InputError):
        open_scene(p, **kw).close()


def test_assume_crs_accepts_a_raster_without_crs(tmp_path):
    p = write_tif(tmp_path / "n.tif", np.ones((1, 8, 8), np.uint8), crs=None)
    with open_scene(p, assume_crs="EPSG:32647") as sc:
        assert sc.crs.to_epsg() == 32647


def test_atomic_output_leaves_nothing_on_error(tmp_path):
    out = tmp_path / "o.tif"
    with pytest.raises(RuntimeError):
        with atomic_output(out) as tmp:
            tmp.write_bytes(b"partial")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_outputs_refuse_existing_and_missing_dir(tmp_path, utm_scene):
    path, _ = utm_scene
    with open_scene(path) as sc:
        out = write_geotiff(tmp_path / "o.tif", np.zeros((sc.height, sc.width), np.float32), sc)
        with pytest.raises(OutputError):
            write_geotiff(out, np.zeros((sc.height, sc.width), np.float32), sc)
        with pytest.raises(OutputError):
            write_geotiff(tmp_path / "no" / "o.tif", np.zeros((sc.height, sc.width), np.float32), sc)
    with rasterio.open(out) as ds:
        assert ds.crs.to_epsg() == 32647 and ds.profile["compress"] == "deflate"


def test_terrain_is_a_context_manager_with_the_scenes_pixel_size(tmp_path):
    """Terrain's slope run is the scene's own pixel size in metres (one definition, Scene.pixel_size_m),
    also for a CRS in US feet; `with` closes the DSM."""
    import numpy as np
    from rasterio.transform import from_origin
    from rasterio.windows import Window

    from conftest import write_tif
    from landslide_wsss.raster import open_scene, open_terrain
    ramp = np.tile(np.arange(32, dtype=np.float32) * 0.3048, (32, 1))  # rises 0.3048 m per column
    for crs, step in (("EPSG:32647", 1.0), ("EPSG:2229", 1.0)):  # metres; California zone 5, US feet
        img = write_tif(tmp_path / f"s{crs[5:]}.tif", np.full((3, 32, 32), 100, np.uint8), crs=crs,
                        transform=from_origin(1000, 1000, step, step))
        dsm = write_tif(tmp_path / f"d{crs[5:]}.tif", ramp[None], crs=crs, transform=from_origin(1000, 1000, step, step))
        with open_scene(img) as sc, open_terrain(dsm, sc) as t:
            slope = t.read(Window(0, 0, 32, 32))[1]
            px = sc.pixel_size_m[0]
            assert (t.px, t.py) == sc.pixel_size_m
        expected = np.degrees(np.arctan(0.3048 / px))
        assert abs(float(np.median(slope)) - expected) < 0.05
        assert t.ds.closed and t.src.closed
