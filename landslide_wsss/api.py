"""The public functions, re-exported from the rooms that hold them:

detect, predict_scene, preview    one scene (pipeline.py)
detect_directory                  a directory of scenes into one GeoPackage (batch.py)
label_grid                        the tile grid to tick for training (labels.py)
train_weak                        a model from your scenes and image-level labels (training/weak.py)
resolve_device                    --device auto|cpu|cuda (devices.py)
"""
from __future__ import annotations

from .batch import detect_directory
from .devices import resolve_device
from .errors import NothingToDetect
from .labels import label_grid
from .pipeline import check_options, detect, load_scoring_model, predict_scene, preview, with_threshold


def train_weak(images, labels, out, **options):
    """Train a model from image-level labels; see landslide_wsss.training.weak.train_weak."""
    from .training.weak import train_weak as _train
    return _train(images, labels, out, **options)


__all__ = ["detect", "detect_directory", "predict_scene", "preview", "label_grid", "train_weak", "resolve_device",
           "load_scoring_model", "check_options", "with_threshold", "NothingToDetect"]
