"""Shared helpers for the benchmarks: environment record, model choice, tiles, timing, tables, JSON.

Every figure is recorded with the 1/5/15-minute load average taken right before and after it
(the development machine has 2 cores shared with other jobs, so timings are noisy: we report the
minimum of N repeats). Nothing here is a timed assert; results go to benchmarks/results/*.json.
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from landslide_wsss.paths import DATA_DIR, DEFAULT_MODEL  # noqa: E402
from landslide_wsss.training.data import CONFIG as DEFAULT_CONFIG, TILE  # noqa: E402 (the default model's layout)

RESULTS = ROOT / "benchmarks" / "results"
DATA = DATA_DIR
BIJIE = DATA / "bijie"
AMUNET = DATA / "amunet"
# Used only for a randomly initialised classifier (the default model carries its own).
RANDOM_MEAN, RANDOM_STD = [110.0, 110.0, 100.0], [50.0, 50.0, 50.0]


# ---------------------------------------------------------------------------------------------
# environment


def loadavg() -> List[float]:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:  # pragma: no cover
        return [float("nan")] * 3


def resolve_device(device: str) -> str:
    from landslide_wsss.devices import resolve_device as resolve
    from landslide_wsss.errors import InputError

    try:
        return resolve(device)
    except InputError as exc:
        raise SystemExit(f"error: {exc}") from None


def env_info(device: str) -> dict:
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True, timeout=10).stdout.strip()
    except Exception:  # pragma: no cover
        commit = ""
    return {
        "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "host": platform.node(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "device": device,
        "gpu": gpu or "no GPU in this task (CPU figures only)",
        "loadavg_start": loadavg(),
        "git_commit": commit,
    }


def sync(device: str) -> None:
    if str(device).startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def timed(fn: Callable[[], object], repeat: int = 3, device: str = "cpu") -> dict:
    """Run fn `repeat` times; min and median wall seconds, the load average around the runs, last result."""
    times, out = [], None
    la0 = loadavg()
    for _ in range(max(1, repeat)):
        sync(device)
        t0 = time.perf_counter()
        out = fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return {"min_s": min(times), "median_s": float(np.median(times)), "runs": len(times),
            "loadavg": la0, "loadavg_after": loadavg(), "result": out}


# ---------------------------------------------------------------------------------------------
# model


def default_model_path() -> Path:
    return DEFAULT_MODEL


def _sha(path) -> str:
    import hashlib

    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]


def model_file(explicit: Optional[str] = None, seed: int = 0, width: Optional[int] = None) -> tuple:
    """(path to a model file, description). The embedded default model if it exists, else a randomly
    initialised classifier of the same architecture written once to /tmp (`width` overrides the width:
    a smaller, faster model for the very large synthetic scenes)."""
    if explicit:
        return Path(explicit), f"model file {explicit} (sha256 {_sha(explicit)})"
    if width is None and default_model_path().is_file():
        return default_model_path(), ("embedded default model (landslide_wsss/weights/default.safetensors, "
                                      f"sha256 {_sha(default_model_path())})")
    import torch

    from landslide_wsss.checkpoint import save_checkpoint
    from landslide_wsss.models.classifier import build_classifier
    from landslide_wsss.wsss import DEFAULT_PARAMS, classifier_metadata

    cfg = dict(DEFAULT_CONFIG, width=int(width or DEFAULT_CONFIG["width"]))
    path = Path("/tmp") / f"lwsss-bench-random-w{cfg['width']}-s{seed}.safetensors"
    if not path.is_file():
        torch.manual_seed(seed)
        model = build_classifier(cfg, mean=RANDOM_MEAN, std=RANDOM_STD).eval()
        meta = classifier_metadata(model, tile=TILE, training={"note": f"random init, seed {seed} (benchmark only)"},
                                   params=dict(DEFAULT_PARAMS))
        save_checkpoint(path, {f"classifier.{k}": v for k, v in model.state_dict().items()}, meta)
    what = "randomly initialised classifier of the default architecture " if width is None else \
        "randomly initialised SMALL classifier "
    return path, what + f"(ResNet-18 layout, width {cfg['width']}, OS16, {TILE} px; seed {seed}; no trained default model here)"


def brightness_student_file() -> tuple:
    """A hand-set segmentation student (landslide_wsss.models.student: ResNet-18 stem + one decoder
    block, 4 convolutions) that scores bare-soil brightness: scars ~1, vegetation ~0, at 2 px
    granularity (the stem's stride). A student-only model file with its ONNX graph, loaded like any
    other; the fast model for the very large synthetic scenes, whose runs measure the tiling /
    stitching / fusion / vectorizing path and its memory, not the CNN."""
    import torch

    from landslide_wsss.checkpoint import save_checkpoint
    from landslide_wsss.models.student import StudentNet
    from landslide_wsss.onnx_export import embed_graphs

    path = Path("/tmp") / "lwsss-bench-student-brightness.safetensors"
    if not path.is_file():
        net = StudentNet(3, "resnet18", depth=1, decoder=[8], mean=[0.0] * 3, std=[1.0] * 3).eval()
        stem, block, head = net.net.encoder.conv1, net.net.decoder.blocks[0], net.net.segmentation_head[0]
        with torch.no_grad():  # batch norms stay identities (weight 1, bias 0, running mean 0, var 1)
            for conv in (stem, block.conv1[0], block.conv2[0], head):
                conv.weight.zero_()
            stem.weight[0, :, 3, 3] = 1.0 / 3  # channel 0 = mean of R, G, B
            block.conv1[0].weight[0, 0, 1, 1] = 1.0
            block.conv2[0].weight[0, 0, 1, 1] = 1.0
            head.weight[0, 0, 1, 1] = 0.2
            head.bias.fill_(-0.2 * 105.0)  # sigmoid(0.2 (brightness - 105))
        student = {"config": net.config(), "tile_size": 256, "overlap": 32, "gsd": None, "threshold": 0.5,
                   "gate_high": None}
        save_checkpoint(path, {f"student.{k}": v for k, v in net.state_dict().items()},
                        {"architecture": "student", "in_bands": 3, "version": "student-brightness",
                         "method_default": "student", "student": student})
        embed_graphs(path)
    return path, "hand-set brightness student (ResNet-18 stem + one decoder block, 256 px tiles): the fast model option"


def load_classifier(path: Path, device: str):
    """The bare classifier (nn.Module, eval) inside a model file."""
    from landslide_wsss.checkpoint import load_checkpoint
    from landslide_wsss.wsss import _load_classifier

    tensors, meta = load_checkpoint(path)
    return _load_classifier(tensors, meta, path).to(device).eval(), meta


# ---------------------------------------------------------------------------------------------
# tiles


def bijie_names(split: str = "val.txt", limit: Optional[int] = None, landslide_only: bool = False) -> List[str]:
    from landslide_wsss.datasets.bijie import read_split

    names = read_split(BIJIE / split)
    if landslide_only:
        names = [n for n in names if n.startswith("ls_")]
    return names[:limit] if limit else names


def tiles(n: int, seed: int = 0) -> tuple:
    """(n, 3, TILE, TILE) float32 raw band values, description: real Bijie val chips (landslide
    images, resized to the tile size as evaluation does) when the data is here, else synthetic."""
    if BIJIE.is_dir():
        from landslide_wsss.datasets.bijie import load_image, resize_image

        names = bijie_names(landslide_only=True, limit=n)
        x = np.stack([resize_image(load_image(BIJIE, nm), TILE) for nm in names]).astype(np.float32)
        return x, f"{len(names)} Bijie val landslide chips resized to {TILE} px ({names[0]}..{names[-1]})"
    from landslide_wsss.sample import _noise

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        veg = _noise(rng, (TILE, TILE), scales=(16, 4))
        img = np.stack([70 + 14 * veg, 92 + 18 * veg, 58 + 10 * veg])
        yy, xx = np.mgrid[0:TILE, 0:TILE]
        scar = ((xx - rng.uniform(30, 98)) ** 2 / 400 + (yy - rng.uniform(30, 98)) ** 2 / 150) < 1
        img[:, scar] = np.array([150.0, 132.0, 110.0])[:, None]
        out.append(np.clip(img + rng.normal(0, 3, img.shape), 1, 255))
    return np.stack(out).astype(np.float32), f"{n} synthetic {TILE} px chips (no Bijie data here)"


# ---------------------------------------------------------------------------------------------
# FLOPs


# Dense peak throughput (FLOP/s) of cards this project may be lent; used for "% of peak".
GPU_PEAK = {
    "H100": {"bf16": 989e12, "fp16": 989e12, "fp32": 67e12, "tf32": 494e12},
    "H200": {"bf16": 989e12, "fp16": 989e12, "fp32": 67e12, "tf32": 494e12},
    "A100": {"bf16": 312e12, "fp16": 312e12, "fp32": 19.5e12, "tf32": 156e12},
}


def forward_flops(model, x) -> int:
    """FLOPs of one forward pass of `model` on `x` (torch.utils.flop_counter; 2 per multiply-add)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with torch.inference_mode(), FlopCounterMode(display=False) as fc:
        model(x)
    return int(fc.get_total_flops())


def peak_flops(dtype: str = "bf16") -> Optional[float]:
    import torch

    if not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name(0)
    for key, peaks in GPU_PEAK.items():
        if key in name:
            return peaks.get(dtype)
    return None


# ---------------------------------------------------------------------------------------------
# output


def fmt(v) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, (float, np.floating)):
        a = abs(float(v))
        if v != v:
            return "n/a"
        if a >= 1000:
            return f"{v:,.0f}"
        if a >= 100:
            return f"{v:.1f}"
        if a >= 1:
            return f"{v:.2f}"
        return "0" if a == 0 else f"{v:.3g}"
    if isinstance(v, (list, tuple)):
        return "/".join(fmt(float(x)) for x in v)
    return str(v)


def table(rows: Sequence[Dict], cols: Sequence[str], title: str = "") -> str:
    cells = [[fmt(r.get(c)) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) if cells else len(c) for i, c in enumerate(cols)]
    lines = []
    if title:
        lines.append(f"### {title}")
        lines.append("")
    lines.append("| " + " | ".join(c.ljust(w) for c, w in zip(cols, widths)) + " |")
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in cells:
        lines.append("| " + " | ".join(v.ljust(w) for v, w in zip(row, widths)) + " |")
    return "\n".join(lines)


def _clean(o):
    if isinstance(o, dict):
        return {str(k): _clean(v) for k, v in o.items() if k != "result"}
    if isinstance(o, (list, tuple)):
        return [_clean(v) for v in o]
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, Path):
        return str(o)
    return o


def package_warnings(fn: Callable[[], object]) -> tuple:
    """(fn's value, the texts of the warnings landslide_wsss raised in it: every one, repeats too)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = fn()
    return value, [str(w.message) for w in caught if "landslide_wsss" in type(w.message).__module__]


def add_row(rows: List[dict], row: dict) -> None:
    """Keep a measured row and print it at once (a long run shows its figures as they come)."""
    rows.append(row)
    print(json.dumps(row), flush=True)


def write_rows(path, header: dict, env: dict, rows: List[dict]) -> None:
    """The benchmark's JSON file at `path` (its --out): `header`, then `env` with the closing load average,
    then the rows; prints the path."""
    out = {**header, "env": {**env, "loadavg_end": loadavg()}, "rows": rows}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(out, indent=1))
    print(path)


def save(name: str, data: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    data = dict(data)
    data.setdefault("env", {})["loadavg_end"] = loadavg()
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(_clean(data), indent=2, sort_keys=False))
    md = data.get("markdown")
    if md:
        (RESULTS / f"{name}.md").write_text(md + "\n")
    return path
