"""The one training loop and the one fine-tune loop.

`fit` trains the classifier and the segmentation networks (the student, the supervised yardstick): steps of
(batch -> forward under bf16 autocast + channels_last -> loss -> AdamW step) on a warm-up + cosine
schedule over a fixed step count (a wall-clock budget may only stop it early), with a record hook
(where callers log, measure the hold-out and write their resumable state); deterministic algorithms on. `epoch_batches` is the batch
source of the epoch-based trainers (a seeded permutation per epoch, fresh crops per epoch when
given). `fine_tune` runs the refinements' steps (rcm-mam, adversarial erasing, terrain-guided
crops) within a step count and a time budget, with BatchNorm statistics frozen by their step.
"""
from __future__ import annotations

import time
from typing import Callable, Optional

import numpy as np
import torch

from .common import augment, cosine_lr

Batch = Callable[[int], tuple]  # step -> (normalized x, target)


def fit(net, opt, next_batch: Batch, loss_fn, *, lr: float, total: int, warmup=None, start: int = 0,
        max_minutes: Optional[float] = None, spent: float = 0.0, bf16: bool = True, record_every: int = 100,
        on_record: Optional[Callable] = None, progress: bool = False, desc: str = "train",
        log: Optional[Callable] = None) -> int:
    """Train `net` from step `start` to `total` on a warm-up + cosine schedule over `total`.
    Returns the step count reached: `total`, or fewer when `max_minutes` of wall time (with `spent`
    seconds already used by an earlier, resumed run) ran out first; the schedule is the same either
    way, so a budget can only stop a run early, never change what a step does.
    warmup: steps, or a callable(total) -> steps. on_record(step, mean loss since the last record,
    seconds spent, total) runs every `record_every` steps and at the end (also an early end); the
    network is put back into train mode after it."""
    from tqdm import tqdm

    from .common import deterministic

    if total is None or int(total) < 0:
        raise ValueError("fit needs a step count (total); a wall-clock budget may only stop it early")
    deterministic()
    total = int(total)
    w = warmup(total) if callable(warmup) else int(warmup or 0)
    net.train()
    step = start
    t_start = time.time() - spent
    loss_sum, loss_n = 0.0, 0
    bar = tqdm(desc=desc, unit="step", disable=not progress, initial=step, total=total)
    while step < total:
        if max_minutes is not None and time.time() - t_start >= max_minutes * 60:
            if log:
                log(event="stopped_early", step=step, total_steps=total, max_minutes=max_minutes)
            if on_record and loss_n:
                on_record(step, loss_sum / loss_n, time.time() - t_start, total)
                net.train()
            break
        x, y = next_batch(step)
        rate = cosine_lr(lr, step, total, w)
        for g in opt.param_groups:
            g["lr"] = rate
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
            out = net(x)
        loss = loss_fn(out, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        bar.update(1)
        loss_sum, loss_n = loss_sum + float(loss.detach()), loss_n + 1
        if step % record_every == 0 or step >= total:
            if on_record:
                on_record(step, loss_sum / max(loss_n, 1), time.time() - t_start, total)
                net.train()
            loss_sum, loss_n = 0.0, 0
    bar.close()
    return step


def early_stop_record(done: int, total: int, max_minutes: Optional[float]) -> Optional[dict]:
    """What a model file's metadata says of a run a wall-clock budget stopped (None: it ran its steps)."""
    return None if done >= total else {"step": int(done), "of": int(total), "max_minutes": max_minutes}


def epoch_batches(images, targets, *, batch_size: int, seed: int, normalize, band_std, jitter: float = 0.1,
                  epoch_chips: Optional[Callable] = None, target_of: Optional[Callable] = None,
                  pixel_targets: bool = False) -> Batch:
    """next_batch(step) of the epoch-based trainers: at each epoch's first step a generator seeded
    seed*1000+epoch draws the permutation (and then the augmentations), and `epoch_chips(epoch)`, when
    given, replaces the images with fresh crops (their targets by `target_of(chips)`). Steps must
    come in order from an epoch boundary (a resumed run starts at one). pixel_targets: the targets
    are masks and follow the geometric augmentation."""
    n = len(images)
    spe = max(1, n // batch_size)
    cur = {"data": torch.as_tensor(np.asarray(images)), "target": torch.as_tensor(np.asarray(targets))}

    def next_batch(step):
        epoch, s = divmod(step, spe)
        if s == 0 or "gen" not in cur:
            cur["gen"] = torch.Generator().manual_seed(seed * 1000 + epoch)
            cur["perm"] = torch.randperm(n, generator=cur["gen"])
            if epoch_chips is not None:
                chips = epoch_chips(epoch)
                cur["data"] = torch.as_tensor(np.asarray(chips.images))
                cur["target"] = torch.as_tensor(np.asarray(target_of(chips)))
        idx = cur["perm"][s * batch_size:(s + 1) * batch_size]
        x, y = augment(cur["data"][idx].float(), cur["target"][idx] if pixel_targets else None, gen=cur["gen"],
                       jitter=jitter, band_std=band_std)
        return normalize(x).contiguous(memory_format=torch.channels_last), (y if pixel_targets else cur["target"][idx])
    return next_batch


def fine_tune(step_fn: Callable[[int], Optional[dict]], *, steps: Optional[int], max_minutes: Optional[float], log,
              every: int = 10, spent: float = 0.0) -> tuple:
    """The refinements' loop: step_fn(k) for k = 0, 1, ... until `steps` (None: until step_fn
    returns None) or `max_minutes` of training time; step_fn returns its log record (with its own
    "step") or None to stop. A record is logged when its step is a multiple of `every` or k is the
    last step. `spent`: seconds of the budget already used (e.g. preparing crops). Returns (steps
    done, training seconds including `spent`)."""
    t0 = time.time() - spent
    k = 0
    while steps is None or k < steps:
        if max_minutes and time.time() - t0 > 60 * max_minutes:
            break
        rec = step_fn(k)
        if rec is None:
            break
        if rec["step"] % every == 0 or (steps is not None and k == steps - 1):
            log(**rec)
        k += 1
    return k, round(time.time() - t0, 1)
