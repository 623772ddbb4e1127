"""The one place that turns `--device auto|cpu|cuda[:N]` into a torch device name."""
from __future__ import annotations

from .errors import InputError


def resolve_device(device: str = "auto") -> str:
    import torch

    from .runtime import threads
    if threads():  # a local worker's share of the cores (runtime.set_threads)
        torch.set_num_threads(threads())

    if device in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device not in ("cpu", "cuda") and not str(device).startswith("cuda:"):
        raise InputError(f"--device {device!r}: expected auto, cpu or cuda")
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise InputError("--device cuda: no CUDA device is available here")
    return device
