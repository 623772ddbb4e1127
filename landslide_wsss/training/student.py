"""The second stage: teacher CAMs -> pseudo-masks -> segmentation student -> self-training.

Everything here works at the model's working GSD (chosen by the rebuild's scale rule,
rebuild/sweeps.py): images are resampled on load (area-weighted), so a 192 px training crop sees
461 m of ground at 2.4 m.

Pseudo-masks (three bands): the teacher's CAM, summed over scales and flips, is normalized by its
maximum inside each landslide image (or landslide tile); >= t_fg is landslide, < t_bg background,
the band between is 255 (ignored by the loss). Every landslide-free image / tile is exact
background. t_fg, t_bg and the teacher's CAM method are chosen on the hold-out (see `choose_teacher`).

The student (models/student.py) trains with BCE + Dice on the confident pixels for a fixed step
count (cosine schedule; a wall-clock budget may only stop it early), with a resumable state file.
Self-training (training/selftrain.py) relabels the landslide samples with the student's confident
predictions (>= ST_HI landslide, <= ST_LO background) and fine-tunes; a round is kept only when
the hold-out says so. The mask threshold is the hold-out's best (training/holdout.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .. import __version__
from ..checkpoint import fp16_tensors
from ..metrics import Confusion

IGNORE = 255
CROP = 192
BATCH = 16
STATE_EVERY = 100  # steps between resumable state writes (and loss records)
ST_HI, ST_LO = 0.6, 0.3
T_GRID = tuple(round(0.05 * k, 2) for k in range(2, 19))  # mask thresholds tried on the hold-out
# the teacher's CAM settings: every tile (the image label is known), IRN's scales, flips
TEACHER_PARAMS = {"gate": 0.0, "scales": [0.5, 1.0, 1.5, 2.0], "flip": True}


@dataclass
class Sample:
    """One training image at the working GSD: raw bands (C, H, W) uint8, target (H, W) 0/1/255."""

    image: np.ndarray
    target: np.ndarray
    name: str
    positive: bool  # image-level label
    weight: float = 1.0


# ---------------------------------------------------------------------------------------------
# Pseudo-masks


def pseudo_mask(cam: np.ndarray, t_fg: float, t_bg: float, valid: Optional[np.ndarray] = None) -> np.ndarray:
    """Three-band pseudo-mask of one landslide image / tile from its raw CAM (normalized by its maximum)."""
    cam = np.nan_to_num(np.asarray(cam, np.float32))
    top = float(cam.max()) if cam.size else 0.0
    out = np.full(cam.shape, IGNORE, np.uint8)
    if top <= 0:
        return out  # a landslide image whose CAM is empty teaches nothing
    n = cam / top
    out[n < t_bg] = 0
    out[n >= t_fg] = 1
    if valid is not None:
        out[~valid] = IGNORE
    return out


def band_quality(cams, masks, t_fg: float, t_bg: float) -> dict:
    """How good the three bands are against true masks: IoU of the confident landslide band, the
    share of confident background that is truly background, the share of the true landslide pixels
    that the background band takes in (`leak`: what would teach the student that a landslide is
    ground), and the share of pixels ignored."""
    conf = Confusion()
    bg_ok = bg_n = ign = tot = slide = slide_bg = 0
    for cam, m in zip(cams, masks):
        pm = pseudo_mask(cam, t_fg, t_bg)
        conf.update(pm == 1, m)
        bg = (pm == 0) & (m != IGNORE)
        bg_ok += int((m[bg] == 0).sum())
        bg_n += int(bg.sum())
        slide += int((m == 1).sum())
        slide_bg += int((m[bg] == 1).sum())
        ign += int((pm == IGNORE).sum())
        tot += pm.size
    return {"fg_iou": conf.iou, "bg_precision": bg_ok / max(bg_n, 1), "leak": slide_bg / max(slide, 1),
            "ignored": ign / max(tot, 1)}


def choose_bands(cams, masks, fg_grid=(0.3, 0.4, 0.5, 0.6, 0.7), bg_grid=(0.05, 0.1, 0.15, 0.2, 0.25, 0.3),
                 bg_precision: float = 0.9) -> dict:
    """The rule: t_fg = the best confident-band IoU; t_bg = the highest background threshold whose
    background band is still >= `bg_precision` true background (more background, little noise).
    (Landslide images without a background band, t_bg 0, were tried on the whole train.txt: the
    Bijie hold-out fell in both seeds; see docs/results.md.)"""
    fg = max(fg_grid, key=lambda t: band_quality(cams, masks, t, 0.0)["fg_iou"])
    bgs = [t for t in bg_grid if t < fg and band_quality(cams, masks, fg, t)["bg_precision"] >= bg_precision]
    bg = max(bgs) if bgs else min(bg_grid)
    return {"t_fg": fg, "t_bg": bg, **band_quality(cams, masks, fg, bg)}


def cut_blocks(img: np.ndarray, target: np.ndarray, name: str, size: int, min_labelled: float = 0.0,
               weight: float = 1.0) -> List[Sample]:
    """A working-grid scene as `size` px samples: the blocks whose labelled (non-255) share is above
    zero and at least `min_labelled`."""
    out = []
    h, w = target.shape
    for r in range(0, h, size):
        for c in range(0, w, size):
            t = target[r:r + size, c:c + size]
            share = float((t != IGNORE).mean())
            if share > 0 and share >= min_labelled:
                out.append(Sample(img[:, r:r + size, c:c + size].copy(), t.copy(), f"{name}_r{r}_c{c}",
                                  bool((t == 1).any()), weight))
    return out


# ---------------------------------------------------------------------------------------------
# The student's training loop


def _crop(s: Sample, size: int, rng: np.random.Generator):
    img, tgt = s.image, s.target
    h, w = tgt.shape
    ph, pw = max(0, size - h), max(0, size - w)
    if ph or pw:  # small images: mirrored content, ignored labels (no border or size cue to learn)
        img = np.pad(img, ((0, 0), (0, ph), (0, pw)), mode="symmetric")
        tgt = np.pad(tgt, ((0, ph), (0, pw)), constant_values=IGNORE)
        h, w = tgt.shape
    r = int(rng.integers(0, h - size + 1))
    c = int(rng.integers(0, w - size + 1))
    return img[:, r:r + size, c:c + size], tgt[r:r + size, c:c + size]


def masked_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """BCE + soft Dice over the confident pixels (target != 255)."""
    logits = logits[:, 0].float()
    keep = target != IGNORE
    if not keep.any():
        return logits.sum() * 0
    y = (target == 1).float()
    bce = F.binary_cross_entropy_with_logits(logits[keep], y[keep])
    p = torch.sigmoid(logits) * keep
    yk = y * keep
    dice = 1 - (2 * (p * yk).sum() + 1) / (p.sum() + yk.sum() + 1)
    return bce + dice


def band_stats(samples: Sequence[Sample]):
    tot = np.zeros(3)
    sq = np.zeros(3)
    n = 0
    for s in samples:
        x = s.image.reshape(s.image.shape[0], -1).astype(np.float64)
        keep = (x != 0).any(axis=0)
        x = x[:, keep]
        tot[: x.shape[0]] += x.sum(1)
        sq[: x.shape[0]] += (x * x).sum(1)
        n += x.shape[1]
    mean = tot / max(n, 1)
    std = np.sqrt(np.maximum(sq / max(n, 1) - mean ** 2, 1e-6))
    return mean.tolist(), std.tolist()


def fit_student(samples: Sequence[Sample], net, steps: int, *, lr: float = 1e-3, seed: int = 0,
                max_minutes: Optional[float] = None, state_path=None, log: Optional[Callable] = None,
                crop: int = CROP, batch: int = BATCH, progress: bool = True):
    """Train `net` on random crops of `samples` for `steps` steps (resumable from `state_path`);
    `max_minutes` of wall time may stop it early. Returns (net in eval mode, the run's record:
    steps, steps done, seed, lr, the last loss records and `stopped_early`, None when it ran its
    steps). Batches are drawn by a generator seeded by (seed, step): a resumed or repeated run
    draws the same crops."""
    from .common import augment, load_training_state, save_training_state
    from .loop import early_stop_record, fit

    net.train().to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    step, total, spent = 0, int(steps), 0.0
    if state_path is not None and Path(state_path).is_file() and _state_total(state_path) == total:
        meta = load_training_state(state_path, net, opt)
        step, total, spent = int(meta["step"]), int(meta["total"]), float(meta.get("spent", 0.0))
        if log:
            log(event="resume", step=step, total=total)
    w = np.asarray([s.weight for s in samples], np.float64)
    w = w / w.sum()
    band_std = net.norm_std.detach().cpu()
    device = net.norm_std.device  # CPU (bf16 on AMX) or CUDA: wherever the caller put the network
    history = []

    def next_batch(step):  # weighted draw of samples, a random crop of each: all seeded by the step
        rng = np.random.default_rng(seed * 1_000_003 + step)
        idx = rng.choice(len(samples), size=batch, p=w)
        crops = [_crop(samples[i], crop, rng) for i in idx]
        x = torch.from_numpy(np.stack([c[0] for c in crops]).astype(np.float32))
        y = torch.from_numpy(np.stack([c[1] for c in crops]).astype(np.int64))
        x, y = augment(x, y, gen=torch.Generator().manual_seed(seed + step), band_std=band_std)
        return net.normalize(x.to(device)).contiguous(memory_format=torch.channels_last), y.to(device)

    def record(step, loss, spent, total):
        history.append({"step": step, "loss": round(loss, 4), "t": round(spent, 1)})
        if log:
            log(event="train", **history[-1])
        if state_path is not None:
            save_training_state(state_path, net, opt, {
                "architecture": "student-training-state", "in_bands": int(net.in_bands), "version": __version__,
                "step": step, "total": total, "spent": spent})

    done = fit(net, opt, next_batch, masked_loss, lr=lr, total=total, warmup=lambda n: max(1, n // 20), start=step,
               max_minutes=max_minutes, spent=spent, record_every=STATE_EVERY, on_record=record, progress=progress,
               desc="student", log=log)
    run = {"steps": total, "done": done, "seed": seed, "lr": lr, "history": history[-3:],
           "stopped_early": early_stop_record(done, total, max_minutes)}
    return net.eval(), run


def _state_total(path) -> Optional[int]:
    """The step count a training state was made for (a state of another length is not resumed)."""
    from ..checkpoint import read_metadata
    total = read_metadata(path).get("total")
    return None if total is None else int(total)


# ---------------------------------------------------------------------------------------------
# Prediction at the working grid (training-time hold-outs; detect goes through the core)


@torch.no_grad()
def predict_prob(net, img: np.ndarray, valid: Optional[np.ndarray] = None, min_size: int = CROP) -> np.ndarray:
    """Landslide probability of a whole (C, H, W) image at its own grid; small images are mirrored
    up to `min_size` as in training, and cropped back."""
    c, h, w = img.shape
    ph, pw = max(0, min_size - h), max(0, min_size - w)
    x = np.pad(img, ((0, 0), (0, ph), (0, pw)), mode="symmetric") if (ph or pw) else img
    t = torch.from_numpy(np.ascontiguousarray(x, np.float32))[None].to(net.norm_std.device)
    with torch.autocast(t.device.type, dtype=torch.bfloat16):
        p = torch.sigmoid(net(net.normalize(t).contiguous(memory_format=torch.channels_last)).float())[0, 0]
    p = p.cpu().numpy()[:h, :w]
    if valid is not None:
        p = p * valid
    return p.astype(np.float32)


GATE_GRID = tuple(round(0.05 * k, 2) for k in range(10, 20)) + (0.98, 0.99)  # strong-core thresholds tried
GATE_MARGIN = 0.01  # the gate is kept only if it adds this much mean hold-out IoU


def choose_gate(score: Callable[[float, Optional[float]], dict], threshold: float) -> dict:
    """The rule for the hysteresis gate (blobs of prob > low kept only with a core > high):
    `score(low, high)` gives the hold-out figures (with "mean_iou") of one setting; low from the
    threshold grid at or below the plain threshold, high from GATE_GRID; the best mean hold-out
    IoU wins among the settings that lower no hold-out set's IoU (a clean-up that trades one
    region for another is fitting, not cleaning), and is kept only with GATE_MARGIN over the plain
    threshold."""
    plain = score(threshold, None)
    sets = [k for k in plain if k.endswith("_iou") and k != "mean_iou"]
    best = plain
    for low in (t for t in T_GRID if threshold - 0.2 - 1e-9 <= t <= threshold + 1e-9):
        for high in (h for h in GATE_GRID if h > low):
            r = score(low, high)
            if r["mean_iou"] > best["mean_iou"] and all(r[k] >= plain[k] for k in sets):
                best = r
    chosen = best if best["mean_iou"] >= plain["mean_iou"] + GATE_MARGIN else plain
    return {"chosen": chosen, "plain": plain, "best_gate": best,
            "rule": f"best mean hold-out IoU of (low, high) hysteresis gates that lower no hold-out set; "
                    f"kept only with +{GATE_MARGIN} over the plain threshold"}


def relabel(net, samples: Sequence[Sample], hi: float = ST_HI, lo: float = ST_LO) -> List[Sample]:
    """Self-training targets: landslide samples take the student's confident predictions; the
    landslide-free ones stay exact background; ignored (invalid) pixels stay ignored."""
    out = []
    for s in samples:
        if not s.positive:
            out.append(s)
            continue
        p = predict_prob(net, s.image)
        t = np.full(p.shape, IGNORE, np.uint8)
        t[p <= lo] = 0
        t[p >= hi] = 1
        t[(s.image == 0).all(axis=0)] = IGNORE  # nodata stays ignored
        out.append(Sample(s.image, t, s.name, s.positive, s.weight))
    return out


def sample_source(name: str) -> str:
    """Where a sample comes from: area A's blocks or Bijie images (the rebuild weighs the two)."""
    return "areaA" if name.startswith("areaA") else "bijie"


def mine_negatives(net, samples: Sequence[Sample], threshold: float, predict=None) -> List[Sample]:
    """Hard negatives: within each source, the landslide-free samples' total weight is shared half
    evenly and half in proportion to the share of their valid pixels the network marks (prob >
    `threshold`), so its false alarms are drawn more often. Landslide samples, each source's
    landslide-free total and every target stay as they are. `predict(net, image)`: the
    probability at the sample's grid (predict_prob)."""
    predict = predict or predict_prob
    groups: dict = {}
    for i, s in enumerate(samples):
        if not s.positive:
            groups.setdefault(sample_source(s.name), []).append(i)
    out = list(samples)
    for idx in groups.values():
        fired = []
        for i in idx:
            keep = samples[i].target != IGNORE
            p = predict(net, samples[i].image)
            fired.append(float((p[keep] > threshold).mean()) if keep.any() else 0.0)
        fired = np.asarray(fired)
        if fired.sum() <= 0:
            continue  # no false alarm in this source: nothing to mine
        total = sum(samples[i].weight for i in idx)
        share = 0.5 / len(idx) + 0.5 * fired / fired.sum()
        for i, sh in zip(idx, share):
            s = samples[i]
            out[i] = Sample(s.image, s.target, s.name, s.positive, float(total * sh))
    return out


def student_tensors(net) -> dict:
    return fp16_tensors(net, "student")
