"""CycleGAN networks (Zhu et al. 2017) for landslide-free synthesis, plus a tiny inference API.

- `ResnetGenerator`: c7s1-ngf, two stride-2 downsamplings, `n_blocks` residual blocks, two
  transposed-conv upsamplings, c7s1-out, tanh. Reflect padding, instance norm. It takes
  `spectral + cond` channels and outputs only the `spectral` channels: terrain bands (DSM,
  slope), when present, condition the generator and are never generated.
- `PatchDiscriminator`: the 70x70 PatchGAN (3 strided layers, ndf -> 8*ndf), instance norm,
  LeakyReLU 0.2, fed `spectral + cond` channels (conditional when terrain is present).
- `init_weights`: N(0, 0.02) for convolutions, N(1, 0.02) for norm scales.

Inference API used by the weak scorer (wsss.py):

    gen = load_generator(tensors, meta)      # tensors with or without the "generator." prefix
    g_x = translate(gen, x_norm)             # x_norm: (N, spectral[+cond], H, W) in [-1, 1]
    d = difference_map(x_norm[:, :gen.spectral], g_x, mode=gen.difference_mode)   # fusion.py
    d = landslide_difference(gen, x_norm)    # the same two steps in one call

`generator.difference_mode` is the difference mode stored with the generator (metadata
"difference": "l2" or "brighter"; "l2" when absent); callers of fusion.difference_map pass it on.

`translate` pads H, W to multiples of 4 by reflection and crops back, so any tile size works.
Spectral bands are normalized to [-1, 1] (x / 127.5 - 1 for uint8); see `normalize_spectral`.
`add_generator_to_model` stores G_A (landslide -> landslide-free) in a model file under the
prefix "generator." (fp16) with its settings in metadata["generator"].
"""
from __future__ import annotations

import functools
from typing import Any, Dict, Mapping, Optional

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

ARCHITECTURE = "cyclegan-resnet-generator"
PREFIX = "generator."


class ResnetBlock(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(ch, ch, 3),
            nn.InstanceNorm2d(ch),
            nn.ReLU(inplace=True),
            nn.ReflectionPad2d(1),
            nn.Conv2d(ch, ch, 3),
            nn.InstanceNorm2d(ch),
        )

    def forward(self, x):
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    """ResNet generator: (N, spectral + cond, H, W) -> (N, spectral, H, W) in [-1, 1].

    H and W must be multiples of 4 (use `translate` for arbitrary sizes).
    """

    def __init__(self, spectral: int = 3, cond: int = 0, ngf: int = 32, n_blocks: int = 6,
                 difference_mode: str = "l2"):
        super().__init__()
        from ..fusion import DIFF_MODES

        if difference_mode not in DIFF_MODES:
            raise ValueError(f"difference mode must be one of {DIFF_MODES}, not {difference_mode!r}")
        self.spectral, self.cond, self.ngf, self.n_blocks = spectral, cond, ngf, n_blocks
        self.difference_mode = difference_mode  # how fusion.difference_map compares x and G(x)
        layers = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(spectral + cond, ngf, 7),
            nn.InstanceNorm2d(ngf),
            nn.ReLU(inplace=True),
        ]
        ch = ngf
        for _ in range(2):
            layers += [nn.Conv2d(ch, ch * 2, 3, stride=2, padding=1), nn.InstanceNorm2d(ch * 2), nn.ReLU(inplace=True)]
            ch *= 2
        layers += [ResnetBlock(ch) for _ in range(n_blocks)]
        for _ in range(2):
            layers += [
                nn.ConvTranspose2d(ch, ch // 2, 3, stride=2, padding=1, output_padding=1),
                nn.InstanceNorm2d(ch // 2),
                nn.ReLU(inplace=True),
            ]
            ch //= 2
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ch, spectral, 7), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] != self.spectral + self.cond:
            raise ValueError(f"generator expects {self.spectral}+{self.cond} channels, got {x.shape[1]}")
        return self.net(x)


class PatchDiscriminator(nn.Module):
    """70x70 PatchGAN with n_layers=3: C(ndf)-C(2ndf)-C(4ndf)-C(8ndf, stride 1)-C(1)."""

    def __init__(self, in_ch: int = 3, ndf: int = 64, n_layers: int = 3):
        super().__init__()
        layers = [nn.Conv2d(in_ch, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2, inplace=True)]
        mult = 1
        for n in range(1, n_layers):
            prev, mult = mult, min(2**n, 8)
            layers += [
                nn.Conv2d(ndf * prev, ndf * mult, 4, stride=2, padding=1),
                nn.InstanceNorm2d(ndf * mult),
                nn.LeakyReLU(0.2, inplace=True),
            ]
        prev, mult = mult, min(2**n_layers, 8)
        layers += [
            nn.Conv2d(ndf * prev, ndf * mult, 4, stride=1, padding=1),
            nn.InstanceNorm2d(ndf * mult),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf * mult, 1, 4, stride=1, padding=1),
        ]
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


def init_weights(module: nn.Module, gain: float = 0.02) -> nn.Module:
    """N(0, gain) for conv weights, zero biases; N(1, gain) for affine norm scales."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d)) and getattr(m, "weight", None) is not None:
            nn.init.normal_(m.weight, 1.0, gain)
            nn.init.zeros_(m.bias)
    return module


# ----------------------------------------------------------------------------------------------
# normalization


from ..fusion import denormalize_spectral, normalize_spectral  # noqa: E402,F401 (numpy; the light runtime uses them too)


# ----------------------------------------------------------------------------------------------
# inference API


def generator_meta(gen: ResnetGenerator, **extra: Any) -> Dict[str, Any]:
    meta = {
        "architecture": ARCHITECTURE,
        "spectral": gen.spectral,
        "cond": gen.cond,
        "ngf": gen.ngf,
        "n_blocks": gen.n_blocks,
        "difference": gen.difference_mode,
        "normalization": "spectral x/127.5-1 (uint8 -> [-1, 1]); output tanh in [-1, 1]",
        "direction": "A->B: landslide -> landslide-free",
    }
    meta.update(extra)
    return meta


def load_generator(tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any]) -> ResnetGenerator:
    """Build the generator described by `meta` and load `tensors` into it (eval mode, float32).

    `meta` may be the generator block itself or a full model metadata dict holding it under
    "generator"; `tensors` may carry the "generator." prefix (other keys are ignored).
    The stored difference mode (metadata "difference", default "l2") becomes
    `generator.difference_mode`.
    """
    from ..checkpoint import check_state_dict
    from ..errors import ModelError

    gmeta = meta.get("generator", meta)
    try:
        gen = ResnetGenerator(
            spectral=int(gmeta["spectral"]), cond=int(gmeta.get("cond", 0)),
            ngf=int(gmeta["ngf"]), n_blocks=int(gmeta["n_blocks"]),
            difference_mode=str(gmeta.get("difference") or "l2"),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"generator metadata incomplete or invalid ({exc})") from None
    if any(k.startswith(PREFIX) for k in tensors):
        tensors = {k[len(PREFIX):]: v for k, v in tensors.items() if k.startswith(PREFIX)}
    tensors = {k: v.float() for k, v in tensors.items()}
    check_state_dict(gen, tensors, "generator")
    gen.load_state_dict(tensors)
    return gen.eval()


def landslide_difference(generator: ResnetGenerator, x_norm, sigma: float = 1.0):
    """translate + fusion.difference_map with the generator's own difference mode
    (`generator.difference_mode`). x_norm: (N, spectral[+cond], H, W) in [-1, 1].
    Returns float32 numpy (N, H, W)."""
    from ..fusion import difference_map

    g = translate(generator, x_norm)
    spec = x_norm[:, : generator.spectral]
    return difference_map(spec, g, sigma=sigma, mode=generator.difference_mode)


@torch.no_grad()
def translate(generator: ResnetGenerator, x_norm, chunk: int = 8, autocast: Optional[bool] = None):
    """Run G on normalized input (N, spectral[+cond], H, W) in [-1, 1]; returns G(x), (N, spectral, H, W).

    numpy in -> numpy float32 out; torch in -> torch out. Pads to multiples of 4 (reflect) and
    crops back. `autocast`: bf16 autocast on CPU (default: on when the CPU supports bf16 fast).
    """
    is_np = isinstance(x_norm, np.ndarray)
    x = torch.from_numpy(np.ascontiguousarray(x_norm, dtype=np.float32)) if is_np else x_norm
    squeeze = x.dim() == 3
    if squeeze:
        x = x[None]
    dev = next(generator.parameters()).device
    h, w = x.shape[-2:]
    ph, pw = (-h) % 4, (-w) % 4
    if autocast is None:
        autocast = dev.type == "cpu" and bf16_fast()
    outs = []
    for i in range(0, x.shape[0], chunk):
        xb = x[i:i + chunk].to(dev, torch.float32)
        if ph or pw:
            mode = "reflect" if min(h, w) > max(ph, pw) else "replicate"
            xb = F.pad(xb, (0, pw, 0, ph), mode=mode)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bool(autocast)):
            y = generator(xb)
        outs.append(y.float()[..., :h, :w])
    y = torch.cat(outs).to(x.device) if outs else x.new_zeros((0, generator.spectral, h, w))
    if squeeze:
        y = y[0]
    return y.cpu().numpy() if is_np else y


@functools.lru_cache(maxsize=1)
def bf16_fast() -> bool:
    """True when the CPU has native bf16 (AVX512-BF16 / AMX), where autocast pays off."""
    try:
        with open("/proc/cpuinfo") as fh:
            flags = fh.read()
        return "avx512_bf16" in flags or "amx_bf16" in flags
    except OSError:
        return False


# ----------------------------------------------------------------------------------------------
# embedding into the default model file


def add_generator_to_model(model_path, generator_checkpoint, dtype=torch.float16, max_mb: float = 25.0,
                           fusion_params: Optional[Mapping[str, Any]] = None, extra_meta: Optional[Mapping] = None):
    """Store G_A from a CycleGAN training checkpoint into `model_path` under "generator.*".

    Keeps every other tensor (classifier.*) and metadata key; replaces an earlier generator.
    Creates the file (generator only) when it does not exist. Refuses to exceed `max_mb`.
    `fusion_params` (fusion.FusionParams fields) go to metadata["params"]["fusion"], where the
    weak scorer reads them; `extra_meta` is merged into metadata["generator"]. Returns the path.
    """
    from pathlib import Path

    from ..checkpoint import load_checkpoint, save_checkpoint
    from ..errors import ModelError

    ck_tensors, ck_meta = load_checkpoint(generator_checkpoint)
    gmeta = dict(ck_meta.get("generator") or {})
    if not gmeta:
        raise ModelError(f"{generator_checkpoint}: no generator metadata")
    g_tensors = {k[len("G_A."):]: v for k, v in ck_tensors.items() if k.startswith("G_A.")}
    if not g_tensors:  # an exported generator-only file
        g_tensors = {k[len(PREFIX):]: v for k, v in ck_tensors.items() if k.startswith(PREFIX)}
    load_generator(g_tensors, gmeta)  # validates names and shapes
    gmeta["storage_dtype"] = str(dtype).replace("torch.", "")
    model_path = Path(model_path)
    if model_path.exists():
        tensors, meta = load_checkpoint(model_path, raw=True)  # other components as stored
        tensors = {k: v for k, v in tensors.items() if not k.startswith(PREFIX)}
    else:
        tensors, meta = {}, {"architecture": ARCHITECTURE, "in_bands": int(gmeta["spectral"]),
                             "version": "generator-only"}
    for k, v in g_tensors.items():
        tensors[PREFIX + k] = v.to(dtype) if v.is_floating_point() else v
    meta = {k: v for k, v in meta.items() if k != "format"}
    if extra_meta:
        gmeta.update(dict(extra_meta))
    meta["generator"] = gmeta
    if fusion_params is not None:
        params = dict(meta.get("params") or {})
        params["fusion"] = dict(fusion_params)
        meta["params"] = params
    size = sum(v.numel() * v.element_size() for v in tensors.values()) / 2**20
    if size > max_mb:
        raise ModelError(f"{model_path}: would hold {size:.1f} MB of tensors (> {max_mb} MB)")
    save_checkpoint(model_path, tensors, meta)
    return model_path
