"""Metrics on hand-computed cases."""
import numpy as np
import pytest

from landslide_wsss.metrics import Confusion, segmentation_metrics


def test_hand_computed_counts():
    pred = np.array([[1, 1, 0, 0], [1, 0, 0, 1]], bool)
    ref = np.array([[1, 0, 0, 255], [1, 1, 0, 0]], np.uint8)
    c = Confusion().update(pred, ref)
    # kept pixels: 7 (one 255). tp: (0,0),(1,0) = 2; fp: (0,1),(1,3) = 2; fn: (1,1) = 1; tn: (0,2),(1,2) = 2
    assert (c.tp, c.fp, c.fn, c.tn) == (2, 2, 1, 2)
    assert c.iou == pytest.approx(2 / 5)
    assert c.precision == pytest.approx(2 / 4)
    assert c.recall == pytest.approx(2 / 3)
    assert c.f1 == pytest.approx(2 * 2 / (2 * 2 + 2 + 1))
    assert c.f1 == pytest.approx(2 * c.iou / (1 + c.iou))
    assert c.iou_background == pytest.approx(2 / 5)
    assert c.miou == pytest.approx(0.5 * (2 / 5 + 2 / 5))


def test_accumulates_over_split_not_mean_of_images():
    # image 1: perfect on a big landslide; image 2: misses a small one entirely
    p1, r1 = np.ones((10, 10), bool), np.ones((10, 10), np.uint8)
    p2, r2 = np.zeros((2, 2), bool), np.ones((2, 2), np.uint8)
    m = segmentation_metrics([p1, p2], [r1, r2])
    assert m["iou"] == pytest.approx(100 / 104)  # pixel counts summed, not (1 + 0) / 2
    assert m["tp"] == 100 and m["fn"] == 4


def test_ignore_everything_and_empty():
    c = Confusion().update(np.ones((3, 3), bool), np.full((3, 3), 255, np.uint8))
    assert (c.tp, c.fp, c.fn, c.tn) == (0, 0, 0, 0)
    assert c.iou == 0.0 and c.f1 == 0.0 and c.miou == 0.0


def test_shape_mismatch_raises():
    with pytest.raises(ValueError):
        Confusion().update(np.ones((2, 2), bool), np.ones((3, 3), np.uint8))


def test_iadd():
    a = Confusion(1, 2, 3, 4)
    a += Confusion(1, 1, 1, 1)
    assert (a.tp, a.fp, a.fn, a.tn) == (2, 3, 4, 5)


def test_evaluate_bijie_says_where_its_false_pixels_lie(tmp_path):
    """On the landslide-free images; within NEAR_M of a landslide (a mask drawn too wide); elsewhere
    in a landslide image (a false landslide): counted exactly with a scorer whose marks are known."""
    from PIL import Image

    from conftest import ThresholdScorer
    from landslide_wsss.evaluation import NEAR_M, evaluate_bijie
    root = tmp_path / "bijie"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()

    def put(name, bright, truth=None):
        img = np.full((64, 64, 3), 30, np.uint8)
        mask = np.zeros((64, 64), np.uint8)
        for r0, c0, r1, c1 in bright:
            img[r0:r1, c0:c1] = 220
        if truth:
            r0, c0, r1, c1 = truth
            mask[r0:r1, c0:c1] = 255
        Image.fromarray(img).save(root / "images" / f"{name}.png")
        Image.fromarray(mask).save(root / "masks" / f"{name}.png")
    # a 10 px landslide marked 2 px too wide all round (96 near pixels) and a false 10 x 10 px
    # landslide 20 px (16 m) away; one free image with a 5 x 10 px mark, one unmarked
    put("ls_0001", [(18, 18, 32, 32), (50, 50, 60, 60)], truth=(20, 20, 30, 30))
    put("nls_0001", [(5, 5, 10, 15)])
    put("nls_0002", [])
    (root / "val.txt").write_text("ls_0001\nnls_0001\nnls_0002\n")
    r = evaluate_bijie(root, root / "val.txt", model=ThresholdScorer(), gsd=0.8)
    assert 2 * 0.8 <= NEAR_M < 20 * 0.8
    assert (r["false_pixels_near_landslide"], r["false_pixels_elsewhere"], r["false_pixels_free_images"]) == (96, 100, 50)
    assert r["fp"] == 96 + 100 + 50 and r["tp"] == 100
    assert r["free_images_flagged"] == 1 and r["free_images_flagged_share"] == 0.5
