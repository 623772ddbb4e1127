"""Per-band normalization shared by the networks: raw band values in, `normalize` first."""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import nn


class BandNorm(nn.Module):
    """Mixin: registers `norm_mean` / `norm_std` buffers (stored in the model file) and `normalize`."""

    def _init_band_norm(self, in_bands: int, mean: Optional[Sequence[float]], std: Optional[Sequence[float]]) -> None:
        self.register_buffer("norm_mean", torch.as_tensor(mean if mean is not None else [0.0] * in_bands, dtype=torch.float32))
        self.register_buffer("norm_std", torch.as_tensor(std if std is not None else [1.0] * in_bands, dtype=torch.float32))

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """Raw band values (N, C, H, W) -> normalized network input."""
        return (x - self.norm_mean.view(1, -1, 1, 1)) / self.norm_std.view(1, -1, 1, 1)
