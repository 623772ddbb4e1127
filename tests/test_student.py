"""The second stage: pseudo-masks, the student's training loop, its scorer, the working GSD in the
core (detect resamples to the model's GSD and maps back), and the method registry."""
from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import torch
from rasterio.transform import from_origin
from shapely.geometry import box

from conftest import ThresholdScorer, blob_scene, write_tif
from landslide_wsss import api, registry
from landslide_wsss.checkpoint import save_checkpoint
from landslide_wsss.cli import main as cli_main
from landslide_wsss.errors import ModelError
from landslide_wsss.models.student import StudentNet
from landslide_wsss.scorers.student import mirror_fill
from landslide_wsss.resample import resample_target
from landslide_wsss.training import holdout
from landslide_wsss.training import student as st

SMALL = dict(depth=3, decoder=(16, 8, 8))


def test_pseudo_mask_three_bands():
    cam = np.array([[0.0, 1.0, 2.0, 3.0, 4.0]], np.float32)  # normalized: 0, .25, .5, .75, 1
    pm = st.pseudo_mask(cam, t_fg=0.7, t_bg=0.3)
    assert pm.tolist() == [[0, 0, 255, 1, 1]]
    assert (st.pseudo_mask(np.zeros((3, 3)), 0.5, 0.1) == 255).all()  # empty CAM teaches nothing
    valid = np.array([[True, True, True, True, False]])
    assert st.pseudo_mask(cam, 0.7, 0.3, valid)[0, 4] == 255


def test_choose_bands_follows_the_masks():
    mask = np.zeros((20, 20), np.uint8)
    mask[5:10, 5:10] = 1
    cam = np.where(mask == 1, 1.0, 0.2).astype(np.float32)
    cam[0, 0] = 0.45  # noise between the bands
    q = st.choose_bands([cam], [mask])
    assert q["fg_iou"] == pytest.approx(1.0)
    assert q["t_fg"] > 0.45  # the noise is not confident landslide
    assert 0.2 < q["t_bg"] <= 0.45  # the background is confident background, the noise is not
    assert q["ignored"] == pytest.approx(1 / cam.size)  # only the noise pixel is left out
    assert q["bg_precision"] == pytest.approx(1.0)
    assert q["leak"] == 0.0


def test_band_quality_counts_the_landslide_pixels_in_the_background_band():
    # the CAM finds the landslide's core only: its rim reads as low as the ground around it
    mask = np.zeros((20, 20), np.uint8)
    mask[4:12, 4:12] = 1
    cam = np.full((20, 20), 0.02, np.float32)
    cam[6:10, 6:10] = 1.0
    q = st.band_quality([cam], [mask], 0.5, 0.2)
    assert q["leak"] == pytest.approx(48 / 64)  # the rim: 48 of the 64 landslide pixels
    assert q["fg_iou"] == pytest.approx(16 / 64)
    assert q["bg_precision"] == pytest.approx((400 - 64) / (400 - 16))
    assert st.band_quality([cam], [mask], 0.5, 0.01)["leak"] == 0.0


def test_resample_target_majority_and_ignore():
    t = np.zeros((4, 4), np.uint8)
    t[:2, :2] = 1
    t[2:, 2:] = 255
    out = resample_target(t, (2, 2))
    assert out.tolist() == [[1, 0], [0, 255]]


def test_mirror_fill_only_for_top_left_padding():
    tile = np.zeros((1, 4, 4), np.float32)
    tile[0, :2, :2] = [[1, 2], [3, 4]]
    valid = np.zeros((4, 4), bool)
    valid[:2, :2] = True
    out = mirror_fill(tile, valid)
    assert out[0, 0].tolist() == [1, 2, 2, 1] and out[0, 3].tolist() == [1, 2, 2, 1]
    holes = valid.copy()
    holes[0, 0] = False  # not a padded rectangle: left as it is
    assert mirror_fill(tile, holes) is tile


def _blob_samples(n=6, size=96, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        r, c = (int(v) for v in rng.integers(8, size - 40, 2))
        img, mask = blob_scene(size, size, boxes=((r, c, r + 32, c + 32),) if k % 2 == 0 else (), seed=k)
        out.append(st.Sample(img, mask.astype(np.uint8), f"s{k}", bool(mask.any())))
    return out


def _trained_student(steps=40, seed=0):
    torch.manual_seed(seed)
    samples = _blob_samples()
    mean, std = st.band_stats(samples)
    net = StudentNet(mean=mean, std=std, **SMALL)
    net, hist = st.fit_student(samples, net, steps, crop=64, batch=8, progress=False, seed=seed)
    return net, hist


def _student_file(tmp_path, net, gsd, threshold=0.5, default="student"):
    path = tmp_path / "student.safetensors"
    comp = {"config": net.config(), "gsd": gsd, "tile_size": 64, "overlap": 8, "threshold": threshold}
    save_checkpoint(path, st.student_tensors(net), {"architecture": "student", "in_bands": 3, "version": "test",
                                                    "method_default": default, "student": comp})
    return path


def _box_iou(gdf, bounds):
    target = box(*bounds)
    if len(gdf) == 0:
        return 0.0
    u = gdf.geometry.union_all()
    return u.intersection(target).area / u.union(target).area


def test_student_learns_and_detect_resamples_to_its_gsd(tmp_path):
    """A real (tiny) student trained on bright-square masks at 2 m finds the square in a 1 m scene:
    detect reads the scene at the model's 2 m, and the polygons land on the scene's own grid."""
    net, hist = _trained_student()
    path = _student_file(tmp_path, net, gsd=2.0)
    data, _ = blob_scene(240, 240, boxes=((60, 80, 140, 160),), seed=9)  # 80 px = 80 m square at 1 m
    scene = write_tif(tmp_path / "s1m.tif", data, transform=from_origin(400_000.0, 3_500_000.0, 1.0, 1.0))
    gdf = api.detect(scene, tmp_path / "out.gpkg", model=path, score_raster=tmp_path / "score.tif")
    x0, y0 = 400_000.0 + 80, 3_500_000.0 - 140
    assert _box_iou(gdf, (x0, y0, x0 + 80, y0 + 80)) > 0.6
    with rasterio.open(tmp_path / "score.tif") as ds:
        assert ds.shape == (240, 240) and ds.transform.a == 1.0
    assert set(gpd.read_file(tmp_path / "out.gpkg").method) == {"student"}


def test_working_gsd_maps_back_exactly(tmp_path):
    """The core's resampling alone (a deterministic scorer at 4 m over a 2 m scene)."""
    class Coarse(ThresholdScorer):
        gsd = 4.0

    data, mask = blob_scene(300, 260, boxes=((60, 60, 140, 120),))
    scene = write_tif(tmp_path / "s.tif", data, nodata=0)
    score, pred, valid = api.predict_scene(scene, Coarse())
    assert score.shape == pred.shape == (300, 260)
    iou = (pred & mask).sum() / (pred | mask).sum()
    assert iou > 0.9
    assert valid.all()


def test_fit_student_resumes_from_its_state(tmp_path):
    samples = _blob_samples(n=2)
    mean, std = st.band_stats(samples)
    state = tmp_path / "state.safetensors"
    torch.manual_seed(0)
    a = StudentNet(mean=mean, std=std, **SMALL)
    st.fit_student(samples, a, 12, crop=64, batch=2, progress=False, state_path=state)
    log = []
    st.fit_student(samples, a, 12, crop=64, batch=2, progress=False, state_path=state,
                   log=lambda **r: log.append(r))
    assert log[0] == {"event": "resume", "step": 12, "total": 12}
    assert len(log) == 1  # nothing left to train
    log.clear()
    _, run = st.fit_student(samples, a, 14, crop=64, batch=2, progress=False, state_path=state,
                            log=lambda **r: log.append(r))
    assert log[0]["event"] == "train" and run["done"] == 14  # a state of another length starts afresh


def test_registry_is_the_one_list(tmp_path, capsys):
    assert cli_main(["methods", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    names = [m["name"] for m in out["methods"]]
    assert names == list(registry.METHODS)
    for required in ("cam", "gradcam", "gradcam++", "scorecam", "scorecam-cyclegan", "unet", "terrain-crop",
                     "rcm-mam", "adversarial-erasing", "student", "gradcam-cyclegan"):
        assert required in names
    assert out["default"] in names
    net = StudentNet(**SMALL)
    path = _student_file(tmp_path, net, gsd=1.0)
    assert cli_main(["methods", "--json", "--model", str(path)]) == 0
    only = {m["name"]: m["available"] for m in json.loads(capsys.readouterr().out)["methods"]}
    assert only["student"] and not only["cam"] and not only["unet"]
    with pytest.raises(ModelError, match="unknown method"):
        registry.get("nope")


def test_a_missing_component_is_a_clean_error(tmp_path, capsys):
    path = _student_file(tmp_path, StudentNet(**SMALL), gsd=1.0)
    data, _ = blob_scene(100, 100)
    scene = write_tif(tmp_path / "s.tif", data)
    rc = cli_main(["detect", str(scene), "-o", str(tmp_path / "o.gpkg"), "--model", str(path), "--method", "unet"])
    assert rc == 2
    assert "needs a unet network" in capsys.readouterr().err
    assert not (tmp_path / "o.gpkg").exists()


def test_detect_threshold_leaves_the_callers_model_alone(tmp_path):
    data, _ = blob_scene(120, 120, boxes=((30, 30, 80, 80),))
    scene = write_tif(tmp_path / "s.tif", data)
    model = ThresholdScorer()
    model.threshold = 0.5
    low = api.detect(scene, None, model=model, threshold=0.05, min_area_m2=0)
    assert model.threshold == 0.5
    assert len(low) >= 1


def test_predict_scene_checks_the_scene_before_the_model(tmp_path):
    from landslide_wsss.errors import InputError
    with pytest.raises(InputError, match="no such file"):
        api.predict_scene(tmp_path / "missing.tif", model=tmp_path / "missing-model.safetensors")


def test_unknown_device_is_a_clean_error(tmp_path, capsys):
    data, mask = blob_scene(100, 100)
    img, ref = write_tif(tmp_path / "s.tif", data), write_tif(tmp_path / "m.tif", mask.astype(np.uint8))
    rc = cli_main(["evaluate", "scene", "--image", str(img), "--mask", str(ref), "--device", "gpu"])
    assert rc == 2
    assert "--device 'gpu'" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# train weak: a user's scene and labels -> a model file


@pytest.fixture
def start_model(tmp_path, weak_model_file):
    """The toy weak model of conftest plus a tiny student at 1 m trained on blobs: what `train weak`
    starts from (its own confident marks become the targets)."""
    from landslide_wsss.checkpoint import load_checkpoint
    tensors, meta = load_checkpoint(weak_model_file)
    net, _ = _trained_student()
    tensors.update(st.student_tensors(net))
    meta = {k: v for k, v in meta.items() if k != "format"}
    meta["student"] = {"config": net.config(), "gsd": 1.0, "tile_size": 64, "overlap": 8, "threshold": 0.4,
                       "gate_high": 0.85, "gate": {"chosen": {"low": 0.4, "high": 0.85}},  # gated, as shipped
                       "teacher": {"method": "cam", "t_fg": 0.4, "t_bg": 0.2, "refine": "slic"}}  # the shipped recipe
    path = tmp_path / "start.safetensors"
    save_checkpoint(path, tensors, meta)
    return path


def _region(tmp_path):
    data, mask = blob_scene(256, 256, boxes=((40, 40, 80, 80), (150, 170, 200, 220)), seed=4)
    scene = write_tif(tmp_path / "region.tif", data, transform=from_origin(400_000.0, 3_500_000.0, 0.5, 0.5))
    return scene, mask


def _scars(scene, mask):
    """The scars (connected parts of `mask`) as polygons in the scene's CRS."""
    from rasterio.features import shapes
    from shapely.geometry import shape
    with rasterio.open(scene) as ds:
        tr = ds.transform
    return [shape(g) for g, v in shapes(mask.astype(np.uint8), mask=mask, transform=tr) if v]


def _assert_finds_the_scars(gdf, scene, mask):
    """Every polygon lies on a scar and every scar is found."""
    from shapely.ops import unary_union
    scars = _scars(scene, mask)
    found = unary_union(list(gdf.geometry))
    assert all(any(p.intersects(s) for s in scars) for p in gdf.geometry), "a polygon off every scar"
    assert all(s.intersects(found) for s in scars), "a scar not found"


def _ticked(tmp_path, scene, mask, tile_m=16.0):
    from rasterio.features import geometry_mask

    from landslide_wsss.labels import label_grid
    grid = label_grid([scene], None, tile_m=tile_m)
    with rasterio.open(scene) as ds:
        tr = ds.transform
    grid["label"] = [int(mask[~geometry_mask([g], mask.shape, tr)].any()) for g in grid.geometry]
    path = tmp_path / "ticked.gpkg"
    grid.to_file(path, layer="label_grid")
    return path, grid


def test_train_weak_from_a_ticked_grid(tmp_path, start_model):
    from landslide_wsss.checkpoint import read_metadata
    from landslide_wsss.training.weak import train_weak
    scene, mask = _region(tmp_path)
    labels, grid = _ticked(tmp_path, scene, mask)
    out = tmp_path / "mine.safetensors"
    summary = train_weak([scene], labels, out, init=start_model, minutes=5, tile_m=16.0, progress=False, steps=20)
    meta, start_meta = read_metadata(out), read_metadata(start_model)
    assert meta["method_default"] == "student" and meta["trained_on"] == summary
    assert summary["landslide_tiles"] + summary["free_tiles"] == len(grid)
    assert summary["landslide_tiles"] == int(grid.label.sum())
    assert summary["fine_tune"]["done"] == 20 and summary["stopped_early"] is None  # steps, not the budget
    start, tuned = summary["holdout_start_model"], summary["holdout_fine_tuned"]
    assert start["landslide_tiles"] >= 1 and start["free_tiles"] >= 1
    assert summary["fine_tuned_student_kept"] == holdout.facts_prefer(tuned, start)
    # the landslide-free tiles taught it: fewer marks on held-out landslide-free ground, every landslide still found
    assert tuned["free_pixels_marked"] < start["free_pixels_marked"] and tuned["landslide_tiles_found"] == 1.0
    assert meta["student"]["holdout"] == (tuned if summary["fine_tuned_student_kept"] else start)
    for k in ("threshold", "gsd", "gate_high"):  # detection settings stay the start model's
        assert meta["student"].get(k) == start_meta["student"].get(k)
    assert not (tmp_path / "mine.safetensors.state").exists()  # the resume state is gone once done
    gdf = api.detect(scene, None, model=out, min_area_m2=0)
    assert len(gdf) and set(gdf.method) == {"student"}
    assert any(p.intersects(s) for p in gdf.geometry for s in _scars(scene, mask)), "nothing found on a scar"


def test_train_weak_from_a_start_model_that_marks_nothing_in_the_landslide_tiles(tmp_path, start_model):
    """Its landslide tiles teach nothing (their own background would contradict the label); the
    landslide-free ones still train, and with no evidence either way the start student stays."""
    from landslide_wsss.checkpoint import load_checkpoint, read_metadata
    from landslide_wsss.training.weak import train_weak
    tensors, meta = load_checkpoint(start_model)
    meta = {k: v for k, v in meta.items() if k != "format"}
    meta["student"] = {**meta["student"], "threshold": 0.999, "gate_high": None}  # marks nothing
    blind = tmp_path / "blind.safetensors"
    save_checkpoint(blind, tensors, meta)
    scene, mask = _region(tmp_path)
    labels, _ = _ticked(tmp_path, scene, mask)
    out = tmp_path / "mine.safetensors"
    summary = train_weak([scene], labels, out, init=blind, minutes=5, tile_m=16.0, progress=False, steps=10)
    held_slides = summary["holdout_start_model"]["landslide_tiles"]
    assert summary["landslide_tiles_unmarked_by_start"] == summary["landslide_tiles"] - held_slides > 0
    assert summary["fine_tune"]["done"] == 10 and not summary["fine_tuned_student_kept"]
    mine, _ = load_checkpoint(out)
    assert all(torch.equal(mine[k], v) for k, v in tensors.items() if k.startswith("student."))
    assert read_metadata(out)["student"]["threshold"] == 0.999


def test_train_weak_targets_are_what_the_labels_and_the_start_student_agree_on():
    from landslide_wsss.training.student import IGNORE
    from landslide_wsss.training.weak import TARGET_BG, tile_targets
    prob = np.array([[0.9, 0.8], [0.1, 0.85]], np.float32)  # 0.8: not above the threshold, not marked
    valid = np.array([[True, True], [True, False]])
    assert (tile_targets(prob, 0, valid, 0.8) == [[0, 0], [0, IGNORE]]).all()  # free tile: background, all of it
    assert (tile_targets(prob, 1, valid, 0.8) == [[1, IGNORE], [0, IGNORE]]).all()
    assert TARGET_BG > 0.1 and (tile_targets(prob * 0.5, 1, valid, 0.8) == IGNORE).all()  # nothing marked: no labels


def test_train_weak_keep_rule_reads_only_what_the_labels_say():
    base = {"landslide_tiles_found": 0.75, "free_pixels_marked": 0.02}
    assert holdout.facts_prefer({**base, "free_pixels_marked": 0.01}, base)
    assert holdout.facts_prefer({**base, "landslide_tiles_found": 1.0}, base)
    assert not holdout.facts_prefer(dict(base), base)  # no evidence: the start model stays
    assert not holdout.facts_prefer({"landslide_tiles_found": 1.0, "free_pixels_marked": 0.03}, base)  # a trade
    assert not holdout.facts_prefer({"landslide_tiles_found": 0.5, "free_pixels_marked": 0.0}, base)


def test_tile_facts_count_marks_inside_the_tile_only():
    """A held-out tile is judged on its own valid pixels; the context around it is only seen."""
    net = StudentNet(**SMALL).eval()
    img = np.zeros((3, 64, 64), np.uint8)
    valid = np.ones((64, 64), bool)
    inner = (slice(16, 48), slice(16, 48))
    items = [holdout.TileItem(img, 0, valid, inner), holdout.TileItem(img, 1, valid, inner)]
    everything, nothing = holdout.tile_facts(net, items, -1.0), holdout.tile_facts(net, items, 1.0)
    assert everything["free_pixels"] == 32 * 32  # the tile's own pixels, not the context's 64 x 64
    assert everything["free_pixels_marked"] == 1.0 and everything["free_tiles_flagged"] == 1.0
    assert everything["landslide_tiles_found"] == 1.0
    assert nothing["free_pixels_marked"] == 0.0 and nothing["landslide_tiles_found"] == 0.0
    half = valid.copy()
    half[:32] = False  # invalid pixels are never counted: rows 32..47 of the tile are left
    part = holdout.tile_facts(net, [holdout.TileItem(img, 0, half, inner)], -1.0)
    assert part["free_pixels"] == 16 * 32
    assert part["free_pixels_marked"] == 1.0 and part["free_tiles"] == 1


@pytest.mark.parametrize("case", ["no-landslide", "tiny-budget", "no-steps", "output-exists", "no-student"])
def test_train_weak_bad_input_is_one_clean_error(tmp_path, start_model, weak_model_file, capsys, case):
    scene, mask = _region(tmp_path)
    labels, _ = _ticked(tmp_path, scene, np.zeros_like(mask) if case == "no-landslide" else mask)
    out = tmp_path / "mine.safetensors"
    argv = ["train", "weak", "--image", str(scene), "--labels", str(labels), "--tile-m", "16", "--minutes", "0.3",
            "--init", str(weak_model_file if case == "no-student" else start_model), "-o", str(out), "--quiet"]
    if case == "tiny-budget":
        argv[argv.index("0.3")] = "0.01"
    if case == "no-steps":
        argv += ["--steps", "0"]
    if case == "output-exists":
        out.write_bytes(b"keep")
    capsys.readouterr()
    assert cli_main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")
    assert out.read_bytes() == b"keep" if case == "output-exists" else not out.exists()
    assert not (tmp_path / "mine.safetensors.state").exists()


def test_student_is_smps_unet():
    """The plain-torch student has smp.Unet's parameter names and gives its logits for the same
    weights (so detect need not import smp, timm and torchvision; see models/student.py)."""
    smp = pytest.importorskip("segmentation_models_pytorch")
    ours = StudentNet(in_bands=4, decoder=(32, 16, 16, 8))
    ref = smp.Unet("resnet18", encoder_weights=None, encoder_depth=4, decoder_channels=(32, 16, 16, 8),
                   in_channels=4, classes=1)
    del ref.encoder.layer4  # smp builds it but never runs it at depth 4
    torch.manual_seed(3)
    for m in ref.modules():  # non-trivial norm statistics, so a swapped layer would show
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    ours.net.load_state_dict(ref.state_dict())  # strict: the same names and shapes
    x = torch.randn(2, 4, 48, 80)
    with torch.no_grad():
        assert torch.allclose(ours.net.eval()(x), ref.eval()(x), atol=1e-5)


def test_detect_with_the_student_imports_no_smp_timm_or_torchvision(tmp_path):
    """detect with the embedded student stays light: none of the heavy libraries gets imported."""
    import subprocess
    import sys
    scene = tmp_path / "s.tif"
    write_tif(scene, blob_scene(160, 160)[0])
    code = ("import sys; from landslide_wsss import api; "
            f"api.detect({str(scene)!r}, {str(tmp_path / 'o.gpkg')!r}, method='student'); "
            "print(sorted(m for m in ('segmentation_models_pytorch', 'timm', 'torchvision', 'torch._dynamo') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_every_method_runs_with_the_embedded_model(tmp_path):
    """Every registry method is available in the shipped model file and detects the bright scar of a small
    scene (the refinements from their embedded int8 classifiers); the file stays within its 25 MB."""
    from landslide_wsss.wsss import DEFAULT_MODEL, describe_methods
    assert DEFAULT_MODEL.stat().st_size <= 25 * 2**20
    listing = describe_methods()
    missing = [m["name"] for m in listing["methods"] if not m["available"]]
    assert not missing, f"the embedded model cannot run {missing}"
    data, mask = blob_scene(128, 128)
    scene = write_tif(tmp_path / "s.tif", data)
    for m in registry.METHODS:
        model = api.load_scoring_model(None, method=m, device="cpu")
        gdf = api.detect(scene, tmp_path / f"{m}.gpkg", model=model, overwrite=True)
        assert gdf.crs == "EPSG:32647" and len(gpd.read_file(tmp_path / f"{m}.gpkg")) == len(gdf), m
        assert len(gdf) and set(gdf.method) == {m}, m
        _assert_finds_the_scars(gdf, scene, mask)


def test_hysteresis_keeps_only_blobs_with_a_confident_core():
    from landslide_wsss.morphology import hysteresis
    p = np.zeros((40, 40), np.float32)
    p[2:10, 2:10] = 0.4          # weak blob: no core
    p[20:30, 20:30] = 0.4
    p[24, 24] = 0.99             # the same blob with one confident pixel
    kept = hysteresis(p > 0.3, p > 0.9)
    assert not kept[2:10, 2:10].any()
    assert kept[20:30, 20:30].all() and kept.sum() == 100


def test_gate_rule_needs_the_margin_and_spares_every_hold_out_set():
    """choose_gate keeps a gate only when it adds GATE_MARGIN mean IoU and no hold-out set loses."""
    def table(fn):
        def score(low, high):
            a, b = fn(low, high)
            return {"low": low, "high": high, "a_iou": a, "b_iou": b, "mean_iou": (a + b) / 2}
        return score
    # the gate helps both sets: the best gate is chosen
    r = st.choose_gate(table(lambda lo, hi: (0.5, 0.5) if hi is None else (0.52 + (hi == 0.8) * 0.02, 0.51)), 0.5)
    assert r["chosen"]["high"] == 0.8 and r["chosen"]["low"] <= 0.5
    # a bigger mean that costs set b is not taken; the best gate left is under the margin: plain
    r = st.choose_gate(table(lambda lo, hi: (0.5, 0.5) if hi is None else ((0.7, 0.45) if hi == 0.9 else (0.505, 0.5))), 0.5)
    assert r["chosen"]["high"] is None and r["chosen"]["low"] == 0.5
    assert r["best_gate"]["high"] != 0.9


def test_student_scorer_applies_its_gate(tmp_path):
    """A gate_high in the model file drops the blobs without a confident core in detect's masks."""
    net, _ = _trained_student()
    path = _student_file(tmp_path, net, gsd=2.0)
    scorer = api.load_scoring_model(path, method="student", device="cpu")
    p = np.zeros((32, 32), np.float32)
    p[2:8, 2:8] = 0.6
    p[20:26, 20:26] = 0.6
    p[22, 22] = 0.97
    assert scorer.gate_high is None and scorer.fuse({"prob": p}, None)[1].sum() == 72
    scorer.gate_high = 0.95
    assert scorer.fuse({"prob": p}, None)[1].sum() == 36


def test_area_share_weights_the_draw():
    """rebuild.teacher.weights: `share` of the draw on area A blocks, the rest on Bijie images, of
    which `landslide_share` on the landslide images."""
    from landslide_wsss.training.rebuild import teacher as ss
    img, tgt = np.zeros((3, 8, 8), np.uint8), np.zeros((8, 8), np.uint8)
    samples = [st.Sample(img, tgt, f"areaA_{k}", False) for k in range(3)] + \
              [st.Sample(img, tgt, f"ls_{k}.png", True) for k in range(5)]
    for share in (0.3, 0.5):
        w = ss.weights(samples, share)
        assert abs(sum(s.weight for s in w if s.name.startswith("areaA")) - share) < 1e-9
        assert abs(sum(s.weight for s in w) - 1) < 1e-9
    # with landslide-free images too: the landslide images keep their share of the Bijie draw
    samples += [st.Sample(img, tgt, f"nls_{k}.png", False) for k in range(15)]
    w = ss.weights(samples, 0.3, landslide_share=0.6)
    assert sum(s.weight for s in w if s.name.startswith("ls_")) == pytest.approx(0.7 * 0.6)
    assert sum(s.weight for s in w if s.name.startswith("nls_")) == pytest.approx(0.7 * 0.4)
    assert {round(s.weight, 12) for s in w if s.name.startswith("nls_")} == {round(0.28 / 15, 12)}


def test_sweep_upward_extends_while_the_largest_is_chosen_and_keeps_the_incumbent_within_the_spread():
    """rebuild.sweeps.sweep_upward (the scale and area-share rule): every value is tried on every
    seed; one step more while the largest value tried is chosen, never past the limit; a value
    replaces the incumbent only by a margin above the seeds' spread."""
    from landslide_wsss.training.rebuild import sweeps
    tried = []

    def peak_at(p, noise=0.0):
        def trial(v, seed):
            tried.append((v, seed))
            return {"mean_iou": -abs(v - p) + noise * seed}
        return trial
    table, d = sweeps.sweep_upward([1.0, 1.6], peak_at(2.4), 0.8, 3.2, incumbent=1.6, seeds=[0, 1])
    assert d["chosen"] == "2.4" and list(table) == ["1", "1.6", "2.4", "3.2"]
    assert tried == [(v, s) for v in (1.0, 1.6, 2.4, 3.2) for s in (0, 1)]
    assert table["2.4"]["per_seed"] == [{"mean_iou": 0.0}, {"mean_iou": 0.0}] and table["2.4"]["spread"] == 0
    tried.clear()
    _, d = sweeps.sweep_upward([1.0, 1.6, 2.4], peak_at(1.0), 0.8, 3.2, incumbent=1.6, seeds=[0])
    assert d["chosen"] == "1" and [v for v, _ in tried] == [1.0, 1.6, 2.4]
    tried.clear()
    _, d = sweeps.sweep_upward([2.4], peak_at(9.0), 0.8, 3.2, incumbent=2.4, seeds=[0])
    assert d["chosen"] == "3.2" and [v for v, _ in tried] == [2.4, 3.2]
    # 1.0 beats 1.6 by 0.6 on the mean, but the seeds of each value spread by 0.8: the incumbent stays
    table, d = sweeps.sweep_upward([1.0, 1.6], peak_at(1.0, noise=0.8), 0.8, 3.2, incumbent=1.6, seeds=[0, 1])
    assert d["best"] == "1" and d["chosen"] == "1.6" and d["margin"] == 0.8


def test_gate_stage_caches_the_network_maps(tmp_path):
    """rebuild.gate.cache_maps: a scene scored twice runs the network once per tile batch, and the
    masks under each (low, high) equal the uncached scorer's."""
    from landslide_wsss.training.rebuild.gate import cache_maps
    net, _ = _trained_student()
    path = _student_file(tmp_path, net, gsd=2.0)
    data, _ = blob_scene(160, 160, boxes=((40, 40, 100, 100),), seed=3)
    scene = write_tif(tmp_path / "s.tif", data, transform=from_origin(400_000.0, 3_500_000.0, 2.0, 2.0))
    plain = api.load_scoring_model(path, method="student", device="cpu")
    cached = cache_maps(api.load_scoring_model(path, method="student", device="cpu"))
    calls = []
    forward = cached.net.forward
    cached.net.forward = lambda x: calls.append(1) or forward(x)
    for low, high in ((0.5, None), (0.3, 0.9)):
        for s in (plain, cached):
            s.threshold, s.gate_high = low, high
        a, b = (api.predict_scene(scene, model=s)[1] for s in (plain, cached))
        assert np.array_equal(a, b)
        n = len(calls)
        if low == 0.5:
            first = n
    assert first > 0 and len(calls) == first


def test_the_evaluate_stage_also_measures_val_after_a_jpeg_round_trip(tmp_path):
    """The rebuild's evaluate stage: val (PNG) and area B for each method, and for the networks
    trained on the JPEG training split also val through a quality-95 JPEG round trip, all in the
    report and the model file's metadata."""
    from PIL import Image

    from landslide_wsss.checkpoint import read_metadata
    from landslide_wsss.training.tune import stage_evaluate
    bijie = tmp_path / "data" / "bijie"
    (bijie / "images").mkdir(parents=True)
    (bijie / "masks").mkdir()
    for k, name in enumerate(("ls_0001", "nls_0001")):
        img, mask = blob_scene(64, 64, boxes=((10, 10, 40, 40),) if k == 0 else (), seed=k)
        Image.fromarray(img.transpose(1, 2, 0)).save(bijie / "images" / f"{name}.png")
        Image.fromarray(mask.astype(np.uint8) * 255).save(bijie / "masks" / f"{name}.png")
    (bijie / "val.txt").write_text("ls_0001\nnls_0001\n")
    img, mask = blob_scene(96, 96, seed=3)
    amunet = tmp_path / "data" / "amunet"
    amunet.mkdir()
    write_tif(amunet / "areaB_rgb.tif", img)
    write_tif(amunet / "areaB_mask.tif", mask.astype(np.uint8)[None])
    net, _ = _trained_student(steps=2)
    model = _student_file(tmp_path, net, gsd=1.0)
    report = tmp_path / "eval.json"
    res = stage_evaluate(tmp_path / "data", model, ["student"], report)
    assert set(res["student"]) == {"bijie_val", "areaB", "bijie_val_jpeg95"}
    assert res["student"]["bijie_val_jpeg95"]["jpeg_quality"] == 95 and res["student"]["bijie_val"].get("jpeg_quality") is None
    assert json.loads(report.read_text()) == json.loads(json.dumps(res))
    val = read_metadata(model)["validation"]["student"]
    assert set(val) == {"bijie_val", "areaB", "bijie_val_jpeg95"} and "iou" in val["bijie_val_jpeg95"]
    assert {"tp", "false_pixels_near_landslide", "false_pixels_elsewhere"} <= set(val["bijie_val"])
