"""CAM methods behind one interface: `make_cam(name, model, **options)` -> callable(x_norm) -> (N, H, W) raw maps."""
from .base import ActivationCapture, BaseCAM
from .cam import CAM
from .gradcam import GradCAM, GradCAMPlusPlus
from .scorecam import ScoreCAM

__all__ = ["ActivationCapture", "BaseCAM", "CAM", "GradCAM", "GradCAMPlusPlus", "ScoreCAM", "METHODS", "make_cam"]

METHODS = {"cam": CAM, "gradcam": GradCAM, "gradcam++": GradCAMPlusPlus, "scorecam": ScoreCAM}


def make_cam(name: str, model, **options) -> BaseCAM:
    if name not in METHODS:
        raise ValueError(f"unknown CAM method {name!r}; choose from {sorted(METHODS)}")
    return METHODS[name](model, **options)
