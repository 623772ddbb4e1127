"""Score-CAM (Wang et al. 2020), our own implementation.

For each activation channel k of the target layer: upsample A_k to the input size, min-max it to
[0, 1] (H_k), score the masked input x ⊙ H_k with the landslide logit; weights are the softmax over
k of these scores; map = ReLU(sum_k w_k A_k).

The layer activations come from ONE hooked pass; the masked inputs are then built chunk by chunk
(never all K at once) and run hook-free under torch.inference_mode, batched across channels and
images. Modes:
  exact: all K channels (K masked passes per image);
  fast:  `top_k` channels by mean activation (the others get no weight), and optionally the masked
         passes at a reduced size `mask_size` (e.g. 64 px instead of 128). `select="std"` ranks the
         channels by the spatial standard deviation of their activation instead (channels whose mask
         is flat add little); on the default model's Bijie chips it keeps the maps closer to exact
         (benchmarks/RESULTS.md).

Speed (same maps): the masked passes run on an inference copy of the model with every
BatchNorm folded into the convolution before it (torch.fx; exact up to float rounding, rebuilt
whenever a parameter or buffer of the model changes; the model itself is used where it cannot
be traced), channels-last, in chunks of `chunk` masked inputs (256: 1.3x faster than 128 and 1.9x than 64 on 2 CPU cores);
channels whose activation is constant over the map get the all-zero mask, whose score f(0) is
computed once per call and shared (exact). bf16 autocast is the caller's choice (BaseCAM.bf16).

`dense=True` scores every masked input of the batch in one pass with the model's own weights (no
folding, no shortcut, no data-dependent step): the same scores, in the form traced into the model
file's ONNX graph (onnx_export), which the light runtime feeds a few images at a time.
"""
from __future__ import annotations

import logging
from typing import Optional

import torch
import torch.nn.functional as F

from .base import BaseCAM

log = logging.getLogger("landslide_wsss")


def fold_batchnorm(model: torch.nn.Module) -> torch.nn.Module:
    """An eval-mode copy of `model` with Conv2d+BatchNorm2d pairs fused (torch.fx); `model` if it cannot be traced."""
    try:
        from torch.fx.experimental.optimization import fuse

        was = model.training
        model.eval()
        try:
            fused = fuse(model, inplace=False)
        finally:
            model.train(was)
        return fused.eval()
    except Exception as exc:  # any untraceable model: plain passes, same results
        log.debug("Score-CAM: BatchNorm folding not available for this model (%s)", exc)
        return model


class ScoreCAM(BaseCAM):
    name = "scorecam"

    def __init__(self, model, target_layer: str = "layer4", top_k: Optional[int] = None,
                 mask_size: Optional[int] = None, chunk: int = 256, fold_bn: bool = True,
                 select: str = "mean", dense: bool = False, **kw):
        super().__init__(model, target_layer, **kw)
        if select not in ("mean", "std"):
            raise ValueError(f"select must be 'mean' or 'std', not {select!r}")
        self.select = select
        self.top_k = top_k
        self.mask_size = mask_size
        self.chunk = chunk
        self.dense = dense
        self.fold_bn = fold_bn and not dense  # a traced graph reads the file's own (unfolded) weights
        self.masked_passes = 0
        self._scorer = None
        self._scorer_key = None

    # -- the model used for the masked passes
    def _state_key(self):
        m = self.model
        return (m.training, tuple((t.data_ptr(), t._version) for t in m.parameters()),
                tuple((t.data_ptr(), t._version) for t in m.buffers()))

    def scoring_model(self) -> torch.nn.Module:
        if not self.fold_bn or self.model.training:
            return self.model
        key = self._state_key()
        if self._scorer is None or key != self._scorer_key:
            self._scorer = fold_batchnorm(self.model)
            if self._scorer is not self.model:
                self._scorer = self._scorer.to(memory_format=torch.channels_last)
            self._scorer_key = key
        return self._scorer

    # -- masks
    def masks(self, a: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """(B, 1, h', w') activations -> (B, 1, h, w) masks: bilinear upsampling (half-pixel centres),
        then min-max to [0, 1]; a constant map gives the all-zero mask."""
        up = F.interpolate(a, size=(h, w), mode="bilinear", align_corners=False)
        lo = up.amin(dim=(2, 3), keepdim=True)
        rng = up.amax(dim=(2, 3), keepdim=True) - lo
        return torch.where(rng > 0, (up - lo) / torch.where(rng > 0, rng, torch.ones_like(rng)),
                           torch.zeros_like(up))

    def scoring_input(self, x: torch.Tensor) -> torch.Tensor:
        """The input the masks multiply: x, or x at `mask_size` when that is smaller."""
        h, w = x.shape[-2:]
        if self.mask_size and self.mask_size < min(h, w):
            return F.interpolate(x, size=(self.mask_size, self.mask_size), mode="bilinear", align_corners=False)
        return x

    @staticmethod
    def selected(acts: torch.Tensor, channels: torch.Tensor) -> torch.Tensor:
        """(N, K, h', w') activations, (N, k) channel indices -> (N, k, h', w')."""
        return torch.gather(acts, 1, channels.to(acts.device)[:, :, None, None].expand(-1, -1, *acts.shape[2:]))

    def channel_scores(self, x: torch.Tensor, acts: torch.Tensor, channels: torch.Tensor) -> torch.Tensor:
        """Landslide logit of x ⊙ H_k for the chosen channels: (N, k) float32."""
        x = self.scoring_input(x)
        n, _, h, w = x.shape
        k = channels.shape[1]
        dev = x.device
        scores = torch.empty(n, k, device=dev)
        # constant activation maps -> all-zero mask -> the same score f(0) for every such channel
        sel = self.selected(acts, channels)
        flat = sel.flatten(2)
        const = (flat.amax(dim=2) - flat.amin(dim=2)) <= 0
        ii, jj = torch.nonzero(~const, as_tuple=True)
        model = self.scoring_model()
        with torch.inference_mode(), self._autocast():
            if bool(const.any()):
                zero = torch.zeros((1,) + tuple(x.shape[1:]), device=dev, dtype=x.dtype)
                scores[const] = model(zero.contiguous(memory_format=torch.channels_last)).float().reshape(-1)[0]
                self.masked_passes += 1
            for start in range(0, len(ii), self.chunk):
                bi, bj = ii[start:start + self.chunk], jj[start:start + self.chunk]
                hmask = self.masks(sel[bi, bj].float()[:, None], h, w)
                masked = (x[bi] * hmask).contiguous(memory_format=torch.channels_last)
                scores[bi, bj] = model(masked).float().reshape(len(bi), -1)[:, 0]
                self.masked_passes += len(bi)
        return scores

    def dense_scores(self, x: torch.Tensor, acts: torch.Tensor, channels: torch.Tensor) -> torch.Tensor:
        """The scores of `channel_scores` from one pass over all N·k masked inputs (a constant map's
        all-zero mask scores f(0) here too)."""
        x = self.scoring_input(x)
        h, w = x.shape[-2:]
        sel = self.selected(acts, channels)
        hmask = self.masks(sel.flatten(0, 1)[:, None], h, w)  # (N·k, 1, h, w), image-major
        masked = x.repeat_interleave(channels.shape[1], dim=0) * hmask
        with torch.inference_mode(), self._autocast():
            scores = self.model(masked).float().reshape_as(channels)
        self.masked_passes += masked.shape[0]
        return scores

    def choose_channels(self, acts: torch.Tensor) -> torch.Tensor:
        """(N, k) indices of the channels scored: the `top_k` by rank, or all."""
        n, kk = acts.shape[:2]
        if self.top_k and self.top_k < kk:
            rank = acts.flatten(2).std(dim=2) if self.select == "std" else acts.mean(dim=(2, 3))
            return rank.topk(self.top_k, dim=1).indices
        return torch.arange(kk, device=acts.device).expand(n, -1)

    def weights_and_acts(self, x):
        acts, logits = self.forward_capture(x)
        acts = acts.float()
        channels = self.choose_channels(acts)
        scores = (self.dense_scores if self.dense else self.channel_scores)(x, acts, channels)
        w_sel = torch.softmax(scores, dim=1)
        w = torch.zeros_like(acts[:, :, 0, 0]).scatter(1, channels, w_sel)  # unchosen channels weigh 0
        return w, acts, logits
