"""Image-level landslide classifier: a torchvision ResNet adapted to N bands, reduced output stride.

The network takes *normalized* inputs (see `normalize`); per-band mean/std computed on the
training data live in buffers (saved with the weights) and in the model metadata.

Output stride: torchvision refuses `replace_stride_with_dilation` for BasicBlock ResNets, so the
strides and dilations are set on the convolutions here: stride 1 in the first block of a stage,
dilation 2 (OS16: layer4) or 2 and 4 (OS8: layer3, layer4) in the following 3x3 convolutions.
`width` scales every stage (64 is torchvision's ResNet-18); 32 keeps the model small and the CPU
training fast (a quarter of the parameters and FLOPs).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .bands import BandNorm
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

ARCHS = {"resnet18": (BasicBlock, [2, 2, 2, 2]), "resnet34": (BasicBlock, [3, 4, 6, 3]),
         "resnet50": (Bottleneck, [3, 4, 6, 3])}


def _dilate_stage(stage: nn.Sequential, dilation: int) -> None:
    """Remove the stride of a stage and dilate its 3x3 convolutions (as DeepLab does)."""
    for i, block in enumerate(stage):
        for name, mod in block.named_modules():
            if isinstance(mod, nn.Conv2d):
                if mod.stride == (2, 2):
                    mod.stride = (1, 1)
                if mod.kernel_size == (3, 3):
                    # first block keeps the previous dilation on its (formerly strided) first conv
                    d = max(1, dilation // 2) if (i == 0 and name.endswith("conv1") and isinstance(block, BasicBlock)) else dilation
                    mod.dilation = (d, d)
                    mod.padding = (d, d)


class Classifier(BandNorm):
    """ResNet backbone -> layer4 activations -> global average pool -> 1 landslide logit."""

    def __init__(self, arch: str = "resnet18", in_bands: int = 3, output_stride: int = 16, width: int = 64,
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None):
        super().__init__()
        if arch not in ARCHS:
            raise ValueError(f"unknown architecture {arch!r}; choose from {sorted(ARCHS)}")
        if output_stride not in (8, 16, 32):
            raise ValueError("output_stride must be 8, 16 or 32")
        block, layers = ARCHS[arch]
        self.arch, self.in_bands, self.output_stride, self.width = arch, in_bands, output_stride, width
        net = ResNet(block, layers)
        if width != 64 or in_bands != 3:
            # rebuild with torchvision's own _make_layer at another width / band count
            net.inplanes = width
            net.conv1 = nn.Conv2d(in_bands, width, 7, 2, 3, bias=False)
            net.bn1 = nn.BatchNorm2d(width)
            net.layer1 = net._make_layer(block, width, layers[0])
            net.layer2 = net._make_layer(block, width * 2, layers[1], stride=2)
            net.layer3 = net._make_layer(block, width * 4, layers[2], stride=2)
            net.layer4 = net._make_layer(block, width * 8, layers[3], stride=2)
            for m in net.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                elif isinstance(m, nn.BatchNorm2d):
                    nn.init.ones_(m.weight)
                    nn.init.zeros_(m.bias)
        if output_stride <= 16:
            _dilate_stage(net.layer4, 2 if output_stride == 16 else 4)
        if output_stride == 8:
            _dilate_stage(net.layer3, 2)
        self.stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4
        self.num_features = width * 8 * block.expansion
        self.fc = nn.Linear(self.num_features, 1)
        self._init_band_norm(in_bands, mean, std)


    # -- network
    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Normalized input -> layer4 activations (N, K, H/os, W/os)."""
        x = self.stem(x)
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def head(self, feats: torch.Tensor) -> torch.Tensor:
        """Activations -> landslide logit (N,)."""
        return self.fc(feats.mean(dim=(2, 3))).squeeze(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def config(self) -> dict:
        return {"arch": self.arch, "in_bands": self.in_bands, "output_stride": self.output_stride,
                "width": self.width}


def build_classifier(config: dict, mean=None, std=None) -> Classifier:
    return Classifier(arch=config.get("arch", "resnet18"), in_bands=int(config.get("in_bands", 3)),
                      output_stride=int(config.get("output_stride", 16)), width=int(config.get("width", 64)),
                      mean=mean, std=std)
