"""End-to-end adversarial erasing (after EADER, Stammes et al., ICDIP 2021, "Find it if you can").

    landslide-wsss train adversarial-erasing [--init FILE] [--out runs/models/adversarial_erasing.safetensors]

Localizer: the classifier (initialised from the default classifier). Its Grad-CAM on the last stage
is computed inside the training graph (autograd.grad with create_graph=True), ReLU, upsampled to
the input, min-max to [0, 1] per image = A. Soft mask m = sigmoid(omega·(A − sigma)), omega = 100,
sigma = 0.5; erased image x·(1 − m) (normalized input, so erased pixels take the band mean).
Adversary: a separate classifier (a copy of the initial localizer) trained with BCE toward the
original label on the erased image (it tries to still find the landslide).
Localizer loss = BCE + alpha·mean over landslide images of sigmoid(adversary(erased)) + beta·mean(A),
alpha = 0.05, beta = 1e-5. Blocks of `--block` localizer steps and `--block` adversary steps
alternate (200/200 in the paper; 25/25 here so a short fine-tune still alternates several times).
`--steps` counts localizer steps (the fine-tune budget shared with the other refinements).
Inference: Grad-CAM of the localizer (`--method adversarial-erasing`, `--model OUT`).
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

OMEGA, SIGMA, ALPHA, BETA = 100.0, 0.5, 0.05, 1e-5


def gradcam_in_graph(model, x: torch.Tensor, bf16: bool = False):
    """(A in [0, 1] at input size (N, H, W), logits (N,)) with the graph kept for second-order gradients."""
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        acts = model.features(x)
        logits = model.head(acts).float()
    grads, = torch.autograd.grad(logits.sum(), acts, create_graph=True)
    w = grads.float().mean(dim=(2, 3))
    cam = F.relu(torch.einsum("nk,nkhw->nhw", w, acts.float()))
    cam = F.interpolate(cam[:, None], size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    lo = cam.flatten(1).amin(1).view(-1, 1, 1)
    hi = cam.flatten(1).amax(1).view(-1, 1, 1)
    return (cam - lo) / (hi - lo + 1e-8), logits


def soft_mask(a: torch.Tensor, omega: float = OMEGA, sigma: float = SIGMA) -> torch.Tensor:
    return torch.sigmoid(omega * (a - sigma))


def erase(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    return x * (1 - m[:, None])


def localizer_loss(logits, y, adv_logits_erased, a, pos_weight=None, alpha: float = ALPHA, beta: float = BETA):
    """BCE + alpha·(adversary's score on the erased landslide images) + beta·mean(A); returns (loss, parts)."""
    bce = F.binary_cross_entropy_with_logits(logits.float(), y, pos_weight=pos_weight)
    pos = (y > 0.5).float()
    adv = (torch.sigmoid(adv_logits_erased.float()) * pos).sum() / pos.sum().clamp_min(1.0)
    area = a.mean()
    return bce + alpha * adv + beta * area, {"bce": bce, "adv": adv, "area": area}


def set_requires_grad(model, flag: bool):
    for p in model.parameters():
        p.requires_grad_(flag)


def main(argv=None):
    from .loop import early_stop_record, fine_tune
    from .refine_common import base_parser, batches, finish_run, freeze_bn, pos_weight, start_run
    ap = base_parser(__doc__.splitlines()[0], "runs/models/adversarial_erasing.safetensors")
    ap.add_argument("--alpha", type=float, default=ALPHA)
    ap.add_argument("--beta", type=float, default=BETA)
    ap.add_argument("--omega", type=float, default=OMEGA)
    ap.add_argument("--sigma", type=float, default=SIGMA)
    ap.add_argument("--block", type=int, default=25, help="steps per alternation block")
    a = ap.parse_args(argv)
    timer, log, loc, src_meta, init_path, chips = start_run(a)
    adv = copy.deepcopy(loc)
    log(event="data", n=len(chips), init=str(init_path))
    opt_l = torch.optim.AdamW(loc.parameters(), lr=a.lr, weight_decay=1e-4)
    opt_a = torch.optim.AdamW(adv.parameters(), lr=a.lr, weight_decay=1e-4)
    pw = pos_weight(chips)
    bf16 = not a.no_bf16
    it = batches(chips, loc, a.batch_size, a.seed)
    count = {"localizer": 0, "adversary": 0}

    def step(k):  # blocks of a.block steps, localizer first, until the localizer has had a.steps
        if count["localizer"] >= a.steps:
            return None
        phase = "localizer" if (k // a.block) % 2 == 0 else "adversary"
        _, x, y = next(it)
        if phase == "localizer":
            freeze_bn(loc), adv.eval(), set_requires_grad(adv, False)
            am, logits = gradcam_in_graph(loc, x, bf16)
            xe = erase(x, soft_mask(am, a.omega, a.sigma))
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                adv_logits = adv(xe)
            loss, parts = localizer_loss(logits, y, adv_logits, am, pw, a.alpha, a.beta)
            opt_l.zero_grad(set_to_none=True)
            loss.backward()
            opt_l.step()
            set_requires_grad(adv, True)
        else:
            freeze_bn(adv), loc.eval()
            with torch.enable_grad():
                am, _ = gradcam_in_graph(loc, x, bf16)
            xe = erase(x, soft_mask(am.detach(), a.omega, a.sigma))
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                adv_logits = adv(xe).float()
            loss = F.binary_cross_entropy_with_logits(adv_logits, y, pos_weight=pw)
            parts = {}
            opt_a.zero_grad(set_to_none=True)
            loss.backward()
            opt_a.step()
        count[phase] += 1
        return {"event": phase, "step": count[phase] - 1, "loss": float(loss), **{n: float(v) for n, v in parts.items()}}

    _, seconds = fine_tune(step, steps=None, max_minutes=a.max_minutes, log=log)
    loc_steps, adv_steps = count["localizer"], count["adversary"]
    loc.eval()
    training = {"command": "landslide-wsss train adversarial-erasing " + " ".join(argv or []),
                "init": src_meta["_source"], "localizer_steps": loc_steps, "adversary_steps": adv_steps,
                "block": a.block, "batch_size": a.batch_size, "lr": a.lr, "optimizer": "AdamW, BN frozen",
                "alpha": a.alpha, "beta": a.beta, "omega": a.omega, "sigma": a.sigma,
                "train_seconds": seconds, "n_chips": len(chips), "seed": a.seed,
                "stopped_early": early_stop_record(loc_steps, a.steps, a.max_minutes)}
    return finish_run(loc, a, "adversarial-erasing", src_meta, training, init_path, log, timer)


if __name__ == "__main__":
    raise SystemExit(main())
