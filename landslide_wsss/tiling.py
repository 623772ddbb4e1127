"""Tiling a scene into overlapping windows and blending tile outputs back without seams.

TileGrid: windows of `tile` px with `overlap` px overlap covering the whole scene; the last
row/column of tiles is pulled back inside the scene (never zero-padded) and a scene smaller than
a tile gets one window reaching past its edge, read boundless with the valid mask off there.

Stitcher: blends overlapping tile outputs with a raised-cosine weight into a scene-sized float32
raster. Tiles arrive in row-major order, so rows above the current tile row are final: they are
written out and dropped. Memory is one strip of `tile` rows x scene width, whatever the height.
No torch here.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, List, Sequence, Tuple

import numpy as np
import rasterio
from rasterio.windows import Window


def _offsets(size: int, tile: int, stride: int) -> List[int]:
    if size <= tile:
        return [0]
    offs = list(range(0, size - tile + 1, stride))
    if offs[-1] != size - tile:
        offs.append(size - tile)  # edge tile pulled back inside the scene
    return offs


@dataclass(frozen=True)
class TileGrid:
    """A grid of `tile` x `tile` windows with `overlap` px overlap over a width x height scene."""

    width: int
    height: int
    tile: int
    overlap: int = 0

    def __post_init__(self):
        if self.tile < 8:
            raise ValueError(f"tile size {self.tile} is too small (>= 8 px)")
        if not 0 <= self.overlap <= self.tile // 2:
            raise ValueError(f"overlap {self.overlap} must be >= 0 and at most half the tile size {self.tile}")

    @property
    def stride(self) -> int:
        return self.tile - self.overlap

    def windows(self) -> List[Window]:
        """All windows in row-major order (rows outer); each is tile x tile, possibly past a small scene's edge."""
        rows = _offsets(self.height, self.tile, self.stride)
        cols = _offsets(self.width, self.tile, self.stride)
        return [Window(c, r, self.tile, self.tile) for r in rows for c in cols]

    def __len__(self) -> int:
        return len(_offsets(self.height, self.tile, self.stride)) * len(_offsets(self.width, self.tile, self.stride))

    def __iter__(self) -> Iterator[Window]:
        return iter(self.windows())


def grid_size(model, tile=None, overlap=None) -> Tuple[int, int]:
    """(tile, overlap) for a model's grid: the caller's, else the model's own (`tile_size`, `overlap`);
    a model that states no overlap gets an eighth of the tile (the blend ramps need some)."""
    tile = int(tile or model.tile_size)
    if overlap is None:
        overlap = getattr(model, "overlap", None)
    return tile, int(tile // 8 if overlap is None else overlap)


def blend_weight(tile: int, overlap: int) -> np.ndarray:
    """Separable raised-cosine weight: 1 in the core, easing to a small positive value over
    `overlap` px at every border, so overlapping tiles cross-fade and no pixel gets weight 0."""
    w = np.ones(tile, dtype=np.float32)
    if overlap > 0:
        ramp = 0.5 - 0.5 * np.cos(np.pi * (np.arange(overlap, dtype=np.float32) + 0.5) / overlap)
        w[:overlap] = ramp
        w[-overlap:] = np.minimum(w[-overlap:], ramp[::-1])
    w = np.maximum(w, 1e-3)
    return np.outer(w, w)


class Stitcher:
    """Blend per-tile maps into an open, writable, scene-sized float32 dataset (one band per map).

    Call `add(window, maps, valid)` in the grid's row-major order, then `close()`. Pixels that no
    valid tile pixel covered are written as 0.
    """

    def __init__(self, dst: rasterio.io.DatasetWriter, n_maps: int, tile: int, overlap: int):
        self.dst = dst
        self.n = n_maps
        self.width, self.height = dst.width, dst.height
        self.weight = blend_weight(tile, overlap)
        self.rows = tile
        self.top = 0  # first scene row held in the buffer
        self.num = np.zeros((n_maps, self.rows, self.width), np.float32)
        self.den = np.zeros((self.rows, self.width), np.float32)

    def add(self, window: Window, maps: np.ndarray, valid: np.ndarray) -> None:
        """maps: (n_maps, tile, tile) float32 for `window`; valid: (tile, tile) bool."""
        r0, c0 = int(window.row_off), int(window.col_off)
        if r0 < self.top:
            raise ValueError("tiles must be added in row-major order")
        if r0 > self.top:
            self._flush(r0)
        h = min(int(window.height), self.height - r0)
        w = min(int(window.width), self.width - c0)
        wt = self.weight[:h, :w] * valid[:h, :w]
        rs = slice(r0 - self.top, r0 - self.top + h)
        self.num[:, rs, c0 : c0 + w] += maps[:, :h, :w] * wt
        self.den[rs, c0 : c0 + w] += wt

    def _flush(self, upto: int) -> None:
        """Write rows [top, upto) and shift the buffer up."""
        upto = min(upto, self.height)
        n = upto - self.top
        if n <= 0:
            return
        out = np.divide(self.num[:, :n], self.den[:n], out=np.zeros_like(self.num[:, :n]), where=self.den[:n] > 0)
        self.dst.write(out, window=Window(0, self.top, self.width, n))
        keep = self.rows - n
        if keep > 0:
            self.num[:, :keep] = self.num[:, n:]
            self.den[:keep] = self.den[n:]
        self.num[:, max(keep, 0):] = 0
        self.den[max(keep, 0):] = 0
        self.top = upto

    def close(self) -> None:
        while self.top < self.height:
            self._flush(min(self.top + self.rows, self.height))


def batched(items: Sequence, size: int) -> Iterator[Sequence]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def stitch_grid(model, windows: Sequence[Window], read, target, tile: int, overlap: int, batch_size: int,
                progress=None) -> None:
    """The one grid driver (detect's rasters and the in-memory maps alike): `read(windows)` gives
    [(window, data, valid, terrain or None)] for a batch, read on a thread one batch ahead; tiles
    without a valid pixel are skipped; model.predict_tiles; the maps blended into `target` (an open
    rasterio dataset or anything with the same `write`) by the Stitcher. progress(share) after
    each batch, up to 0.9 (the rest of a run belongs to its caller)."""
    import concurrent.futures as cf

    names = list(model.map_names)
    batches = list(batched(windows, batch_size))
    stitcher = Stitcher(target, len(names), tile, overlap)
    done = 0
    with cf.ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(read, batches[0]) if batches else None
        for i in range(len(batches)):
            items = pending.result()
            pending = pool.submit(read, batches[i + 1]) if i + 1 < len(batches) else None
            items = [it for it in items if it[2].any()]
            if items:
                tiles = np.stack([it[1] for it in items])
                valid = np.stack([it[2] for it in items])
                terr = np.stack([it[3] for it in items]) if items[0][3] is not None else None
                maps = model.predict_tiles(tiles, valid, terr)
                for j, it in enumerate(items):
                    stitcher.add(it[0], np.stack([maps[n][j] for n in names]), it[2])
            done += len(batches[i])
            if progress:
                progress(0.9 * done / max(len(windows), 1))
    stitcher.close()
