"""Shared training helpers: seeding, augmentation, optimizer state <-> safetensors, logging."""
from __future__ import annotations

import json
import math
import random
import sys
import time
from pathlib import Path
from typing import Dict, Optional

import numpy as np
import torch

from ..checkpoint import load_checkpoint, save_checkpoint


def deterministic() -> None:
    """Deterministic kernels where torch has them (a warning, not an error, where it has none):
    with seeded data order and augmentation, a run of N steps gives the same weights twice."""
    torch.use_deterministic_algorithms(True, warn_only=True)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    deterministic()


def set_threads(n: Optional[int]) -> None:
    if n:
        torch.set_num_threads(int(n))


def augment(x: torch.Tensor, y_mask: Optional[torch.Tensor] = None, gen: Optional[torch.Generator] = None,
            jitter: float = 0.1, band_std: Optional[torch.Tensor] = None):
    """Flips, 90-degree rotations (per sample) and mild radiometric jitter (per sample and band:
    gain 1±jitter, offset ±jitter/2·std). x: raw (N, C, H, W); pixels that are 0 in every band
    (nodata) stay 0. y_mask (N, H, W) follows the geometric part."""
    n = x.shape[0]
    r = torch.rand(n, 3, generator=gen)
    k = torch.randint(0, 4, (n,), generator=gen)
    x = x.clone()
    y = None if y_mask is None else y_mask.clone()
    for i in range(n):
        xi = x[i]
        yi = None if y is None else y[i]
        if r[i, 0] < 0.5:
            xi = xi.flip(-1)
            yi = None if yi is None else yi.flip(-1)
        if k[i]:
            xi = torch.rot90(xi, int(k[i]), (1, 2))
            yi = None if yi is None else torch.rot90(yi, int(k[i]), (0, 1))
        x[i] = xi
        if y is not None:
            y[i] = yi
    if jitter > 0:
        c = x.shape[1]
        nodata = (x == 0).all(dim=1, keepdim=True)
        gain = 1 + (torch.rand(n, c, 1, 1, generator=gen) * 2 - 1) * jitter
        std = band_std.view(1, -1, 1, 1) if band_std is not None else x.std(dim=(0, 2, 3), keepdim=True)
        off = (torch.rand(n, c, 1, 1, generator=gen) * 2 - 1) * (jitter / 2) * std
        x = torch.where(nodata, torch.zeros_like(x), x * gain + off)
    return x, y


def cosine_lr(base: float, step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return base * (step + 1) / warmup
    p = (step - warmup) / max(1, total - warmup)
    return base * 0.5 * (1 + math.cos(math.pi * min(1.0, p)))


def optimizer_tensors(opt: torch.optim.Optimizer, prefix: str = "optim") -> tuple[Dict[str, torch.Tensor], dict]:
    """An optimizer's state as safetensors tensors PREFIX.PARAM_ID.NAME and its param groups (JSON)."""
    sd = opt.state_dict()
    tensors = {}
    for pid, st in sd["state"].items():
        for k, v in st.items():
            t = v if torch.is_tensor(v) else torch.tensor(v)
            tensors[f"{prefix}.{pid}.{k}"] = t
    return tensors, {"param_groups": sd["param_groups"]}


def load_optimizer_tensors(opt: torch.optim.Optimizer, tensors: Dict[str, torch.Tensor], meta: dict,
                           prefix: str = "optim") -> None:
    state: Dict[int, dict] = {}
    for key, v in tensors.items():
        if key.startswith(prefix + "."):
            _, pid, name = key.split(".", 2)
            state.setdefault(int(pid), {})[name] = v
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def save_training_state(path, model: torch.nn.Module, opt, meta: dict) -> None:
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    ot, ometa = optimizer_tensors(opt)
    tensors.update(ot)
    save_checkpoint(path, tensors, {**meta, "optimizer": ometa})


def load_training_state(path, model: torch.nn.Module, opt) -> dict:
    tensors, meta = load_checkpoint(path)
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    load_optimizer_tensors(opt, tensors, meta["optimizer"])
    return meta


class Logger:
    """Prints one line per event and appends JSON lines to a log file (if given)."""

    def __init__(self, path=None, quiet: bool = False):
        self.path = Path(path) if path else None
        self.quiet = quiet
        self.t0 = time.time()
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def __call__(self, **rec):
        rec = {"t": round(time.time() - self.t0, 1), **rec}
        if not self.quiet:
            print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in rec.items()),
                  file=sys.stderr, flush=True)
        if self.path:
            with open(self.path, "a") as fh:
                fh.write(json.dumps(rec) + "\n")


def plot_history(history, path, panels) -> Dict[str, Dict[str, int]]:
    """Loss curves as a PNG: `panels` maps a panel title to the history keys drawn in it (per epoch).
    Returns, per panel, the number of points drawn for each key (0: the history never recorded it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = [h.get("epoch", i) for i, h in enumerate(history)]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.2), squeeze=False)
    drawn: Dict[str, Dict[str, int]] = {}
    for ax, (title, keys) in zip(axes[0], panels.items()):
        drawn[title] = {}
        for k in keys:
            pts = [(e, h[k]) for e, h in zip(ep, history) if k in h]
            drawn[title][k] = len(pts)
            if pts:
                ax.plot(*zip(*pts), marker="o", label=k)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        if any(drawn[title].values()):
            ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return drawn
