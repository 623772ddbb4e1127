import numpy as np
import pytest
import rasterio
from hypothesis import given, settings, strategies as st
from rasterio.transform import from_origin

from landslide_wsss.tiling import Stitcher, TileGrid, blend_weight


@settings(max_examples=60, deadline=None)
@given(w=st.integers(2, 700), h=st.integers(2, 700), tile=st.sampled_from([16, 64, 128]), frac=st.sampled_from([0, 4, 8]))
def test_grid_covers_every_pixel_and_stays_inside(w, h, tile, frac):
    overlap = tile // frac if frac else 0
    grid = TileGrid(w, h, tile, overlap)
    cover = np.zeros((h, w), bool)
    for win in grid:
        assert win.width == tile and win.height == tile
        assert win.col_off >= 0 and win.row_off >= 0
        if w >= tile:
            assert win.col_off + win.width <= w  # edge tiles pulled back inside
        else:
            assert win.col_off == 0
        if h >= tile:
            assert win.row_off + win.height <= h
        cover[win.row_off : win.row_off + tile, win.col_off : win.col_off + tile] = True
    assert cover.all()
    assert len(grid) == len(grid.windows())


def test_scene_not_a_multiple_of_tile():
    wins = TileGrid(300, 200, 128, 16).windows()
    assert sorted({w.col_off for w in wins}) == [0, 112, 172]
    assert sorted({w.row_off for w in wins}) == [0, 72]


def test_bad_overlap_rejected():
    with pytest.raises(ValueError):
        TileGrid(100, 100, 64, 40)


def _stitch(tmp_path, w, h, tile, overlap, fn):
    p = tmp_path / "out.tif"
    with rasterio.open(p, "w", driver="GTiff", width=w, height=h, count=1, dtype="float32",
                       crs="EPSG:32647", transform=from_origin(0, h, 1, 1)) as dst:
        st_ = Stitcher(dst, 1, tile, overlap)
        for win in TileGrid(w, h, tile, overlap):
            valid = np.ones((tile, tile), bool)
            st_.add(win, fn(win)[None].astype(np.float32), valid)
        st_.close()
    with rasterio.open(p) as ds:
        return ds.read(1)


@pytest.mark.parametrize("w,h,tile,overlap", [(300, 211, 64, 16), (50, 40, 64, 8), (257, 513, 128, 32)])
def test_constant_field_stitches_to_constant(tmp_path, w, h, tile, overlap):
    out = _stitch(tmp_path, w, h, tile, overlap, lambda win: np.full((tile, tile), 3.25))
    np.testing.assert_allclose(out, 3.25, rtol=1e-5)


def test_linear_field_is_reproduced_without_seams(tmp_path):
    # Each tile reports the true global column index: blending must return it exactly.
    tile, overlap = 64, 16
    out = _stitch(tmp_path, 200, 150, tile, overlap,
                  lambda win: np.broadcast_to(np.arange(win.col_off, win.col_off + tile), (tile, tile)))
    np.testing.assert_allclose(out, np.broadcast_to(np.arange(200), (150, 200)), atol=1e-3)


def test_blend_weight_positive_and_symmetric():
    w = blend_weight(64, 16)
    assert w.min() > 0 and np.allclose(w, w.T) and np.allclose(w, w[::-1, ::-1])
