"""Model files and `load_model`: which scorer a `--method` gets from a file.

`load_model(path=None, method=None, device="auto")` loads the embedded default model
(landslide_wsss/weights/default.safetensors) when `path` is None; the method (default: the file's
`method_default`) is looked up in registry.METHODS and served by scorers/weak.py (`WeakScorer`:
classifier + one CAM method, optionally the CycleGAN generator), refinements.py, or
scorers/student.py (the student and the supervised yardstick).

One safetensors file holds every component under its prefix (classifier.*, generator.*, student.*,
unet.*) plus the JSON metadata (see `classifier_metadata`). A file may hold fewer: a student-only file
(architecture "student", `method_default: "student"`, the component's settings in metadata["student"])
runs the student alone.

Cam-only fusion (WeakScorer.fuse), per scene, never per tile:
    r = scene reference of the stitched CAM: params["norm"] = "vmax" (scene maximum),
        "quantile" (q-quantile of the non-zero CAM pixels, params["norm_q"]) or "abs" (a fixed
        reference params["abs_ref"] measured on training chips), floored by params["abs_floor"];
    score = clip(cam / r, 0, 1); mask = score > t (t = params["thresholds"][method]);
    then binary opening (disk radius params["open_radius"]) and removal of 8-connected components
    smaller than params["min_component_px"] (<= FUSE_HALO, so block-wise fusion is seamless).
Classifier gate: tiles whose landslide probability is below params["gate"] get all-zero maps and
no CAM work. params["per_method"][METHOD] (written by training/tune.py) overrides the normalization
and threshold for one method.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from . import __version__
from .errors import ModelError
from .paths import DEFAULT_MODEL
from .scorers.weak import ARCHITECTURE, DEFAULT_PARAMS, _load_classifier, classifier_from_file  # noqa: F401 (re-exported; torch-free)

def classifier_metadata(model, tile: int, training: dict, params: dict, validation: Optional[dict] = None,
                        gsd: Optional[float] = None) -> dict:
    """gsd: the working ground sampling distance the classifier was trained at (m; None: each scene's own)."""
    return {
        "architecture": ARCHITECTURE,
        "in_bands": int(model.in_bands),
        "version": f"{__version__}+default",
        "bands": ["red", "green", "blue"][: model.in_bands] if model.in_bands <= 3 else [f"b{i + 1}" for i in range(model.in_bands)],
        "normalization": {"mean": [float(v) for v in model.norm_mean], "std": [float(v) for v in model.norm_std]},
        "tile_size": int(tile),
        "gsd": float(gsd) if gsd else None,
        "cam_layer": "layer4",
        "classifier": model.config(),
        "method_default": params.get("method", "gradcam"),
        "params": params,
        "training": training,
        "validation": validation or {},
    }


def method_available(meta: dict, method) -> bool:
    """Whether a model file (its metadata) has what registry method `method` needs."""
    if method.kind in ("student", "supervised"):
        return bool(meta.get(method.component))
    if method.generator and not meta.get("generator"):
        return False
    if method.component not in ("classifier",):  # rcm-mam, adversarial-erasing: their own classifier
        return meta.get("refinement") == method.component or bool(meta.get(method.component))
    return meta.get("architecture") == ARCHITECTURE


def describe_methods(path=None) -> dict:
    """The registry with the model file's default method and which methods it can run."""
    from . import registry
    from .checkpoint import read_metadata

    path = Path(path) if path is not None else DEFAULT_MODEL
    meta = read_metadata(path)
    out = registry.listing(meta.get("method_default"), lambda m: method_available(meta, m))
    out["model"] = str(path)
    return out


def load_model(path=None, method: Optional[str] = None, device: str = "auto", params: Optional[dict] = None,
               runtime: str = "auto"):
    """Load a ScoringModel from a model file (the embedded default model when path is None).
    The method (default: the file's own `method_default`) is looked up in the registry, whose entry
    names the scorer class that builds it; `runtime` picks the engine of the network forward
    (runtime.choose: onnxruntime where the method and file allow it, else torch)."""
    from . import registry
    from .checkpoint import read_metadata
    from .runtime import TRAIN_EXTRA, NotOnOnnx, available, choose

    path = Path(path) if path is not None else DEFAULT_MODEL
    if not path.is_file() and path == DEFAULT_MODEL:
        raise ModelError(f"{path}: the embedded default model is missing; train it with "
                         "`python -m landslide_wsss.training.default`")
    meta = read_metadata(path)
    spec = registry.get(method or meta.get("method_default") or DEFAULT_PARAMS["method"])
    engine = choose(runtime, spec, meta)
    try:
        return spec.scorer_class().from_file(path, meta, spec, device=_device(device, engine), runtime=engine,
                                             params=params)
    except NotOnOnnx as exc:
        if runtime != "auto":
            raise
        if not available("torch"):
            raise NotOnOnnx(f"{exc}; without torch: {TRAIN_EXTRA}") from None
    return spec.scorer_class().from_file(path, meta, spec, device=_device(device, "torch"), runtime="torch",
                                         params=params)


def _device(device: str, engine: str) -> str:
    if engine == "torch":
        from .devices import resolve_device
        return resolve_device(device)
    from .runtime import providers
    providers(device)  # a clean error for a device this onnxruntime cannot use
    return device or "auto"


def embed_refinement(model_path, refined_path, name: str) -> None:
    """Put the classifier of a refinement's model file (`landslide-wsss train NAME --out FILE`) into
    a model file under `NAME.*`, int8 (the file's 25 MB budget), with its settings in metadata[NAME];
    `--method NAME` then runs from that file alone."""
    from .checkpoint import INT8_STORAGE, int8_tensors, load_checkpoint, update_model_file

    tensors, meta = load_checkpoint(refined_path)
    if meta.get("refinement") != name:
        raise ModelError(f"{refined_path}: not a {name} model file (its refinement is {meta.get('refinement')!r})")
    net = _load_classifier(tensors, meta, refined_path)
    keep = ("classifier", "params", "training", "tile_size", "cam_layer", "normalization", "refinement_cam")
    comp = {k: meta[k] for k in keep if k in meta}
    comp["gsd"] = meta.get("gsd")  # its own working GSD, never the file's classifier's
    comp["storage"] = INT8_STORAGE
    update_model_file(model_path, int8_tensors(net, name), drop=(name,), meta=lambda m: m.__setitem__(name, comp))
