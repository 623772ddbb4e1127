"""RCM + MAM fine-tuning (after Yoon, Kweon et al. 2021, "Exploring pixel-level self-supervision for WSSS").

    landslide-wsss train rcm-mam [--init FILE] [--out runs/models/rcm_mam.safetensors] [--steps 300]

MainNet: the classifier being trained (initialised from the default classifier).
SupportNet: an EMA copy of MainNet (momentum `--ema`, 0.99), no gradients.
Per batch (normalized chips x, image labels y):
  BCE      classification loss of MainNet (pos_weight = class balance).
  MAM      SupportNet CAMs at scales 0.5, 1, 1.5, 2 (ReLU, resized to MainNet's feature grid,
           summed, divided by their per-image maximum) = target T; MainNet CAM M (ReLU, divided by
           its per-image maximum); loss = mean |M − T| over landslide images (L1).
  RCM      region masks: T > tau_region (0.4) on landslide images = landslide, the rest =
           background; prototypes = mask-averaged SupportNet features (L2-normalized) of the batch;
           every MainNet pixel feature (L2-normalized) against the 2 prototypes, InfoNCE =
           cross-entropy of softmax(f·p / temperature) with its own region's prototype as the
           positive (temperature 0.1).
  loss = BCE + w_rcm·RCM + w_mam·MAM with w_rcm = 0.1, w_mam = 1.0 (chosen: both terms start at
  about the size of the BCE of a trained classifier; not tuned, the paper's weights are unpublished).
Inference: plain CAM of MainNet (`--method rcm-mam`, `--model OUT`).
"""
from __future__ import annotations

import copy
from typing import Sequence

import torch
import torch.nn.functional as F

SCALES = (0.5, 1.0, 1.5, 2.0)


def cam_from_features(model, feats: torch.Tensor) -> torch.Tensor:
    """ReLU(sum_k w_k A_k) of the landslide logit: (N, K, h, w) -> (N, h, w)."""
    return F.relu(torch.einsum("k,nkhw->nhw", model.fc.weight[0].float(), feats.float()))


def max_norm(cam: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    return cam / (cam.flatten(1).amax(1).view(-1, 1, 1) + eps)


@torch.no_grad()
def multiscale_cam(model, x: torch.Tensor, size, scales: Sequence[float] = SCALES, return_feats: bool = False):
    """SupportNet CAMs over scales, resized to `size` (h, w), summed and max-normalized per image
    (and, with return_feats, the scale-1 features)."""
    total, f1 = 0, None
    for s in scales:
        xs = x if s == 1.0 else F.interpolate(x, scale_factor=s, mode="bilinear", align_corners=False)
        f = model.features(xs)
        if s == 1.0:
            f1 = f
        c = cam_from_features(model, f)
        total = total + F.interpolate(c[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
    if return_feats:
        return max_norm(total), (f1 if f1 is not None else model.features(x))
    return max_norm(total)


def mam_loss(main_cam: torch.Tensor, target: torch.Tensor, weight: torch.Tensor = None) -> torch.Tensor:
    """L1 between max-normalized MainNet CAM and the fused SupportNet CAM, mean over (weighted) images."""
    per = (max_norm(main_cam) - target).abs().flatten(1).mean(1)
    if weight is None:
        return per.mean()
    return (per * weight).sum() / weight.sum().clamp_min(1.0)


def prototypes(feats: torch.Tensor, regions: torch.Tensor, n_classes: int = 2) -> torch.Tensor:
    """Mask-averaged, L2-normalized features per region class: feats (N, K, h, w), regions (N, h, w) long -> (n_classes, K)."""
    f = feats.float().permute(0, 2, 3, 1).reshape(-1, feats.shape[1])
    r = regions.reshape(-1)
    protos = []
    for c in range(n_classes):
        sel = r == c
        protos.append(f[sel].mean(0) if sel.any() else torch.zeros(f.shape[1]))
    return F.normalize(torch.stack(protos), dim=1)


def info_nce(feats: torch.Tensor, regions: torch.Tensor, protos: torch.Tensor, temperature: float = 0.1,
             present=None) -> torch.Tensor:
    """InfoNCE of every pixel feature against the class prototypes (its own region's prototype positive).

    feats (N, K, h, w) MainNet features; regions (N, h, w) long; protos (C, K) normalized. Prototypes
    of classes absent from the batch (`present` False) are left out of the softmax."""
    f = F.normalize(feats.float().permute(0, 2, 3, 1).reshape(-1, feats.shape[1]), dim=1)
    logits = f @ protos.t() / temperature
    if present is not None:
        logits = logits.masked_fill(~present.view(1, -1), float("-inf"))
    return F.cross_entropy(logits, regions.reshape(-1))


class EMA:
    def __init__(self, model, momentum: float = 0.99):
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.m = momentum

    @torch.no_grad()
    def update(self, model):
        for pe, p in zip(self.model.parameters(), model.parameters()):
            pe.mul_(self.m).add_(p.detach(), alpha=1 - self.m)


def rcm_mam_losses(main, support, x, y, tau_region=0.4, temperature=0.1, scales=SCALES, bf16=False):
    """(bce-free) dict of the two self-supervision terms and the MainNet logits for one batch."""
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        feats = main.features(x)
        logits = main.head(feats).float()
        with torch.no_grad():
            target, s_feats = multiscale_cam(support, x, feats.shape[-2:], scales, return_feats=True)
    pos = (y > 0.5).float()
    m_cam = cam_from_features(main, feats)
    mam = mam_loss(m_cam, target.float(), pos)
    regions = ((target > tau_region) & (pos.view(-1, 1, 1) > 0)).long()  # 1 landslide, 0 background
    present = torch.stack([(regions == 0).any(), (regions == 1).any()])
    protos = prototypes(s_feats.float(), regions)
    rcm = info_nce(feats, regions, protos, temperature, present)
    return {"rcm": rcm, "mam": mam}, logits


def main(argv=None):
    from .loop import early_stop_record, fine_tune
    from .refine_common import base_parser, batches, finish_run, freeze_bn, pos_weight, start_run
    ap = base_parser(__doc__.splitlines()[0], "runs/models/rcm_mam.safetensors")
    ap.add_argument("--w-rcm", type=float, default=0.1)
    ap.add_argument("--w-mam", type=float, default=1.0)
    ap.add_argument("--temperature", type=float, default=0.1)
    ap.add_argument("--tau-region", type=float, default=0.4)
    ap.add_argument("--ema", type=float, default=0.99)
    a = ap.parse_args(argv)
    timer, log, model, src_meta, init_path, chips = start_run(a)
    log(event="data", n=len(chips), init=str(init_path))
    support = EMA(model, a.ema)
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=1e-4)
    pw = pos_weight(chips)
    bf16 = not a.no_bf16
    it = batches(chips, model, a.batch_size, a.seed)

    def step(k):
        freeze_bn(model)
        _, x, y = next(it)
        terms, logits = rcm_mam_losses(model, support.model, x, y, a.tau_region, a.temperature, bf16=bf16)
        bce = F.binary_cross_entropy_with_logits(logits, y, pos_weight=pw)
        loss = bce + a.w_rcm * terms["rcm"] + a.w_mam * terms["mam"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        support.update(model)
        return {"event": "step", "step": k, "loss": float(loss), "bce": float(bce), "rcm": float(terms["rcm"]),
                "mam": float(terms["mam"])}

    done, seconds = fine_tune(step, steps=a.steps, max_minutes=a.max_minutes, log=log)
    model.eval()
    training = {"command": "landslide-wsss train rcm-mam " + " ".join(argv or []), "init": src_meta["_source"],
                "steps": done, "batch_size": a.batch_size, "lr": a.lr, "optimizer": "AdamW, BN frozen",
                "w_rcm": a.w_rcm, "w_mam": a.w_mam, "temperature": a.temperature, "tau_region": a.tau_region,
                "ema": a.ema, "scales": list(SCALES), "train_seconds": seconds, "n_chips": len(chips), "seed": a.seed,
                "stopped_early": early_stop_record(done, a.steps, a.max_minutes)}
    return finish_run(model, a, "rcm-mam", src_meta, training, init_path, log, timer)


if __name__ == "__main__":
    raise SystemExit(main())
