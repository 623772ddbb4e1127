"""Shared pieces of the refinement fine-tunings (terrain-crop, rcm-mam, adversarial-erasing).

Same budget for every refinement (the ablation compares like with like): start from the trained
default classifier (a model file, or the default training-state file while it is still training),
same chips as the default model (Bijie train minus its hold-out + AMU-Net area A above the strip,
128 px), same number of steps and batch size, AdamW (lr 1e-4, wd 1e-4) with BatchNorm statistics
frozen (small batches on CPU), same augmentation, bf16 autocast on CPU.
"""
from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path
from typing import Iterator, Optional, Tuple

import numpy as np
import torch
from torch import nn

from ..checkpoint import fp16_tensors, load_checkpoint, save_checkpoint
from ..errors import ModelError
from ..models.classifier import Classifier, build_classifier
from ..paths import DATA_DIR, DEFAULT_MODEL

REPO = Path(__file__).resolve().parents[2]
DEFAULT_INIT = [DEFAULT_MODEL,
                REPO / "runs" / "default_classifier.state.safetensors"]


def base_parser(description: str, out: str, steps: int = 300) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--data", default=str(DATA_DIR), help=f"folder with bijie/ and amunet/ (default {DATA_DIR})")
    ap.add_argument("--init", help="classifier to start from: a model file or a classifier training-state file "
                                   "(default: the embedded default model, else runs/default_classifier.state.safetensors)")
    ap.add_argument("--out", default=out, help=f"model file to write (default {out})")
    ap.add_argument("--steps", type=int, default=steps)
    ap.add_argument("--max-minutes", type=float, default=None, help="stop early (and save) after this long")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--generator", help="CycleGAN G_A file to embed (for NAME-cyclegan); default: the init "
                                        "model's generator, else the newest runs/cyclegan/g_a_epoch*.safetensors")
    ap.add_argument("--log", help="JSON-lines log file (default: OUT with .jsonl)")
    ap.add_argument("--no-bf16", action="store_true")
    return ap


def load_init(path=None) -> Tuple[Classifier, dict, Optional[Path]]:
    """(classifier, source metadata, source path) from a model file (classifier.*) or a training state (model.*)."""
    cands = [Path(path)] if path else [p for p in DEFAULT_INIT if p.is_file()]
    if not cands:
        raise ModelError("no classifier to start from: train the default model first or pass --init")
    p = cands[0]
    tensors, meta = load_checkpoint(p)
    if any(k.startswith("classifier.") for k in tensors):
        cfg, prefix = dict(meta["classifier"]), "classifier."
    elif meta.get("architecture") == "training-state" and meta.get("config"):
        cfg, prefix = dict(meta["config"]), "model."
    else:
        raise ModelError(f"{p}: neither a classifier model file nor a classifier training state")
    model = build_classifier(cfg)
    sd = {k[len(prefix):]: v.float() for k, v in tensors.items() if k.startswith(prefix)}
    model.load_state_dict(sd)
    src = {"path": str(p), "epoch": meta.get("epoch"), "version": meta.get("version")}
    return model.eval(), {**meta, "_source": src}, p


def freeze_bn(model: nn.Module) -> nn.Module:
    """Train mode everywhere except BatchNorm (running statistics kept)."""
    model.train()
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()
    return model


def load_chips(data, seed: int = 0, gsd=None):
    from .data import training_chips
    return training_chips(data, seed, gsd=gsd)[0]  # the default model's (first-epoch) chips, at its GSD


def batches(chips, model: Classifier, batch_size: int, seed: int, jitter: float = 0.1) -> Iterator:
    """Endless augmented batches: (raw x, normalized x, labels)."""
    from .common import augment
    gen = torch.Generator().manual_seed(seed)
    data = torch.as_tensor(np.asarray(chips.images))
    labels = torch.as_tensor(chips.labels, dtype=torch.float32)
    std = model.norm_std.detach().clone()
    while True:
        perm = torch.randperm(len(labels), generator=gen)
        for s in range(len(perm) // batch_size):
            idx = perm[s * batch_size:(s + 1) * batch_size]
            x, _ = augment(data[idx].float(), gen=gen, jitter=jitter, band_std=std)
            yield x, model.normalize(x).contiguous(memory_format=torch.channels_last), labels[idx]


def pos_weight(chips) -> torch.Tensor:
    n_pos = float(np.sum(chips.labels))
    return torch.tensor((len(chips.labels) - n_pos) / max(n_pos, 1.0))


def find_generator(explicit=None, init_path=None) -> Optional[Path]:
    if explicit:
        return Path(explicit)
    if init_path is not None and init_path.is_file():
        tensors, _ = load_checkpoint(init_path)
        if any(k.startswith("generator.") for k in tensors):
            return init_path
    cands = sorted((REPO / "runs" / "cyclegan").glob("g_a_epoch*.safetensors"))
    return cands[-1] if cands else None


def save_refined(model: Classifier, out, refinement: str, source_meta: dict, training: dict,
                 generator=None, extra_params: Optional[dict] = None) -> Path:
    """Model file: classifier.* (+ generator.*), metadata architecture wsss-classifier with "refinement"/"method"."""
    from ..wsss import DEFAULT_PARAMS, classifier_metadata
    params = copy.deepcopy(source_meta.get("params") or DEFAULT_PARAMS)
    if extra_params:
        params.update(extra_params)
    params["method"] = refinement
    meta = classifier_metadata(model, tile=int(source_meta.get("tile_size", 128)), training=training, params=params,
                               gsd=source_meta.get("gsd"))
    meta.update(refinement=refinement, method=refinement, method_default=refinement,
                version=f"{meta['version']}+{refinement}")
    tensors = fp16_tensors(model, "classifier")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(out, tensors, meta)
    if generator is not None:
        from ..models.cyclegan import add_generator_to_model
        try:
            add_generator_to_model(out, generator)
        except Exception as exc:  # the refinement stays usable without -cyclegan
            print(f"warning: generator not embedded ({exc})")
    return out


def finish_run(model, a, refinement: str, src_meta: dict, training: dict, init_path, log, timer) -> int:
    """The common end of a refinement fine-tune: the model file (+ generator), logged and printed."""
    import json
    out = save_refined(model, a.out, refinement, src_meta, training, find_generator(a.generator, init_path))
    log(event="saved", path=str(out), seconds=timer())
    print(json.dumps({"out": str(out), "train_seconds": training["train_seconds"]}))
    return 0


def start_run(a):
    """The common start of a refinement fine-tune: threads, seed, a timer, the JSON-lines log beside
    the output, the initial classifier and the training chips.
    Returns (timer, log, model, source_meta, init_path, chips)."""
    from .common import Logger, seed_everything, set_threads

    set_threads(a.threads)
    seed_everything(a.seed)
    timer = Timer()
    log = Logger(a.log or str(Path(a.out).with_suffix(".jsonl")))
    model, src_meta, init_path = load_init(a.init)
    chips = load_chips(a.data, a.seed, src_meta.get("gsd"))
    return timer, log, model, src_meta, init_path, chips


class Timer:
    def __init__(self):
        self.t0 = time.time()

    def __call__(self) -> float:
        return round(time.time() - self.t0, 1)
