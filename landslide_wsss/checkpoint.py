"""Model files: safetensors tensors plus one validated JSON metadata block. Never unpickles.

Metadata (stored under the safetensors metadata key "landslide_wsss" as a JSON string) holds
at least: format (int), architecture (str), in_bands (int), version (str); the model's own
settings (normalization, tile size, CAM layer, thresholds, training data, validation figures)
ride along in the same dict.
"""
from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Any, Dict, Mapping, Tuple

import numpy as np
from safetensors import safe_open

from .errors import ModelError
from .raster import atomic_output

FORMAT = 1
META_KEY = "landslide_wsss"
REQUIRED = {"format": int, "architecture": str, "in_bands": int, "version": str}


def save_checkpoint(path, tensors: Mapping[str, torch.Tensor], metadata: Dict[str, Any]) -> Path:
    """Write tensors + metadata atomically (temp file in the same directory, then rename)."""
    from safetensors.torch import save_file

    meta = {"format": FORMAT, **metadata}
    _check_metadata(meta, str(path))
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    with atomic_output(path, overwrite=True) as tmp:
        save_file(tensors, str(tmp), metadata={META_KEY: json.dumps(meta, sort_keys=True)})
    return Path(path)


def fp16_tensors(module: torch.nn.Module, prefix: str) -> Dict[str, torch.Tensor]:
    """A network's state under `prefix.` for a model file: float tensors as fp16 (half the size),
    the normalization buffers (`norm_*`) and integer counters as they are."""
    return {f"{prefix}.{k}": v.half() if v.is_floating_point() and not k.startswith("norm_") else v
            for k, v in module.state_dict().items()}


QSCALE = ".qscale"  # suffix of the per-output-channel scale beside an int8 weight
INT8_STORAGE = "int8 weights per output channel, fp16 else"  # what a component packed by int8_tensors says


def _per_channel(scale: torch.Tensor, ndim: int) -> torch.Tensor:
    return scale.view(-1, *([1] * (ndim - 1)))  # broadcast over a weight's output channels


def int8_tensors(module, prefix: str) -> Dict[str, torch.Tensor]:
    """Like fp16_tensors, with every conv / linear weight (ndim >= 2) stored as symmetric int8 per
    output channel plus its fp32 scale (`KEY.qscale`): a quarter of fp32, for the components that
    must fit the model file's budget. `load_checkpoint` dequantizes them transparently."""
    import torch

    out = {}
    state = module.state_dict() if isinstance(module, torch.nn.Module) else module  # a network or its state
    for k, v in state.items():
        if v.is_floating_point() and v.ndim >= 2:
            w = v.detach().float()
            scale = w.abs().flatten(1).amax(1).clamp_min(1e-12) / 127.0
            q = torch.round(w / _per_channel(scale, w.ndim)).clamp(-127, 127).to(torch.int8)
            out[f"{prefix}.{k}"], out[f"{prefix}.{k}{QSCALE}"] = q, scale
        elif v.is_floating_point() and not k.startswith("norm_"):
            out[f"{prefix}.{k}"] = v.half()
        else:
            out[f"{prefix}.{k}"] = v
    return out


def dequantize(tensors: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """A copy of stored tensors with every int8 weight (and its scale) turned back into fp32."""
    out = dict(tensors)
    for k in [k for k in out if k.endswith(QSCALE)]:
        base, scale = k[: -len(QSCALE)], out.pop(k)
        q = out[base]
        out[base] = q.float() * _per_channel(scale, q.ndim)
    return out


def read_arrays(path, prefixes) -> Dict[str, np.ndarray]:
    """The tensors under `prefixes` as float32 numpy arrays (int8 weights dequantized as
    `load_checkpoint` does, fp16 widened), keyed by their name in the file: what the onnxruntime
    path feeds its graphs, read without torch."""
    path, _ = _open(path)
    keep = tuple(f"{p}." for p in prefixes)
    try:
        with safe_open(str(path), framework="numpy") as f:
            raw = {k: f.get_tensor(k) for k in f.keys() if k.startswith(keep)}
    except Exception as exc:  # safetensors raises several types for damaged files
        raise ModelError(f"{path}: damaged model file ({exc})") from None
    out = {}
    for k, v in raw.items():
        if k.endswith(QSCALE):
            continue
        scale = raw.get(k + QSCALE)
        if scale is not None:  # the same product as dequantize(): q * per-channel scale, in fp32
            v = v.astype(np.float32) * scale.astype(np.float32).reshape(-1, *([1] * (v.ndim - 1)))
        elif v.dtype.kind == "f":
            v = v.astype(np.float32)
        out[k] = np.ascontiguousarray(v)
    return out


def read_metadata(path) -> Dict[str, Any]:
    """Read and validate only the metadata block (cheap; no tensor is loaded)."""
    return _open(path)[1]


def load_checkpoint(path, device="cpu", prefixes=None, raw: bool = False) -> Tuple[Dict[str, torch.Tensor], Dict[str, Any]]:
    """Load tensors (only those under `prefixes` when given: a detector reads just its component)
    and validated metadata; int8 weights come back as float unless `raw` (as stored, for rewriting
    the file). Raises ModelError for anything that is not ours."""
    path, meta = _open(path)
    keep = None if prefixes is None else tuple(f"{p}." for p in prefixes)
    try:
        with safe_open(str(path), framework="pt", device=str(device)) as f:
            tensors = {k: f.get_tensor(k) for k in f.keys() if keep is None or k.startswith(keep)}
    except Exception as exc:  # safetensors raises several types for damaged files
        raise ModelError(f"{path}: damaged model file ({exc})") from None
    return (tensors if raw else dequantize(tensors)), meta


def update_model_file(path, tensors: Mapping[str, torch.Tensor] = None, drop=(), meta=None) -> Path:
    """Rewrite a model file atomically: remove the tensors under the `drop` prefixes, add `tensors`,
    apply `meta(metadata)` in place; everything else is copied as stored (int8 stays int8)."""
    old, metadata = load_checkpoint(path, raw=True)
    # a component whose weights change loses its ONNX graphs (runtime.py): they may no longer fit;
    # `landslide-wsss export graphs` (run by the trainers at the end) writes them anew
    touched = set(drop) | {k.split(".", 1)[0] for k in (tensors or {})}
    stale = tuple(f"onnx.{c}." for c in touched if c != "onnx")
    dropped = tuple(f"{p}." for p in drop) + stale
    new = {k: v for k, v in old.items() if not (dropped and k.startswith(dropped))}
    new.update(tensors or {})
    metadata = {k: v for k, v in metadata.items() if k != "format"}
    if stale and metadata.get("onnx"):
        metadata["onnx"] = {c: g for c, g in metadata["onnx"].items() if c not in touched}
    if meta is not None:
        meta(metadata)
    return save_checkpoint(path, new, metadata)


def check_state_dict(module: torch.nn.Module, tensors: Mapping[str, torch.Tensor], path) -> None:
    """Refuse a file whose tensor names or shapes do not fit the module (wrong architecture)."""
    own = module.state_dict()
    missing = sorted(set(own) - set(tensors))
    extra = sorted(set(tensors) - set(own))
    if missing or extra:
        raise ModelError(
            f"{path}: tensors do not fit the architecture "
            f"(missing {missing[:3]}{'...' if len(missing) > 3 else ''}, "
            f"unexpected {extra[:3]}{'...' if len(extra) > 3 else ''})"
        )
    for k, v in own.items():
        if tuple(v.shape) != tuple(tensors[k].shape):
            raise ModelError(f"{path}: tensor {k} has shape {tuple(tensors[k].shape)}, expected {tuple(v.shape)}")


def _open(path) -> Tuple[Path, Dict[str, Any]]:
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: model file not found")
    with open(path, "rb") as fh:
        head = fh.read(9)
    # A safetensors file starts with an 8-byte header length and a JSON object; pickles and zip
    # archives (torch.save) start otherwise and are refused before any parser sees them.
    if len(head) < 9 or head[8:9] != b"{":
        raise ModelError(f"{path}: not a safetensors model file (pickled or foreign files are refused)")
    (hlen,) = struct.unpack("<Q", head[:8])
    if hlen > min(os.path.getsize(path), 100_000_000):
        raise ModelError(f"{path}: damaged model file (header length {hlen})")
    try:
        with safe_open(str(path), framework="numpy") as f:
            raw = (f.metadata() or {}).get(META_KEY)
    except Exception as exc:
        raise ModelError(f"{path}: damaged model file ({exc})") from None
    if raw is None:
        raise ModelError(f"{path}: safetensors file without landslide_wsss metadata")
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError:
        raise ModelError(f"{path}: metadata is not valid JSON") from None
    _check_metadata(meta, str(path))
    return path, meta


def _check_metadata(meta: Any, where: str) -> None:
    if not isinstance(meta, dict):
        raise ModelError(f"{where}: metadata is not a JSON object")
    for key, typ in REQUIRED.items():
        if not isinstance(meta.get(key), typ) or isinstance(meta.get(key), bool):
            raise ModelError(f"{where}: metadata field '{key}' missing or not {typ.__name__}")
    if meta["format"] > FORMAT:
        raise ModelError(f"{where}: model format {meta['format']} is newer than this package understands ({FORMAT})")
    if meta["in_bands"] < 1:
        raise ModelError(f"{where}: metadata in_bands must be >= 1")
