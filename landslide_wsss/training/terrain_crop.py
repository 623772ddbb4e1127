"""Classifier retraining on terrain-guided crops (step 6 of depth-guided CAM cropping).

    landslide-wsss train terrain-crop [--init FILE] [--out runs/models/terrain_crop.safetensors] [--steps 300]

Crops: for every training chip, the initial classifier's CAM gives the crop plan of
cam/terrain_crop.py (confident CAM -> box grown by half its size, >= 32 px); the first (largest)
box is cut and resized to the chip size (the zoom), carrying the chip's image label; chips with no
confident CAM get a random box of 32–96 px. The classifier is then fine-tuned on batches of half
original chips, half crops (BCE, class balance), the same budget as the other refinements.
Inference: `--method terrain-crop --model OUT` (terrain-guided cropping with the retrained classifier).
Training chips carry no DSM (the AMU-Net area A chips could, the Bijie images cannot), so the crop
choice here uses the CAM alone.
"""
from __future__ import annotations


import numpy as np
import torch
import torch.nn.functional as F


def make_crops(model, chips, size: int = 128, batch_size: int = 64, seed: int = 0, params=None):
    """(crops raw float32 (N, C, size, size), labels (N,)) one crop per chip."""
    from ..cam import make_cam
    from ..cam.terrain_crop import CropParams, plan_crops
    p = CropParams.from_any(params)
    cam_fn = make_cam("cam", model)
    rng = np.random.default_rng(seed)
    imgs = np.asarray(chips.images)
    out = np.zeros((len(imgs), imgs.shape[1], size, size), np.float32)
    for i in range(0, len(imgs), batch_size):
        x = torch.as_tensor(imgs[i:i + batch_size], dtype=torch.float32)
        cams = cam_fn(model.normalize(x)).numpy()
        for j in range(len(x)):
            plans = plan_crops(cams[j], p)
            h, w = cams[j].shape
            if plans:
                r0, c0, r1, c1 = plans[0][0]
            else:
                s = int(rng.integers(32, 97))
                r0, c0 = int(rng.integers(0, h - s + 1)), int(rng.integers(0, w - s + 1))
                r1, c1 = r0 + s, c0 + s
            crop = x[j:j + 1, :, r0:r1, c0:c1]
            out[i + j] = F.interpolate(crop, size=(size, size), mode="bilinear", align_corners=False)[0].numpy()
    return out, np.asarray(chips.labels, np.float32)


def main(argv=None):
    from ..datasets.common import ChipSet
    from .loop import early_stop_record, fine_tune
    from .refine_common import Timer, base_parser, batches, finish_run, freeze_bn, pos_weight, start_run
    ap = base_parser(__doc__.splitlines()[0], "runs/models/terrain_crop.safetensors")
    ap.add_argument("--no-crops", action="store_true",
                    help="control run: the same fine-tune on original chips only (saved as a plain 'cam' model)")
    a = ap.parse_args(argv)
    timer, log, model, src_meta, init_path, chips = start_run(a)
    t_train = Timer()
    half = a.batch_size // 2
    if a.no_crops:
        crop_set = chips
    else:
        # one crop per chip for as many chips as the crop half of the batches will see (CPU budget)
        n = min(len(chips), a.steps * half)
        pick = np.sort(np.random.default_rng(a.seed).choice(len(chips), n, replace=False))
        sub = ChipSet(np.asarray(chips.images)[pick], np.asarray(chips.labels)[pick])
        crops, labels = make_crops(model, sub, size=chips.images.shape[-1], seed=a.seed)
        log(event="crops", n=len(crops), seconds=t_train())
        crop_set = ChipSet(crops, labels)
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=1e-4)
    pw = pos_weight(chips)
    bf16 = not a.no_bf16
    it_full = batches(chips, model, a.batch_size - half, a.seed)
    it_crop = batches(crop_set, model, half, a.seed + 1)

    def step(k):
        freeze_bn(model)
        _, x1, y1 = next(it_full)
        _, x2, y2 = next(it_crop)
        x, y = torch.cat([x1, x2]), torch.cat([y1, y2])
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(x).float()
        loss = F.binary_cross_entropy_with_logits(logits, y, pos_weight=pw)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return {"event": "step", "step": k, "loss": float(loss)}

    done, seconds = fine_tune(step, steps=a.steps, max_minutes=a.max_minutes, log=log, spent=t_train())
    model.eval()
    training = {"command": "landslide-wsss train terrain-crop " + " ".join(argv or []), "init": src_meta["_source"],
                "steps": done, "batch_size": a.batch_size, "lr": a.lr, "optimizer": "AdamW, BN frozen",
                "batches": "original chips only (control)" if a.no_crops else
                "half original chips, half CAM-guided crops resized to the chip size",
                "train_seconds": seconds, "n_chips": len(chips), "seed": a.seed,
                "stopped_early": early_stop_record(done, a.steps, a.max_minutes)}
    return finish_run(model, a, "cam" if a.no_crops else "terrain-crop", src_meta, training, init_path, log, timer)


if __name__ == "__main__":
    raise SystemExit(main())
