"""Training loops (classifier, U-Net) with safetensors checkpoints and resume.

Top-level entry points (exposed by the CLI):
    train_classifier(...)  – image-level classifier (BCE), see training/classifier.py
    train_unet(...)        – supervised U-Net baseline, see training/unet.py
    train_default(...)     – the embedded default model, see training/default.py
"""


def train_classifier(*args, **kwargs):
    from .classifier import train_classifier as _f
    return _f(*args, **kwargs)


def train_unet(*args, **kwargs):
    from .unet import train_unet as _f
    return _f(*args, **kwargs)


def train_default(*args, **kwargs):
    from .default import train_default as _f
    return _f(*args, **kwargs)
