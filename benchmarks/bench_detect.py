"""Whole `detect` (GeoTIFF -> GeoPackage) on a real scene and on synthetic 10k x 10k and 20k x 20k scenes.

Each run is a fresh child process (so peak memory is that run's own): wall time, time per km² and per
megapixel, tiles per second, share of tiles skipped by the classifier gate (WeakScorer exposes the
gate probabilities as `last_probs`; n/a for a model that does not), and peak resident memory — the
child's own ru_maxrss, cross-checked by polling its RSS with psutil from the parent.

Synthetic scenes are generated on the fly into /tmp (kept for reuse): 0.5 m RGB in UTM 47N, tiled
256 px deflate GeoTIFF, mostly plain vegetation with a few bright scars, written block by block
(memory-bounded: one 1024-px block at a time, whatever the scene size).

    python benchmarks/bench_detect.py [--scenes areaB,10k,20k] [--device auto] [--method M]
        [--large-model brightness|same|PATH] [--large-method M] [--profile]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common as C  # noqa: E402

BLOCK = 1024
PIXEL = 0.5
ORIGIN = (385_000.0, 3_445_000.0)


# ---------------------------------------------------------------------------------------------
# synthetic scenes


def make_synthetic(path: Path, size: int, seed: int = 11, n_scars: int = 0) -> Path:
    """size x size RGB scene, written one BLOCK x BLOCK window at a time."""
    import rasterio
    from rasterio.transform import from_origin
    from rasterio.windows import Window

    from landslide_wsss.sample import _noise

    if path.is_file():
        return path
    rng = np.random.default_rng(seed)
    veg = _noise(rng, (BLOCK, BLOCK), scales=(64, 16, 4))  # one texture, rolled per block
    soil = _noise(rng, (BLOCK, BLOCK), scales=(6, 2))
    n_scars = n_scars or max(3, size // 2000)
    scars = [(rng.uniform(0, size), rng.uniform(0, size), rng.uniform(40, 160), rng.uniform(20, 70),
              rng.uniform(0, np.pi)) for _ in range(n_scars)]
    profile = dict(driver="GTiff", width=size, height=size, count=3, dtype="uint8", crs="EPSG:32647",
                   transform=from_origin(ORIGIN[0], ORIGIN[1], PIXEL, PIXEL), nodata=0, tiled=True,
                   blockxsize=256, blockysize=256, compress="deflate", BIGTIFF="IF_SAFER")
    tmp = path.with_suffix(".part.tif")
    with rasterio.open(tmp, "w", **profile) as dst:
        for r0 in range(0, size, BLOCK):
            for c0 in range(0, size, BLOCK):
                h, w = min(BLOCK, size - r0), min(BLOCK, size - c0)
                v = np.roll(veg, (int(rng.integers(BLOCK)), int(rng.integers(BLOCK))), axis=(0, 1))[:h, :w]
                rgb = np.stack([70 + 14 * v, 92 + 18 * v, 58 + 10 * v])
                yy, xx = np.mgrid[r0:r0 + h, c0:c0 + w].astype(np.float32)
                for cx, cy, lx, ly, ang in scars:
                    if abs(cx - (c0 + w / 2)) > w / 2 + lx or abs(cy - (r0 + h / 2)) > h / 2 + lx:
                        continue
                    c, s = np.cos(ang), np.sin(ang)
                    u = ((xx - cx) * c + (yy - cy) * s) / lx
                    q = (-(xx - cx) * s + (yy - cy) * c) / ly
                    m = (u ** 2 + q ** 2) < 1
                    so = soil[:h, :w]
                    rgb[:, m] = np.stack([150 + 16 * so, 132 + 14 * so, 110 + 12 * so])[:, m]
                rgb += rng.normal(0, 3, rgb.shape).astype(np.float32)
                dst.write(np.clip(rgb, 1, 255).astype(np.uint8), window=Window(c0, r0, w, h))
    os.replace(tmp, path)
    return path


def scene_path(name: str) -> tuple:
    if name == "areaB":
        p = C.AMUNET / "areaB_rgb.tif"
        if not p.is_file():
            return None, "AMU-Net area B is not here"
        return p, "AMU-Net area B RGB (real, 0.5 m)"
    size = {"10k": 10_000, "20k": 20_000}.get(name) or int(name)
    t0 = time.time()
    p = make_synthetic(Path(tempfile.gettempdir()) / f"lwsss-bench-synth-{size}.tif", size)
    return p, f"synthetic {size}x{size} (generated/reused in {time.time() - t0:.0f} s)"


# ---------------------------------------------------------------------------------------------
# child: one detect run


def child(args) -> int:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    import rasterio

    from landslide_wsss.api import detect, load_scoring_model
    from landslide_wsss.tiling import TileGrid

    model = load_scoring_model(args.model, args.method, args.device)
    counts = {"tiles_scored": 0, "gated_out": 0, "gate_known": hasattr(model, "params")}
    inner = model.predict_tiles

    def predict_tiles(tiles, valid, terrain=None):
        out = inner(tiles, valid, terrain)
        counts["tiles_scored"] += len(tiles)
        probs = getattr(model, "last_probs", None)
        if probs is not None and hasattr(model, "settings"):
            counts["gated_out"] += int((np.asarray(probs) < float(model.settings.gate)).sum())
        else:
            counts["gate_known"] = False
        return out

    model.predict_tiles = predict_tiles
    with rasterio.open(args.child) as ds:
        width, height = ds.width, ds.height
        res = ds.res
    tile = int(args.tile or model.tile_size)
    overlap = tile // 8
    n_tiles = len(TileGrid(width, height, tile, overlap))
    prof = None
    if args.profile:
        import cProfile

        prof = cProfile.Profile()
        prof.enable()
    import psutil

    rss_before = psutil.Process().memory_info().rss / 2 ** 20
    t0 = time.perf_counter()
    gdf = detect(args.child, out=args.out, model=model, overwrite=True, tile=args.tile)
    wall = time.perf_counter() - t0
    if prof is not None:
        import pstats

        prof.disable()
        prof.dump_stats(args.out + ".prof")
        pstats.Stats(prof, stream=sys.stderr).sort_stats("cumulative").print_stats(25)
        pstats.Stats(prof, stream=sys.stderr).sort_stats("tottime").print_stats(20)
    print("RESULT " + json.dumps({
        "wall_s": wall, "width": width, "height": height, "pixel_m": [float(res[0]), float(res[1])],
        "tiles_grid": n_tiles, "tiles_scored": counts["tiles_scored"],
        "gated_out": counts["gated_out"] if counts["gate_known"] else None,
        "polygons": int(len(gdf)), "method": model.name,
        "ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_before_detect_mb": rss_before,
        "cpu_s": resource.getrusage(resource.RUSAGE_SELF).ru_utime + resource.getrusage(resource.RUSAGE_SELF).ru_stime,
        "torch_threads": torch.get_num_threads(),
    }), flush=True)
    return 0


def run_child(scene: Path, method, model_path, device, tile, profile=False, timeout=3600) -> dict:
    import psutil

    out = Path(tempfile.gettempdir()) / f"lwsss-bench-{scene.stem}.gpkg"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", str(scene), "--out", str(out),
           "--device", device, "--model", str(model_path)]
    if method:
        cmd += ["--method", method]
    if tile:
        cmd += ["--tile", str(tile)]
    if profile:
        cmd += ["--profile"]
    la0 = C.loadavg()
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ps = psutil.Process(proc.pid)
    peak = peak_anon = 0
    while proc.poll() is None:
        try:
            peak = max(peak, ps.memory_info().rss)
            with open(f"/proc/{proc.pid}/status") as fh:  # anonymous (data) pages only, no mapped libraries
                for line in fh:
                    if line.startswith("RssAnon:"):
                        peak_anon = max(peak_anon, int(line.split()[1]) * 1024)
        except (psutil.Error, OSError):
            pass
        time.sleep(0.2)
        if time.perf_counter() - t0 > timeout:
            proc.kill()
    stdout, stderr = proc.communicate()
    total = time.perf_counter() - t0
    res = next((json.loads(l[7:]) for l in stdout.splitlines() if l.startswith("RESULT ")), None)
    if res is None:
        raise RuntimeError(f"detect child failed (rc {proc.returncode}):\n{stderr[-3000:]}")
    if profile:
        (C.RESULTS / f"profile-{scene.stem}.txt").parent.mkdir(parents=True, exist_ok=True)
        (C.RESULTS / f"profile-{scene.stem}.txt").write_text(stderr)
    res.update(process_s=total, psutil_peak_rss_mb=peak / 2 ** 20, peak_rss_anon_mb=peak_anon / 2 ** 20, loadavg=la0, loadavg_after=C.loadavg(),
               children_maxrss_mb=resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scenes", default="areaB,10k,20k")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--method", default=None, help="method for the real scene (default: the model's default)")
    ap.add_argument("--large-method", default="", help="method for the synthetic 10k/20k scenes ('' = --method)")
    ap.add_argument("--large-model", default="brightness",
                    help="model for the synthetic scenes: brightness (fast hand-set brightness student, default), "
                         "same (the real scene's model), or a model file")
    ap.add_argument("--model", default=None)
    ap.add_argument("--tile", type=int, default=None)
    ap.add_argument("--profile", action="store_true", help="cProfile the real scene's run (results/profile-*.txt)")
    ap.add_argument("--name", default="detect")
    # child mode
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--out", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--threads", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        return child(args)

    device = C.resolve_device(args.device)
    env = C.env_info(device)
    model_path, model_desc = C.model_file(args.model)
    print(f"# detect benchmark — device {device} ({env['gpu']}); {model_desc}; load {env['loadavg_start']}", flush=True)
    rows = []
    for name in [s for s in args.scenes.split(",") if s]:
        large = name != "areaB"
        path, desc = scene_path(name)
        if path is None:
            print(f"  {name}: skipped ({desc})")
            continue
        method = (args.large_method or args.method) if large else args.method
        mpath, mdesc = model_path, model_desc
        if large and args.large_model == "brightness":
            mpath, mdesc = C.brightness_student_file()
            method = None
        elif large and args.large_model != "same":
            mpath, mdesc = C.model_file(args.large_model)
        print(f"  {name}: {desc}; method {method or 'default'}; {mdesc} ...", flush=True)
        r = run_child(path, method, mpath, device, args.tile, profile=args.profile and not large)
        mpx = r["width"] * r["height"] / 1e6
        km2 = mpx * 1e6 * r["pixel_m"][0] * r["pixel_m"][1] / 1e6
        row = {"scene": name, "description": desc, "model": mdesc, "method": r["method"],
               "size": f"{r['width']}x{r['height']}", "mpx": mpx, "km2": km2, "wall_s": r["wall_s"],
               "s_per_km2": r["wall_s"] / km2, "s_per_mpx": r["wall_s"] / mpx,
               "tiles": r["tiles_grid"], "tiles_scored": r["tiles_scored"],
               "tiles_per_s": r["tiles_grid"] / r["wall_s"],
               "gate_skipped_share": (r["gated_out"] / r["tiles_scored"]) if (r["gated_out"] is not None and r["tiles_scored"]) else None,
               "nodata_skipped_share": 1 - r["tiles_scored"] / r["tiles_grid"] if r["tiles_grid"] else None,
               "peak_rss_mb": r["ru_maxrss_mb"], "psutil_peak_rss_mb": r["psutil_peak_rss_mb"],
               "peak_rss_anon_mb": r["peak_rss_anon_mb"], "rss_before_detect_mb": r["rss_before_detect_mb"],
               "growth_mb": r["ru_maxrss_mb"] - r["rss_before_detect_mb"],
               "cpu_s": r["cpu_s"], "cpu_s_per_2_cores": r["cpu_s"] / 2,
               "polygons": r["polygons"], "loadavg": r["loadavg"], "loadavg_after": r["loadavg_after"]}
        rows.append(row)
        C.save(args.name + ".partial", {"env": env, "rows": rows})  # a later scene's failure keeps these
        print(f"    {row['wall_s']:.1f} s, {row['s_per_mpx']:.2f} s/Mpx, {row['tiles_per_s']:.1f} tiles/s, "
              f"peak RSS {row['peak_rss_mb']:.0f} MB (load {row['loadavg']} -> {row['loadavg_after']})", flush=True)
    md = C.table(rows, ["scene", "method", "size", "mpx", "wall_s", "s_per_km2", "s_per_mpx", "tiles", "tiles_per_s",
                        "gate_skipped_share", "nodata_skipped_share", "cpu_s_per_2_cores", "rss_before_detect_mb", "peak_rss_mb",
                        "growth_mb", "peak_rss_anon_mb", "loadavg"],
                 f"detect, device {device} ({env['gpu']})")
    md = md + "\n\nModels: " + "; ".join(sorted({f"{r['scene']}: {r['model']}" for r in rows}))
    print()
    print(md)
    out = C.save(args.name, {"env": env, "rows": rows, "markdown": md})
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
