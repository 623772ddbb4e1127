"""Tiny real model files for tests that run detection through the package's own loader
(landslide_wsss.wsss.load_model -> registry -> SegmentationScorer), the CLI and subprocesses.

A tiny model file is a student-only model file: a randomly initialised segmentation student
(landslide_wsss.models.student, ResNet-18 stem + one decoder block: ~15 k parameters, fast on CPU)
under `student.*`, its settings in metadata["student"] laid out as in the embedded default model,
`method_default: "student"`. With `onnx=True` the file also carries the student's ONNX graph, so
the default runtime (onnxruntime) runs it; without, the torch runtime does.

Run as a script (`python tests/tiny_models.py OUT [--onnx]`) it writes one with the interpreter that
runs it: the QGIS tests make theirs this way with the project's own venv.
"""
from __future__ import annotations

import sys
from pathlib import Path

ARCHITECTURE = "student"  # a model file holding the segmentation student alone
CONFIG = {"arch": "smp-unet", "encoder": "resnet18", "depth": 1, "decoder": [8], "in_bands": 3}


def version(seed: int = 0) -> str:
    """The `model_version` a tiny model file's detections carry."""
    return f"tiny-student-random-{seed}"


def write_tiny_model(path, *, seed: int = 0, tile_size: int = 64, threshold: float = 0.5,
                     mean=(100.0,) * 3, std=(50.0,) * 3, onnx: bool = False) -> Path:
    """A tiny random-weight student model file at `path` (its ONNX graph too when `onnx`).
    No working GSD: scenes are read at their own pixel size."""
    import torch

    from landslide_wsss.checkpoint import save_checkpoint
    from landslide_wsss.models.student import StudentNet

    torch.manual_seed(seed)
    net = StudentNet(in_bands=CONFIG["in_bands"], encoder=CONFIG["encoder"], depth=CONFIG["depth"],
                     decoder=CONFIG["decoder"], mean=list(mean), std=list(std)).eval()
    student = {"config": net.config(), "tile_size": int(tile_size), "overlap": int(tile_size) // 8, "gsd": None,
               "threshold": float(threshold), "gate_high": None}
    meta = {"architecture": ARCHITECTURE, "in_bands": net.in_bands, "version": version(seed),
            "method_default": "student", "student": student}
    save_checkpoint(path, {f"student.{k}": v for k, v in net.state_dict().items()}, meta)
    if onnx:
        from landslide_wsss.onnx_export import embed_graphs

        embed_graphs(path)
    return Path(path)


if __name__ == "__main__":
    args = sys.argv[1:]
    write_tiny_model(args[0], onnx="--onnx" in args[1:])
