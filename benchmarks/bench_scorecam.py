"""Score-CAM side by side: ours (exact, fast) vs pytorch-grad-cam 1.5.7 ScoreCAM vs torchcam ScoreCAM.

Same classifier weights, same tiles, same target (the single landslide logit; the libraries see the
model through a wrapper that returns it as (N, 1), class 0).

Map comparison "after the same normalization": every map is brought to the tile size with bilinear
(half-pixel) upsampling and min-max normalized per image. This is exact for all three: grad-cam
returns min-max(resize(cam)), torchcam returns min-max(cam) at feature resolution, ours returns
resize(cam) unnormalized, and min-max(resize(a*cam+b)) = min-max(resize(cam)).

Where the definitions differ (so "max |diff|" against a library mixes definition and implementation;
the rows "ours, grad-cam/torchcam definition" swap only our mask builder to the library's and
isolate the implementation difference):
  * grad-cam: masks = min-max(UpsamplingBilinear2d(A_k)) — align_corners=True — with +1e-8 in the
    denominator; weights = softmax over channels of the raw target logits; map min-max'd per image
    (a landslide-free tile lights up just as much as a landslide tile).
  * torchcam: masks = upsample(min-max(A_k) at feature resolution, +1e-8), align_corners=False;
    weights = softmax(score(M_k) - score(x)) (the baseline cancels in the softmax); map min-max'd
    per image (normalized=True).
  * ours: masks = min-max(upsample(A_k)), align_corners=False (the paper's code), a constant
    channel gets the zero mask; weights = softmax of the raw logits; map NOT normalized per image
    (the scene-level normalization happens in fuse()).

Fast mode fidelity (against our exact fp32 maps, per tile then averaged): Spearman rank correlation
of the normalized maps, IoU of the masks thresholded at 0.3 (the product's Score-CAM threshold) of
the per-image normalized maps; and the change of landslide IoU on the Bijie val list
(evaluation.evaluate_bijie, method scorecam, exact vs fast, the product's bf16 setting).

    python benchmarks/bench_scorecam.py [--device auto] [--tiles 8] [--ref-tiles 2] [--repeat 2]
                                        [--eval-limit 40] [--model PATH]
"""
from __future__ import annotations

import argparse
import contextlib
import sys
import time
import types
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common as C  # noqa: E402

THRESHOLD = 0.3


def _minmax(m: np.ndarray) -> np.ndarray:
    m = m.astype(np.float64)
    lo = m.min(axis=(1, 2), keepdims=True)
    hi = m.max(axis=(1, 2), keepdims=True)
    return np.where(hi > lo, (m - lo) / np.where(hi > lo, hi - lo, 1), 0.0)


def _to_tile(maps, size: int) -> np.ndarray:
    import torch
    import torch.nn.functional as F

    t = torch.as_tensor(np.asarray(maps, np.float32))
    if t.shape[-1] != size:
        t = F.interpolate(t[:, None], size=(size, size), mode="bilinear", align_corners=False)[:, 0]
    return _minmax(t.numpy())


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return float(np.array_equal(a, b))
    return float(spearmanr(a.ravel(), b.ravel()).statistic)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    u = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / u) if u else 1.0


class LogitAsClass(object):
    """Wrap the classifier so libraries see (N, 1) class scores."""

    def __new__(cls, model):
        import torch

        class _W(torch.nn.Module):
            def __init__(self, m):
                super().__init__()
                self.m = m

            def forward(self, x):
                return self.m(x)[:, None]

        return _W(model).eval()


def ours_variants():
    """Our ScoreCAM with the library's mask definition swapped in (implementation check)."""
    import torch
    import torch.nn.functional as F

    from landslide_wsss.cam.scorecam import ScoreCAM

    class GradCamDefinition(ScoreCAM):
        def masks(self, a, h, w):
            up = F.interpolate(a, size=(h, w), mode="bilinear", align_corners=True)
            lo = up.amin(dim=(2, 3), keepdim=True)
            hi = up.amax(dim=(2, 3), keepdim=True)
            return (up - lo) / (hi - lo + 1e-8)

        def channel_scores(self, x, acts, channels):  # grad-cam has no constant-channel shortcut
            return _no_const_shortcut(self, x, acts, channels)

    class TorchcamDefinition(ScoreCAM):
        def masks(self, a, h, w):
            lo = a.amin(dim=(2, 3), keepdim=True)
            a = (a - lo) / ((a - lo).amax(dim=(2, 3), keepdim=True) + 1e-8)
            return F.interpolate(a, size=(h, w), mode="bilinear", align_corners=False)

        def channel_scores(self, x, acts, channels):
            return _no_const_shortcut(self, x, acts, channels)

    def _no_const_shortcut(self, x, acts, channels):
        n, _, h, w = x.shape
        scores = torch.empty(n, channels.shape[1], device=x.device)
        model = self.scoring_model()
        ii, jj = torch.meshgrid(torch.arange(n), torch.arange(channels.shape[1]), indexing="ij")
        ii, jj = ii.flatten(), jj.flatten()
        with torch.inference_mode(), self._autocast():
            for s in range(0, len(ii), self.chunk):
                bi, bj = ii[s:s + self.chunk], jj[s:s + self.chunk]
                a = acts[bi, channels[bi, bj]].float()[:, None]
                masked = (x[bi] * self.masks(a, h, w)).contiguous(memory_format=torch.channels_last)
                scores[bi, bj] = model(masked).float().reshape(len(bi), -1)[:, 0]
        return scores

    return GradCamDefinition, TorchcamDefinition


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--tiles", type=int, default=8, help="tiles for our modes (fidelity of fast vs exact)")
    ap.add_argument("--ref-tiles", type=int, default=2, help="tiles for the library comparison (slow)")
    ap.add_argument("--repeat", type=int, default=2, help="timing repeats (min is reported)")
    ap.add_argument("--eval-limit", type=int, default=40,
                    help="Bijie val images for the IoU change (0 = the whole list, -1 = skip)")
    ap.add_argument("--model", default=None, help="model file (default: embedded default, else random init)")
    ap.add_argument("--name", default="scorecam")
    args = ap.parse_args(argv)

    import torch

    import pytorch_grad_cam.score_cam as gc_score_cam
    from pytorch_grad_cam import ScoreCAM as GradCamScoreCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    from torchcam.methods import ScoreCAM as TorchcamScoreCAM

    from landslide_wsss.cam.scorecam import ScoreCAM

    gc_score_cam.tqdm = types.SimpleNamespace(tqdm=lambda it, **kw: it)  # silence its progress bars
    device = C.resolve_device(args.device)
    env = C.env_info(device)
    path, model_desc = C.model_file(args.model)
    model, meta = C.load_classifier(path, device)
    model = model.to(memory_format=torch.channels_last)
    x_raw, tiles_desc = C.tiles(max(args.tiles, args.ref_tiles))
    x = model.normalize(torch.from_numpy(x_raw).to(device)).contiguous(memory_format=torch.channels_last)
    xr = x[: args.ref_tiles]
    size = x.shape[-1]
    k = int(model.num_features)
    print(f"# Score-CAM benchmark — device {device} ({env['gpu']}); {model_desc}; {tiles_desc}; "
          f"K={k} channels; load {env['loadavg_start']}", flush=True)

    def bf16_ctx(on: bool):
        if on and device.startswith("cuda"):
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def ours(bf16=False, cls=ScoreCAM, **kw):
        """One instance per mode, as in the product (WeakScorer keeps its CAM), warmed up on one tile
        (BatchNorm folding and oneDNN primitive creation happen once per instance, not per tile)."""
        cam = cls(model, bf16=bf16 and device == "cpu", **kw)

        def run(inp):
            with bf16_ctx(bf16):
                return cam(inp).float().cpu().numpy()
        run(x[:1])
        return run

    wrapped = LogitAsClass(model)

    def gradcam(inp):
        cam = GradCamScoreCAM(model=wrapped, target_layers=[model.layer4])
        out = cam(input_tensor=inp.contiguous(), targets=[ClassifierOutputTarget(0)] * len(inp))
        cam.activations_and_grads.release()
        return out

    def torchcam(inp):
        with TorchcamScoreCAM(wrapped, target_layer="m.layer4", input_shape=tuple(inp.shape[1:])) as ex:
            with torch.no_grad():
                scores = wrapped(inp.contiguous())
            return ex(class_idx=0, scores=scores)[0].float().cpu().numpy()

    GDef, TDef = ours_variants()
    # ---- library comparison on the ref tiles: repeats outer, methods inner (load drift hits all alike)
    ref_methods = {
        "grad-cam ScoreCAM (bs 16, fp32)": gradcam,
        "torchcam ScoreCAM (bs 32, fp32)": torchcam,
        "ours exact fp32": ours(False),
        "ours exact bf16": ours(True),
        "ours exact fp32, grad-cam definition": ours(False, GDef),
        "ours exact fp32, torchcam definition": ours(False, TDef),
    }
    times = {m: [] for m in ref_methods}
    cpu = {m: [] for m in ref_methods}
    loads = {m: [] for m in ref_methods}
    maps = {}
    for r in range(args.repeat):
        for name, fn in ref_methods.items():
            loads[name].append(C.loadavg()[0])
            C.sync(device)
            t0, c0 = time.perf_counter(), time.process_time()
            out = fn(xr)
            C.sync(device)
            times[name].append((time.perf_counter() - t0) / len(xr))
            cpu[name].append((time.process_time() - c0) / len(xr))
            maps[name] = _to_tile(out, size)
            print(f"  [{r + 1}/{args.repeat}] {name}: {times[name][-1]:.2f} s/tile (load {C.loadavg()})", flush=True)
    gc_s = min(times["grad-cam ScoreCAM (bs 16, fp32)"])
    ref_for = {"ours exact fp32, grad-cam definition": "grad-cam ScoreCAM (bs 16, fp32)",
               "ours exact fp32, torchcam definition": "torchcam ScoreCAM (bs 32, fp32)"}
    rows = []
    for name in ref_methods:
        s = min(times[name])
        d_gc = np.abs(maps[name] - maps["grad-cam ScoreCAM (bs 16, fp32)"])
        d_tc = np.abs(maps[name] - maps["torchcam ScoreCAM (bs 32, fp32)"])
        d_ex = np.abs(maps[name] - maps["ours exact fp32"])
        own = ref_for.get(name)
        rows.append({"method": name, "s_per_tile": s, "speedup_vs_gradcam": gc_s / s,
                     "cpu_s_per_tile": min(cpu[name]),
                     "cpu_speedup_vs_gradcam": min(cpu["grad-cam ScoreCAM (bs 16, fp32)"]) / min(cpu[name]),
                     "max_diff_vs_gradcam": float(d_gc.max()), "max_diff_vs_torchcam": float(d_tc.max()),
                     "max_diff_vs_ours_exact": float(d_ex.max()),
                     "max_diff_vs_own_library": float(np.abs(maps[name] - maps[own]).max()) if own else None,
                     "mask_iou_vs_gradcam": float(np.mean([iou(a > THRESHOLD, b > THRESHOLD) for a, b in
                                                           zip(maps[name], maps["grad-cam ScoreCAM (bs 16, fp32)"])])),
                     "loadavg_1m": [min(loads[name]), max(loads[name])], "tiles": len(xr)})

    # ---- our modes on all tiles: exact fp32 is the fidelity reference
    modes = {
        "ours exact fp32": dict(bf16=False),
        "ours exact bf16": dict(bf16=True),
        "ours fast top-32 bf16": dict(bf16=True, top_k=32),
        "ours fast top-32 by std bf16": dict(bf16=True, top_k=32, select="std"),
        "ours fast top-64 by std bf16": dict(bf16=True, top_k=64, select="std"),
        "ours fast top-32, 64 px bf16": dict(bf16=True, top_k=32, mask_size=64),
    }
    mt = {m: [] for m in modes}
    ml = {m: [] for m in modes}
    mmaps = {}
    mode_fns = {name: ours(**kw) for name, kw in modes.items()}
    for r in range(args.repeat):
        for name, fn in mode_fns.items():
            ml[name].append(C.loadavg()[0])
            C.sync(device)
            t0 = time.perf_counter()
            out = fn(x)
            C.sync(device)
            mt[name].append((time.perf_counter() - t0) / len(x))
            mmaps[name] = _to_tile(out, size)
            print(f"  [{r + 1}/{args.repeat}] {name}: {mt[name][-1]:.3f} s/tile (load {C.loadavg()})", flush=True)
    ex_s = min(mt["ours exact fp32"])
    ref = mmaps["ours exact fp32"]
    # grad-cam seconds per tile measured on the ref tiles; exact fp32 measured on both sets links them
    gc_per_exact = gc_s / min(times["ours exact fp32"])
    fast_rows = []
    for name in modes:
        s = min(mt[name])
        fast_rows.append({
            "method": name, "s_per_tile": s, "speedup_vs_exact_fp32": ex_s / s,
            "speedup_vs_gradcam": gc_per_exact * ex_s / s,
            "spearman_vs_exact_mean": float(np.mean([spearman(a, b) for a, b in zip(mmaps[name], ref)])),
            "spearman_vs_exact_min": float(np.min([spearman(a, b) for a, b in zip(mmaps[name], ref)])),
            "mask_iou_vs_exact_mean": float(np.mean([iou(a > THRESHOLD, b > THRESHOLD) for a, b in zip(mmaps[name], ref)])),
            "max_diff_vs_exact": float(np.abs(mmaps[name] - ref).max()),
            "loadavg_1m": [min(ml[name]), max(ml[name])], "tiles": len(x)})

    # ---- FLOPs per tile (one forward pass; exact Score-CAM = 1 + K passes)
    fwd = C.forward_flops(model, x[:1])
    fwd64 = C.forward_flops(model, torch.nn.functional.interpolate(x[:1], size=(64, 64)))
    peak = C.peak_flops("bf16")
    for row in rows + fast_rows:
        passes = k
        for kk in (16, 32, 64):
            if f"top-{kk}" in row["method"]:
                passes = kk
        flops = fwd + passes * (fwd64 if "64 px" in row["method"] else fwd)
        row["gflop_per_tile"] = flops / 1e9
        row["achieved_gflops"] = flops / row["s_per_tile"] / 1e9
        row["pct_of_peak"] = 100 * flops / row["s_per_tile"] / peak if peak else None

    # ---- landslide IoU on the Bijie val list, exact vs fast (product settings otherwise)
    eval_rows = []
    if C.BIJIE.is_dir() and args.eval_limit >= 0:
        from landslide_wsss.evaluation import evaluate_bijie

        split = C.BIJIE / "val.txt"
        if args.eval_limit:  # an evenly spaced subset: landslide and landslide-free images alike
            names = C.bijie_names()
            pick = np.unique(np.linspace(0, len(names) - 1, args.eval_limit).round().astype(int))
            split = C.RESULTS / "bijie_val_subset.txt"
            split.parent.mkdir(parents=True, exist_ok=True)
            split.write_text("\n".join(names[i] for i in pick) + "\n")
        for name, sc in [("exact", {"top_k": None, "mask_size": None, "chunk": 256}),
                         ("fast top-32", {"top_k": 32, "mask_size": None, "chunk": 256}),
                         ("fast top-32 by std", {"top_k": 32, "mask_size": None, "chunk": 128, "select": "std"}),
                         ("fast top-64 by std", {"top_k": 64, "mask_size": None, "chunk": 128, "select": "std"}),
                         ("fast top-32, 64 px", {"top_k": 32, "mask_size": 64, "chunk": 256})]:
            la = C.loadavg()
            res = evaluate_bijie(C.BIJIE, split, method="scorecam", model_path=path, device=device,
                                 params={"scorecam": sc})
            eval_rows.append({"mode": name, "iou": res["iou"], "f1": res["f1"], "miou": res["miou"],
                              "seconds": res["seconds"], "images": res["images"], "loadavg": la})
            print(f"  Bijie val ({res['images']} images) scorecam {name}: IoU {res['iou']:.4f} in {res['seconds']} s "
                  f"(load {la})", flush=True)
        for r in eval_rows:
            r["iou_change_vs_exact"] = r["iou"] - eval_rows[0]["iou"]

    t1 = C.table(rows, ["method", "s_per_tile", "speedup_vs_gradcam", "cpu_s_per_tile", "cpu_speedup_vs_gradcam", "max_diff_vs_gradcam", "max_diff_vs_torchcam",
                        "max_diff_vs_own_library", "mask_iou_vs_gradcam", "gflop_per_tile", "loadavg_1m"],
                 f"Score-CAM vs libraries ({len(xr)} tiles, min of {args.repeat}; maps min-max normalized at {size} px)")
    t2 = C.table(fast_rows, ["method", "s_per_tile", "speedup_vs_exact_fp32", "speedup_vs_gradcam",
                             "spearman_vs_exact_mean", "spearman_vs_exact_min", "mask_iou_vs_exact_mean",
                             "max_diff_vs_exact", "achieved_gflops", "loadavg_1m"],
                 f"Our modes ({len(x)} tiles, min of {args.repeat}; fidelity against ours exact fp32)")
    t3 = C.table(eval_rows, ["mode", "images", "iou", "iou_change_vs_exact", "f1", "seconds", "loadavg"],
                 "Bijie val landslide IoU, method scorecam" + (f" ({args.eval_limit} evenly spaced images of val.txt)"
                                                                if args.eval_limit else "")) if eval_rows else ""
    head = (f"device {device} — {env['gpu']}; torch {env['torch']} ({env['torch_threads']} threads); {model_desc}; "
            f"{tiles_desc}; forward {fwd / 1e9:.3f} GFLOP/tile at {size} px; K={k}")
    md = "\n\n".join(p for p in [head, t1, t2, t3] if p)
    print()
    print(md)
    out = C.save(args.name, {"env": env, "model": model_desc, "tiles": tiles_desc, "K": k,
                             "forward_gflop_per_tile": fwd / 1e9, "libraries": rows, "modes": fast_rows,
                             "bijie_eval": eval_rows, "raw_times": {"libraries": times, "libraries_cpu": cpu, "modes": mt},
                             "markdown": md})
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
