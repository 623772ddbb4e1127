"""The light runtime: the network forward on onnxruntime from the graphs a model file carries, the
same maps and polygons as torch, detection without torch, and the Deepness export."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from landslide_wsss.errors import ModelError
from landslide_wsss.wsss import DEFAULT_MODEL, load_model

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def sample_tiles(tmp_path_factory):
    """Tiles of the generated sample scene (real texture, landslide-like scars)."""
    import rasterio

    from landslide_wsss.sample import make_sample_scene
    path, _ = make_sample_scene(tmp_path_factory.mktemp("sample") / "s.tif")
    with rasterio.open(path) as src:
        img = src.read().astype(np.float32)
    return img


def _crops(img, size, n=2):
    h, w = img.shape[1:]
    rows = np.linspace(0, h - size, n).astype(int)
    return np.stack([img[:, r:r + size, (w - size) // 2:(w - size) // 2 + size] for r in rows])


@pytest.mark.parametrize("method", ["student", "unet"])
def test_segmentation_maps_equal_torch_fp32(method, sample_tiles):
    onnx = load_model(method=method, device="cpu", runtime="onnx")
    ref = load_model(method=method, device="cpu", runtime="torch")
    assert (onnx.runtime, ref.runtime) == ("onnx", "torch")
    x = _crops(sample_tiles, onnx.tile_size)
    got = onnx.predict_tiles(x, np.ones((len(x),) + x.shape[2:], bool))["prob"]
    net = ref.net.float()
    with torch.no_grad():
        want = torch.sigmoid(net(net.normalize(torch.from_numpy(x)))).numpy()[:, 0]
    assert want.max() > 0.05  # the comparison sees real activations, not a dark map
    np.testing.assert_allclose(got, want, atol=1e-3)


@pytest.mark.parametrize("method", ["cam", "cam-cyclegan", "rcm-mam", "scorecam", "scorecam-cyclegan"])
def test_weak_maps_equal_torch_fp32(method, sample_tiles):
    params = {"gate": 0.0, "bf16": False}  # every tile through the CAM, torch in fp32
    onnx = load_model(method=method, device="cpu", runtime="onnx", params=params)
    ref = load_model(method=method, device="cpu", runtime="torch", params=params)
    x = _crops(sample_tiles, onnx.tile_size, n=3)
    valid = np.ones((len(x),) + x.shape[2:], bool)
    got, want = onnx.predict_tiles(x, valid), ref.predict_tiles(x, valid)
    np.testing.assert_allclose(onnx.last_probs, ref.last_probs, atol=1e-3)
    for name in want:
        assert want[name].max() > 0
        np.testing.assert_allclose(got[name], want[name], atol=1e-3 * max(1.0, float(want[name].max())))


def test_terrain_crop_maps_equal_torch_fp32(tmp_path):
    """Terrain-crop on onnxruntime: the CAM of each zoomed crop from the CAM graph, the crops and their
    pasting shared; tiles centred on the sample scene's scars, where crops are made."""
    import rasterio
    from scipy import ndimage

    from landslide_wsss.sample import make_sample_scene
    path, scars = make_sample_scene(tmp_path / "s.tif")
    with rasterio.open(path) as src:
        img = src.read().astype(np.float32)
    params = {"gate": 0.0, "bf16": False}
    onnx = load_model(method="terrain-crop", device="cpu", runtime="onnx", params=params)
    ref = load_model(method="terrain-crop", device="cpu", runtime="torch", params=params)
    t = onnx.tile_size
    labels, n = ndimage.label(scars)
    corners = [[int(np.clip(v - t // 2, 0, s - t)) for v, s in zip(c, scars.shape)]
               for c in ndimage.center_of_mass(scars, labels, range(1, n + 1))]
    x = np.stack([img[:, r:r + t, c:c + t] for r, c in corners[:4]])
    valid = np.ones((len(x), t, t), bool)
    terrain = np.zeros((len(x), 2, t, t), np.float32)
    terrain[:, 1] = np.linspace(0.0, 40.0, t)[None, None, :]  # slope rising eastwards: crops ranked by it
    got, want = onnx.predict_tiles(x, valid, terrain), ref.predict_tiles(x, valid, terrain)
    plain = load_model(method="cam", device="cpu", runtime="onnx", params=params).predict_tiles(x, valid)["cam"]
    assert (np.abs(want["cam"] - plain) > 1e-3 * plain.max()).any()  # crops changed the maps
    np.testing.assert_allclose(got["cam"], want["cam"], atol=1e-3 * float(want["cam"].max()))
    np.testing.assert_array_equal(got["slope"], want["slope"])


def _polygons(path):
    import geopandas as gpd
    return gpd.read_file(path)


def test_same_polygons_on_the_sample_scene_and_no_torch_needed(tmp_path):
    """`detect` with torch made unimportable writes the polygons the torch runtime writes."""
    from landslide_wsss.sample import make_sample_scene
    scene, _ = make_sample_scene(tmp_path / "s.tif")
    block = "import sys; sys.modules['torch'] = None; sys.modules['torchvision'] = None; " \
            "from landslide_wsss.cli import main; sys.exit(main(sys.argv[1:]))"
    light = subprocess.run([sys.executable, "-c", block, "detect", str(scene), "-o", str(tmp_path / "onnx.gpkg"),
                            "--quiet"], capture_output=True, text=True)
    assert light.returncode == 0, light.stderr
    heavy = subprocess.run([sys.executable, "-m", "landslide_wsss.cli", "detect", str(scene), "-o",
                            str(tmp_path / "torch.gpkg"), "--quiet", "--runtime", "torch"], capture_output=True, text=True)
    assert heavy.returncode == 0, heavy.stderr
    a, b = _polygons(tmp_path / "onnx.gpkg"), _polygons(tmp_path / "torch.gpkg")
    assert len(a) > 0 and len(a) == len(b)
    ua, ub = a.union_all(), b.union_all()
    # torch runs bf16 autocast on the CPU, onnxruntime fp32: outlines may move by a pixel
    assert ua.intersection(ub).area / ua.union(ub).area > 0.98
    # a method that needs gradients says which extra to install
    grad = subprocess.run([sys.executable, "-c", block, "detect", str(scene), "-o", str(tmp_path / "g.gpkg"),
                           "--method", "gradcam"], capture_output=True, text=True)
    assert grad.returncode == 2
    assert grad.stderr.startswith("error:") and "landslide_wsss[train]" in grad.stderr
    assert not (tmp_path / "g.gpkg").exists()


NO_TORCH = "import sys; sys.modules['torch'] = None; sys.modules['torchvision'] = None; " \
           "from landslide_wsss.cli import main; sys.exit(main(sys.argv[1:]))"


def test_scorecam_on_onnxruntime_equals_torch_and_runs_without_torch(tmp_path, weak_model_file):
    """Score-CAM over every channel (exact), its graph written by `export graphs`:
    the onnxruntime maps are torch's, and `detect --method scorecam` without torch writes torch's polygons."""
    import shutil

    from conftest import blob_scene, write_tif
    from landslide_wsss.checkpoint import update_model_file

    model = tmp_path / "weak.safetensors"
    shutil.copy(weak_model_file, model)

    def fp32_exact(meta):  # both engines in fp32; every channel scored
        meta["params"] = {**meta["params"], "bf16": False, "scorecam": {"top_k": None, "mask_size": None, "chunk": 64}}

    update_model_file(model, {}, meta=fp32_exact)
    run = subprocess.run([sys.executable, "-m", "landslide_wsss.cli", "export", "graphs", str(model)],
                         capture_output=True, text=True)
    assert run.returncode == 0 and "scorecam" in run.stdout, run.stderr
    img, _ = blob_scene(h=200, w=180, boxes=((40, 50, 110, 100), (130, 20, 170, 60)))
    scene = write_tif(tmp_path / "scene.tif", img)
    tiles = np.stack([img[:, r:r + 64, c:c + 64] for r, c in ((40, 40), (120, 10), (0, 100))]).astype(np.float32)
    valid = np.ones((len(tiles), 64, 64), bool)
    onnx = load_model(model, method="scorecam", device="cpu", runtime="onnx", params={"gate": 0.0})
    ref = load_model(model, method="scorecam", device="cpu", runtime="torch", params={"gate": 0.0})
    got, want = onnx.predict_tiles(tiles, valid)["cam"], ref.predict_tiles(tiles, valid)["cam"]
    assert want.max() > 0 and onnx.networks.cam_images == 1  # 64 masked inputs a call: one tile's channels
    np.testing.assert_allclose(got, want, atol=1e-3 * float(want.max()))
    # the graph holds the file's settings: other ones run on torch under auto, and are refused under onnx
    other = {"scorecam": {"top_k": 8, "select": "std"}}
    assert load_model(model, method="scorecam", params=other).runtime == "torch"
    with pytest.raises(ModelError, match="--runtime torch"):
        load_model(model, method="scorecam", runtime="onnx", params=other)
    assert load_model(model, method="scorecam").runtime == "onnx"

    outs = {}
    for name, cmd in (("light", [sys.executable, "-c", NO_TORCH]), ("torch", [sys.executable, "-m", "landslide_wsss.cli"])):
        outs[name] = tmp_path / f"{name}.gpkg"
        run = subprocess.run(cmd + ["detect", str(scene), "-o", str(outs[name]), "--model", str(model), "--method",
                                    "scorecam", "--quiet"] + (["--runtime", "torch"] if name == "torch" else []),
                             capture_output=True, text=True)
        assert run.returncode == 0, run.stderr
    a, b = _polygons(outs["light"]), _polygons(outs["torch"])
    assert len(a) > 0 and len(a) == len(b)
    ua, ub = a.union_all(), b.union_all()
    assert ua.symmetric_difference(ub).area <= 1e-6 * ua.area


@pytest.mark.parametrize("method", ["gradcam", "gradcam++"])
def test_gradient_methods_name_the_train_extra(tmp_path, method):
    """Grad-CAM(++) need gradients: `--runtime onnx`, and `auto` without torch, are one `error:` line
    naming the extra, exit 2, nothing written."""
    from landslide_wsss.sample import make_sample_scene
    scene, _ = make_sample_scene(tmp_path / "s.tif")
    out = tmp_path / "o.gpkg"
    for cmd, runtime in (([sys.executable, "-m", "landslide_wsss.cli"], "onnx"), ([sys.executable, "-c", NO_TORCH], "auto")):
        run = subprocess.run(cmd + ["detect", str(scene), "-o", str(out), "--method", method, "--runtime", runtime],
                             capture_output=True, text=True)
        assert run.returncode == 2, run.stderr
        lines = run.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:") and "pip install 'landslide_wsss[train]'" in lines[0]
        assert not out.exists()


def test_runtime_onnx_refused_where_it_cannot_run(tmp_path):
    with pytest.raises(ModelError, match="runs only on torch"):
        load_model(method="gradcam", runtime="onnx")
    # a file without graphs (a component retrained after export loses its graphs)
    import shutil

    from landslide_wsss.checkpoint import load_checkpoint, read_metadata, update_model_file
    copy = tmp_path / "m.safetensors"
    shutil.copy(DEFAULT_MODEL, copy)
    tensors, _ = load_checkpoint(copy, prefixes=("student",), raw=True)
    update_model_file(copy, tensors)
    assert "student" not in read_metadata(copy)["onnx"] and "unet" in read_metadata(copy)["onnx"]
    with pytest.raises(ModelError, match="no ONNX graphs"):
        load_model(copy, method="student", runtime="onnx")
    assert load_model(copy, method="student", runtime="auto").runtime == "torch"
    with pytest.raises(Exception, match="--runtime"):
        load_model(copy, method="student", runtime="tensorrt")


def test_deepness_export(tmp_path, sample_tiles):
    """`export onnx` writes one model in Deepness's form: 0-1 input, class probabilities out, its
    metadata keys JSON-encoded; the landslide channel is the student's probability."""
    import onnx
    import onnxruntime as ort

    out = tmp_path / "student.onnx"
    run = subprocess.run([sys.executable, "-m", "landslide_wsss.cli", "export", "onnx", "-o", str(out)],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    model = onnx.load(str(out))
    props = {p.key: json.loads(p.value) for p in model.metadata_props}
    assert props["model_type"] == "Segmentor"
    assert props["class_names"] == {"0": "background", "1": "landslide"}
    meta = load_model(method="student", runtime="onnx")
    assert props["resolution"] == pytest.approx(meta.gsd * 100)
    assert props["tile_size"] == meta.tile_size and 0 <= props["tiles_overlap"] < 100
    assert props["seg_thresh"] == pytest.approx(meta.threshold)
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    (inp,) = sess.get_inputs()
    assert inp.shape[1:] == [3, meta.tile_size, meta.tile_size] and inp.type == "tensor(float)"
    x = _crops(sample_tiles, meta.tile_size, n=1)
    probs = sess.run(None, {inp.name: x / 255.0})[0]
    assert probs.shape == (1, 2, meta.tile_size, meta.tile_size)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    np.testing.assert_allclose(probs[:, 1], meta.predict_tiles(x, np.ones((1,) + x.shape[2:], bool))["prob"], atol=1e-3)
    again = subprocess.run([sys.executable, "-m", "landslide_wsss.cli", "export", "onnx", "-o", str(out)],
                           capture_output=True, text=True)
    assert again.returncode == 2 and again.stderr.startswith("error:")


def test_preview_without_matplotlib_is_one_clean_error(tmp_path, utm_scene):
    """The light install has no matplotlib: --preview says which extra draws it, before any work."""
    scene, _ = utm_scene
    block = "import sys; sys.modules['matplotlib'] = None; " \
            "from landslide_wsss.cli import main; sys.exit(main(sys.argv[1:]))"
    run = subprocess.run([sys.executable, "-c", block, "detect", str(scene), "-o", str(tmp_path / "o.gpkg"),
                          "--preview", str(tmp_path / "o.png")], capture_output=True, text=True)
    assert run.returncode == 2 and run.stderr.startswith("error:") and "landslide_wsss[preview]" in run.stderr
    assert not (tmp_path / "o.gpkg").exists() and not (tmp_path / "o.png").exists()


def test_auto_runs_torch_where_the_graphs_cannot_serve_the_settings():
    """The stored CAM graph is the file's single-scale CAM; the teacher's multi-scale + flip CAM runs
    on torch under `auto` and is one clean error under `--runtime onnx`."""
    teacher = {"scales": [0.5, 1.0], "flip": True}
    assert load_model(method="cam", params=teacher).runtime == "torch"
    with pytest.raises(ModelError, match="--runtime torch"):
        load_model(method="cam", params=teacher, runtime="onnx")
    assert load_model(method="cam").runtime == "onnx"


def test_evaluate_runs_without_torch(tmp_path):
    """`evaluate bijie` resamples each image to the model's working GSD and its maps back: on numpy,
    so the light install evaluates as well as detects, with the torch runtime's figures."""
    import json

    from test_datasets import make_bijie
    root = make_bijie(tmp_path / "bijie")
    argv = ["evaluate", "bijie", str(root), "--split", str(root / "train.txt"), "--json"]
    light = subprocess.run([sys.executable, "-c", NO_TORCH] + argv, capture_output=True, text=True)
    assert light.returncode == 0, light.stderr
    heavy = subprocess.run([sys.executable, "-m", "landslide_wsss.cli"] + argv + ["--runtime", "torch"],
                           capture_output=True, text=True)
    assert heavy.returncode == 0, heavy.stderr
    a, b = json.loads(light.stdout), json.loads(heavy.stdout)
    assert a["images"] == b["images"] == 3 and a["free_images"] == 1
    assert a["tp"] + a["fn"] == b["tp"] + b["fn"] > 0  # the same masks, resampled alike
    assert abs(a["iou"] - b["iou"]) <= 0.05  # torch runs bf16, onnxruntime fp32
