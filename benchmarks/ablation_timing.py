"""Inference cost of the refinements, measured alone: CPU seconds per tile of predict_tiles on the
same 64 area-B tiles (128 px, all covered), one thread, every method on the same model file.

    OMP_NUM_THREADS=1 nice .venv/bin/python benchmarks/ablation_timing.py [--data ../shared/data]
Writes runs/ablation_timing.json.
"""
import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from landslide_wsss.paths import DATA_DIR

REPO = Path(__file__).resolve().parents[1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(DATA_DIR))
    ap.add_argument("--tiles", type=int, default=64)
    a = ap.parse_args()
    torch.set_num_threads(1)
    from landslide_wsss.datasets.scene_chips import read_scene_arrays
    from landslide_wsss.wsss import load_model
    d = Path(a.data) / "amunet"
    img, valid, mask = read_scene_arrays(d / "areaB_rgb.tif", d / "areaB_mask.tif")
    dsm, _, _ = read_scene_arrays(d / "areaB_dsm.tif")
    gy, gx = np.gradient(dsm[0], 0.5)
    slope = np.degrees(np.arctan(np.hypot(gx, gy))).astype(np.float32)
    tiles, vals, terr = [], [], []
    h, w = valid.shape
    for r in range(0, h - 128, 128):
        for c in range(0, w - 128, 128):
            if valid[r:r + 128, c:c + 128].all() and (mask[r:r + 128, c:c + 128] == 1).any():
                tiles.append(img[:, r:r + 128, c:c + 128])
                vals.append(valid[r:r + 128, c:c + 128])
                terr.append(np.stack([dsm[0, r:r + 128, c:c + 128], slope[r:r + 128, c:c + 128]]))
    idx = np.random.default_rng(0).choice(len(tiles), min(a.tiles, len(tiles)), replace=False)
    x, v, t = (np.stack([arr[i] for i in idx]).astype(np.float32) for arr in (tiles, vals, terr))
    out = {"tiles": len(x), "note": "landslide-bearing, fully covered 128 px tiles of area B; CPU seconds per tile"}
    for method in ("cam", "terrain-crop", "cam-cyclegan", "terrain-crop-cyclegan"):
        m = load_model(REPO / "runs/models/base.safetensors", method=method, device="cpu")
        m.predict_tiles(x[:4], v[:4], t[:4])  # warm-up
        t0 = time.process_time()
        m.predict_tiles(x, v, t)
        out[method] = round((time.process_time() - t0) / len(x), 4)
        out[method + "_gated_in"] = float(np.mean(m.last_probs >= float(m.settings.gate)))
        print(method, out[method], flush=True)
    (REPO / "runs/ablation_timing.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
