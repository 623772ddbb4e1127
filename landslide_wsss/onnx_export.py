"""ONNX graphs of the forward-only networks (needs the `train` extra: torch and onnx).

`embed_graphs(model_path)` traces each network the file holds and stores its graph *without weights*
under `onnx.COMPONENT.GRAPH` (see runtime.py): every initializer is renamed to the model file's tensor
key it came from and marked external, so onnxruntime takes the weights from the safetensors tensors.
Constants made while tracing (not weights) stay inside the graph.

Graphs (inputs are raw band values as the scorers receive them, the network's own normalization inside):
  student / unet   prob       tiles (N, C, H, W), H and W multiples of 16  ->  prob (N, H, W)
  classifier / rcm-mam
                   probs      tiles (N, C, H, W)  ->  probs (N,)   the landslide probability (the gate)
                   cam        tiles (N, C, H, W)  ->  cam (N, H, W) plain CAM over the file's scales/flip
  classifier       scorecam   tiles (N, C, H, W)  ->  cam (N, H, W) Score-CAM at the file's settings (its
                              N·k masked passes in one batch: the runtime feeds a few tiles per call)
  generator        translate  x (N, spectral, H, W) in [-1, 1], H and W multiples of 4  ->  G(x)

`export_deepness(model_path, out, method)` writes one self-contained ONNX model (weights inside) in
the form the Deepness QGIS plugin runs.
"""
from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Dict, Mapping, Optional

import numpy as np
import torch
from torch import nn

from . import registry
from .errors import InputError, ModelError
from .params import SegmentationSettings
from .runtime import graph_key

OPSET = 17
SEG_STRIDE = 16
GEN_STRIDE = 4


class _Prob(nn.Module):
    """Segmentation network: raw bands -> landslide probability; sides already multiples of 16."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, tiles):
        return torch.sigmoid(self.net.net(self.net.normalize(tiles)))[:, 0]


class _Probs(nn.Module):
    def __init__(self, classifier):
        super().__init__()
        self.classifier = classifier

    def forward(self, tiles):
        return torch.sigmoid(self.classifier(self.classifier.normalize(tiles)))


class _Cam(nn.Module):
    def __init__(self, classifier, cam):
        super().__init__()
        self.classifier = classifier
        self.cam = cam

    def forward(self, tiles):
        return self.cam(self.classifier.normalize(tiles))


class _Translate(nn.Module):
    def __init__(self, generator):
        super().__init__()
        self.generator = generator

    def forward(self, x):
        return self.generator(x)


def _trace(module: nn.Module, example: torch.Tensor, input_name: str, output_name: str,
           dyn_in: Mapping[int, str], dyn_out: Mapping[int, str], fold_constants: bool = False) -> bytes:
    """The module's ONNX graph. Constants are folded only for the self-contained Deepness model: the
    weightless graphs keep each weight as the initializer of its model-file tensor."""
    import warnings

    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer notes on shape arithmetic: the sides are fixed multiples here
        torch.onnx.export(module.float().eval(), (example,), buf, input_names=[input_name],
                          output_names=[output_name], dynamic_axes={input_name: dict(dyn_in), output_name: dict(dyn_out)},
                          opset_version=OPSET, do_constant_folding=fold_constants, dynamo=False)
    return buf.getvalue()


NCHW = {0: "n", 2: "h", 3: "w"}
NHW = {0: "n", 1: "h", 2: "w"}
N = {0: "n"}


def _strip_weights(graph: bytes, module: nn.Module, prefix: str, file_prefix: str):
    """Rename the graph's weight initializers to the model file's keys and drop their data.
    Returns (graph bytes, the file keys it reads)."""
    import onnx
    from onnx import TensorProto

    model = onnx.load_from_string(graph)
    state = set(module.state_dict())
    rename: Dict[str, str] = {}
    for init in model.graph.initializer:
        name = init.name
        if not name.startswith(prefix) or name not in state:
            continue  # a traced constant, not a stored weight: it stays in the graph
        key = f"{file_prefix}.{name[len(prefix):]}"
        rename[name] = key
        init.name = key
        for field in ("raw_data", "float_data", "int32_data", "int64_data", "double_data"):
            init.ClearField(field)
        init.data_location = TensorProto.EXTERNAL
        del init.external_data[:]
        entry = init.external_data.add()
        entry.key, entry.value = "location", "model.safetensors"
    for node in model.graph.node:
        for i, name in enumerate(node.input):
            if name in rename:
                node.input[i] = rename[name]
    return model.SerializeToString(), sorted(rename.values())


def _graph_tensor(data: bytes) -> torch.Tensor:
    return torch.frombuffer(bytearray(data), dtype=torch.uint8).clone()


def _segmentation_net(path, meta, component: str):
    """The file's `component` network (student or unet), float32, in eval mode."""
    from .checkpoint import load_checkpoint
    from .models.student import load_student

    tensors, _ = load_checkpoint(path, prefixes=(component,))
    return load_student(tensors, meta[component]["config"], component, path).eval()


def _segmentation_graphs(path, meta, component: str):
    net = _segmentation_net(path, meta, component)
    wrapper = _Prob(net)
    tile = SegmentationSettings.from_component(meta[component]).tile_size
    example = torch.rand(2, net.in_bands, tile, tile) * 255
    graph, keys = _strip_weights(_trace(wrapper, example, "tiles", "prob", NCHW, NHW), wrapper, "net.", component)
    return {"prob": (graph, {"stride": SEG_STRIDE, "initializers": keys})}


def _classifier_graphs(path, meta, component: str):
    from .cam import make_cam
    from .wsss import classifier_from_file

    classifier, cmeta = classifier_from_file(path, meta, component)
    params = {**(meta.get("params") or {}), **((cmeta.get("params") or {}) if component != "classifier" else {})}
    scales = [float(s) for s in params.get("scales", [1.0])]
    flip = bool(params.get("flip", False))
    tile = int(cmeta.get("tile_size", meta.get("tile_size", 128)))
    example = torch.rand(2, classifier.in_bands, tile, tile) * 255
    out = {}
    probs = _Probs(classifier)
    g, keys = _strip_weights(_trace(probs, example, "tiles", "probs", NCHW, N), probs, "classifier.", component)
    out["probs"] = (g, {"initializers": keys})
    cam = _Cam(classifier, make_cam("cam", classifier, scales=scales, flip=flip, target_layer="layer4"))
    g, keys = _strip_weights(_trace(cam, example, "tiles", "cam", NCHW, NHW), cam, "classifier.", component)
    out["cam"] = (g, {"initializers": keys, "scales": scales, "flip": flip})
    if component == "classifier":  # the methods that read Score-CAM use the file's own classifier
        out["scorecam"] = _scorecam_graph(classifier, meta, tile)
    return out


def _scorecam_graph(classifier, meta, tile: int):
    """Score-CAM at the settings a run of `--method scorecam` reads from this file (the tuned ones)."""
    from .cam import make_cam
    from .scorers.weak import cam_options, graph_settings, merged_params, typed_settings

    settings, _ = typed_settings(merged_params(meta, "scorecam"))
    options = cam_options(settings, "scorecam", meta)
    side = max(tile, 2 * int(options.get("mask_size") or 0))  # traced where the masked passes shrink to mask_size
    example = torch.rand(2, classifier.in_bands, side, side) * 255
    cam = _Cam(classifier, make_cam("scorecam", classifier, dense=True, **options))
    g, keys = _strip_weights(_trace(cam, example, "tiles", "cam", NCHW, NHW), cam, "classifier.", "classifier")
    return g, {"initializers": keys, **graph_settings("scorecam", options), "channels": int(classifier.num_features)}


def _generator_graphs(path, meta):
    from .checkpoint import load_checkpoint
    from .models.cyclegan import load_generator

    tensors, _ = load_checkpoint(path, prefixes=("generator",))
    gen = load_generator(tensors, meta)
    wrapper = _Translate(gen)
    example = torch.rand(2, gen.spectral + gen.cond, 128, 128) * 2 - 1
    g, keys = _strip_weights(_trace(wrapper, example, "x", "y", NCHW, NCHW), wrapper, "generator.", "generator")
    return {"translate": (g, {"stride": GEN_STRIDE, "initializers": keys})}


def graphs_for(path, meta, components=None) -> Dict[str, Dict[str, tuple]]:
    """The ONNX graphs this model file can have ({component: {graph: (bytes, info)}}), of every
    forward-only network or of `components` only."""
    want = (lambda c: True) if components is None else (lambda c: c in components)
    out: Dict[str, Dict[str, tuple]] = {}
    for component in ("student", "unet"):
        comp = meta.get(component)
        if want(component) and comp and (comp.get("config") or {}).get("arch") == "smp-unet":
            out[component] = _segmentation_graphs(path, meta, component)
    if meta.get("architecture") == "wsss-classifier":
        if want("classifier"):
            out["classifier"] = _classifier_graphs(path, meta, "classifier")
        if want("rcm-mam") and (meta.get("rcm-mam") or {}).get("classifier"):
            out["rcm-mam"] = _classifier_graphs(path, meta, "rcm-mam")
        if want("generator") and meta.get("generator"):
            out["generator"] = _generator_graphs(path, meta)
    return out


def embed_graphs(model_path, components=None) -> Dict[str, list]:
    """Write the ONNX graphs of every forward-only network (or of `components`) into the model file,
    replacing their old ones; returns {component: [graph names]}."""
    from .checkpoint import read_metadata, update_model_file

    meta = read_metadata(model_path)
    graphs = graphs_for(model_path, meta, components)
    tensors = {graph_key(c, g): _graph_tensor(data) for c, gs in graphs.items() for g, (data, _) in gs.items()}
    record = {c: {g: {**info, "opset": OPSET} for g, (_, info) in gs.items()} for c, gs in graphs.items()}
    drop = ("onnx",) if components is None else tuple(f"onnx.{c}" for c in components)

    def put(m):
        kept = {} if components is None else {c: g for c, g in (m.get("onnx") or {}).items() if c not in components}
        m["onnx"] = {**kept, **record}

    update_model_file(model_path, tensors, drop=drop, meta=put)
    return {c: sorted(gs) for c, gs in graphs.items()}


# -- Deepness ----------------------------------------------------------------------------------------

class _Deepness(nn.Module):
    """Values 0-1 (Deepness scales 8-bit rasters to 0-1) -> (N, 2, H, W) [background, landslide]."""

    def __init__(self, net, value_scale: float):
        super().__init__()
        self.net = net
        self.value_scale = value_scale

    def forward(self, x):
        p = torch.sigmoid(self.net(self.net.normalize(x * self.value_scale)))
        return torch.cat([1 - p, p], dim=1)


def export_deepness(model_path, out, method: Optional[str] = None, tile: Optional[int] = None,
                    overlap_percent: int = 15) -> Path:
    """One ONNX model in the form Deepness runs: input float32 (N, C, T, T) of values 0-1, output the
    class probabilities (N, 2, T, T), metadata keys JSON-encoded as Deepness reads them."""
    import onnx

    from .checkpoint import read_metadata
    from .raster import atomic_output

    meta = read_metadata(model_path)
    method = method or meta.get("method_default") or "student"
    spec = registry.METHODS.get(method)
    component = spec.component if spec is not None and spec.scorer == registry.SEGMENTATION else None
    if component is None or not (meta.get(component) or {}).get("config"):
        raise InputError(f"--method {method!r}: Deepness runs segmentation networks; export student or yardstick")
    settings = SegmentationSettings.from_component(meta[component])
    net = _segmentation_net(model_path, meta, component)
    tile = int(tile or settings.tile_size)
    if tile % SEG_STRIDE:
        raise InputError(f"--tile {tile}: must be a multiple of {SEG_STRIDE}")
    wrapper = _Deepness(net, 255.0)
    model = onnx.load_from_string(_trace(wrapper, torch.rand(1, net.in_bands, tile, tile), "input", "output",
                                         {0: "batch"}, {0: "batch"}, fold_constants=True))
    gsd = settings.gsd or meta.get("gsd")
    props = {
        "model_type": "Segmentor",
        "class_names": {"0": "background", "1": "landslide"},
        "resolution": round(float(gsd) * 100, 3) if gsd else 50.0,  # cm / px
        "tile_size": tile,
        "tiles_overlap": int(overlap_percent),
        "seg_thresh": settings.threshold,
        "seg_small_segment": 0,
        "standardization_mean": [0.0] * net.in_bands,
        "standardization_std": [1.0] * net.in_bands,
    }
    del model.metadata_props[:]
    for k, v in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = k, json.dumps(v)
    model.doc_string = (f"landslide_wsss {method} ({meta.get('version')}): landslide probability, "
                        f"input RGB scaled to 0-1 at {props['resolution']} cm/px")
    with atomic_output(out, overwrite=True) as tmp:
        Path(tmp).write_bytes(model.SerializeToString())
    return Path(out)
