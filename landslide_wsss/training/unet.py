"""Supervised U-Net baseline training: BCE + soft Dice on pixel masks (255 ignored), the same
augmentations as the classifier, AdamW + cosine, bf16 autocast + channels_last on CPU,
checkpoints + resume, seeded. `train_unet` returns the model; `save_unet` writes/embeds it
under the prefix unet.* with metadata["unet"]."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from ..datasets.common import ChipSet, band_stats
from ..models.unet import UNet
from .common import Logger, load_training_state, save_training_state, seed_everything, set_threads
from .loop import epoch_batches, fit
from .student import masked_loss


def train_unet(train: ChipSet, config: Optional[dict] = None, epochs: int = 30, batch_size: int = 16,
               lr: float = 2e-3, weight_decay: float = 1e-4, seed: int = 0, bf16: bool = True, state_path=None,
               resume: bool = True, log=None, threads: Optional[int] = 2, jitter: float = 0.1, epoch_chips=None):
    if train.masks is None:
        raise ValueError("the U-Net needs pixel masks")
    set_threads(threads)
    seed_everything(seed)
    config = dict(config or {})
    imgs = np.asarray(train.images)
    mean, std = band_stats(imgs, (imgs != 0).any(axis=1))
    model = UNet(in_bands=imgs.shape[1], base=int(config.get("base", 16)), depth=int(config.get("depth", 4)),
                 mean=mean, std=std).to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    log = log if callable(log) else Logger(log)
    start, history = 0, []
    if state_path and resume and Path(state_path).is_file():
        meta = load_training_state(state_path, model, opt)
        start, history = int(meta["epoch"]) + 1, list(meta.get("history", []))
        log(event="resume", epoch=start)
    spe = max(1, len(train) // batch_size)
    total = epochs * spe
    batch = epoch_batches(imgs, np.asarray(train.masks), batch_size=batch_size, seed=seed, normalize=model.normalize,
                          band_std=torch.as_tensor(std, dtype=torch.float32), jitter=jitter, epoch_chips=epoch_chips,
                          target_of=lambda c: c.masks, pixel_targets=True)

    def record(step, loss, spent, total):
        rec = {"event": "epoch", "epoch": step // spe - 1, "loss": loss}
        history.append(rec)
        log(**rec)
        if state_path:
            save_training_state(state_path, model, opt, {"architecture": "training-state", "in_bands": model.in_bands,
                                                         "version": "train", "epoch": rec["epoch"], "history": history})

    fit(model, opt, batch, masked_loss, lr=lr, total=total, warmup=min(total // 10, 2 * spe), start=start * spe,
        bf16=bf16, record_every=spe, on_record=record)
    return model.eval(), history


def save_unet(model: UNet, path, tile: int = 128, threshold: float = 0.5, training: Optional[dict] = None,
              embed: bool = True) -> Path:
    """Write the U-Net to `path` under unet.* (fp16). With embed=True and an existing file, the other
    tensors and metadata are kept (so the default model file can carry the baseline too)."""
    from .. import __version__
    from ..checkpoint import fp16_tensors, load_checkpoint, save_checkpoint
    unet_meta = {**model.config(), "tile_size": tile, "threshold": threshold, "training": training or {},
                 "normalization": {"mean": [float(v) for v in model.norm_mean], "std": [float(v) for v in model.norm_std]}}
    path = Path(path)
    tensors, meta = {}, {"architecture": "unet", "in_bands": model.in_bands, "version": f"{__version__}+unet",
                         "tile_size": tile}
    if embed and path.is_file():
        tensors, meta = load_checkpoint(path, raw=True)  # other components as stored
        tensors = {k: v for k, v in tensors.items() if not k.startswith("unet.")}
        meta = {k: v for k, v in meta.items() if k != "format"}
    tensors.update(fp16_tensors(model, "unet"))
    meta["unet"] = unet_meta
    save_checkpoint(path, tensors, meta)
    return path


def main(argv=None) -> int:
    """`landslide-wsss train unet ...`: the supervised baseline from pixel masks."""
    import argparse

    from .classifier import add_data_args, chips_from_args
    ap = argparse.ArgumentParser(prog="landslide-wsss train unet",
                                 description="Train the supervised U-Net baseline (pixel masks) and write it.")
    add_data_args(ap)
    ap.add_argument("-o", "--out", required=True, help="model file; an existing one keeps its other parts (unet.* is replaced)")
    ap.add_argument("--base", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--threshold", type=float, default=0.5)
    args = ap.parse_args(argv)
    t0 = time.time()
    train, epoch_chips = chips_from_args(args, with_masks=True, seed=args.seed)
    model, hist = train_unet(train, {"base": args.base}, epochs=args.epochs, batch_size=args.batch_size,
                             seed=args.seed, state_path=str(args.out) + ".unet-state.safetensors",
                             threads=args.threads, epoch_chips=epoch_chips)
    save_unet(model, args.out, tile=args.tile, threshold=args.threshold,
              training={"command": "landslide-wsss train unet " + " ".join(argv or []), "epochs": args.epochs,
                        "seconds": round(time.time() - t0, 1)})
    print(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
