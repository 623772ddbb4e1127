"""What the CycleGAN difference adds to a CAM method, measured on the real data.

    nice .venv/bin/python benchmarks/cyclegan_eval.py --model landslide_wsss/weights/default.safetensors \
        --generators runs/cyclegan/g_a_epoch02.safetensors runs/cyclegan/g_a_epoch05.safetensors \
        --method scorecam --out runs/cyclegan_eval.json

For each split (tuning hold-outs: the Bijie train hold-out and the area A bottom strip, which
neither the classifier nor the CycleGAN saw; validation: Bijie val.txt and AMU-Net area B) the
classifier + CAM run once (the model's gate, CAM method, tiling and stitching as in evaluate),
and every generator's difference map is computed on the same gated tiles. Then:
  - `<method>`: the model's own CAM-only fusion (WeakScorer.fuse), as `evaluate --method <method>`;
  - `<method>-cyclegan` with FusionParams() defaults, and with the fusion parameters chosen on
    the tuning hold-outs (small grid over t_cam and diff_scale; best mean landslide IoU over the
    two hold-outs), for each generator.
Prints and writes one JSON object; also the share of predict time spent in the generator.
"""
from __future__ import annotations

import argparse
import dataclasses
import copy
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from landslide_wsss.checkpoint import load_checkpoint  # noqa: E402
from landslide_wsss.evaluation import bijie_maps, image_stats, stitch_in_memory  # noqa: E402
from landslide_wsss.fusion import FusionParams, difference_map, fuse_maps  # noqa: E402
from landslide_wsss.metrics import Confusion  # noqa: E402
from landslide_wsss.models.cyclegan import load_generator, normalize_spectral, translate  # noqa: E402
from landslide_wsss.paths import DATA_DIR, DEFAULT_MODEL  # noqa: E402


class MultiDiff:
    """ScoringModel-shaped wrapper: the scorer's CAM plus one difference map per generator."""

    def __init__(self, scorer, generators: dict):
        self.scorer, self.gens = scorer, generators
        self.tile_size = scorer.tile_size
        self.variants = ("diff", "dpos")
        self.map_names = ("cam",) + tuple(f"{v}:{k}" for k in generators for v in self.variants)
        self.t_cam = self.t_gen = 0.0
        self.tiles = self.gated = 0

    def predict_tiles(self, tiles, valid, terrain=None):
        t0 = time.perf_counter()
        out = dict(self.scorer.predict_tiles(tiles, valid))
        t1 = time.perf_counter()
        keep = np.asarray(self.scorer.last_probs) >= float(self.scorer.settings.gate)
        self.tiles += len(tiles)
        self.gated += int(keep.sum())
        spec = normalize_spectral(np.asarray(tiles, np.float32)[:, :3])
        for k, g in self.gens.items():
            d = np.zeros(np.asarray(valid).shape, np.float32)
            dp = np.zeros(np.asarray(valid).shape, np.float32)
            if keep.any():
                gx = translate(g, spec[keep])
                d[keep] = difference_map(spec[keep], gx, mode=g.difference_mode)
                # signed variant: how much brighter the real pixel is than its landslide-free
                # rendering (bare soil -> vegetation darkens), positive part only
                from scipy import ndimage
                dp[keep] = ndimage.gaussian_filter(np.maximum((spec[keep] - gx).mean(1), 0), (0, 1, 1))
            out[f"diff:{k}"] = d * np.asarray(valid, bool)
            out[f"dpos:{k}"] = dp * np.asarray(valid, bool)
        self.t_cam += t1 - t0
        self.t_gen += (time.perf_counter() - t1) / max(1, len(self.gens))
        return out


def bijie_split(model, root, names):
    items = []
    for _, maps, mask in bijie_maps(model, root, names):
        items.append((maps, mask))
    return items


def scene_split(model, image, mask, row0=0, row1=None):
    from landslide_wsss.datasets.scene_chips import read_scene_arrays
    img, valid, m = read_scene_arrays(image, mask)
    img, valid, m = img[:, row0:row1], valid[row0:row1], m[row0:row1]
    maps = stitch_in_memory(model, img, valid)
    return [(maps, m, valid)]


def score_cam_only(scorer, items):
    conf = Confusion()
    for it in items:
        maps, mask = it[0], it[1]
        valid = it[2] if len(it) > 2 else None
        sub = {"cam": maps["cam"]}
        _, pred = scorer.fuse(sub, image_stats(sub, valid))
        conf.update(pred & (valid if valid is not None else True), mask)
    return conf.as_dict()


_STATS = {}


def score_fused(items, gkey, params):
    conf = Confusion()
    for it in items:
        maps, mask = it[0], it[1]
        valid = it[2] if len(it) > 2 else None
        sub = {"cam": maps["cam"], "diff": maps[gkey if ":" in gkey else f"diff:{gkey}"]}
        key = (id(maps), gkey)
        if key not in _STATS:  # scene statistics do not depend on the fusion parameters
            _STATS[key] = image_stats(sub, valid)
        _, pred = fuse_maps(sub["cam"], sub["diff"], _STATS[key], params)
        conf.update(pred & (valid if valid is not None else True), mask)
    return conf.as_dict()


def pixel_auc(items, key, n=400_000, seed=0):
    """ROC AUC of one raw map for landslide vs background pixels (labelled pixels, subsampled).
    Per-image/scene maps are pooled raw (no normalization): the split-level separability."""
    vals, labs = [], []
    for it in items:
        maps, mask = it[0], it[1]
        ok = mask != 255
        if len(it) > 2 and it[2] is not None:
            ok &= it[2]
        vals.append(maps[key][ok].ravel())
        labs.append(mask[ok].ravel() == 1)
    v, y = np.concatenate(vals), np.concatenate(labs)
    if len(v) > n:
        idx = np.random.default_rng(seed).choice(len(v), n, replace=False)
        v, y = v[idx], y[idx]
    if y.all() or not y.any():
        return float("nan")
    order = np.argsort(v, kind="mergesort")
    ranks = np.empty(len(v))
    ranks[order] = np.arange(1, len(v) + 1)
    npos = y.sum()
    return float((ranks[y].sum() - npos * (npos + 1) / 2) / (npos * (len(v) - npos)))


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=str(DEFAULT_MODEL))
    ap.add_argument("--generators", nargs="+", required=True,
                    help="generator files (a model file with generator.* counts too)")
    ap.add_argument("--untrained", action="store_true",
                    help="add the control: the first generator's architecture with fresh random weights")
    ap.add_argument("--method", default="scorecam")
    ap.add_argument("--data", default=str(DATA_DIR))
    ap.add_argument("--out", default=str(ROOT / "runs/cyclegan_eval.json"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--limit", type=int, default=None, help="first N Bijie images per list (smoke runs)")
    ap.add_argument("--no-tune", action="store_true")
    ap.add_argument("--splits", default="hold_bijie,hold_strip,val_bijie,areaB")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    from landslide_wsss.wsss import load_model
    data = Path(a.data)
    scorer = load_model(a.model, method=a.method, device="cpu")
    gens = {}
    for p in a.generators:
        t, m = load_checkpoint(p)
        gens[Path(p).stem] = load_generator(t, m)
    if a.untrained:  # same architecture, weights as initialized before any training
        from landslide_wsss.models.cyclegan import init_weights
        torch.manual_seed(0)
        g = copy.deepcopy(next(iter(gens.values())))
        gens["untrained"] = init_weights(g).eval()
    mm = MultiDiff(scorer, gens)
    res = {"model": a.model, "method": a.method, "generators": list(gens), "splits": {}}
    splits = a.splits.split(",")

    from landslide_wsss.datasets.bijie import read_split
    items = {}
    t0 = time.time()
    if "hold_bijie" in splits or "hold_strip" in splits:
        from landslide_wsss.training.data import STRIP_FRAC, split_holdout
        from landslide_wsss.datasets.bijie import label_from_name
        names = read_split(data / "bijie/train.txt")
        _, ho = split_holdout(names, [label_from_name(n) for n in names])
        hold_names = [names[i] for i in ho][: a.limit]
    for sp in splits:
        ts = time.time()
        if sp == "hold_bijie":
            items[sp] = bijie_split(mm, data / "bijie", hold_names)
        elif sp == "val_bijie":
            items[sp] = bijie_split(mm, data / "bijie", read_split(data / "bijie/val.txt")[: a.limit])
        elif sp == "hold_strip":
            import rasterio
            with rasterio.open(data / "amunet/areaA_rgb.tif") as ds:
                cut = int(ds.height * (1 - STRIP_FRAC))
            items[sp] = scene_split(mm, data / "amunet/areaA_rgb.tif", data / "amunet/areaA_mask.tif", row0=cut)
        elif sp == "areaB":
            items[sp] = scene_split(mm, data / "amunet/areaB_rgb.tif", data / "amunet/areaB_mask.tif")
        print(f"{sp}: maps in {time.time() - ts:.0f}s", file=sys.stderr, flush=True)
    res["timing"] = {"cam_s": round(mm.t_cam, 1), "generator_s_per_generator": round(mm.t_gen, 1),
                     "tiles": mm.tiles, "tiles_past_gate": mm.gated,
                     "generator_share_of_predict": round(mm.t_gen / max(1e-9, mm.t_gen + mm.t_cam), 3),
                     "maps_wall_s": round(time.time() - t0, 1)}
    print(json.dumps(res["timing"]), file=sys.stderr, flush=True)

    # tuning on the hold-outs (validation data never used for a choice)
    diff_opts = [{"diff_rule": "otsu", "diff_scale": s} for s in (0.4, 0.6, 0.8, 1.0, 1.2)] + \
                [{"diff_rule": "percentile", "diff_percentile": q} for q in (0.3, 0.5, 0.6, 0.7, 0.8, 0.9)]
    grid = [dict(t_cam=t, cam_quantile=cq, **d) for t in (0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6) for cq in (0.99,)
            for d in diff_opts]
    tuned = {}
    hold = [s for s in ("hold_bijie", "hold_strip") if s in items]
    cam_only = scorer.settings  # typed (CamParams): swapped whole, never changed in place
    if hold and not a.no_tune:  # the CAM-only baseline tuned the same way (training/tune.py's grid)
        from landslide_wsss.training.tune import NORMS, THRESHOLDS
        best = (-1, None)
        saved = scorer.settings
        for norm in NORMS:
            for t in THRESHOLDS:
                scorer.settings = dataclasses.replace(saved, **norm, thresholds={**saved.thresholds, a.method: t})
                iou = float(np.mean([score_cam_only(scorer, items[s])["iou"] for s in hold]))
                if iou > best[0]:
                    best = (iou, dict(norm, threshold=t))
        scorer.settings = saved
        res["tuned_cam_only"] = {"params": best[1], "holdout_mean_iou": best[0]}
        print(f"tuned cam-only: {best}", file=sys.stderr, flush=True)
        cam_only = dataclasses.replace(saved, **{k: v for k, v in best[1].items() if k != "threshold"},
                                       thresholds={**saved.thresholds, a.method: best[1]["threshold"]})
    gkeys = [f"{v}:{g}" for g in gens for v in mm.variants]
    for g in gkeys:
        best = (-1, FusionParams().to_dict())
        if hold and not a.no_tune:
            for kw in grid:
                p = FusionParams(**kw)
                iou = float(np.mean([score_fused(items[s], g, p)["iou"] for s in hold]))
                if iou > best[0]:
                    best = (iou, p.to_dict())
        tuned[g] = best[1]
        res.setdefault("tuned", {})[g] = {"params": best[1], "holdout_mean_iou": best[0]}
        print(f"tuned {g}: {best}", file=sys.stderr, flush=True)
    for sp, its in items.items():
        r = {a.method + "[model params]": score_cam_only(scorer, its)}
        saved, scorer.settings = scorer.settings, cam_only
        r[a.method + "[tuned]"] = score_cam_only(scorer, its)
        scorer.settings = saved
        for g in gkeys:
            r[f"{a.method}-cyclegan[{g},default]"] = score_fused(its, g, FusionParams())
            r[f"{a.method}-cyclegan[{g},tuned]"] = score_fused(its, g, tuned[g])
        r["pixel_auc"] = {k: pixel_auc(its, k) for k in mm.map_names}
        print(f"{sp:11s} pixel AUC " + " ".join(f"{k} {v:.3f}" for k, v in r["pixel_auc"].items()), flush=True)
        res["splits"][sp] = r
        for k, v in r.items():
            if k == "pixel_auc":
                continue
            print(f"{sp:11s} {k:50s} IoU {v['iou']:.3f} F1 {v['f1']:.3f} P {v['precision']:.3f} "
                  f"R {v['recall']:.3f} mIoU {v['miou']:.3f}", flush=True)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
