"""Which engine runs a network's forward pass: onnxruntime (the light install, the default) or torch
(the `train` extra, `--runtime torch`).

A model file carries, beside its safetensors weights, the *graph* of each forward-only network as
ONNX without weights (`onnx.COMPONENT.GRAPH`, a few tens of kB; written by `onnx_export.embed_graphs`).
Every initializer of such a graph is named after the weight tensor it stands for, so the weights are
read once from the one file (`checkpoint.read_arrays`, no torch) and handed to onnxruntime as
external initializers: one source of weights for both engines, no second copy in the file.
Only the forward changes with the runtime: tiling, stitching, fusion and vectorizing are shared.
"""
from __future__ import annotations

import importlib.util
import sys
from typing import Dict, Mapping, Optional

import numpy as np

from .errors import InputError, ModelError

RUNTIMES = ("auto", "onnx", "torch")
GRAPH_PREFIX = "onnx"
TRAIN_EXTRA = "pip install 'landslide_wsss[train]'"


_THREADS: Optional[int] = None  # intra-op threads of every engine in this process (None: the engine's default)


def set_threads(threads: int) -> None:
    """Threads per network forward in this process, for both engines (a local worker's share of the cores)."""
    global _THREADS
    _THREADS = int(threads)
    if "torch" in sys.modules:  # else devices.resolve_device applies it when torch is loaded
        sys.modules["torch"].set_num_threads(_THREADS)


def threads() -> Optional[int]:
    return _THREADS


class NotOnOnnx(ModelError):
    """The stored graphs cannot serve these settings (another CAM, scales, tile size): `auto` then
    runs torch, `--runtime onnx` reports it."""


def graph_key(component: str, graph: str) -> str:
    """Name of a stored ONNX graph in a model file (a uint8 tensor)."""
    return f"{GRAPH_PREFIX}.{component}.{graph}"


def available(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def choose(runtime: str, spec, meta: Mapping) -> str:
    """The engine for registry method `spec` on a model file with metadata `meta`: "onnx" or "torch".

    auto   onnxruntime when the method runs on it and the file has its graphs, else torch;
    onnx   onnxruntime or one clean error saying why not;
    torch  torch or one clean error naming the extra to install.
    """
    if runtime not in RUNTIMES:
        raise InputError(f"--runtime {runtime!r}: expected one of {', '.join(RUNTIMES)}")
    stored = meta.get("onnx") or {}
    component = spec.component if spec.component == "classifier" or meta.get(spec.component) else "classifier"
    graphs = bool(stored.get(component)) and (not spec.generator or bool(stored.get("generator")))
    onnx_ok = spec.onnx and graphs
    if runtime == "auto":
        if onnx_ok and available("onnxruntime"):
            return "onnx"
        runtime = "torch"
    if runtime == "onnx":
        if not spec.onnx:
            raise ModelError(f"method {spec.name!r} needs gradients or torch code at inference and runs only on torch "
                             f"(--runtime torch; {TRAIN_EXTRA})")
        if not graphs:
            raise ModelError(f"this model file has no ONNX graphs for {spec.name!r} "
                             "(`landslide-wsss export graphs MODEL` adds them)")
        if not available("onnxruntime"):
            raise ModelError("--runtime onnx: onnxruntime is not installed (pip install onnxruntime)")
        return "onnx"
    if not available("torch"):
        why = "needs torch" if not spec.onnx else "runs without torch only from a model file with ONNX graphs"
        raise ModelError(f"method {spec.name!r} {why}: {TRAIN_EXTRA}")
    return "torch"


def providers(device: str = "auto"):
    """onnxruntime execution providers for `--device`: CUDA first when asked for or, with auto,
    when this onnxruntime build has it."""
    import onnxruntime as ort

    have = ort.get_available_providers()
    if device in (None, "auto"):
        return (["CUDAExecutionProvider"] if "CUDAExecutionProvider" in have else []) + ["CPUExecutionProvider"]
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if str(device).startswith("cuda"):
        if "CUDAExecutionProvider" not in have:
            raise InputError("--device cuda: this onnxruntime has no CUDA provider (pip install onnxruntime-gpu)")
        index = str(device).partition(":")[2] or "0"
        return [("CUDAExecutionProvider", {"device_id": int(index)}), "CPUExecutionProvider"]
    raise InputError(f"--device {device!r}: expected auto, cpu or cuda")


_MALLOC_SET = False


def _return_large_blocks() -> None:
    """glibc raises its mmap threshold each time a large block is freed, after which onnxruntime's
    per-run activations (no arena) come from the heap and fragment it: area B's peak RSS then
    varied from 410 to 650 MB run to run. A fixed threshold keeps large blocks mmapped and returned
    on free (402 MB, every run). Linux / glibc only; elsewhere nothing happens."""
    global _MALLOC_SET
    if _MALLOC_SET or not sys.platform.startswith("linux"):
        return
    _MALLOC_SET = True
    try:
        import ctypes
        ctypes.CDLL("libc.so.6").mallopt(-3, 256 * 1024)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        pass


class OnnxNetwork:
    """One stored graph with its weights, run by onnxruntime: `net(**inputs) -> {output: array}`."""

    def __init__(self, graph: bytes, weights: Mapping[str, np.ndarray], device: str = "auto",
                 threads: Optional[int] = None):
        import onnxruntime as ort

        _return_large_blocks()
        options = ort.SessionOptions()
        options.log_severity_level = 3  # the CUDA provider's fallback notices are not the user's concern
        options.enable_cpu_mem_arena = False  # the arena keeps its high-water mark (sample scene: peak RSS 427 -> 405 MB, same speed)
        threads = threads or _THREADS
        if threads:
            options.intra_op_num_threads = int(threads)
        # the arrays must outlive the session: onnxruntime reads them in place
        self._weights = {k: np.ascontiguousarray(v, np.float32) for k, v in weights.items()}
        names = list(self._weights)
        options.add_external_initializers(names, [ort.OrtValue.ortvalue_from_numpy(self._weights[n]) for n in names])
        try:
            self.session = ort.InferenceSession(graph, options, providers=providers(device))
        except Exception as exc:  # a graph that does not fit its weights: a foreign or damaged file
            raise ModelError(f"ONNX graph does not load ({str(exc).splitlines()[0][:200]})") from None
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.outputs = [o.name for o in self.session.get_outputs()]

    def __call__(self, **inputs: np.ndarray) -> Dict[str, np.ndarray]:
        feeds = {k: np.ascontiguousarray(v, np.float32) for k, v in inputs.items()}
        return dict(zip(self.outputs, self.session.run(None, feeds)))


def load_network(path, meta: Mapping, component: str, graph: str, device: str = "auto") -> OnnxNetwork:
    """The `graph` of `component` in model file `path`, with the component's weights."""
    from safetensors import safe_open

    from .checkpoint import read_arrays

    info = ((meta.get("onnx") or {}).get(component) or {}).get(graph)
    if not info:
        raise ModelError(f"{path}: no ONNX graph {graph!r} for {component!r}")
    with safe_open(str(path), framework="numpy") as f:
        key = graph_key(component, graph)
        if key not in f.keys():
            raise ModelError(f"{path}: ONNX graph {key} listed in the metadata but missing")
        data = f.get_tensor(key).tobytes()
    arrays = read_arrays(path, [component])
    missing = [k for k in info.get("initializers", []) if k not in arrays]
    if missing:
        raise ModelError(f"{path}: ONNX graph {graph!r} of {component!r} needs tensors the file lacks ({missing[0]}, ...)")
    return OnnxNetwork(data, {k: arrays[k] for k in info.get("initializers", [])}, device=device)
