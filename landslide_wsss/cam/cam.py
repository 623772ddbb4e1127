"""Plain CAM (Zhou et al. 2016): weights are the classifier's fully connected weights of the
landslide logit; the target layer must be the one the global pooling reads (layer4)."""
from __future__ import annotations

from .base import BaseCAM


class CAM(BaseCAM):
    name = "cam"

    def weights_and_acts(self, x):
        if self.target_layer != "layer4":
            raise ValueError("plain CAM needs the last stage (layer4) as target layer")
        acts, logits = self.forward_capture(x)
        w = self.model.fc.weight[0].detach().float()  # (K,)
        return w.expand(x.shape[0], -1), acts, logits
