"""The segmentation student: a segmentation_models_pytorch U-Net, ResNet-18 encoder without its
last stage (encoder depth 4, output stride 16), no pretrained weights.

Sized for this CPU and the model file: 3.6 M parameters (7 MB in fp16). Dropping ResNet's layer4
(8 M of its 11 M parameters) costs little here: at the working GSD (1.6 m) a 192 px crop already
spans 307 m and the stride-16 bottleneck sees all of it. Normalization buffers as in the
classifier (raw bands in, `normalize` first).
"""
from __future__ import annotations

from typing import Sequence

import torch.nn.functional as F

from .bands import BandNorm

STRIDE = 16  # input sides are padded to a multiple of this


class StudentNet(BandNorm):
    def __init__(self, in_bands: int = 3, encoder: str = "resnet18", depth: int = 4,
                 decoder: Sequence[int] = (128, 64, 32, 16),
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None):
        super().__init__()
        import segmentation_models_pytorch as smp

        self.in_bands, self.encoder_name, self.depth, self.decoder = in_bands, encoder, depth, tuple(decoder)
        self.net = smp.Unet(encoder, encoder_weights=None, encoder_depth=depth, decoder_channels=self.decoder,
                            in_channels=in_bands, classes=1)
        if depth < 5 and hasattr(self.net.encoder, "layer4"):
            del self.net.encoder.layer4  # smp builds it but never runs it at depth 4
        self._init_band_norm(in_bands, mean, std)


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
