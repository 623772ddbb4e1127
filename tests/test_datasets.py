"""Datasets on tiny synthetic fixtures: Bijie folder, scene chips, Landslide4Sense h5; real data when present."""
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from landslide_wsss.datasets.bijie import label_from_name, load_bijie, load_mask, read_split
from landslide_wsss.datasets.common import band_stats
from landslide_wsss.datasets.l4s_h5 import load_l4s, read_pair
from landslide_wsss.datasets.scene_chips import scene_chips
from landslide_wsss.errors import InputError
from landslide_wsss.paths import DATA_DIR as SHARED



def make_bijie(root: Path):
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rng = np.random.default_rng(0)
    sizes = {"ls_0001": (40, 60), "ls_0002": (90, 70), "nls_0001": (50, 50)}
    for name, (h, w) in sizes.items():
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(root / "images" / f"{name}.png")
        m = np.zeros((h, w), np.uint8)
        if name.startswith("ls_"):
            m[5:20, 10:30] = 255
        Image.fromarray(m).save(root / "masks" / f"{name}.png")
    (root / "train.txt").write_text("ls_0001\n\n# comment\nnls_0001\nls_0002.png\n")
    return root


def test_bijie_labels_masks_and_resize(tmp_path):
    root = make_bijie(tmp_path / "bijie")
    assert read_split(root / "train.txt") == ["ls_0001", "nls_0001", "ls_0002"]
    chips = load_bijie(root, "train.txt", size=32)
    assert chips.images.shape == (3, 3, 32, 32) and chips.images.dtype == np.uint8
    assert chips.labels.tolist() == [1.0, 0.0, 1.0]
    assert set(np.unique(chips.masks)) <= {0, 1}
    assert chips.masks[0].any() and not chips.masks[1].any()
    m = load_mask(root, "ls_0001")
    assert m.shape == (40, 60) and m.max() == 1 and m.sum() == 15 * 20


def test_bijie_errors(tmp_path):
    with pytest.raises(InputError):
        label_from_name("foo_001")
    with pytest.raises(InputError):
        load_bijie(tmp_path, "train.txt")
    root = make_bijie(tmp_path / "b")
    (root / "bad.txt").write_text("ls_9999\n")
    with pytest.raises(InputError):
        load_bijie(root, root / "bad.txt")


def test_scene_chips_labels_and_coverage(tmp_path):
    from conftest import write_tif
    h, w = 96, 128
    img = np.full((3, h, w), 100, np.uint8)
    mask = np.zeros((h, w), np.uint8)
    mask[:, 96:] = 255          # right quarter not covered
    img[:, :, 96:] = 0
    mask[10:20, 10:20] = 1      # landslide in the top-left chip only
    ip = write_tif(tmp_path / "rgb.tif", img, nodata=0)
    mp = write_tif(tmp_path / "mask.tif", mask, nodata=255)
    chips = scene_chips(ip, mp, size=32, stride=32, min_covered=0.5)
    # columns 0, 32, 64 covered (96 px); column 96 skipped: 3 rows x 3 cols
    assert len(chips) == 9
    assert chips.labels.sum() == 1 and chips.labels[0] == 1
    assert chips.masks.shape == (9, 32, 32)
    dsm = write_tif(tmp_path / "dsm.tif", np.full((h, w), 3000.0, np.float32), nodata=0)
    with_dsm = scene_chips(ip, mp, dsm=dsm, size=32, stride=32)
    assert with_dsm.images.shape[1] == 4 and with_dsm.images[0, 3].max() == 3000.0


def test_band_stats_ignores_invalid():
    imgs = np.zeros((2, 2, 4, 4), np.float32)
    imgs[:, 0, :2] = 10
    imgs[:, 1, :2] = 20
    valid = (imgs != 0).any(axis=1)
    mean, std = band_stats(imgs, valid)
    assert mean == [10.0, 20.0] and std == [1.0, 1.0]  # zero spread -> std 1


def make_l4s(root: Path, n=3):
    import h5py
    (root / "img").mkdir(parents=True)
    (root / "mask").mkdir()
    rng = np.random.default_rng(0)
    for i in range(1, n + 1):
        with h5py.File(root / "img" / f"image_{i}.h5", "w") as f:
            f["img"] = rng.normal(size=(128, 128, 14)).astype(np.float32)
        m = np.zeros((128, 128), np.uint8)
        if i % 2:
            m[40:60, 40:60] = 1
        with h5py.File(root / "mask" / f"mask_{i}.h5", "w") as f:
            f["mask"] = m
    return root


def test_l4s_reader(tmp_path):
    root = make_l4s(tmp_path / "l4s", n=3)
    chips = load_l4s(root / "img", root / "mask")
    assert chips.images.shape == (3, 14, 128, 128)
    assert chips.labels.tolist() == [1.0, 0.0, 1.0]
    assert chips.masks[0, 50, 50] == 1
    img, mask = read_pair(root / "img" / "image_2.h5")
    assert img.shape == (14, 128, 128) and mask is None
    import h5py
    with h5py.File(root / "img" / "image_2.h5", "r") as f:
        assert np.allclose(img[5], f["img"][:, :, 5])  # channels-first without scrambling


def test_l4s_errors(tmp_path):
    with pytest.raises(InputError):
        load_l4s(tmp_path / "none")
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "image_1.h5").write_bytes(b"not h5")
    with pytest.raises(InputError):
        load_l4s(tmp_path / "e")


@pytest.mark.realdata
@pytest.mark.skipif(not SHARED.is_dir(), reason=f"{SHARED} is absent")
def test_real_bijie_and_area_a():
    val = load_bijie(SHARED / "bijie", "val.txt", size=64, with_masks=True)
    assert len(val) == 416 and val.labels.sum() == 108  # the whole published validation split
    assert not val.masks[val.labels == 0].any()
    a = scene_chips(SHARED / "amunet/areaA_rgb.tif", SHARED / "amunet/areaA_mask.tif", size=128, stride=128)
    assert len(a) > 50 and 0.2 < a.labels.mean() < 0.95


def test_scene_chips_at_a_coarser_gsd(tmp_path):
    """factor 2: the scene is halved before chipping; labels survive and names give working offsets."""
    from conftest import write_tif
    img = np.full((3, 128, 128), 100, np.uint8)
    mask = np.zeros((128, 128), np.uint8)
    mask[10:30, 10:30] = 1
    ip = write_tif(tmp_path / "rgb.tif", img)
    mp = write_tif(tmp_path / "mask.tif", mask)
    chips = scene_chips(ip, mp, size=32, stride=32, factor=2.0)
    assert len(chips) == 4 and chips.images.shape == (4, 3, 32, 32)
    assert chips.labels.tolist() == [1, 0, 0, 0]
    assert chips.names[-1].endswith("_r32_c32")


def test_jpeg_round_trip_changes_texture_not_size_and_is_measured_as_asked(tmp_path):
    """load_image(jpeg_quality=Q): the image as the JPEG-stored training split would hold it (same size,
    pixels changed, the same file read alike twice); `evaluate bijie --jpeg-quality` records it, and a
    quality outside 1-95 is one error line with exit 2."""
    import json
    import subprocess
    import sys

    from landslide_wsss.datasets.bijie import load_image
    root = make_bijie(tmp_path / "bijie")
    png = load_image(root, "ls_0002")
    jpg = load_image(root, "ls_0002", jpeg_quality=95)
    assert jpg.shape == png.shape and jpg.dtype == np.uint8
    assert not np.array_equal(jpg, png) and np.array_equal(jpg, load_image(root, "ls_0002", jpeg_quality=95))
    assert np.abs(jpg.astype(int) - png).mean() < np.abs(load_image(root, "ls_0002", 10).astype(int) - png).mean()
    argv = [sys.executable, "-m", "landslide_wsss.cli", "evaluate", "bijie", str(root), "--split",
            str(root / "train.txt"), "--json", "--limit", "1"]
    ok = subprocess.run(argv + ["--jpeg-quality", "95"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["jpeg_quality"] == 95
    bad = subprocess.run(argv + ["--jpeg-quality", "100"], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stdout == ""
    assert [line for line in bad.stderr.splitlines() if line.strip()] == ["error: JPEG quality 100: give 1 to 95"]
