"""A scene far larger than memory as a VRT over tiles: time and peak memory of the per-scene steps and of detect.

The VRT repeats AMU-Net area B (3221 x 2817 px, 0.5 m) side by side up to SIZE x SIZE px, as uint16 x16
(a 12-bit product: the radiometry rule has work to do), nothing written but the small VRT file. Each
run is a fresh child process, so its peak resident memory (ru_maxrss) is its own:

  prepare  open_scene + prepare_scene (bands, the radiometry sample and map, the resolution check)
  detect   the whole `landslide-wsss detect` to a GeoPackage (embedded default model)

    python benchmarks/large_scene.py [--size 40000] [--steps prepare,detect] [--scale 16] [--device cpu]
        [--out benchmarks/results/large_scene.json]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common as C  # noqa: E402

CHILD = r"""
import json, resource, sys, time
t0 = time.time()
step, path, out, device = sys.argv[1:5]
if step == "prepare":
    from landslide_wsss.pipeline import load_scoring_model, prepare_scene
    from landslide_wsss.raster import open_scene
    model = load_scoring_model(None, None, device)
    t1 = time.time()
    with open_scene(path) as sc:
        ready = prepare_scene(sc, model)
        extra = {"rule": ready.radiometry.rule if ready.radiometry else "as read", "seconds_prepare": round(time.time() - t1, 2)}
else:
    from landslide_wsss import api
    gdf = api.detect(path, out, device=device, overwrite=True)
    extra = {"features": int(len(gdf))}
print(json.dumps({"seconds": round(time.time() - t0, 1),
                  "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1), **extra}))
"""


def write_vrt(path: Path, size: int, scale: int = 16) -> Path:
    """scale 1: uint8 as area B is; else uint16, values x scale. The VRT's tiles are a tiled copy of
    area B (512 px blocks, as the tiles of a real mosaic or a COG are): area B itself is stored in
    full-width strips, and every tile window read from them decompresses whole strips again (a
    first 40 000 px run read 32 GB of them in 30 minutes)."""
    import rasterio

    src = path.parent / "areaB_tiled.tif"
    with rasterio.open(C.AMUNET / "areaB_rgb.tif") as ds:
        w, h, tr, crs = ds.width, ds.height, ds.transform, ds.crs.to_wkt()
        profile = {**ds.profile, "tiled": True, "blockxsize": 512, "blockysize": 512, "compress": "deflate"}
        with rasterio.open(src, "w", **profile) as out:
            out.write(ds.read())
    colours = ("Red", "Green", "Blue")
    bands = []
    for b in range(1, 4):
        sources = []
        for y in range(0, size, h):
            for x in range(0, size, w):
                cw, ch = min(w, size - x), min(h, size - y)
                sources.append(
                    f'<ComplexSource><SourceFilename relativeToVRT="0">{src}</SourceFilename><SourceBand>{b}</SourceBand>'
                    f'<SrcRect xOff="0" yOff="0" xSize="{cw}" ySize="{ch}"/><DstRect xOff="{x}" yOff="{y}" xSize="{cw}" '
                    f'ySize="{ch}"/><ScaleRatio>{scale}</ScaleRatio><NODATA>0</NODATA></ComplexSource>')
        bands.append(f'<VRTRasterBand dataType="{"Byte" if scale == 1 else "UInt16"}" band="{b}"><NoDataValue>0</NoDataValue>'
                     f'<ColorInterp>{colours[b - 1]}</ColorInterp>{"".join(sources)}</VRTRasterBand>')
    gt = ", ".join(str(v) for v in (tr.c, tr.a, tr.b, tr.f, tr.d, tr.e))
    path.write_text(f'<VRTDataset rasterXSize="{size}" rasterYSize="{size}"><SRS>{crs.replace("<", "&lt;").replace(">", "&gt;").replace(chr(34), "&quot;")}</SRS>'
                    f'<GeoTransform>{gt}</GeoTransform>{"".join(bands)}</VRTDataset>')
    return path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=40000)
    ap.add_argument("--steps", default="prepare,detect")
    ap.add_argument("--scale", type=int, default=16, help="1: uint8 as area B; else uint16, values x SCALE (default 16)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default=str(C.RESULTS / "large_scene.json"))
    a = ap.parse_args(argv)
    rows = []
    info = C.env_info(a.device)
    with tempfile.TemporaryDirectory(prefix="large-") as tmp:
        vrt = write_vrt(Path(tmp) / f"mosaic_{a.size}.vrt", a.size, a.scale)
        for step in a.steps.split(","):
            t0 = time.time()
            res = subprocess.run([sys.executable, "-c", CHILD, step, str(vrt), str(Path(tmp) / "o.gpkg"), a.device],
                                 capture_output=True, text=True, cwd=C.ROOT)
            if res.returncode != 0:
                row = {"step": step, "error": res.stderr.strip().splitlines()[-1:]}
            else:
                row = {"step": step, **json.loads(res.stdout.strip().splitlines()[-1])}
            row.update(size_px=a.size, megapixels=round(a.size ** 2 / 1e6), dtype="uint8" if a.scale == 1 else f"uint16 x{a.scale}",
                       wall_s=round(time.time() - t0, 1))
            C.add_row(rows, row)
    C.write_rows(a.out, {"benchmark": "large_scene", "input": f"VRT of AMU-Net area B repeated to {a.size} x {a.size} px"},
                 info, rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
