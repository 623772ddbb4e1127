"""The segmentation student: segmentation_models_pytorch's U-Net layout, ResNet-18 encoder without
its last stage (encoder depth 4, output stride 16), no pretrained weights.

Sized for this CPU and the model file: 3.6 M parameters (7 MB in fp16). Dropping ResNet's layer4
(8 M of its 11 M parameters) costs little here: at the working GSD (1.6-2.4 m) a 192 px crop already
spans 300-460 m and the stride-16 bottleneck sees all of it. Normalization buffers as in the
classifier (raw bands in, `normalize` first).

Written out in plain torch rather than built by `smp.Unet`: importing smp pulls in timm, torchvision
and torch._dynamo, 195 MB of resident memory measured (benchmarks/memory_profile.py) — a fifth of
detect's 1 GB budget — for a network of five module types. The module names, parameter names and
forward pass are smp 0.6's `Unet("resnet18", encoder_depth=4, decoder_channels=...)` (nearest
upsampling, batch-norm Conv-BN-ReLU blocks, 3x3 head); tests/test_student.py checks that the same
weights give the same logits in both, so a model file stays loadable by smp.
"""
from __future__ import annotations

from typing import List, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .bands import BandNorm

STRIDE = 16  # input sides are padded to a multiple of this
RESNET_STAGES = {"resnet18": (2, 2, 2, 2), "resnet34": (3, 4, 6, 3)}
WIDTHS = (64, 128, 256, 512)


class BasicBlock(nn.Module):
    """torchvision's ResNet BasicBlock (same names: conv1, bn1, conv2, bn2, downsample)."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        idt = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + idt)


class ResNetEncoder(nn.Module):
    """smp's ResNetEncoder: features [x, stem (/2), layer1 (/4), layer2 (/8), layer3 (/16), ...]."""

    def __init__(self, in_bands: int, encoder: str, depth: int):
        super().__init__()
        if encoder not in RESNET_STAGES:
            raise ValueError(f"unknown encoder {encoder!r}; known: {', '.join(RESNET_STAGES)}")
        self.depth = depth
        self.conv1 = nn.Conv2d(in_bands, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        cin = 64
        for i, n in enumerate(RESNET_STAGES[encoder][: depth - 1]):
            cout = WIDTHS[i]
            blocks = [BasicBlock(cin, cout, 1 if i == 0 else 2)] + [BasicBlock(cout, cout) for _ in range(n - 1)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
            cin = cout
        self.out_channels = [in_bands, 64] + list(WIDTHS[: depth - 1])

    def forward(self, x) -> List[torch.Tensor]:
        feats = [x]
        x = self.relu(self.bn1(self.conv1(x)))
        feats.append(x)
        x = self.maxpool(x)
        for i in range(1, self.depth):
            x = getattr(self, f"layer{i}")(x)
            feats.append(x)
        return feats


def _conv_bn_relu(cin: int, cout: int) -> nn.Sequential:  # smp's Conv2dReLU
    return nn.Sequential(nn.Conv2d(cin, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class DecoderBlock(nn.Module):
    def __init__(self, cin: int, skip: int, cout: int):
        super().__init__()
        self.conv1 = _conv_bn_relu(cin + skip, cout)
        self.conv2 = _conv_bn_relu(cout, cout)

    def forward(self, x, size, skip=None):
        x = F.interpolate(x, size=size, mode="nearest")
        if skip is not None:
            x = torch.cat([x, skip], dim=1)
        return self.conv2(self.conv1(x))


class UnetDecoder(nn.Module):
    def __init__(self, encoder_channels: Sequence[int], decoder: Sequence[int]):
        super().__init__()
        enc = list(encoder_channels[1:])[::-1]
        ins = [enc[0]] + list(decoder[:-1])
        skips = enc[1:] + [0]
        self.blocks = nn.ModuleList(DecoderBlock(i, s, o) for i, s, o in zip(ins, skips, decoder))

    def forward(self, feats: List[torch.Tensor]) -> torch.Tensor:
        sizes = [f.shape[2:] for f in feats][::-1]
        rest = feats[1:][::-1]
        x, skips = rest[0], rest[1:]
        for i, block in enumerate(self.blocks):
            x = block(x, sizes[i + 1], skips[i] if i < len(skips) else None)
        return x


class Unet(nn.Module):
    """smp.Unet's module tree: encoder, decoder, segmentation_head (3x3 conv to one logit)."""

    def __init__(self, in_bands: int, encoder: str, depth: int, decoder: Sequence[int]):
        super().__init__()
        if len(decoder) != depth:
            raise ValueError(f"depth {depth} needs {depth} decoder widths, got {len(decoder)}")
        self.encoder = ResNetEncoder(in_bands, encoder, depth)
        self.decoder = UnetDecoder(self.encoder.out_channels, decoder)
        self.segmentation_head = nn.Sequential(nn.Conv2d(decoder[-1], 1, 3, 1, 1))

    def forward(self, x):
        return self.segmentation_head(self.decoder(self.encoder(x)))


class StudentNet(BandNorm):
    def __init__(self, in_bands: int = 3, encoder: str = "resnet18", depth: int = 4,
                 decoder: Sequence[int] = (128, 64, 32, 16),
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None):
        super().__init__()
        self.in_bands, self.encoder_name, self.depth, self.decoder = in_bands, encoder, depth, tuple(decoder)
        self.net = Unet(in_bands, encoder, depth, self.decoder)
        self._init_weights()
        self._init_band_norm(in_bands, mean, std)

    def _init_weights(self):
        # torchvision's ResNet init for the encoder, smp's for the decoder (Kaiming uniform) and head (Xavier)
        for name, m in self.net.named_modules():
            if isinstance(m, nn.Conv2d):
                if name.startswith("segmentation_head"):
                    nn.init.xavier_uniform_(m.weight)
                    nn.init.zeros_(m.bias)
                elif name.startswith("encoder"):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                else:
                    nn.init.kaiming_uniform_(m.weight, mode="fan_in", nonlinearity="relu")
                    if m.bias is not None:
                        nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        """Logits (N, 1, H, W) for normalized input of any size (reflect-padded to the stride)."""
        h, w = x.shape[-2:]
        ph, pw = (-h) % STRIDE, (-w) % STRIDE
        if ph or pw:
            mode = "reflect" if h > ph and w > pw else "replicate"
            x = F.pad(x, (0, pw, 0, ph), mode=mode)
        return self.net(x)[..., :h, :w]

    def config(self) -> dict:
        return {"arch": "smp-unet", "encoder": self.encoder_name, "depth": self.depth,
                "decoder": list(self.decoder), "in_bands": self.in_bands}


def build_student(config: dict) -> StudentNet:
    return StudentNet(in_bands=int(config.get("in_bands", 3)), encoder=str(config.get("encoder", "resnet18")),
                      depth=int(config.get("depth", 4)), decoder=tuple(config.get("decoder", (128, 64, 32, 16))))


def load_student(tensors, config: dict, prefix: str, path) -> StudentNet:
    """The `prefix` network of a model file (student, or the unet yardstick) built from its `config`, with
    the float32 weights of the `prefix.*` tensors; a mismatch is a ModelError naming `path`."""
    from ..checkpoint import check_state_dict

    net = build_student(config)
    sd = {k[len(prefix) + 1:]: v.float() for k, v in tensors.items() if k.startswith(prefix + ".")}
    check_state_dict(net, sd, path)
    net.load_state_dict(sd)
    return net
