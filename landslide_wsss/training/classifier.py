"""Image-level classifier training: BCE with class balance (pos_weight), flips / 90° rotations /
mild radiometric jitter, AdamW + warm-up + cosine schedule, bf16 autocast + channels_last on CPU,
per-epoch safetensors checkpoints with resume, seeded."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

from ..datasets.common import ChipSet, band_stats
from ..models.classifier import Classifier
from .common import Logger, load_training_state, save_training_state, seed_everything, set_threads
from .loop import epoch_batches, fit


HOLDOUT_KEY = "holdout_acc"  # history key of the hold-out accuracy (every 5th and the last epoch)


def predict_probs(model: Classifier, images: np.ndarray, batch_size: int = 64, bf16: bool = True) -> np.ndarray:
    """Landslide probability for raw (N, C, H, W) images."""
    model.eval()
    out = []
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        for i in range(0, len(images), batch_size):
            x = torch.as_tensor(np.asarray(images[i:i + batch_size], np.float32))
            x = model.normalize(x).contiguous(memory_format=torch.channels_last)
            out.append(torch.sigmoid(model(x).float()).numpy())
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def accuracy(model, chips: ChipSet, bf16: bool = True) -> float:
    p = predict_probs(model, chips.images, bf16=bf16)
    return float(((p > 0.5) == (chips.labels > 0.5)).mean())


def train_classifier(train: ChipSet, config: Optional[dict] = None, val: Optional[ChipSet] = None,
                     epochs: int = 20, batch_size: int = 32, lr: float = 2e-3, weight_decay: float = 1e-4,
                     seed: int = 0, bf16: bool = True, state_path=None, resume: bool = True, log=None,
                     threads: Optional[int] = 2, jitter: float = 0.1, valid_stats: bool = True,
                     epoch_chips=None) -> tuple:
    """Train a Classifier on in-memory chips. Returns (model, history list).

    state_path: training-state file (model + optimizer, safetensors) written after every epoch;
    with resume=True an existing one is continued from its last finished epoch.
    epoch_chips: optional callable(epoch) -> ChipSet of the same length as `train`, drawn anew each
    epoch (random crops); `train` then only serves the normalization statistics and the class counts.
    """
    set_threads(threads)
    seed_everything(seed)
    config = dict(config or {})
    config.setdefault("in_bands", int(train.images.shape[1]))
    imgs = np.asarray(train.images)
    valid = (imgs != 0).any(axis=1) if valid_stats else None
    mean, std = band_stats(imgs, valid)
    model = Classifier(arch=config.get("arch", "resnet18"), in_bands=config["in_bands"],
                       output_stride=config.get("output_stride", 16), width=config.get("width", 64),
                       mean=mean, std=std)
    model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    log = log if callable(log) else Logger(log)
    start = 0
    history = []
    if state_path and resume and Path(state_path).is_file():
        meta = load_training_state(state_path, model, opt)
        start = int(meta["epoch"]) + 1
        history = list(meta.get("history", []))
        log(event="resume", epoch=start)
    n_pos = float(np.sum(train.labels))
    pos_weight = torch.tensor((len(train) - n_pos) / max(n_pos, 1.0))
    spe = max(1, len(train) // batch_size)
    total = epochs * spe
    batch = epoch_batches(imgs, np.asarray(train.labels, np.float32), batch_size=batch_size, seed=seed,
                          normalize=model.normalize, band_std=torch.as_tensor(std, dtype=torch.float32), jitter=jitter,
                          epoch_chips=epoch_chips, target_of=lambda c: np.asarray(c.labels, np.float32))

    def record(step, loss, spent, total):
        epoch = step // spe - 1
        rec = {"event": "epoch", "epoch": epoch, "loss": loss}
        if val is not None and len(val) and (epoch % 5 == 4 or epoch == epochs - 1):
            rec[HOLDOUT_KEY] = accuracy(model, val, bf16=bf16)
        history.append(rec)
        log(**rec)
        if state_path:
            save_training_state(state_path, model, opt, {"architecture": "training-state", "in_bands": model.in_bands,
                                                         "version": "train", "epoch": epoch, "history": history,
                                                         "config": model.config()})

    fit(model, opt, batch, lambda logit, y: F.binary_cross_entropy_with_logits(logit.float(), y, pos_weight=pos_weight),
        lr=lr, total=total, warmup=min(total // 10, 3 * spe), start=start * spe, bf16=bf16, record_every=spe,
        on_record=record)
    model.eval()
    return model, history


def loss_plot(history, path) -> dict:
    """PNG of a train_classifier history: BCE loss per epoch and, when `val` was given, the
    hold-out accuracy. Returns plot_history's points drawn per panel and key."""
    from .common import plot_history

    panels = {"BCE loss": ("loss",)}
    if any(HOLDOUT_KEY in h for h in history):  # no hold-out given: no empty panel
        panels["hold-out accuracy"] = (HOLDOUT_KEY,)
    return plot_history(history, path, panels)


# ---------------------------------------------------------------------------------------------
# command line: `landslide-wsss train classifier ...`


def add_data_args(ap) -> None:
    ap.add_argument("--bijie", help="Bijie folder (images/, masks/, split lists)")
    ap.add_argument("--split", default="train.txt", help="split list inside --bijie (default train.txt)")
    ap.add_argument("--image", action="append", default=[], help="GeoTIFF scene to cut chips from (repeatable)")
    ap.add_argument("--mask", action="append", default=[], help="its mask (1 landslide, 0 background, 255 not covered)")
    ap.add_argument("--tile", type=int, default=128)
    ap.add_argument("--stride", type=int, default=64, help="chip stride in scenes")


def chips_from_args(args, with_masks: bool = False, seed: int = 0):
    """(first-epoch ChipSet, epoch_chips callable or None) from --bijie / --image --mask options."""
    from ..datasets.bijie import centre_crops, load_bijie_native
    from ..datasets.common import ChipSet
    from ..datasets.scene_chips import scene_chips
    from ..errors import InputError
    if len(args.image) != len(args.mask):
        raise InputError("give one --mask for each --image")
    scenes = []
    for img, mask in zip(args.image, args.mask):
        c = scene_chips(img, mask, size=args.tile, stride=args.stride)
        scenes.append(c if with_masks else ChipSet(c.images, c.labels, None, c.names))
    if not args.bijie and not scenes:
        raise InputError("no training data: give --bijie DIR and/or --image/--mask pairs")
    if not args.bijie:
        return ChipSet.concat(scenes), None
    root = Path(args.bijie)
    imgs, labels, masks, _ = load_bijie_native(root, root / args.split, min_size=args.tile, with_masks=with_masks)

    def epoch_chips(epoch):
        rng = np.random.default_rng(seed * 100_003 + epoch)
        return ChipSet.concat([centre_crops(imgs, labels, args.tile, rng, masks)] + scenes)

    return epoch_chips(0), epoch_chips


def main(argv=None) -> int:
    import argparse
    import inspect
    import time

    from ..checkpoint import fp16_tensors, save_checkpoint
    from ..wsss import DEFAULT_PARAMS, classifier_metadata
    from .data import CONFIG  # the embedded model's layout
    default = {k: v.default for k, v in inspect.signature(train_classifier).parameters.items()}
    ap = argparse.ArgumentParser(prog="landslide-wsss train classifier",
                                 description="Train the image-level classifier (BCE) and write a model file.")
    add_data_args(ap)
    ap.add_argument("-o", "--out", required=True, help="model file to write (.safetensors)")
    ap.add_argument("--arch", default=CONFIG["arch"], choices=["resnet18", "resnet34", "resnet50"])
    ap.add_argument("--width", type=int, default=CONFIG["width"])
    ap.add_argument("--output-stride", type=int, default=CONFIG["output_stride"], choices=[8, 16, 32])
    ap.add_argument("--epochs", type=int, default=default["epochs"])
    ap.add_argument("--batch-size", type=int, default=default["batch_size"])
    ap.add_argument("--lr", type=float, default=default["lr"])
    ap.add_argument("--seed", type=int, default=default["seed"])
    ap.add_argument("--threads", type=int, default=default["threads"])
    ap.add_argument("--state", help="training-state file for resume (default: OUT.state.safetensors)")
    ap.add_argument("--no-bf16", action="store_true")
    args = ap.parse_args(argv)
    t0 = time.time()
    train, epoch_chips = chips_from_args(args, seed=args.seed)
    cfg = {"arch": args.arch, "width": args.width, "output_stride": args.output_stride,
           "in_bands": int(train.images.shape[1])}
    state = args.state or str(args.out) + ".state.safetensors"
    model, hist = train_classifier(train, cfg, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                                   seed=args.seed, bf16=not args.no_bf16, state_path=state, threads=args.threads,
                                   epoch_chips=epoch_chips)
    meta = classifier_metadata(model, tile=args.tile, params=dict(DEFAULT_PARAMS), training={
        "command": "landslide-wsss train classifier " + " ".join(argv or []), "n_chips": len(train),
        "epochs": args.epochs, "seed": args.seed, "seconds": round(time.time() - t0, 1), "history": hist[-3:]})
    tensors = fp16_tensors(model, "classifier")
    save_checkpoint(args.out, tensors, meta)
    loss_plot(hist, str(args.out) + ".loss.png")
    print(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
