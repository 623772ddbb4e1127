"""Score-CAM (Wang et al. 2020), our own implementation.

For each activation channel k of the target layer: upsample A_k to the input size, min-max it to
[0, 1] (H_k), score the masked input x ⊙ H_k with the landslide logit; weights are the softmax over
k of these scores; map = ReLU(sum_k w_k A_k).

The layer activations come from ONE hooked pass; the masked inputs are then built chunk by chunk
(never all K at once) and run hook-free under torch.inference_mode, batched across channels and
images. Modes:
  exact: all K channels (K masked passes per image);
  fast:  `top_k` channels by mean activation (the others get no weight), and optionally the masked
         passes at a reduced size `mask_size` (e.g. 64 px instead of 128).
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from .base import BaseCAM


class ScoreCAM(BaseCAM):
    name = "scorecam"

    def __init__(self, model, target_layer: str = "layer4", top_k: Optional[int] = None,
                 mask_size: Optional[int] = None, chunk: int = 64, **kw):
        super().__init__(model, target_layer, **kw)
        self.top_k = top_k
        self.mask_size = mask_size
        self.chunk = chunk
        self.masked_passes = 0

    def channel_scores(self, x: torch.Tensor, acts: torch.Tensor, channels: torch.Tensor) -> torch.Tensor:
        """Landslide logit of x ⊙ H_k for the chosen channels: (N, k) float32."""
        n, _, h, w = x.shape
        if self.mask_size and self.mask_size < min(h, w):
            x = F.interpolate(x, size=(self.mask_size, self.mask_size), mode="bilinear", align_corners=False)
            h = w = self.mask_size
        k = channels.shape[1]
        scores = torch.empty(n, k)
        pairs = [(i, j) for i in range(n) for j in range(k)]
        with torch.inference_mode(), self._autocast():
            for start in range(0, len(pairs), self.chunk):
                part = pairs[start:start + self.chunk]
                ii = torch.tensor([p[0] for p in part])
                jj = torch.tensor([p[1] for p in part])
                a = acts[ii, channels[ii, jj]].float()[:, None]  # (B, 1, h', w')
                up = F.interpolate(a, size=(h, w), mode="bilinear", align_corners=False)
                lo = up.amin(dim=(2, 3), keepdim=True)
                hi = up.amax(dim=(2, 3), keepdim=True)
                rng = hi - lo
                hmask = torch.where(rng > 0, (up - lo) / torch.where(rng > 0, rng, torch.ones_like(rng)),
                                    torch.zeros_like(up))
                masked = (x[ii] * hmask).contiguous(memory_format=torch.channels_last)
                scores[ii, jj] = self.model(masked).float()
                self.masked_passes += len(part)
        return scores

    def weights_and_acts(self, x):
        acts, logits = self.forward_capture(x)
        acts = acts.float()
        n, kk = acts.shape[:2]
        if self.top_k and self.top_k < kk:
            channels = acts.mean(dim=(2, 3)).topk(self.top_k, dim=1).indices
        else:
            channels = torch.arange(kk).expand(n, -1)
        scores = self.channel_scores(x, acts, channels)
        w_sel = torch.softmax(scores, dim=1)
        w = torch.zeros(n, kk)
        w.scatter_(1, channels, w_sel)
        return w, acts, logits
