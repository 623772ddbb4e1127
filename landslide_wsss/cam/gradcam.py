"""Grad-CAM (Selvaraju et al. 2017) and Grad-CAM++ (Chattopadhay et al. 2018) on the landslide logit."""
from __future__ import annotations

import torch

from .base import BaseCAM


class GradCAM(BaseCAM):
    name = "gradcam"

    def _acts_grads(self, x):
        with torch.enable_grad():
            x = x.detach().requires_grad_(False)
            acts, logits = self.forward_capture(x, grad=True)
            grads, = torch.autograd.grad(logits.float().sum(), acts)
        return acts.detach().float(), grads.detach().float(), logits.detach().float()

    def weights_and_acts(self, x):
        acts, grads, logits = self._acts_grads(x)
        return grads.mean(dim=(2, 3)), acts, logits


class GradCAMPlusPlus(GradCAM):
    """Weights alpha = g^2 / (2 g^2 + sum(A) g^3) (the exponential-score closed form), w = sum(alpha relu(g))."""

    name = "gradcam++"

    def weights_and_acts(self, x):
        acts, grads, logits = self._acts_grads(x)
        g2 = grads.pow(2)
        g3 = grads.pow(3)
        sum_a = acts.sum(dim=(2, 3), keepdim=True)
        denom = 2 * g2 + sum_a * g3
        denom = torch.where(denom != 0, denom, torch.ones_like(denom))
        alpha = torch.where(grads != 0, g2 / denom, torch.zeros_like(g2))
        w = (alpha * grads.clamp_min(0)).sum(dim=(2, 3))
        return w, acts, logits
