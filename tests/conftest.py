"""Shared fixtures: tiny synthetic GeoTIFFs and tiny real models. Real data lives in ../shared/data."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"

realdata = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="../shared/data is absent")


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
    the neural path is covered by PixelNetScorer tests.
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


@pytest.fixture
def tiny_model_path(tmp_path):
    from landslide_wsss.models.pixelnet import PixelNetScorer

    path = tmp_path / "tiny.safetensors"
    PixelNetScorer.random(3, mean=[100.0] * 3, std=[50.0] * 3, tile_size=64).save(path)
    return path
