"""Imagery from any sensor: radiometry (the same scene in four encodings gives the same masks), band
picking by colour interpretation, CRS options, the evaluate grid check, the resolution warning."""
import json
import warnings

import numpy as np
import pytest
import rasterio
from rasterio.enums import ColorInterp
from rasterio.transform import from_origin

from conftest import ThresholdScorer, blob_scene, write_tif
from landslide_wsss import api
from landslide_wsss.cli import main
from landslide_wsss.errors import InputError, RadiometryWarning, ResolutionWarning
from landslide_wsss.radiometry import full_scale_bits, measure, sample, scene_map
from landslide_wsss.raster import open_scene
from landslide_wsss.sample import make_sample_scene

ENCODINGS = ("uint8", "uint16x16", "uint16x257", "float01")


def encode(data: np.ndarray, valid: np.ndarray, encoding: str):
    """(array, nodata) of uint8 `data` in `encoding` (float: NaN nodata)."""
    if encoding == "uint8":
        return data, 0
    if encoding == "uint16x16":
        return data.astype(np.uint16) * 16, 0
    if encoding == "uint16x257":
        return data.astype(np.uint16) * 257, 0
    out = (data / 255.0).astype(np.float32)
    out[:, ~valid] = np.nan
    return out, float("nan")


@pytest.fixture(scope="module")
def encoded_scenes(tmp_path_factory):
    """The synthetic sample scene (0.5 m, uint8 RGB, nodata 0) in the four encodings."""
    d = tmp_path_factory.mktemp("encodings")
    src, _ = make_sample_scene(d / "sample.tif", size=384)
    with rasterio.open(src) as ds:
        data, profile = ds.read(), ds.profile
        valid = np.all(ds.read_masks() > 0, axis=0)
    paths = {}
    for enc in ENCODINGS:
        arr, nodata = encode(data, valid, enc)
        paths[enc] = d / f"{enc}.tif"
        with rasterio.open(paths[enc], "w", **dict(profile, dtype=arr.dtype, nodata=nodata)) as dst:
            dst.write(arr)
    return paths


def iou(a, b):
    return (a & b).sum() / max((a | b).sum(), 1)


def test_four_encodings_give_the_same_mask_with_the_default_model(encoded_scenes):
    masks = {}
    for enc, path in encoded_scenes.items():
        with warnings.catch_warnings():
            warnings.simplefilter("error", RadiometryWarning)  # the rule maps each onto the training values
            _, pred, valid = api.predict_scene(path, device="cpu")
        masks[enc] = pred & valid
    assert masks["uint8"].sum() > 500  # the model marks something, so the comparison means something
    for enc in ENCODINGS[1:]:
        assert iou(masks[enc], masks["uint8"]) >= 0.98, enc


def test_without_the_rule_the_encodings_differ(encoded_scenes):
    """What the package did before the radiometry step: float marks nothing, uint16 nearly everything."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _, f, v = api.predict_scene(encoded_scenes["float01"], device="cpu", radiometry="none")
        _, u, _ = api.predict_scene(encoded_scenes["uint16x16"], device="cpu", radiometry="none")
    assert not (f & v).any()
    assert (u & v).mean() > 0.9
    assert sum(issubclass(w.category, RadiometryWarning) for w in caught) == 2  # one per scene


def test_uint8_scene_is_untouched(encoded_scenes):
    s_auto, m_auto, _ = api.predict_scene(encoded_scenes["uint8"], device="cpu")
    s_none, m_none, _ = api.predict_scene(encoded_scenes["uint8"], device="cpu", radiometry="none")
    assert np.array_equal(s_auto, s_none) and np.array_equal(m_auto, m_none)


def test_stretch_maps_onto_the_training_percentiles(encoded_scenes):
    from landslide_wsss.radiometry import model_record
    rec = model_record()
    with open_scene(encoded_scenes["uint16x257"]) as sc:
        values = sample(sc)
        bmap = scene_map(sc, "stretch", rec, values)
    mapped = bmap.apply_values(values)
    lo, hi = np.percentile(mapped, [1, 99], axis=1)
    np.testing.assert_allclose(lo, rec["p1"], atol=1.0)
    np.testing.assert_allclose(hi, rec["p99"], atol=1.0)


@pytest.mark.parametrize("dtype,vmax,nbits,divisor", [
    ("uint16", 4080, None, 16), ("uint16", 65535, None, 257), ("uint16", 1000, None, 4), ("uint16", 255, None, 1),
    ("uint16", 900, 12, 16), ("int16", 16000, None, 64), ("float32", 1.0, None, 1 / 255), ("float32", 250.0, None, 1),
])
def test_auto_rule_divisors(tmp_path, dtype, vmax, nbits, divisor):
    data = np.linspace(0, vmax, 3 * 40 * 40).reshape(3, 40, 40).astype(dtype)
    path = write_tif(tmp_path / "s.tif", data, **({"nbits": nbits} if nbits else {}))
    with open_scene(path) as sc:
        bmap = scene_map(sc, "auto", None)
    assert bmap.divisor == pytest.approx((divisor,) * 3)
    assert full_scale_bits(4095) == 12 and full_scale_bits(4096) == 13 and full_scale_bits(3) == 8


def test_measure_record():
    rng = np.random.default_rng(0)
    imgs = [rng.integers(10, 200, size=(3, 50, 50)).astype(np.uint8) for _ in range(3)]
    rec = measure(imgs)
    assert rec["p1"][0] == pytest.approx(12, abs=1.5) and rec["p99"][0] == pytest.approx(198, abs=1.5)
    assert rec["mean"][0] == pytest.approx(np.mean([i[0].mean() for i in imgs]), abs=0.01)
    assert rec["pixels"] == 3 * 50 * 50 and rec["bands"] == ["red", "green", "blue"]


def _dark_16bit_scene(path):
    """A 16-bit product whose content uses a sliver of its range (a hot pixel at 65535): auto divides
    by 257 and leaves it nearly black."""
    data, _ = blob_scene(h=200, w=200)
    arr = 400 + data.astype(np.uint16) * 4
    arr[:, 0, 0] = 65535
    return write_tif(path, arr, transform=from_origin(400_000.0, 3_500_000.0, 1.0, 1.0))


def test_warning_fires_once_on_an_out_of_range_scene(tmp_path, capsys):
    scene = _dark_16bit_scene(tmp_path / "dark.tif")
    rc = main(["detect", str(scene), "-o", str(tmp_path / "o.gpkg"), "--quiet", "--device", "cpu"])
    err = capsys.readouterr().err
    assert rc == 0
    lines = [ln for ln in err.splitlines() if ln.startswith("warning:")]
    assert len(lines) == 1 and "outside what the model was trained on" in lines[0], err
    assert "--radiometry stretch" in lines[0]
    rc = main(["detect", str(scene), "-o", str(tmp_path / "s.gpkg"), "--quiet", "--device", "cpu",
               "--radiometry", "stretch"])
    assert rc == 0 and "warning:" not in capsys.readouterr().err


@pytest.mark.parametrize("argv", [
    ["detect", "{scene}", "-o", "{out}", "--radiometry", "linear"],
    ["evaluate", "scene", "--image", "{scene}", "--mask", "{scene}", "--radiometry", "x"],
    ["train", "weak", "--image", "{scene}", "--labels", "{scene}", "-o", "{out}", "--radiometry", "x"],
    ["detect", "{scene}", "-o", "{out}", "--target-crs", "EPSG:99999999"],
    ["detect", "{scene}", "-o", "{out}", "--assume-crs", "not a crs"],
    ["detect", "{dir}", "-o", "{out}", "--target-crs", "nonsense"],
])
def test_bad_option_values_exit_2_and_write_nothing(tmp_path, capsys, utm_scene, argv):
    out = tmp_path / "out" / "o.gpkg"
    out.parent.mkdir()
    scene = utm_scene[0]
    argv = [a.format(scene=scene, out=out, dir=scene.parent) for a in argv]
    with pytest.raises(SystemExit) as exc_info:
        raise SystemExit(main(argv))
    assert exc_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:"), err
    assert not any(out.parent.iterdir())


def test_api_checks_radiometry_and_crs(utm_scene):
    with pytest.raises(InputError, match="--radiometry"):
        api.detect(utm_scene[0], None, model=ThresholdScorer(), radiometry="bogus")
    with pytest.raises(InputError, match="--target-crs"):
        api.detect(utm_scene[0], None, model=ThresholdScorer(), target_crs="EPSG:0")


def test_target_crs_reprojects_a_single_scene(utm_scene, tmp_path):
    out = tmp_path / "o.gpkg"
    gdf = api.detect(utm_scene[0], out, model=ThresholdScorer(), target_crs="EPSG:4326", min_area_m2=0)
    assert len(gdf) and gdf.crs.to_epsg() == 4326
    import geopandas as gpd
    assert gpd.read_file(out).crs.to_epsg() == 4326
    lon, lat = gdf.geometry.iloc[0].centroid.coords[0]
    assert 90 < lon < 100 and 25 < lat < 35  # UTM 47N around (400 km, 3500 km)


# ---------------------------------------------------------------------------------------------
# bands


def _four_band(path, interp):
    data, mask = blob_scene(bands=3)
    nir = np.full(data.shape[1:], 250, np.uint8)  # a bright NIR band: the brightness scorer would mark all with it
    bgrn = np.stack([data[2], data[1], data[0], nir])
    write_tif(path, bgrn, nodata=0, photometric="MINISBLACK")  # GDAL would call a 4-band byte file RGBA
    with rasterio.open(path, "r+") as ds:
        ds.colorinterp = [ColorInterp.blue, ColorInterp.green, ColorInterp.red, ColorInterp.undefined] if interp \
            else [ColorInterp.gray] + [ColorInterp.undefined] * 3
    return path, mask


def test_four_bands_pick_rgb_by_colour_interpretation(tmp_path, caplog):
    path, mask = _four_band(tmp_path / "bgrn.tif", interp=True)
    with caplog.at_level("INFO", logger="landslide_wsss"):
        _, pred, _ = api.predict_scene(path, ThresholdScorer())
    _, chosen, _ = api.predict_scene(path, ThresholdScorer(), bands=[3, 2, 1])
    assert np.array_equal(pred, chosen) and iou(pred, mask) > 0.9
    picked = [r.getMessage() for r in caplog.records if "colour interpretation" in r.getMessage()]
    assert len(picked) == 1 and "3,2,1" in picked[0]


def test_four_bands_without_colour_interpretation_ask_for_bands(tmp_path):
    path, _ = _four_band(tmp_path / "plain.tif", interp=False)
    with pytest.raises(InputError, match="--bands"):
        api.predict_scene(path, ThresholdScorer())


# ---------------------------------------------------------------------------------------------
# evaluate scene: bands and the grid check


def _mask_file(path, mask, crs="EPSG:32647", transform=None):
    return write_tif(path, mask.astype(np.uint8), crs=crs, transform=transform)


def test_evaluate_scene_takes_bands_and_aligns_a_reprojected_mask(tmp_path, capsys):
    from landslide_wsss.evaluation import evaluate_scene
    path, mask = _four_band(tmp_path / "bgrn.tif", interp=False)
    ref = _mask_file(tmp_path / "mask.tif", mask)
    same = evaluate_scene(path, ref, model=ThresholdScorer(), bands=[3, 2, 1])
    assert same["iou"] > 0.9
    # the same mask in EPSG:4326 (as a user might have it): aligned by nearest, same figure within a few %
    from rasterio.warp import calculate_default_transform, reproject
    with rasterio.open(ref) as ds:
        tr, w, h = calculate_default_transform(ds.crs, "EPSG:4326", ds.width, ds.height, *ds.bounds)
        geo = np.full((h, w), 255, np.uint8)
        reproject(ds.read(1), geo, src_transform=ds.transform, src_crs=ds.crs, dst_transform=tr, dst_crs="EPSG:4326",
                  dst_nodata=255)
    geo_path = write_tif(tmp_path / "mask4326.tif", geo, crs="EPSG:4326", transform=tr, nodata=255)
    moved = evaluate_scene(path, geo_path, model=ThresholdScorer(), bands=[3, 2, 1])
    assert abs(moved["iou"] - same["iou"]) < 0.05
    rc = main(["evaluate", "scene", "--image", str(path), "--mask", str(ref), "--bands", "3,2,1", "--json",
               "--device", "cpu"])
    assert rc == 0
    assert 0 <= json.loads(capsys.readouterr().out)["iou"] <= 1


@pytest.mark.parametrize("case", ["elsewhere", "no-crs-other-size"])
def test_evaluate_scene_refuses_a_mask_it_cannot_align(tmp_path, capsys, utm_scene, case):
    scene, mask = utm_scene
    if case == "elsewhere":
        ref = _mask_file(tmp_path / "m.tif", mask, transform=from_origin(600_000.0, 3_500_000.0, 2.0, 2.0))
    else:
        ref = _mask_file(tmp_path / "m.tif", mask[:100], crs=None)
    rc = main(["evaluate", "scene", "--image", str(scene), "--mask", str(ref), "--json", "--device", "cpu"])
    captured = capsys.readouterr()
    assert rc == 2 and captured.out == ""
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "mask" in err[0]


# ---------------------------------------------------------------------------------------------
# resolution


class WorkingGsdScorer(ThresholdScorer):
    gsd = 1.0


@pytest.mark.parametrize("pixel,warns", [(0.5, False), (1.0, False), (2.0, False), (0.05, True), (3.0, True)])
def test_resolution_warning(tmp_path, pixel, warns):
    data, _ = blob_scene(h=120, w=120)
    path = write_tif(tmp_path / "s.tif", data, nodata=0, transform=from_origin(400_000.0, 3_500_000.0, pixel, pixel))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        api.predict_scene(path, WorkingGsdScorer())
    found = [w for w in caught if issubclass(w.category, ResolutionWarning)]
    assert len(found) == (1 if warns else 0)
