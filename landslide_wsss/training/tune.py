"""Tuning and evaluation stages of the default model (see training/default.py).

Tuning never looks at the validation data: it uses the seeded 10 % hold-out of the Bijie train list
(each image = one scene for the statistics) and the held-out bottom strip of AMU-Net area A
(stitched like a scene), both from training/holdout.py. For each CAM method it picks the CAM normalization (scene max or a
quantile of the non-zero CAM) and the threshold t that maximize the mean landslide IoU of the two
hold-outs; the method with the best mean becomes the default.
"""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np

from ..metrics import Confusion

NORMS = [{"norm": "vmax"}, {"norm": "quantile", "norm_q": 0.99}, {"norm": "quantile", "norm_q": 0.95},
         {"norm": "quantile", "norm_q": 0.9}]
THRESHOLDS = [round(float(t), 2) for t in np.arange(0.05, 0.80, 0.05)]
from ..registry import CAM_METHODS as METHODS  # the CAM methods tuned per method


def _update_meta(out, fn):
    from ..checkpoint import update_model_file
    update_model_file(out, meta=fn)


def score_sets(model, sets, params_override):
    from ..evaluation import image_stats
    conf = Confusion()
    saved = model.settings
    model.settings = dataclasses.replace(saved, **params_override)
    try:
        for maps, mask, valid in sets:
            _, pred = model.fuse(maps, image_stats(maps, valid))
            if valid is not None:
                pred = pred & valid
            conf.update(pred, mask)
    finally:
        model.settings = saved
    return conf.iou


def stage_tune(data, out, seed=0, report_path="runs/default_tune.json", methods=METHODS):
    from ..wsss import load_model
    from .holdout import cam_maps
    t0 = time.time()
    report = {}
    for method in methods:
        model = load_model(out, method=method, device="cpu")
        tm = time.time()
        bij, strip = cam_maps(model, data, seed)
        rows = []
        for norm in NORMS:
            for t in THRESHOLDS:
                ov = dict(norm, thresholds={**model.settings.thresholds, method: t})
                rows.append({**norm, "t": t, "bijie_holdout_iou": score_sets(model, bij, ov),
                             "areaA_strip_iou": score_sets(model, strip, ov)})
        report[method] = {"grid": rows, "seconds": round(time.time() - tm, 1)}
        print(f"tuned {method} in {report[method]['seconds']} s", flush=True)
    Path(report_path).parent.mkdir(parents=True, exist_ok=True)
    Path(report_path).write_text(json.dumps(report, indent=1))
    apply_tuning(out, report)
    print(f"tuning done ({time.time() - t0:.0f} s)", flush=True)
    return report


def apply_tuning(out, report):
    """Pick, per method, the normalization + threshold that maximize the landslide IoU of each hold-out:
    the area A strip gives the scene parameters (detect / evaluate scene: params.per_method), the
    Bijie hold-out the image-chip parameters (evaluate bijie: params.profiles.bijie). The CAM
    landslides of the two domains differ in size and share (Bijie: small, centred in each image;
    area A: large, about 20 % of the covered ground), and one threshold cannot serve both. The
    default method is the best on the area A strip (the scene case)."""
    scene, chips = {}, {}
    for m, r in report.items():
        bs = max(r["grid"], key=lambda x: x["areaA_strip_iou"])
        bb = max(r["grid"], key=lambda x: x["bijie_holdout_iou"])
        scene[m] = {k: v for k, v in bs.items() if k in ("norm", "norm_q")}
        scene[m].update(threshold=bs["t"], holdout_iou=round(bs["areaA_strip_iou"], 4))
        chips[m] = {k: v for k, v in bb.items() if k in ("norm", "norm_q")}
        chips[m].update(threshold=bb["t"], holdout_iou=round(bb["bijie_holdout_iou"], 4))
    default = max(scene, key=lambda m: scene[m]["holdout_iou"])
    for m in scene:
        print(f"tune {m}: scene {scene[m]}  bijie {chips[m]}", flush=True)

    def apply(meta):
        params = meta.setdefault("params", {})
        params.setdefault("thresholds", {})
        per = params.setdefault("per_method", {})
        prof = params.setdefault("profiles", {}).setdefault("bijie", {})
        for m in scene:
            params["thresholds"][m] = scene[m]["threshold"]
            per[m] = {k: v for k, v in scene[m].items() if k != "holdout_iou"}
            prof[m] = {k: v for k, v in chips[m].items() if k != "holdout_iou"}
        params["method"] = default
        meta["method_default"] = default
        meta["tuning"] = {"scene": scene, "bijie": chips,
                          "rule": ("per method: normalization in {vmax, quantile .99/.95/.9 of non-zero CAM} x "
                                   "threshold 0.05..0.75 maximizing landslide IoU on the area A bottom strip (scene "
                                   "parameters) and on the 10% Bijie train hold-out (profile 'bijie'); validation "
                                   "data never used")}
    _update_meta(out, apply)
    return default


JPEG_METHODS = ("student", "unet")  # the networks trained on the (JPEG) training images' pixels
VAL_JPEG_QUALITY = 95  # the training split's own quality (data README)


def stage_evaluate(data, out, methods, report_path="runs/default_eval.json"):
    from ..evaluation import evaluate_bijie, evaluate_scene
    from ..wsss import load_model
    from .data import _paths
    p = _paths(data)
    results = {}
    path = Path(report_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_file():
        results = json.loads(path.read_text())
    for method in methods:
        model = load_model(out, method=method, device="cpu")
        r1 = evaluate_bijie(p["bijie"], p["bijie"] / "val.txt", model=model)
        print(f"bijie val {method}: {json.dumps(r1)}", flush=True)
        model = load_model(out, method=method, device="cpu")
        r2 = evaluate_scene(p["b_rgb"], p["b_mask"], model=model)
        print(f"areaB {method}: {json.dumps(r2)}", flush=True)
        results[method] = {"bijie_val": r1, "areaB": r2}
        if method in JPEG_METHODS:  # the training images are JPEG (quality 95), val's are PNG: both figures
            model = load_model(out, method=method, device="cpu")
            r3 = evaluate_bijie(p["bijie"], p["bijie"] / "val.txt", model=model, jpeg_quality=VAL_JPEG_QUALITY)
            print(f"bijie val (JPEG {VAL_JPEG_QUALITY}) {method}: {json.dumps(r3)}", flush=True)
            results[method]["bijie_val_jpeg95"] = r3
        path.write_text(json.dumps(results, indent=1))
    keep = ("iou", "f1", "precision", "recall", "miou", "seconds", "false_alarm", "free_images_flagged_share",
            "free_pixels_flagged_share", "false_pixels_free_images", "false_pixels_near_landslide",
            "false_pixels_elsewhere", "tp")

    def apply(meta):
        val = meta.setdefault("validation", {})
        for m in [m for m, v in val.items() if isinstance(v, dict) and "bijie_val" in v and m not in results]:
            del val[m]  # figures of methods not measured in this run belong to an earlier file
        for m, r in results.items():
            val[m] = {k: {kk: (round(vv, 4) if isinstance(vv, float) else vv) for kk, vv in r[k].items() if kk in keep}
                      for k in ("bijie_val", "areaB", "bijie_val_jpeg95") if k in r}
        val["note"] = ("landslide-class IoU/F1/precision/recall and 2-class mIoU; the whole Bijie val list and "
                       "AMU-Net area B, neither used in training, tuning or selection; bijie_val_jpeg95: val's images "
                       "after a JPEG round trip at quality 95, as the training images are stored")
    _update_meta(out, apply)
    return results
