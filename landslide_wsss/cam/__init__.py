"""CAM methods behind one interface: `make_cam(name, model, **options)` -> callable(x_norm) -> (N, H, W) raw maps.

The CAM classes (torch) are imported on first use, so the torch-free parts of this package
(terrain_crop's crop planning and resizing, which the light runtime runs) import without torch."""
import importlib

__all__ = ["ActivationCapture", "BaseCAM", "CAM", "GradCAM", "GradCAMPlusPlus", "ScoreCAM", "METHODS", "make_cam"]

_CLASSES = {"ActivationCapture": "base", "BaseCAM": "base", "CAM": "cam", "GradCAM": "gradcam",
            "GradCAMPlusPlus": "gradcam", "ScoreCAM": "scorecam"}
_METHODS = {"cam": "CAM", "gradcam": "GradCAM", "gradcam++": "GradCAMPlusPlus", "scorecam": "ScoreCAM"}


def __getattr__(name: str):
    if name in _CLASSES:
        return getattr(importlib.import_module(f".{_CLASSES[name]}", __name__), name)
    if name == "METHODS":
        return {method: __getattr__(cls) for method, cls in _METHODS.items()}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def make_cam(name: str, model, **options):
    if name not in _METHODS:
        raise ValueError(f"unknown CAM method {name!r}; choose from {sorted(_METHODS)}")
    return __getattr__(_METHODS[name])(model, **options)
