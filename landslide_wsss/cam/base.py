"""One base for all CAM methods.

A method takes a batch of *normalized* inputs and returns raw maps (N, H, W): ReLU'd, upsampled to
the input size, never normalized per image (a tile without landslide stays dark; the scene-level
normalization happens in fuse()). Activations of the target layer are captured by a forward hook
that exists only inside `capture()`; every other pass (Score-CAM's masked passes) runs hook-free.
"""
from __future__ import annotations

import contextlib
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn


class ActivationCapture:
    """Forward hook on `layer` that keeps its output; `calls` counts how often it fired."""

    def __init__(self, layer: nn.Module):
        self.layer = layer
        self.value: Optional[torch.Tensor] = None
        self.calls = 0
        self._handle = None

    def _hook(self, module, inp, out):
        self.calls += 1
        self.value = out

    def __enter__(self):
        self._handle = self.layer.register_forward_hook(self._hook)
        return self

    def __exit__(self, *exc):
        self._handle.remove()
        self._handle = None


class BaseCAM:
    """Subclasses implement `weights_and_acts(x) -> (weights (N, K), acts (N, K, h, w), logits (N,))`
    or override `raw_maps`."""

    name = "base"

    def __init__(self, model: nn.Module, target_layer: str = "layer4", scales: Sequence[float] = (1.0,),
                 flip: bool = False, bf16: bool = False):
        self.model = model
        self.target_layer = target_layer
        self.layer = model.get_submodule(target_layer)
        self.scales = tuple(scales)
        self.flip = flip
        self.bf16 = bf16
        self.last_capture: Optional[ActivationCapture] = None

    @contextlib.contextmanager
    def _autocast(self):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            yield

    def forward_capture(self, x: torch.Tensor, grad: bool = False):
        """One forward pass with the hook on; returns (acts, logits). With grad=True the graph is kept."""
        ctx = contextlib.nullcontext() if grad else torch.inference_mode()
        with ctx, ActivationCapture(self.layer) as cap, self._autocast():
            logits = self.model(x)
        self.last_capture = cap
        return cap.value, logits

    def weights_and_acts(self, x: torch.Tensor):
        raise NotImplementedError

    def raw_maps(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) normalized -> (N, h, w) ReLU(sum_k w_k A_k) at feature resolution (float32)."""
        w, acts, _ = self.weights_and_acts(x)
        cam = torch.einsum("nk,nkhw->nhw", w.float(), acts.float())
        return F.relu(cam)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Raw maps upsampled to the input size, summed over scales (and flips), (N, H, W) float32."""
        self.model.eval()
        h, w = x.shape[-2:]
        total = torch.zeros(x.shape[0], h, w, device=x.device)
        for s in self.scales:
            xs = x if s == 1.0 else F.interpolate(x, scale_factor=s, mode="bilinear", align_corners=False)
            variants = [(xs, False)] + ([(xs.flip(-1), True)] if self.flip else [])
            for xv, flipped in variants:
                m = self.raw_maps(xv.contiguous()).detach().float()
                if flipped:
                    m = m.flip(-1)
                total += F.interpolate(m[:, None], size=(h, w), mode="bilinear", align_corners=False)[:, 0]
        return total.clamp_min_(0)
