"""Shared fixtures: tiny synthetic GeoTIFFs and tiny real models. Real data lives in landslide_wsss.paths.DATA_DIR."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from landslide_wsss.paths import DATA_DIR as SHARED_DATA

realdata = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=f"{SHARED_DATA} is absent")


def write_tif(path, data, crs="EPSG:32647", transform=None, nodata=None, dtype=None, **extra):
    data = np.asarray(data)
    if data.ndim == 2:
        data = data[None]
    count, h, w = data.shape
    if transform is None:
        transform = from_origin(400_000.0, 3_500_000.0, 2.0, 2.0)
    profile = dict(driver="GTiff", width=w, height=h, count=count, dtype=dtype or data.dtype, transform=transform)
    if crs is not None:
        profile["crs"] = crs
    if nodata is not None:
        profile["nodata"] = nodata
    profile.update(extra)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data.astype(profile["dtype"]))
    return Path(path)


def blob_scene(h=300, w=260, boxes=((60, 60, 140, 120),), bands=3, seed=0):
    """uint8 scene: dim textured background with bright square 'scars' at boxes (r0, c0, r1, c1)."""
    rng = np.random.default_rng(seed)
    data = rng.integers(20, 60, size=(bands, h, w)).astype(np.uint8)
    mask = np.zeros((h, w), bool)
    for r0, c0, r1, c1 in boxes:
        data[:, r0:r1, c0:c1] = 220
        mask[r0:r1, c0:c1] = True
    return data, mask


class ThresholdScorer:
    """A deterministic, real ScoringModel: brightness above a level is 'landslide'.

    Used where a test must know exactly which pixels score high (polygons at known places);
    the neural path is covered by the tiny model files of tests/tiny_models.py.
    """

    name = "brightness"
    version = "test-1"
    tile_size = 64
    map_names = ("bright",)
    uses_terrain = False

    def __init__(self, in_bands=3, level=128.0):
        self.in_bands = in_bands
        self.level = level

    def predict_tiles(self, tiles, valid, terrain=None):
        return {"bright": np.where(valid, tiles.mean(axis=1) / 255.0, 0).astype(np.float32)}

    def fuse(self, maps, stats):
        score = maps["bright"]
        return score, score > self.level / 255.0


@pytest.fixture
def utm_scene(tmp_path):
    data, mask = blob_scene()
    return write_tif(tmp_path / "utm.tif", data, nodata=0), mask


@pytest.fixture(scope="session")
def _tiny_model_file(tmp_path_factory):
    from tiny_models import write_tiny_model

    return write_tiny_model(tmp_path_factory.mktemp("tiny") / "tiny.safetensors", tile_size=64, onnx=True)


@pytest.fixture
def tiny_model_path(tmp_path, _tiny_model_file):
    """A tiny random-weight student model file (tests/tiny_models.py) with its ONNX graph, so that the
    default runtime runs it; a fresh copy in the test's own folder."""
    path = tmp_path / "tiny.safetensors"
    shutil.copyfile(_tiny_model_file, path)
    return path


def _squares(n=96, size=64, sq=12, seed=1):
    """Chips for a toy classifier: positives carry a bright square, negatives are dim noise."""
    from landslide_wsss.datasets.common import ChipSet

    rng = np.random.default_rng(seed)
    imgs = rng.integers(20, 60, size=(n, 3, size, size)).astype(np.uint8)
    labels = (np.arange(n) % 2).astype(np.float32)
    for i in np.flatnonzero(labels):
        r, c = rng.integers(0, size - sq, 2)
        imgs[i, :, r:r + sq, c:c + sq] = 220
    return ChipSet(imgs, labels)


BG = 40  # the dim background level of the scenes below


@pytest.fixture(scope="session")
def weak_model_file(tmp_path_factory):
    """A model file as training/default.py writes it: classifier.* (a toy classifier trained on
    bright squares, 64 px tiles) plus generator.* stored by add_generator_to_model. The generator
    is a real ResnetGenerator whose last convolution is set to render every pixel as the dim
    background (a perfect 'landslide-free' rendering of these scenes), so |x - G(x)| is the scar."""
    import torch

    from landslide_wsss.checkpoint import save_checkpoint
    from landslide_wsss.models.cyclegan import ResnetGenerator, add_generator_to_model, generator_meta, init_weights
    from landslide_wsss.models.cyclegan import normalize_spectral
    from landslide_wsss.training.classifier import train_classifier
    from landslide_wsss.wsss import DEFAULT_PARAMS, classifier_metadata

    n_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        clf, _ = train_classifier(_squares(), {"width": 8, "output_stride": 8}, epochs=3, batch_size=16, lr=3e-3,
                                  log=lambda **k: None, jitter=0.0, threads=1)
    finally:
        torch.set_num_threads(n_threads)
    d = tmp_path_factory.mktemp("weak")
    path = d / "weak.safetensors"
    meta = classifier_metadata(clf, tile=64, training={}, params=dict(DEFAULT_PARAMS))
    save_checkpoint(path, {f"classifier.{k}": v for k, v in clf.state_dict().items()}, meta)
    gen = init_weights(ResnetGenerator(3, 0, ngf=4, n_blocks=1))
    last = [m for m in gen.modules() if isinstance(m, torch.nn.Conv2d)][-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.fill_(float(np.arctanh(normalize_spectral(float(BG)))))  # tanh(bias) = the background
    gfile = d / "g.safetensors"
    gmeta = generator_meta(gen)
    save_checkpoint(gfile, {f"generator.{k}": v for k, v in gen.state_dict().items()},
                    {"architecture": gmeta["architecture"], "in_bands": 3, "version": "g", "generator": gmeta})
    add_generator_to_model(path, gfile)
    return path
