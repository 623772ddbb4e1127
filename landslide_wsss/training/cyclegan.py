"""CycleGAN training: domain A = landslide chips, domain B = landslide-free chips.

Losses and settings follow Zhu et al. (2017): least-squares GAN loss
(discriminator loss x 0.5), cycle L1 with lambda = 10 both ways, identity L1 with weight
0.5 * lambda, history pool of 50 generated images per domain, Adam lr 2e-4, betas (0.5, 0.999),
lr constant for `epochs` epochs then linearly decayed to 0 over `epochs_decay` epochs (updated
every step). Weights N(0, 0.02). bf16 autocast on CPUs with native bf16, channels_last.
Departures, for the CPU budget: batch 4 (not 1), ngf 16 / ndf 32 (not 64 / 64), and a handful
of epochs (not 100 + 100); the shipped generator's metadata (`generator.training`) records the
epochs, steps and wall time used, and benchmarks/cyclegan_eval.py measures what its difference adds.

Terrain (`cond` > 0 channels after the spectral ones) conditions both generators and both
discriminators; generators output only the spectral bands, and the cycle re-attaches the
source terrain: G_B([G_A([a, t]), t]) ~ a.

Data (`cyclegan_chips`): the Bijie train list (label from the ls_/nls_ prefix) minus the seeded
10 % hold-out that the default model keeps for tuning (training/default.py: split_holdout), each
image resized whole to the chip size (datasets.bijie.load_bijie; unlike the classifier, which
trains on native-resolution crops: datasets.bijie.load_bijie_native, centre_crops), plus chips
of AMU-Net area A (stride chip/2, covered >= 90 %, label 1 when any mask pixel is 1) above the
bottom 20 % strip kept for tuning. Pixel masks are never used for training.

One epoch = one pass over domain A (landslide chips) in random order; domain B is drawn in an
independent random order. After each epoch: a checkpoint (`state.safetensors`: both
generators, both discriminators, both optimizers, image pools, RNG states) for resume, a G_A
snapshot `g_a_epochNN.safetensors`, a sample grid PNG (rows: real | G_A(real) landslide-free |
difference) and the loss curve PNG.

    nice .venv/bin/python -m landslide_wsss.training.cyclegan --data ../shared/data --out runs/cyclegan --threads 1
    (or: landslide-wsss train cyclegan --data ../shared/data --out runs/cyclegan --threads 1)
    nice .venv/bin/python -m landslide_wsss.training.cyclegan --export runs/cyclegan/state.safetensors \
        --model landslide_wsss/weights/default.safetensors
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import torch
import torch.nn.functional as F

from ..checkpoint import load_checkpoint, save_checkpoint
from ..paths import DATA_DIR, DEFAULT_MODEL
from .common import augment, load_optimizer_tensors, optimizer_tensors
from ..models.cyclegan import (
    PatchDiscriminator,
    ResnetGenerator,
    bf16_fast,
    generator_meta,
    init_weights,
    normalize_spectral,
)


@dataclass
class CycleGANConfig:
    size: int = 128
    spectral: int = 3
    cond: int = 0
    ngf: int = 16
    ndf: int = 32
    n_blocks: int = 6
    batch_size: int = 4
    epochs: int = 2           # constant lr
    epochs_decay: int = 3     # linear decay to 0
    lr: float = 2e-4
    beta1: float = 0.5
    lambda_cycle: float = 10.0
    lambda_identity: float = 0.5  # times lambda_cycle
    pool_size: int = 50
    seed: int = 0
    bf16: Optional[bool] = None   # None: on where the CPU has native bf16
    channels_last: bool = True
    threads: Optional[int] = 2
    max_steps_per_epoch: Optional[int] = None  # for tests / smoke runs
    data: Dict = field(default_factory=dict)   # description of the training data (metadata)


# ----------------------------------------------------------------------------------------------
# data


def cyclegan_chips(data_root, size: int = 128, seed: int = 0, min_covered: float = 0.9):
    """(A, B, description): uint8 (N, 3, size, size) landslide and landslide-free chips."""
    from ..datasets.bijie import load_bijie
    from ..datasets.scene_chips import scene_chips

    # imported inside the function: training/default.py imports this module (stage_cyclegan), so a
    # module-level import would tie the two into a cycle. No fallback: without the hold-out split
    # the CycleGAN would train on the tuning hold-out.
    from .data import HOLDOUT_FRAC, STRIP_FRAC, split_holdout

    data_root = Path(data_root)
    bj = load_bijie(data_root / "bijie", data_root / "bijie" / "train.txt", size=size, with_masks=False)
    keep, _ = split_holdout(bj.names, bj.labels, frac=HOLDOUT_FRAC, seed=seed)
    bj = bj.subset(keep)
    a_rgb, a_mask = data_root / "amunet/areaA_rgb.tif", data_root / "amunet/areaA_mask.tif"
    sc = scene_chips(a_rgb, a_mask, size=size, stride=size // 2, min_covered=min_covered)
    import rasterio
    with rasterio.open(a_rgb) as ds:
        cut = int(ds.height * (1 - STRIP_FRAC))
    rows = np.array([int(n.rsplit("_r", 1)[1].split("_c")[0]) for n in sc.names])
    sc = sc.subset(np.flatnonzero(rows + size <= cut))
    imgs = np.concatenate([bj.images.astype(np.uint8), np.clip(sc.images, 0, 255).astype(np.uint8)])
    labels = np.concatenate([bj.labels, sc.labels])
    desc = {
        "bijie_train": {"landslide": int(bj.labels.sum()), "free": int((bj.labels == 0).sum()),
                        "note": f"train.txt minus seeded {HOLDOUT_FRAC:.0%} hold-out; whole images resized to {size}"},
        "amunet_areaA": {"landslide": int(sc.labels.sum()), "free": int((sc.labels == 0).sum()),
                         "note": f"{size} px chips stride {size // 2}, covered >= {min_covered}, rows < {cut}"},
    }
    return imgs[labels == 1], imgs[labels == 0], desc


class ImagePool:
    """History of generated images (Shrivastava et al.): returns a mix of new and old fakes."""

    def __init__(self, size: int, rng: np.random.Generator):
        self.size, self.rng, self.images = size, rng, []

    def query(self, batch: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return batch
        out = []
        for img in batch.detach():
            img = img[None]
            if len(self.images) < self.size:
                self.images.append(img.clone())
                out.append(img)
            elif self.rng.random() < 0.5:
                i = int(self.rng.integers(len(self.images)))
                out.append(self.images[i].clone())
                self.images[i] = img.clone()
            else:
                out.append(img)
        return torch.cat(out)


def _augment(x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """The trainers' geometric augmentation (common.augment: per-sample flip and 90-degree rotation,
    no radiometric jitter: the generator must learn colours as they are), seeded from the trainer's
    numpy generator so that a resumed run draws the same."""
    return augment(x, gen=torch.Generator().manual_seed(int(rng.integers(2 ** 62))), jitter=0.0)[0]


def _to_input(chips: np.ndarray, spectral: int) -> torch.Tensor:
    """Raw chips -> float [-1, 1] for the spectral bands; extra (terrain) bands passed as given."""
    x = torch.from_numpy(np.ascontiguousarray(chips)).float()
    x[:, :spectral] = normalize_spectral(x[:, :spectral])
    return x


# ----------------------------------------------------------------------------------------------
# the trainer


class CycleGANTrainer:
    def __init__(self, cfg: CycleGANConfig):
        from .common import seed_everything
        self.cfg = cfg
        seed_everything(cfg.seed)  # deterministic kernels too: the same seed gives the same generator
        c = cfg.spectral + cfg.cond
        self.G_A = init_weights(ResnetGenerator(cfg.spectral, cfg.cond, cfg.ngf, cfg.n_blocks))
        self.G_B = init_weights(ResnetGenerator(cfg.spectral, cfg.cond, cfg.ngf, cfg.n_blocks))
        self.D_A = init_weights(PatchDiscriminator(c, cfg.ndf))
        self.D_B = init_weights(PatchDiscriminator(c, cfg.ndf))
        self.nets = {"G_A": self.G_A, "G_B": self.G_B, "D_A": self.D_A, "D_B": self.D_B}
        if cfg.channels_last:
            for m in self.nets.values():
                m.to(memory_format=torch.channels_last)
        betas = (cfg.beta1, 0.999)
        self.opt_G = torch.optim.Adam(list(self.G_A.parameters()) + list(self.G_B.parameters()), cfg.lr, betas=betas)
        self.opt_D = torch.optim.Adam(list(self.D_A.parameters()) + list(self.D_B.parameters()), cfg.lr, betas=betas)
        self.rng = np.random.default_rng(cfg.seed)
        self.pool_A = ImagePool(cfg.pool_size, self.rng)  # fakes of domain A (from G_B)
        self.pool_B = ImagePool(cfg.pool_size, self.rng)
        self.bf16 = bf16_fast() if cfg.bf16 is None else bool(cfg.bf16)
        self.epoch = 0   # completed epochs
        self.step = 0    # completed steps
        self.history: List[dict] = []
        self.seconds = 0.0

    # -- schedule
    def lr_at(self, epoch_float: float) -> float:
        cfg = self.cfg
        if epoch_float < cfg.epochs:
            return cfg.lr
        if cfg.epochs_decay <= 0:
            return cfg.lr
        return cfg.lr * max(0.0, 1.0 - (epoch_float - cfg.epochs) / cfg.epochs_decay)

    def _fmt(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.cfg.channels_last else x

    def train_step(self, a: torch.Tensor, b: torch.Tensor) -> Dict[str, float]:
        """One generator + discriminator update. a, b: normalized (N, spectral+cond, H, W)."""
        cfg, s = self.cfg, self.cfg.spectral
        a, b = self._fmt(a), self._fmt(b)
        a_s, a_t, b_s, b_t = a[:, :s], a[:, s:], b[:, :s], b[:, s:]
        cat = lambda x, t: torch.cat([x, t], 1) if t.shape[1] else x  # noqa: E731
        mse = lambda p, v: F.mse_loss(p.float(), torch.full_like(p.float(), v))  # noqa: E731
        l1 = lambda x, y: (x.float() - y.float()).abs().mean()  # noqa: E731
        lam, lam_id = cfg.lambda_cycle, cfg.lambda_cycle * cfg.lambda_identity
        ac = torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16)

        for p in list(self.D_A.parameters()) + list(self.D_B.parameters()):
            p.requires_grad_(False)
        with ac:
            fake_b = self.G_A(a)                 # landslide -> landslide-free
            fake_a = self.G_B(b)
            rec_a = self.G_B(cat(fake_b, a_t))
            rec_b = self.G_A(cat(fake_a, b_t))
            loss_gan_a = mse(self.D_B(cat(fake_b, a_t)), 1.0)
            loss_gan_b = mse(self.D_A(cat(fake_a, b_t)), 1.0)
            loss_cyc = l1(rec_a, a_s) + l1(rec_b, b_s)
            if lam_id > 0:
                loss_idt = l1(self.G_A(b), b_s) + l1(self.G_B(a), a_s)
            else:
                loss_idt = torch.zeros(())
            loss_g = loss_gan_a + loss_gan_b + lam * loss_cyc + lam_id * loss_idt
        self.opt_G.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_G.step()

        for p in list(self.D_A.parameters()) + list(self.D_B.parameters()):
            p.requires_grad_(True)
        fb = self.pool_B.query(cat(fake_b.detach().float(), a_t))
        fa = self.pool_A.query(cat(fake_a.detach().float(), b_t))
        with ac:
            loss_d_b = 0.5 * (mse(self.D_B(b), 1.0) + mse(self.D_B(self._fmt(fb)), 0.0))
            loss_d_a = 0.5 * (mse(self.D_A(a), 1.0) + mse(self.D_A(self._fmt(fa)), 0.0))
        self.opt_D.zero_grad(set_to_none=True)
        (loss_d_a + loss_d_b).backward()
        self.opt_D.step()
        return {"g_gan": (loss_gan_a + loss_gan_b).item(), "cycle": loss_cyc.item(), "identity": float(loss_idt.detach()),
                "g_total": loss_g.item(), "d_a": loss_d_a.item(), "d_b": loss_d_b.item()}

    def train_epoch(self, A: np.ndarray, B: np.ndarray, log=None) -> dict:
        cfg = self.cfg
        bs = cfg.batch_size
        n_steps = max(1, len(A) // bs)
        if cfg.max_steps_per_epoch:
            n_steps = min(n_steps, cfg.max_steps_per_epoch)
        perm_a = self.rng.permutation(len(A))
        perm_b = self.rng.permutation(len(B))
        sums: Dict[str, float] = {}
        t0 = time.time()
        for i in range(n_steps):
            lr = self.lr_at(self.epoch + i / n_steps)
            for opt in (self.opt_G, self.opt_D):
                for g in opt.param_groups:
                    g["lr"] = lr
            ia = perm_a[i * bs:(i + 1) * bs]
            ib = perm_b[np.arange(i * bs, (i + 1) * bs) % len(B)]
            a = _augment(_to_input(A[ia], cfg.spectral), self.rng)
            b = _augment(_to_input(B[ib], cfg.spectral), self.rng)
            losses = self.train_step(a, b)
            self.step += 1
            for k, v in losses.items():
                sums[k] = sums.get(k, 0.0) + v
            if log and (i + 1) % 25 == 0:
                log(f"epoch {self.epoch + 1} step {i + 1}/{n_steps} lr {lr:.2e} "
                    + " ".join(f"{k} {v:.3f}" for k, v in losses.items()) + f" {time.time() - t0:.0f}s")
        dt = time.time() - t0
        self.seconds += dt
        self.epoch += 1
        rec = {"epoch": self.epoch, "steps": n_steps, "seconds": round(dt, 1), "lr_end": self.lr_at(self.epoch),
               **{k: v / n_steps for k, v in sums.items()}}
        self.history.append(rec)
        return rec

    # -- state
    def generator_meta(self) -> dict:
        cfg = self.cfg
        return generator_meta(
            self.G_A, chip_size=cfg.size,
            training={"epochs_constant": cfg.epochs, "epochs_decay": cfg.epochs_decay, "epochs_done": self.epoch,
                      "steps": self.step, "batch_size": cfg.batch_size, "ndf": cfg.ndf, "lr": cfg.lr,
                      "lambda_cycle": cfg.lambda_cycle, "lambda_identity": cfg.lambda_identity,
                      "pool": cfg.pool_size, "bf16_autocast": self.bf16, "seed": cfg.seed,
                      "train_wall_seconds": round(self.seconds, 1)},
            data=cfg.data,
        )

    def save(self, path) -> None:
        tensors = {}
        for name, net in self.nets.items():
            for k, v in net.state_dict().items():
                tensors[f"{name}.{k}"] = v.contiguous()
        opt_meta = {}
        for oname, opt in (("opt_G", self.opt_G), ("opt_D", self.opt_D)):
            t, m = optimizer_tensors(opt, oname)
            tensors.update(t)
            opt_meta[oname] = m["param_groups"]
        for pname, pool in (("pool_A", self.pool_A), ("pool_B", self.pool_B)):
            if pool.images:
                tensors[pname] = torch.cat(pool.images).contiguous()
        tensors["torch_rng"] = torch.get_rng_state()
        meta = {
            "architecture": "cyclegan-training-state",
            "in_bands": self.cfg.spectral + self.cfg.cond,
            "version": f"cyclegan-e{self.epoch}",
            "config": asdict(self.cfg),
            "epoch": self.epoch,
            "step": self.step,
            "seconds": self.seconds,
            "history": self.history,
            "optimizers": opt_meta,
            "numpy_rng": self.rng.bit_generator.state,
            "generator": self.generator_meta(),
        }
        save_checkpoint(path, tensors, json.loads(json.dumps(meta)))

    @classmethod
    def load(cls, path, **overrides) -> "CycleGANTrainer":
        tensors, meta = load_checkpoint(path)
        cfg_d = dict(meta["config"])
        cfg_d.update(overrides)
        self = cls(CycleGANConfig(**cfg_d))
        for name, net in self.nets.items():
            sd = {k[len(name) + 1:]: v for k, v in tensors.items() if k.startswith(name + ".")}
            net.load_state_dict(sd)
        for oname, opt in (("opt_G", self.opt_G), ("opt_D", self.opt_D)):
            load_optimizer_tensors(opt, tensors, {"param_groups": meta["optimizers"][oname]}, oname)
        for pname, pool in (("pool_A", self.pool_A), ("pool_B", self.pool_B)):
            pool.images = [t[None].clone() for t in tensors[pname]] if pname in tensors else []
        torch.set_rng_state(tensors["torch_rng"])
        self.rng.bit_generator.state = meta["numpy_rng"]
        self.epoch, self.step, self.seconds = meta["epoch"], meta["step"], meta["seconds"]
        self.history = list(meta["history"])
        return self

    def export_generator(self, path) -> None:
        """G_A alone (float32, prefix generator.) with its metadata."""
        tensors = {f"generator.{k}": v for k, v in self.G_A.state_dict().items()}
        gm = self.generator_meta()
        save_checkpoint(path, tensors, {"architecture": gm["architecture"], "in_bands": gm["spectral"] + gm["cond"],
                                        "version": f"cyclegan-e{self.epoch}", "generator": gm})


# ----------------------------------------------------------------------------------------------
# figures


def _heat(d: np.ndarray, vmax: float) -> np.ndarray:
    import matplotlib
    cm = matplotlib.colormaps["magma"]
    return (cm(np.clip(d / max(vmax, 1e-6), 0, 1))[..., :3] * 255).astype(np.uint8)


@torch.no_grad()
def sample_grid(G_A, chips: np.ndarray, path, spectral: int = 3, bf16: bool = False) -> None:
    """PNG with one row per chip: real | G_A(real) (landslide-free) | difference (magma, fixed scale)."""
    from PIL import Image

    from ..fusion import difference_map
    from ..models.cyclegan import denormalize_spectral, translate

    G_A.eval()
    x = _to_input(chips, spectral)
    g = translate(G_A, x, autocast=bf16)
    G_A.train()
    d = difference_map(x[:, :spectral].numpy(), g.numpy(), mode=G_A.difference_mode)
    rows = []
    for i in range(len(chips)):
        real = np.clip(denormalize_spectral(x[i, :3].numpy()), 0, 255).astype(np.uint8).transpose(1, 2, 0)
        fake = np.clip(denormalize_spectral(g[i, :3].numpy()), 0, 255).astype(np.uint8).transpose(1, 2, 0)
        rows.append(np.concatenate([real, fake, _heat(d[i], 1.0)], 1))
    Image.fromarray(np.concatenate(rows, 0)).save(path)


def loss_curve(history: List[dict], path) -> None:
    from .common import plot_history

    plot_history(history, path, {"adversarial (LSGAN)": ("g_gan", "d_a", "d_b"),
                                 "L1 (per unit weight)": ("cycle", "identity")})


# ----------------------------------------------------------------------------------------------
# entry points


def train_cyclegan(A: np.ndarray, B: np.ndarray, cfg: CycleGANConfig, out_dir, resume: bool = True,
                   sample_chips: Optional[np.ndarray] = None, log=print) -> CycleGANTrainer:
    """Train (or resume from out_dir/state.safetensors) until epochs + epochs_decay are done."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    state = out / "state.safetensors"
    if resume and state.exists():
        tr = CycleGANTrainer.load(state, threads=cfg.threads, max_steps_per_epoch=cfg.max_steps_per_epoch)
        log(f"resumed from {state} at epoch {tr.epoch}")
    else:
        tr = CycleGANTrainer(cfg)
    if sample_chips is None:
        sample_chips = A[np.random.default_rng(123).choice(len(A), min(4, len(A)), replace=False)]
    total = tr.cfg.epochs + tr.cfg.epochs_decay
    while tr.epoch < total:
        rec = tr.train_epoch(A, B, log=log)
        log(json.dumps(rec))
        with open(out / "history.jsonl", "a") as fh:
            fh.write(json.dumps(rec) + "\n")
        tr.save(state)
        tr.export_generator(out / f"g_a_epoch{tr.epoch:02d}.safetensors")
        sample_grid(tr.G_A, sample_chips, out / f"samples_epoch{tr.epoch:02d}.png", tr.cfg.spectral, tr.bf16)
        loss_curve(tr.history, out / "loss_curve.png")
    return tr


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m landslide_wsss.training.cyclegan", description=__doc__.split("\n")[0])
    repo = Path(__file__).resolve().parents[2]
    d = CycleGANConfig()  # the defaults
    p.add_argument("--data", default=str(DATA_DIR))
    p.add_argument("--out", default=str(repo / "runs" / "cyclegan"))
    p.add_argument("--size", type=int, default=d.size)
    p.add_argument("--ngf", type=int, default=d.ngf)
    p.add_argument("--ndf", type=int, default=d.ndf)
    p.add_argument("--blocks", type=int, default=d.n_blocks)
    p.add_argument("--batch", type=int, default=d.batch_size)
    p.add_argument("--epochs", type=int, default=d.epochs, help="epochs at constant lr")
    p.add_argument("--epochs-decay", type=int, default=d.epochs_decay, help="epochs of linear decay to 0")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--threads", type=int, default=d.threads, help="torch threads (1 is faster on a busy shared CPU)")
    p.add_argument("--no-resume", action="store_true")
    p.add_argument("--export", metavar="STATE", help="only store G_A of STATE (or a g_a_epoch file) into --model")
    p.add_argument("--model", default=str(DEFAULT_MODEL))
    a = p.parse_args(argv)
    if a.export:
        from ..models.cyclegan import add_generator_to_model
        print(add_generator_to_model(a.model, a.export))
        return 0
    t0 = time.time()
    A, B, desc = cyclegan_chips(a.data, a.size, a.seed)
    print(f"chips: A (landslide) {len(A)}, B (free) {len(B)}; {json.dumps(desc)}", flush=True)
    cfg = CycleGANConfig(size=a.size, ngf=a.ngf, ndf=a.ndf, n_blocks=a.blocks, batch_size=a.batch, epochs=a.epochs,
                         epochs_decay=a.epochs_decay, seed=a.seed, threads=a.threads, data=desc)
    tr = train_cyclegan(A, B, cfg, a.out, resume=not a.no_resume, log=lambda m: print(m, flush=True))
    print(f"done: {tr.epoch} epochs, {tr.step} steps, train {tr.seconds / 60:.1f} min, wall {(time.time() - t0) / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
