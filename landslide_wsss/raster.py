"""Scene I/O: open GeoTIFFs of any band count and dtype, read through windows, valid-data mask,
atomic single-band GeoTIFF outputs. No torch here."""
from __future__ import annotations

import contextlib
import errno
import functools
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence, Tuple

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.enums import MaskFlags
from rasterio.errors import NotGeoreferencedWarning, RasterioIOError
from rasterio.windows import Window

from .errors import InputError, OutputError

# Refuse headers that claim more than this many pixels: a corrupt or hostile header must not make
# us allocate terabytes (a 200k x 200k scene is still accepted).
MAX_PIXELS = 200_000 * 200_000
RASTER_SUFFIXES = (".tif", ".tiff", ".gtif", ".vrt", ".img", ".jp2")


def _as_dtype(value: float, dtype) -> Any:
    """A nodata value as the band's type holds it (float32 rounding); one the type cannot hold (-9999 in
    a uint8 band) marks nothing, as in GDAL."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return dtype.type(value)
    info = np.iinfo(dtype)
    if float(value) != int(value) or not info.min <= value <= info.max:
        return None
    return dtype.type(int(value))


@dataclass
class Scene:
    """An open raster scene: the dataset, the chosen bands (1-based), CRS and transform.

    bands_given: the bands were the caller's choice (False: all bands, by default).
    radiometry:  the scene's map onto the model's value domain (radiometry.map_scene), applied by
                 `read`; None: values as stored."""

    path: Path
    dataset: rasterio.io.DatasetReader
    bands: Tuple[int, ...]
    crs: CRS
    transform: rasterio.Affine
    bands_given: bool = True
    radiometry: Optional[Any] = None  # a radiometry.BandMap (not imported: the geospatial core stays below it)

    @property
    def width(self) -> int:
        return self.dataset.width

    @property
    def height(self) -> int:
        return self.dataset.height

    @property
    def name(self) -> str:
        return self.path.stem

    @property
    def pixel_size_m(self) -> Tuple[float, float]:
        """(x, y) pixel sides in metres: the CRS's linear unit converted; for a geographic CRS,
        metres per degree at the scene centre."""
        px, py = abs(self.transform.a), abs(self.transform.e)
        if self.crs.is_geographic:
            lat = self.transform.f + self.transform.e * self.height / 2
            return float(px * 111_320 * np.cos(np.radians(lat))), float(py * 110_574)
        factor = self.crs.linear_units_factor[1] if self.crs.linear_units_factor else 1.0
        return float(px * factor), float(py * factor)

    @property
    def gsd(self) -> float:
        """Ground sampling distance in metres (mean of the two pixel sides)."""
        px, py = self.pixel_size_m
        return (px + py) / 2

    @property
    def pixel_area_m2(self) -> Optional[float]:
        """Area of one pixel in m² for projected CRSs in metres, else None (geographic)."""
        if self.crs.is_geographic:
            return None
        factor = self.crs.linear_units_factor[1] if self.crs.linear_units_factor else 1.0
        return abs(self.transform.a * self.transform.e - self.transform.b * self.transform.d) * factor**2

    def read(self, window: Window, boundless: bool = False) -> Tuple[np.ndarray, np.ndarray]:
        """Read the chosen bands in `window` as float32 (C, h, w) plus the valid mask (h, w).

        Values pass through the scene's radiometry map when it has one. Invalid pixels (nodata,
        internal mask 0, NaN in any band) hold 0 in the data.
        With boundless=True, the window may reach outside the scene; outside is invalid.
        """
        data = self._padded(lambda w: self.dataset.read(self.bands, window=w), window, boundless)
        valid = self._mask_valid(window, boundless, data)
        data = data.astype(np.float32, copy=False)
        valid &= np.isfinite(data).all(axis=0)
        if self.radiometry is not None:
            data = self.radiometry.apply(data)
        data[:, ~valid] = 0.0
        return data, valid

    def read_valid(self, window: Window, boundless: bool = False) -> np.ndarray:
        """Valid-data mask: nodata / internal masks (GDAL's mask of the chosen bands), and NaN for floats."""
        data = None
        if self.floating or self._nodata_masks is not None:
            data = self._padded(lambda w: self.dataset.read(self.bands, window=w), window, boundless)
        valid = self._mask_valid(window, boundless, data)
        if self.floating:
            valid &= np.isfinite(data).all(axis=0)
        return valid

    @property
    def floating(self) -> bool:
        return any(np.dtype(self.dataset.dtypes[b - 1]).kind == "f" for b in self.bands)

    @functools.cached_property
    def _all_valid(self) -> bool:
        """Every chosen band's GDAL mask says all valid (read once: the flags are the dataset's)."""
        return all(self.dataset.mask_flag_enums[b - 1] == [MaskFlags.all_valid] for b in self.bands)

    @functools.cached_property
    def _nodata_masks(self) -> Optional[list]:
        """The chosen bands' nodata values when each band's GDAL mask is just its nodata value, else None."""
        if all(self.dataset.mask_flag_enums[b - 1] == [MaskFlags.nodata] for b in self.bands):
            return [self.dataset.nodatavals[b - 1] for b in self.bands]
        return None

    @functools.cached_property
    def _mask_bands(self) -> Tuple[int, ...]:
        return mask_bands(self.dataset, self.bands)

    def _mask_valid(self, window: Window, boundless: bool, data: Optional[np.ndarray] = None) -> np.ndarray:
        """GDAL's valid mask of the chosen bands in `window` (outside the scene: invalid). A nodata mask
        is computed from the values `data` already read: GDAL's nodata mask band reads each band again,
        and through a VRT or a warp that is the whole read again, per band (4x the work of a scene with
        nodata: a 1.6 Gpx VRT spent 62 % of its time there)."""
        nodata = self._nodata_masks
        if not self._all_valid and (nodata is None or data is None):
            masks = self._padded(lambda w: self.dataset.read_masks(self._mask_bands, window=w), window, boundless)
            return np.all(masks > 0, axis=0)
        valid = self._padded(lambda w: np.ones((1, int(w.height), int(w.width)), bool), window, boundless)[0]
        for k, value in enumerate(nodata or ()):
            value = _as_dtype(value, data.dtype)
            if value is not None:  # NaN nodata: the finite-value check of the callers
                valid &= data[k] != value
        return valid

    def _padded(self, read, window: Window, boundless: bool) -> np.ndarray:
        """read(window) for a window that may reach outside the scene: the inside part is read and
        the rest is 0 (our own boundless read: a WarpedVRT permits none)."""
        r0, c0 = int(window.row_off), int(window.col_off)
        h, w = int(window.height), int(window.width)
        if not boundless or (r0 >= 0 and c0 >= 0 and r0 + h <= self.height and c0 + w <= self.width):
            return read(window)
        ir0, ic0 = max(r0, 0), max(c0, 0)
        ir1, ic1 = min(r0 + h, self.height), min(c0 + w, self.width)
        if ir1 <= ir0 or ic1 <= ic0:
            probe = read(Window(0, 0, 1, 1))
            return np.zeros((probe.shape[0], h, w), probe.dtype)
        inner = read(Window(ic0, ir0, ic1 - ic0, ir1 - ir0))
        out = np.zeros((inner.shape[0], h, w), inner.dtype)
        out[:, ir0 - r0:ir1 - r0, ic0 - c0:ic1 - c0] = inner
        return out

    def close(self) -> None:
        self.dataset.close()

    def __enter__(self) -> "Scene":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def mask_bands(ds, bands: Sequence[int]) -> Tuple[int, ...]:
    """The bands whose GDAL masks together say which pixels of `bands` are valid: one band when every
    chosen band's mask is the dataset's own (an internal mask or an alpha band; reading it per band
    reads the same mask again for each), else each band."""
    if all(MaskFlags.per_dataset in ds.mask_flag_enums[b - 1] for b in bands):
        return (int(bands[0]),)
    return tuple(int(b) for b in bands)


def resampled_scene(scene: Scene, gsd: float) -> Scene:
    """The scene seen at ground sampling distance `gsd` (metres) through a WarpedVRT: area-averaged
    when coarser, bilinear when finer; same CRS and extent. Closing it leaves `scene` open."""
    from rasterio.enums import Resampling
    from rasterio.vrt import WarpedVRT

    f = float(gsd) / scene.gsd
    width, height = max(1, round(scene.width / f)), max(1, round(scene.height / f))
    transform = scene.transform * rasterio.Affine.scale(scene.width / width, scene.height / height)
    vrt = WarpedVRT(scene.dataset, src_crs=scene.crs, crs=scene.crs, transform=transform, width=width,
                    height=height, resampling=Resampling.average if f > 1 else Resampling.bilinear)
    return Scene(path=scene.path, dataset=vrt, bands=scene.bands, crs=scene.crs, transform=transform,
                 bands_given=scene.bands_given, radiometry=scene.radiometry)


def needs_resampling(scene: Scene, gsd: Optional[float], tolerance: float = 0.02) -> bool:
    return bool(gsd) and abs(float(gsd) / scene.gsd - 1) > tolerance


def open_scene(
    path,
    bands: Optional[Sequence[int]] = None,
    assume_crs: Optional[str] = None,
) -> Scene:
    """Open a raster scene with checks that give one clear InputError instead of a traceback.

    bands: 1-based band indexes to use (default: all bands).
    assume_crs: CRS to use when the file has none (e.g. "EPSG:32647"); without it such files are refused.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a directory, expected a raster file")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: empty file, not a raster")
    try:
        with warnings.catch_warnings():  # we say it ourselves, in one line, below
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            ds = rasterio.open(path)
    except RasterioIOError as exc:
        raise InputError(f"{path}: not a readable raster ({_short(exc)})") from None
    try:
        scene = _check_dataset(path, ds, bands, assume_crs)
    except Exception:
        ds.close()
        raise
    return scene


def _check_dataset(path: Path, ds, bands, assume_crs) -> Scene:
    if ds.width < 1 or ds.height < 1 or ds.count < 1:
        raise InputError(f"{path}: raster has no pixels ({ds.width}x{ds.height}, {ds.count} bands)")
    if ds.width * ds.height > MAX_PIXELS:
        raise InputError(f"{path}: raster header claims {ds.width}x{ds.height} pixels, beyond what this tool accepts")
    if ds.width < 2 and ds.height < 2:
        raise InputError(f"{path}: a {ds.width}x{ds.height} raster is too small to hold a landslide")
    given = bands is not None
    if bands is None:
        bands = tuple(range(1, ds.count + 1))
    bands = tuple(int(b) for b in bands)
    bad = [b for b in bands if b < 1 or b > ds.count]
    if bad or not bands:
        raise InputError(f"{path}: band choice {list(bands)} does not fit a raster with {ds.count} band(s)")
    transform = ds.transform
    if transform.is_identity or ds.transform == rasterio.Affine.identity():
        if not ds.gcps[0] and not ds.rpcs:
            raise InputError(f"{path}: raster has no geotransform (not georeferenced)")
        raise InputError(f"{path}: raster is georeferenced by GCPs/RPCs only; warp it to a grid first (gdalwarp)")
    if transform.b != 0 or transform.d != 0:
        raise InputError(
            f"{path}: rotated or sheared geotransform is not supported; warp it to a north-up grid first (gdalwarp)"
        )
    crs = ds.crs
    if crs is None:
        if not assume_crs:
            raise InputError(f"{path}: raster has no CRS; give one with --assume-crs EPSG:XXXX")
        crs = check_crs("--assume-crs", assume_crs)
    # Touch the first block so that truncated files fail here, not in the middle of a run.
    try:
        ds.read(bands[0], window=Window(0, 0, min(ds.width, 16), min(ds.height, 16)))
    except Exception as exc:
        raise InputError(f"{path}: raster data cannot be read ({_short(exc)})") from None
    return Scene(path=path, dataset=ds, bands=bands, crs=crs, transform=transform, bands_given=given)


def rgb_bands(ds) -> Optional[Tuple[int, int, int]]:
    """(red, green, blue) band numbers from the file's colour interpretation, None when it names no
    full set (the first band of each colour counts)."""
    from rasterio.enums import ColorInterp

    first = {}
    for i, ci in enumerate(ds.colorinterp, start=1):
        first.setdefault(ci, i)
    want = (ColorInterp.red, ColorInterp.green, ColorInterp.blue)
    return tuple(first[c] for c in want) if all(c in first for c in want) else None


def fit_bands(scene: Scene, n: int, log=None) -> Scene:
    """The scene with `n` bands for a model that takes `n`: as chosen; or, when the caller chose none
    and the model takes red, green and blue, those three by the file's colour interpretation (said
    in one info line); else InputError asking for --bands."""
    import dataclasses

    if len(scene.bands) == n:
        return scene
    rgb = rgb_bands(scene.dataset) if not scene.bands_given and n == 3 else None
    if rgb is None:
        raise InputError(
            f"{scene.path}: {len(scene.bands)} band(s) chosen but the model expects {n}; choose bands with --bands"
        )
    if log is not None:
        log.info("%s: %d bands and no --bands: using bands %s (red, green, blue by the file's colour interpretation)",
                 scene.path.name, len(scene.bands), ",".join(map(str, rgb)))
    return dataclasses.replace(scene, bands=rgb, bands_given=True)


def check_crs(flag: str, text) -> Optional[CRS]:
    """A user-given CRS string as a CRS (None stays None); InputError when it is not one."""
    if text is None:
        return None
    try:
        return CRS.from_user_input(text)
    except Exception:  # noqa: BLE001 - pyproj/rasterio raise several types for bad strings
        raise InputError(f"{flag} {text!r}: not a CRS (expected e.g. EPSG:32647 or a WKT / PROJ string)") from None


def list_rasters(directory) -> list[Path]:
    """Raster files directly inside `directory`, sorted; InputError when there are none."""
    directory = Path(directory)
    if not directory.is_dir():
        raise InputError(f"{directory}: not a directory")
    found = sorted(p for p in directory.iterdir() if p.is_file() and p.suffix.lower() in RASTER_SUFFIXES)
    if not found:
        raise InputError(f"{directory}: no raster files (*.tif, *.tiff) in this directory")
    return found


def _short(exc: Exception) -> str:
    return str(exc).splitlines()[0][:200]


# ---------------------------------------------------------------------------------------------
# Atomic outputs


def check_output(path, overwrite: bool) -> Path:
    """Refuse an existing output without overwrite, or a missing / read-only output directory."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"{path}: output directory {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise OutputError(f"{path}: output directory {parent} is not writable")
    if path.is_dir():
        raise OutputError(f"{path}: output is a directory; give a file name")
    if path.exists() and not overwrite:
        raise OutputError(f"{path}: output exists; use --overwrite to replace it")
    return path


PART = ".part"  # atomic_output's temporary files: .NAME.HOST-PID.RANDOM.part.SUFFIX beside the output


def _writer_tag() -> str:
    """This process as a temporary file's name tells it: a short hash of the host, and the PID."""
    import socket
    import zlib
    return f"{zlib.crc32(socket.gethostname().encode()):08x}-{os.getpid()}"


def _writer_gone(fields: list) -> bool:
    """Whether the writer of a temporary file named .NAME.<fields> was killed: HOST-PID.RANDOM.part...
    names a process (gone when not running on this host; another host's cannot be seen from here,
    so they count as running); RANDOM.part... is an older version's name, taken as gone; anything
    else is not atomic_output's file for NAME."""
    if len(fields) > 1 and fields[1] == PART[1:]:
        return True
    if len(fields) < 3 or fields[2] != PART[1:]:
        return False
    host, _, pid = fields[0].partition("-")
    if host != _writer_tag().partition("-")[0] or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # another user's live process
        return False
    return False


def cut_short_writes(path) -> list:
    """The temporary files atomic_output left beside `path` when its process was killed mid-write
    (never those of a writer still running)."""
    path = Path(path)
    parts = path.parent.glob(f".{path.name}.*{PART}*")
    return [p for p in parts if _writer_gone(p.name[len(path.name) + 2:].split("."))]


def drop_cut_short_writes(path) -> None:
    for part in cut_short_writes(path):
        part.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_output(path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path in the same directory; move it onto `path` only on success.

    On any exception (KeyboardInterrupt included) the temporary file is removed and `path`
    is left as it was, so a reader never sees a half-written output.
    Without overwrite, an output that another run wrote meanwhile is not replaced (OutputError): two
    runs to one path never interleave a file, and the one that finishes second says so. A write that
    fails on a full file system is one OutputError saying so.
    """
    path = check_output(path, overwrite)
    drop_cut_short_writes(path)  # a killed earlier run's; never a running one's
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{_writer_tag()}.", suffix=PART + path.suffix, dir=path.parent)
    except OSError as exc:
        raise _write_error(path, exc) from None
    os.close(fd)
    os.unlink(tmp)  # writers (GDAL, sqlite) want to create the file themselves
    tmp = Path(tmp)
    try:
        yield tmp
        if not tmp.exists():
            raise OutputError(f"{path}: writer produced no file")
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would hide outputs from other users
        _publish(tmp, path, overwrite)
    except BaseException as exc:
        full = isinstance(exc, Exception) and not isinstance(exc, OutputError) and _no_space(exc, path.parent)
        for leftover in tmp.parent.glob(tmp.name + "*"):  # sqlite -journal / -wal files too
            leftover.unlink(missing_ok=True)
        if full:
            raise _write_error(path, exc) from None
        raise


# Writers report a full disk under other names (sqlite: "no such table" after a failed page write,
# GDAL: "Free disk space available is ..."): a write that fails with less than this free is taken as one.
FULL_MARGIN = 256 * 1024


def _no_space(exc: BaseException, directory: Path) -> bool:
    seen = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        seen = seen.__cause__ or seen.__context__
    try:
        return shutil.disk_usage(directory).free < FULL_MARGIN
    except OSError:
        return False


def _write_error(path: Path, exc: BaseException) -> OutputError:
    if _no_space(exc, path.parent):
        return OutputError(f"{path}: no space left on the output's file system; nothing was written")
    return OutputError(f"{path}: cannot write ({_short(exc)}); nothing was written")


def _publish(tmp: Path, path: Path, overwrite: bool) -> None:
    """Move the finished file onto `path` in one step: a hard link (which refuses an existing path)
    without overwrite, a rename with it."""
    if overwrite:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise OutputError(f"{path}: output appeared while this run was writing it (another run?); "
                          "use --overwrite to replace it") from None
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
            raise
        if path.exists():  # a file system without hard links: the check and the rename are two steps
            raise OutputError(f"{path}: output appeared while this run was writing it (another run?); "
                              "use --overwrite to replace it") from None
        os.replace(tmp, path)
        return
    tmp.unlink()


GEOTIFF_PROFILE = dict(driver="GTiff", tiled=True, blockxsize=256, blockysize=256, compress="deflate", predictor=2)


def geotiff_profile(scene: Scene, dtype="float32", count: int = 1, nodata=None, **extra) -> dict:
    """Profile for a single- (or few-) band output aligned with `scene`: tiled and compressed."""
    profile = dict(GEOTIFF_PROFILE)
    profile.update(
        width=scene.width, height=scene.height, count=count, dtype=dtype, crs=scene.crs, transform=scene.transform
    )
    if np.dtype(dtype).kind == "f":
        profile["predictor"] = 3
    if scene.width < 256 or scene.height < 256:
        profile.update(tiled=False)
        profile.pop("blockxsize"), profile.pop("blockysize")
    if nodata is not None:
        profile["nodata"] = nodata
    profile.update(extra)
    return profile


def write_geotiff(path, array: np.ndarray, scene: Scene, overwrite: bool = False, nodata=None) -> Path:
    """Write a single-band array aligned with `scene` as a tiled, compressed GeoTIFF, atomically."""
    with atomic_output(path, overwrite) as tmp:
        with rasterio.open(tmp, "w", **geotiff_profile(scene, dtype=array.dtype, nodata=nodata)) as dst:
            dst.write(array, 1)
    return Path(path)


def block_windows(width: int, height: int, rows: int = 1024) -> Iterator[Window]:
    """Full-width strips of `rows` rows: the unit of every windowed pass over a scene."""
    for r in range(0, height, rows):
        yield Window(0, r, width, min(rows, height - r))


__all__ = [
    "Scene", "open_scene", "list_rasters", "check_output", "atomic_output", "write_geotiff",
    "geotiff_profile", "block_windows", "resampled_scene", "needs_resampling", "MAX_PIXELS", "rgb_bands",
    "fit_bands", "check_crs",
]


# ---------------------------------------------------------------------------------------------
# Terrain (a co-registered DSM/DEM)


class Terrain:
    """Elevation and slope on the scene's grid, from a DSM file (warped on the fly if its grid
    differs). A context manager: `with open_terrain(path, scene) as t: t.read(window)`."""

    def __init__(self, path, scene: Scene):
        from rasterio.vrt import WarpedVRT
        from rasterio.enums import Resampling

        self.path = Path(path)
        try:
            self.src = rasterio.open(self.path)
        except RasterioIOError as exc:
            raise InputError(f"{self.path}: DSM is not a readable raster ({_short(exc)})") from None
        if self.src.crs is None:
            self.src.close()
            raise InputError(f"{self.path}: DSM has no CRS")
        if not _bounds_overlap(self.src, scene):
            self.src.close()
            raise InputError(f"{self.path}: DSM does not overlap the scene {scene.path.name}")
        same = (
            self.src.crs == scene.crs and self.src.transform.almost_equals(scene.transform)
            and self.src.width == scene.width and self.src.height == scene.height
        )
        self.ds = self.src if same else WarpedVRT(
            self.src, crs=scene.crs, transform=scene.transform, width=scene.width, height=scene.height,
            resampling=Resampling.bilinear,
        )
        self.scene = scene
        self.px, self.py = scene.pixel_size_m  # the slope's run, in the DSM's unit (metres)

    def __enter__(self) -> "Terrain":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def read(self, window: Window) -> np.ndarray:
        """float32 (2, h, w): elevation (m) and slope (degrees); 0 where the DSM has no data."""
        boundless = window.col_off + window.width > self.ds.width or window.row_off + window.height > self.ds.height
        z = self.ds.read(1, window=window, boundless=boundless, fill_value=0).astype(np.float32)
        ok = self.ds.read_masks(1, window=window, boundless=boundless) > 0
        ok &= np.isfinite(z)
        z = np.where(ok, z, np.float32(z[ok].mean()) if ok.any() else 0).astype(np.float32)
        if min(z.shape) >= 2:
            gy, gx = np.gradient(z, self.py, self.px)
            slope = np.degrees(np.arctan(np.hypot(gx, gy))).astype(np.float32)
        else:
            slope = np.zeros_like(z)
        return np.stack([np.where(ok, z, 0), np.where(ok, slope, 0)]).astype(np.float32)

    def close(self) -> None:
        if self.ds is not self.src:
            self.ds.close()
        self.src.close()


def _bounds_overlap(ds, scene: Scene) -> bool:
    from rasterio.warp import transform_bounds

    try:
        l, b, r, t = transform_bounds(ds.crs, scene.crs, *ds.bounds)
    except Exception:  # noqa: BLE001 - a CRS pair that cannot be transformed cannot overlap usefully
        return False
    sl, sb, sr, st = rasterio.transform.array_bounds(scene.height, scene.width, scene.transform)
    return l < sr and r > sl and b < st and t > sb


def open_terrain(path, scene: Scene) -> Terrain:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: DSM file not found")
    return Terrain(path, scene)
