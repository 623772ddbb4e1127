"""The bad-input corpus: each case exits 2 with one `error:` line and writes nothing (CLI), or raises
the typed exception (API). All-nodata input is not an error: exit 0, empty layer, a warning."""
import os
import pickle

import numpy as np
import pyogrio
import pytest
import rasterio
from hypothesis import given, settings, strategies as st
from rasterio.transform import Affine, from_origin

from conftest import blob_scene, write_tif
from landslide_wsss import api
from landslide_wsss.cli import main
from landslide_wsss.errors import InputError, LandslideWSSSError, ModelError, OutputError
from landslide_wsss.vectorize import vectorize


def _good(path):
    data, _ = blob_scene(h=64, w=64)
    return write_tif(path, data, nodata=0)


def _case(case, tmp_path, model):
    """Build the case in tmp_path/in; return (argv, expected exception type)."""
    src = tmp_path / "in"
    src.mkdir()
    out = tmp_path / "out" / "o.gpkg"
    out.parent.mkdir()
    scene = src / "x.tif"
    extra, exc = [], InputError
    if case == "missing":
        scene = src / "missing.tif"
    elif case == "dir-without-rasters":
        scene = src
        (src / "notes.txt").write_text("x")
    elif case == "text-file":
        scene.write_text("not a raster")
    elif case == "empty-file":
        scene.write_bytes(b"")
    elif case == "truncated":
        write_tif(scene, np.ones((3, 300, 300), np.uint8))
        scene.write_bytes(scene.read_bytes()[:2000])
    elif case == "no-crs":
        write_tif(scene, blob_scene(h=64, w=64)[0], crs=None)
    elif case == "no-geotransform":
        with rasterio.open(scene, "w", driver="GTiff", width=64, height=64, count=3, dtype="uint8") as d:
            d.write(np.ones((3, 64, 64), np.uint8))
    elif case == "rotated":
        write_tif(scene, blob_scene(h=64, w=64)[0], transform=Affine(2, 0.5, 4e5, 0.5, -2, 3.5e6))
    elif case == "band-count":
        write_tif(scene, np.ones((2, 64, 64), np.uint8))
    elif case == "band-choice":
        _good(scene)
        extra = ["--bands", "1,2,5"]
    elif case == "one-pixel":
        write_tif(scene, np.ones((3, 1, 1), np.uint8))
    elif case == "absurd-size":
        with rasterio.open(scene, "w", driver="GTiff", width=300_000, height=300_000, count=3, dtype="uint8",
                           crs="EPSG:32647", transform=from_origin(0, 0, 1, 1), tiled=True, SPARSE_OK=True,
                           BIGTIFF="YES") as d:
            pass
    elif case == "mixed-crs":
        scene = src
        _good(src / "a.tif")
        write_tif(src / "b.tif", blob_scene(h=64, w=64)[0], crs="EPSG:4326", transform=from_origin(98, 31, 1e-5, 1e-5))
    elif case == "output-exists":
        _good(scene)
        out.write_bytes(b"precious")
        exc = OutputError
    elif case == "output-dir-missing":
        _good(scene)
        out = tmp_path / "out" / "nowhere" / "o.gpkg"
        exc = OutputError
    elif case == "output-dir-is-a-file":
        _good(scene)
        (tmp_path / "out" / "afile").write_text("x")
        out = tmp_path / "out" / "afile" / "o.gpkg"
        exc = OutputError
    elif case in OPTION_CASES:
        _good(scene)
        extra = OPTION_CASES[case][0]
    elif case == "output-is-a-directory":
        _good(scene)
        out = tmp_path / "out" / "adir.gpkg"
        out.mkdir()
        exc = OutputError
    elif case in ("dsm-no-overlap", "dsm-no-crs"):
        _good(scene)
        dsm = src / "dsm.tif"
        z = np.full((64, 64), 3000.0, np.float32)
        if case == "dsm-no-crs":
            write_tif(dsm, z, crs=None)
        else:
            write_tif(dsm, z, transform=from_origin(600_000.0, 3_000_000.0, 2.0, 2.0))
        extra = ["--dsm", str(dsm)]
    elif case in ("model-corrupt", "model-pickle", "model-wrong-arch", "model-missing"):
        _good(scene)
        bad = src / "bad.safetensors"
        if case == "model-corrupt":
            bad.write_bytes(os.urandom(4096))
        elif case == "model-pickle":
            bad.write_bytes(pickle.dumps({"weights": np.zeros(3)}))
        elif case == "model-wrong-arch":
            from landslide_wsss.checkpoint import load_checkpoint, save_checkpoint

            t, meta = load_checkpoint(model)
            t.pop("student.net.segmentation_head.0.weight")
            save_checkpoint(bad, t, {k: v for k, v in meta.items() if k != "format"})
        else:
            bad = src / "nope.safetensors"
        model = bad
        exc = ModelError
    argv = ["detect", str(scene), "-o", str(out), "--model", str(model), "--quiet", *extra]
    return argv, exc, out


# option cases: CLI arguments and the same options for the API
OPTION_CASES = {
    "tile-zero": (["--tile", "0"], {"tile": 0}),
    "tile-not-multiple": (["--tile", "100"], {"tile": 100}),
    "overlap-negative": (["--overlap", "-4"], {"overlap": -4}),
    "overlap-too-big": (["--tile", "64", "--overlap", "40"], {"tile": 64, "overlap": 40}),
    "min-area-negative": (["--min-area", "-1"], {"min_area_m2": -1.0}),
    "threshold-above-1": (["--threshold", "1.5"], {"threshold": 1.5}),
    "bands-zero": (["--bands", "0,1,2"], {"bands": [0, 1, 2]}),
    "simplify-negative": (["--simplify", "-2"], {"simplify_px": -2.0}),
    "batch-size-zero": (["--batch-size", "0"], {"batch_size": 0}),
}

CASES = list(OPTION_CASES) + ["output-is-a-directory", "dsm-no-overlap", "dsm-no-crs", "missing", "dir-without-rasters", "text-file", "empty-file", "truncated", "no-crs", "no-geotransform",
         "rotated", "band-count", "band-choice", "one-pixel", "absurd-size", "mixed-crs", "output-exists",
         "output-dir-missing", "output-dir-is-a-file", "model-corrupt", "model-pickle", "model-wrong-arch",
         "model-missing"]


@pytest.mark.parametrize("case", CASES)
def test_cli_bad_input(case, tmp_path, tiny_model_path, capsys):
    argv, _, out = _case(case, tmp_path, tiny_model_path)
    capsys.readouterr()  # drop what building the case printed (GDAL warnings of the fixtures)
    before = sorted(p.name for p in out.parent.iterdir()) if out.parent.is_dir() else None
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "Traceback" not in err[0]
    after = sorted(p.name for p in out.parent.iterdir()) if out.parent.is_dir() else None
    assert after == before  # nothing written, nothing half-written
    if case == "output-exists":
        assert out.read_bytes() == b"precious"


@pytest.mark.parametrize("case", CASES)
def test_api_bad_input_raises_typed_error(case, tmp_path, tiny_model_path):
    argv, exc, out = _case(case, tmp_path, tiny_model_path)
    scene = argv[1]
    kwargs = {"bands": [1, 2, 5]} if case == "band-choice" else dict(OPTION_CASES.get(case, ([], {}))[1])
    if "--dsm" in argv:
        kwargs["dsm"] = argv[argv.index("--dsm") + 1]
    call = api.detect_directory if os.path.isdir(scene) else api.detect
    with pytest.raises(exc) as info:
        call(scene, out, model=argv[5], **kwargs)
    assert isinstance(info.value, LandslideWSSSError)


def test_assume_crs_makes_a_crs_less_raster_usable(tmp_path, tiny_model_path):
    p = write_tif(tmp_path / "n.tif", blob_scene(h=64, w=64)[0], crs=None)
    out = tmp_path / "o.gpkg"
    assert main(["detect", str(p), "-o", str(out), "--model", str(tiny_model_path), "--quiet",
                 "--assume-crs", "EPSG:32647"]) == 0
    assert pyogrio.read_info(out)["crs"] == "EPSG:32647"


def test_all_nodata_exits_0_with_empty_layer_and_warning(tmp_path, tiny_model_path, capsys):
    p = write_tif(tmp_path / "z.tif", np.zeros((3, 64, 64), np.uint8), nodata=0)
    out = tmp_path / "z.gpkg"
    assert main(["detect", str(p), "-o", str(out), "--model", str(tiny_model_path), "--quiet"]) == 0
    assert "warning:" in capsys.readouterr().err
    assert pyogrio.read_info(out)["features"] == 0


def test_nan_only_scene_is_empty_not_an_error(tmp_path, tiny_model_path):
    p = write_tif(tmp_path / "nan.tif", np.full((3, 40, 40), np.nan, np.float32))
    with pytest.warns(api.NothingToDetect):
        gdf = api.detect(p, tmp_path / "nan.gpkg", model=str(tiny_model_path))
    assert len(gdf) == 0


def test_detection_is_deterministic(tmp_path, tiny_model_path):
    data, _ = blob_scene(h=200, w=200)
    p = write_tif(tmp_path / "s.tif", data, nodata=0)
    a = api.detect(p, model=str(tiny_model_path), min_area_m2=0)
    b = api.detect(p, model=str(tiny_model_path), min_area_m2=0)
    assert len(a) == len(b) and all(x.equals(y) for x, y in zip(a.geometry, b.geometry))
    assert np.array_equal(a.score_mean.to_numpy(), b.score_mean.to_numpy())


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(8, 60), st.integers(8, 60))
def test_vectorize_polygons_valid_and_areas_add_up(tmp_path_factory, seed, h, w):
    rng = np.random.default_rng(seed)
    mask = rng.random((h, w)) < rng.uniform(0.05, 0.7)
    tmp = tmp_path_factory.mktemp("v")
    tr = from_origin(300_000, 3_000_000, 2, 2)
    m = write_tif(tmp / "m.tif", mask.astype(np.uint8), transform=tr)
    s = write_tif(tmp / "s.tif", mask.astype(np.float32), transform=tr)
    gdf = vectorize(m, s, scene="p", method="m", model_version="v", simplify_px=0, min_area_m2=0, strip_rows=16)
    assert gdf.is_valid.all()
    assert gdf.area_m2.sum() == pytest.approx(mask.sum() * 4.0, rel=1e-6, abs=1e-6)


def test_model_card_refuses_an_existing_file_without_overwrite(tmp_path, tiny_model_path, capsys):
    card = tmp_path / "CARD.md"
    card.write_text("mine")
    assert main(["model-card", "--model", str(tiny_model_path), "-o", str(card)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "--overwrite" in err[0]
    assert card.read_text() == "mine"
    assert main(["model-card", "--model", str(tiny_model_path), "-o", str(card), "--overwrite"]) == 0
    assert card.read_text().startswith("# Model card")
