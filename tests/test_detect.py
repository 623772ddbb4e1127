import json
import os
import pickle
import subprocess
import sys

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
from rasterio.transform import from_origin

from conftest import SHARED_DATA, ThresholdScorer, blob_scene, realdata, write_tif
from tiny_models import version as tiny_version, write_tiny_model
from landslide_wsss import api
from landslide_wsss.cli import main
from landslide_wsss.errors import InputError, ModelError


def test_detect_puts_polygons_on_the_scars_utm(tmp_path):
    data, mask = blob_scene(h=300, w=260, boxes=((60, 60, 140, 120), (200, 180, 260, 240)))
    p = write_tif(tmp_path / "s.tif", data, nodata=0, transform=from_origin(400_000, 3_500_000, 2, 2))
    out = tmp_path / "o.gpkg"
    gdf = api.detect(p, out, model=ThresholdScorer(), tile=64, overlap=16, simplify_px=0, min_area_m2=0)
    assert len(gdf) == 2
    gdf = gdf.sort_values("area_m2", ascending=False)
    b = gdf.geometry.iloc[0].bounds
    assert b == pytest.approx((400_000 + 60 * 2, 3_500_000 - 140 * 2, 400_000 + 120 * 2, 3_500_000 - 60 * 2))
    assert gdf.area_m2.iloc[0] == pytest.approx(80 * 60 * 4)
    back = gpd.read_file(out)
    assert back.crs.to_epsg() == 32647 and len(back) == 2 and set(back.scene) == {"s"}
    assert set(back.method) == {"brightness"} and (back.score_mean > 0.8).all()


def test_detect_geographic_scene_keeps_crs_and_min_area_in_m2(tmp_path):
    data, _ = blob_scene(h=120, w=100, boxes=((10, 10, 60, 50), (80, 80, 83, 83)))
    p = write_tif(tmp_path / "g.tif", data, crs="EPSG:4326", transform=from_origin(98.7, 31.1, 5e-5, 5e-5), nodata=0)
    gdf = api.detect(p, tmp_path / "g.gpkg", model=ThresholdScorer(), tile=64, overlap=8, min_area_m2=500)
    assert len(gdf) == 1  # the 3x3 px blob (9 px of ~26 m² = ~240 m²) is dropped by the m² rule
    assert gpd.read_file(tmp_path / "g.gpkg").crs.to_epsg() == 4326


def test_scene_smaller_than_a_tile_is_padded_not_skipped(tmp_path):
    data, _ = blob_scene(h=40, w=30, boxes=((5, 5, 25, 20),))
    p = write_tif(tmp_path / "small.tif", data, nodata=0)
    gdf = api.detect(p, model=ThresholdScorer(), tile=64, overlap=0, simplify_px=0, min_area_m2=0)
    assert len(gdf) == 1 and gdf.area_m2.iloc[0] == pytest.approx(20 * 15 * 4)


def test_nodata_region_gives_no_polygon(tmp_path):
    data, _ = blob_scene(h=128, w=128, boxes=((10, 10, 50, 50),))
    data[:, :, 64:] = 0  # nodata half, and a 'bright' nodata value would be ignored too
    p = write_tif(tmp_path / "n.tif", data, nodata=0)
    gdf = api.detect(p, model=ThresholdScorer(), tile=64, overlap=16, min_area_m2=0)
    assert len(gdf) == 1 and gdf.total_bounds[2] <= 400_000 + 64 * 2


def test_all_nodata_scene_gives_empty_layer_and_warning(tmp_path):
    p = write_tif(tmp_path / "z.tif", np.zeros((3, 50, 50), np.uint8), nodata=0)
    with pytest.warns(api.NothingToDetect):
        gdf = api.detect(p, tmp_path / "z.gpkg", model=ThresholdScorer(), tile=32)
    assert len(gdf) == 0 and pyogrio.read_info(tmp_path / "z.gpkg")["features"] == 0


def test_band_mismatch_is_input_error(tmp_path, tiny_model_path):
    # no colour interpretation (GDAL would call a plain 4-band byte file RGBA, and red/green/blue are then picked)
    p = write_tif(tmp_path / "b.tif", np.ones((4, 32, 32), np.uint8), photometric="MINISBLACK")
    with pytest.raises(InputError, match="band"):
        api.detect(p, model=str(tiny_model_path))
    gdf = api.detect(p, model=str(tiny_model_path), bands=[1, 2, 3], tile=32)  # choosing bands fits
    assert gdf.crs.to_epsg() == 32647


def test_tiny_model_runs_end_to_end_through_the_cli_on_onnxruntime(tmp_path, utm_scene, tiny_model_path):
    path, _ = utm_scene
    out, png = tmp_path / "o.gpkg", tmp_path / "o.png"
    rc = main(["detect", str(path), "-o", str(out), "--model", str(tiny_model_path), "--quiet",
               "--threshold", "0.3", "--min-area", "0", "--preview", str(png)])
    assert rc == 0 and out.exists() and png.stat().st_size > 1000
    gdf = gpd.read_file(out)
    assert gdf.crs.to_epsg() == 32647 and gdf.is_valid.all()
    assert len(gdf) and set(gdf.model_version) == {tiny_version(0)} and set(gdf.method) == {"student"}
    assert api.load_scoring_model(str(tiny_model_path)).runtime == "onnx"  # the CLI's default runtime here


def test_student_only_model_file_runs_the_student_alone(tiny_model_path):
    assert api.load_scoring_model(str(tiny_model_path), runtime="torch").name == "student"
    with pytest.raises(ModelError, match="not a weakly supervised classifier"):
        api.load_scoring_model(str(tiny_model_path), method="gradcam")
    with pytest.raises(ModelError, match="has none"):
        api.load_scoring_model(str(tiny_model_path), method="unet")


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "landslide_wsss.cli", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, timeout=120)


def test_cli_missing_file_exit_2_and_no_output(tmp_path, tiny_model_path):
    out = tmp_path / "o.gpkg"
    r = _cli("detect", tmp_path / "missing.tif", "-o", out, "--model", tiny_model_path)
    assert r.returncode == 2
    assert r.stderr.startswith("error:") and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert list(tmp_path.iterdir()) == [tiny_model_path]


def test_cli_jsonl_events_and_existing_output(tmp_path, utm_scene, tiny_model_path):
    path, _ = utm_scene
    out = tmp_path / "o.gpkg"
    r = _cli("detect", path, "-o", out, "--model", tiny_model_path, "--jsonl", "--tile", "64")
    assert r.returncode == 0, r.stderr
    events = [json.loads(l) for l in r.stdout.splitlines()]
    assert events[0]["event"] == "progress" and events[-1]["event"] == "result"
    assert events[-1]["crs"] == "EPSG:32647" and events[-1]["features"] == len(gpd.read_file(out))
    assert max(e["percent"] for e in events if e["event"] == "progress") == 100.0
    before = out.read_bytes()
    r = _cli("detect", path, "-o", out, "--model", tiny_model_path, "--jsonl")
    assert r.returncode == 2 and "--overwrite" in r.stderr and out.read_bytes() == before
    assert json.loads(r.stdout.splitlines()[-1])["event"] == "error"


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def test_pickle_disguised_as_weights_is_refused(tmp_path, utm_scene):
    path, _ = utm_scene
    evil = tmp_path / "evil.safetensors"
    evil.write_bytes(pickle.dumps(_Evil()))
    r = _cli("detect", path, "-o", tmp_path / "o.gpkg", "--model", evil, cwd=tmp_path)
    assert r.returncode == 2 and "safetensors" in r.stderr
    assert not (tmp_path / "PWNED").exists() and not (tmp_path / "o.gpkg").exists()
    with pytest.raises(ModelError):
        api.load_scoring_model(str(evil))


def test_wrong_architecture_tensors_are_refused(tmp_path, tiny_model_path):
    from landslide_wsss.checkpoint import load_checkpoint, save_checkpoint

    tensors, meta = load_checkpoint(tiny_model_path)
    key = "student.net.encoder.conv1.weight"
    tensors[key] = tensors[key][:, :2]
    bad = tmp_path / "bad.safetensors"
    save_checkpoint(bad, tensors, {k: v for k, v in meta.items() if k != "format"})
    with pytest.raises(ModelError, match="shape"):
        api.load_scoring_model(str(bad), runtime="torch")


def test_detect_directory_one_layer_with_scene_attribute(tmp_path):
    d = tmp_path / "scenes"
    d.mkdir()
    for k in range(3):
        data, _ = blob_scene(h=100, w=90, boxes=((10 + k, 10, 50, 40),), seed=k)
        write_tif(d / f"s{k}.tif", data, nodata=0)
    model = write_tiny_model(tmp_path / "m.safetensors", tile_size=64, threshold=0.0)
    out = tmp_path / "all.gpkg"
    gdf = api.detect_directory(d, out, model=model, min_area_m2=0)
    assert set(gdf.scene) == {"s0", "s1", "s2"}
    assert pyogrio.list_layers(out).tolist() == [["landslides", "Polygon"]]
    assert not (tmp_path / "all.gpkg.parts").exists()


def test_detect_directory_refuses_mixed_crs_unless_target_given(tmp_path, tiny_model_path):
    d = tmp_path / "mixed"
    d.mkdir()
    data, _ = blob_scene(h=64, w=64)
    write_tif(d / "a.tif", data, crs="EPSG:32647")
    write_tif(d / "b.tif", data, crs="EPSG:4326", transform=from_origin(98.7, 31.1, 5e-5, 5e-5))
    with pytest.raises(InputError, match="different CRSs"):
        api.detect_directory(d, tmp_path / "o.gpkg", model=tiny_model_path)
    gdf = api.detect_directory(d, tmp_path / "o.gpkg", model=tiny_model_path, target_crs="EPSG:32647")
    assert gdf.crs.to_epsg() == 32647


def test_empty_directory_is_input_error(tmp_path):
    (tmp_path / "empty").mkdir()
    assert main(["detect", str(tmp_path / "empty"), "-o", str(tmp_path / "o.gpkg")]) == 2


@realdata
@pytest.mark.realdata
def test_detect_on_real_amunet_area_a(tmp_path, tiny_model_path):
    scene = SHARED_DATA / "amunet" / "areaA_rgb.tif"
    out = tmp_path / "a.gpkg"
    rc = main(["detect", str(scene), "-o", str(out), "--model", str(tiny_model_path), "--quiet", "--threshold", "0.45"])
    assert rc == 0
    info = pyogrio.read_info(out, layer="landslides")
    assert info["crs"] == "EPSG:32647"
    gdf = gpd.read_file(out)
    assert len(gdf) and gdf.is_valid.all() and (gdf.area_m2 >= 100).all()  # polygons, none below the default min area


# ---------------------------------------------------------------------------------------------
# the weakly supervised models end to end: a tiny trained classifier (+ a hand-set generator)


def _scar_scene(tmp_path, box=(24, 24, 44, 44)):
    data, mask = blob_scene(h=128, w=128, boxes=(box,), seed=3)
    return write_tif(tmp_path / "scar.tif", data, nodata=0), mask


def test_detect_gradcam_cyclegan_finds_the_scar(tmp_path, weak_model_file):
    import rasterio

    scene, scar = _scar_scene(tmp_path)
    out, score_tif = tmp_path / "o.gpkg", tmp_path / "score.tif"
    gdf = api.detect(scene, out, model=weak_model_file, method="gradcam-cyclegan", device="cpu",
                     score_raster=score_tif, min_area_m2=0, simplify_px=0)
    assert set(gpd.read_file(out).method) == {"gradcam-cyclegan"} and len(gdf) >= 1
    with rasterio.open(score_tif) as src:
        score = src.read(1)
    from scipy import ndimage

    away = ~ndimage.binary_dilation(scar, iterations=2)  # 2 px off the scar: past the 1 px smoothing
    assert score[scar].mean() > 0.8 and score[away].max() < 0.5  # the fused score is high on the scar only
    x0, y1 = 400_000 + 24 * 2, 3_500_000 - 24 * 2  # the scar, rows/cols 24..44 at 2 m
    x1, y0 = 400_000 + 44 * 2, 3_500_000 - 44 * 2
    from shapely.geometry import box

    scar_poly = box(x0, y0, x1, y1)
    hit = gdf.geometry.intersection(scar_poly).area.sum()
    assert hit > 0.8 * scar_poly.area  # the polygons cover the scar ...
    assert gdf.geometry.area.sum() < 1.5 * scar_poly.area  # ... and little else


def test_threshold_override_reaches_the_weak_scorer(tmp_path, weak_model_file):
    from landslide_wsss.wsss import load_model

    scene, _ = _scar_scene(tmp_path)
    scorer = load_model(weak_model_file, method="gradcam", device="cpu")
    before = scorer.threshold
    assert len(api.detect(scene, model=scorer, min_area_m2=0)) >= 1  # its own threshold finds the scar
    assert len(api.detect(scene, model=scorer, threshold=1.0, min_area_m2=0)) == 0  # score > 1 never holds
    assert main(["detect", str(scene), "-o", str(tmp_path / "hi.gpkg"), "--model", str(weak_model_file),
                 "--method", "gradcam", "--quiet", "--min-area", "0", "--threshold", "1.0"]) == 0
    assert pyogrio.read_info(tmp_path / "hi.gpkg")["features"] == 0
    assert scorer.threshold == before  # the override works on a copy


def test_scene_stats_given_to_fuse_count_every_valid_pixel(tmp_path):
    data, _ = blob_scene(h=300, w=200)
    data[:, :50] = 0  # nodata stripe (the top 50 rows)
    p = write_tif(tmp_path / "s.tif", data, nodata=0)

    class StatsRecorder(ThresholdScorer):
        def __init__(self):
            super().__init__()
            self.stats = []

        def fuse(self, maps, stats):
            self.stats.append(stats)
            return super().fuse(maps, stats)

    model = StatsRecorder()
    score, mask, valid = api.predict_scene(p, model=model, tile=64, overlap=16)
    assert valid.sum() == 250 * 200 and not valid[:50].any()
    assert len(model.stats) >= 1 and all(s is model.stats[0] for s in model.stats)  # one scene's stats, every block
    st = model.stats[0].maps["bright"]
    assert st.count == 250 * 200 and st.hist.sum() == st.count
    assert st.vmax == pytest.approx(220 / 255)
    assert st.quantile(0.99) > 0.8 and st.quantile(0.5) < 0.3
    assert mask.sum() == 80 * 60  # the blob, found with those statistics


@pytest.mark.parametrize("uses", [True, False])
def test_dsm_reaches_only_models_that_use_terrain(tmp_path, uses):
    data, _ = blob_scene(h=96, w=80)
    p = write_tif(tmp_path / "s.tif", data, nodata=0)
    yy = np.mgrid[0:96, 0:80][0].astype(np.float32)
    dsm = write_tif(tmp_path / "dsm.tif", 3000 + 2.0 * yy, dtype="float32")  # 2 m per 2 m pixel: 45° slope

    class Recorder(ThresholdScorer):
        uses_terrain = uses
        seen = []

        def predict_tiles(self, tiles, valid, terrain=None):
            self.seen.append(terrain)
            return super().predict_tiles(tiles, valid, terrain)

    model = Recorder()
    api.detect(p, model=model, dsm=dsm, tile=64, overlap=8)
    if uses:
        t = model.seen[0]
        assert t.shape[1:] == (2, 64, 64) and t[:, 0].min() >= 3000
        assert np.median(t[:, 1]) == pytest.approx(45.0, abs=0.5)
    else:
        assert model.seen and all(t is None for t in model.seen)
    with pytest.raises(InputError):  # a bad DSM is refused for every model
        api.detect(p, model=Recorder(), dsm=tmp_path / "missing.tif")


def test_threshold_applies_to_directories_too(tmp_path):
    d = tmp_path / "scenes"
    d.mkdir()
    data, _ = blob_scene(h=80, w=80)
    write_tif(d / "a.tif", data, nodata=0)
    model = write_tiny_model(tmp_path / "m.safetensors", tile_size=64, threshold=0.0)
    assert len(api.detect_directory(d, tmp_path / "lo.gpkg", model=model, min_area_m2=0)) == 1
    assert main(["detect", str(d), "-o", str(tmp_path / "hi.gpkg"), "--model", str(model), "--quiet",
                 "--min-area", "0", "--threshold", "1.0"]) == 0
    assert pyogrio.read_info(tmp_path / "hi.gpkg")["features"] == 0
    assert main(["detect", str(d), "-o", str(tmp_path / "bad.gpkg"), "--model", str(model), "--quiet",
                 "--threshold", "1.5"]) == 2
    assert not (tmp_path / "bad.gpkg").exists() and not (tmp_path / "bad.gpkg.parts").exists()
