"""Supervised U-Net baseline (the yardstick): a small U-Net of our own, no pretrained weights.

Four down-sampling steps, two 3x3 conv + BN + ReLU per level, widths base·(1, 2, 4, 8, 16),
bilinear up-sampling + skip concatenation, 1 output logit per pixel. Normalization buffers as in
the classifier (raw bands in, `normalize` first).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .bands import BandNorm


def _block(cin, cout):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                         nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class UNet(BandNorm):
    def __init__(self, in_bands: int = 3, base: int = 16, depth: int = 4,
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None):
        super().__init__()
        self.in_bands, self.base, self.depth = in_bands, base, depth
        widths = [base * 2 ** i for i in range(depth + 1)]
        self.down = nn.ModuleList([_block(in_bands, widths[0])] +
                                  [_block(widths[i], widths[i + 1]) for i in range(depth)])
        self.up = nn.ModuleList([_block(widths[i + 1] + widths[i], widths[i]) for i in reversed(range(depth))])
        self.out = nn.Conv2d(widths[0], 1, 1)
        self._init_band_norm(in_bands, mean, std)


    def forward(self, x):
        h, w = x.shape[-2:]
        m = 2 ** self.depth
        ph, pw = (-h) % m, (-w) % m
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="replicate")
        skips = []
        for i, blk in enumerate(self.down):
            x = blk(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        x = skips.pop()
        for blk in self.up:
            s = skips.pop()
            x = F.interpolate(x, size=s.shape[-2:], mode="bilinear", align_corners=False)
            x = blk(torch.cat([x, s], 1))
        return self.out(x)[..., :h, :w]

    def config(self) -> dict:
        return {"arch": "unet", "in_bands": self.in_bands, "base": self.base, "depth": self.depth}


def build_unet(config: dict) -> UNet:
    return UNet(in_bands=int(config.get("in_bands", 3)), base=int(config.get("base", 16)),
                depth=int(config.get("depth", 4)))
