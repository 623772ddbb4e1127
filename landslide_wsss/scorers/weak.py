"""The weak scorers: classifier gate -> CAM method (-> CycleGAN difference) -> per-scene fusion
(`WeakScorer`). See wsss.py for the fusion
rule and the model file; refinements.py subclasses WeakScorer.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Dict, Mapping, Optional, Tuple

import numpy as np

from .. import __version__
from ..errors import ModelError
from ..fusion import FusionParams, fuse_maps
from ..registry import CAM_METHODS, METHODS
from ..runtime import NotOnOnnx
from ..morphology import clean_mask
from ..params import CamParams, defaults, from_mapping
from ..scoring import SceneStats

DEFAULT_PARAMS = defaults()  # params.CamParams: the typed fields, their defaults and checks
ARCHITECTURE = "wsss-classifier"  # metadata `architecture` of a weakly supervised model file


def classifier_from_file(path, meta: dict, component: str = "classifier"):
    """The torch classifier stored under `component` (the file's own, or a refinement's carried
    inside it) and the metadata it runs with (the refinement's settings over the file's)."""
    from ..checkpoint import load_checkpoint

    tensors, _ = load_checkpoint(path, prefixes=(component,))
    if component != "classifier":
        tensors = {"classifier." + k[len(component) + 1:]: v for k, v in tensors.items()}
        meta = {**meta, **meta[component], "refinement": component}
    return _load_classifier(tensors, meta, path), meta


def _load_classifier(tensors, meta, path):
    from ..checkpoint import check_state_dict
    from ..models.classifier import build_classifier

    cfg = dict(meta.get("classifier") or {})
    cfg.setdefault("in_bands", meta["in_bands"])
    model = build_classifier(cfg)
    sd = {k[len("classifier."):]: v.float() for k, v in tensors.items() if k.startswith("classifier.")}
    if not sd:
        raise ModelError(f"{path}: no classifier in this model file")
    check_state_dict(model, sd, path)
    model.load_state_dict(sd)
    return model.eval()




def cam_reference(stats: SceneStats, settings: CamParams, key: str = "cam") -> float:
    """The scene's CAM normalization reference r (see module docstring)."""
    ms = stats.maps[key]
    if settings.norm == "abs":
        r = float(settings.abs_ref)
    elif settings.norm == "quantile":  # above bin 0 (gated tiles left out); the maximum when nothing is
        r = ms.quantile(float(settings.norm_q), skip_zero=True) or ms.vmax
    else:
        r = ms.vmax
    return float(max(r, float(settings.abs_floor), 1e-12))


def merged_params(meta: dict, base: str, params: Optional[Mapping] = None) -> Dict[str, Any]:
    """The scorer's settings as one mapping: the file's `params`, then the tuned values of CAM method
    `base` (`per_method`, training/tune.py), then the caller's `params`; each layer replaces whole keys."""
    merged = dict(meta.get("params") or {})
    merged = _tuned(merged, (merged.get("per_method") or {}).get(base), base)
    merged.update(params or {})
    return merged


def _tuned(merged: Dict[str, Any], per: Optional[Mapping], base: str) -> Dict[str, Any]:
    """`merged` with one method's tuned normalization / threshold (a `per_method` or profile entry)."""
    out = {**merged, **{k: v for k, v in (per or {}).items() if k != "threshold"}}
    if per and "threshold" in per:
        out["thresholds"] = {**(merged.get("thresholds") or {}), base: per["threshold"]}
    return out


def typed_settings(merged: Mapping) -> Tuple[CamParams, FusionParams]:
    """The typed CAM and fusion settings of a merged mapping, checked once: bad metadata is one clean
    ModelError here, not a crash later. Thresholds the mapping leaves out keep CamParams' defaults."""
    try:
        settings = from_mapping(CamParams, merged)
        fusion = FusionParams.from_any(merged.get("fusion"))
    except (ValueError, TypeError) as exc:
        raise ModelError(f"model parameters: {exc}") from None
    return dataclasses.replace(settings, thresholds={**CamParams().thresholds, **settings.thresholds}), fusion


def cam_options(settings: CamParams, base: str, meta: dict) -> dict:
    """The CAM engine's options (scales, flip, layer; Score-CAM's own where set)."""
    opts = dict(scales=settings.scales, flip=bool(settings.flip), target_layer=meta.get("cam_layer", "layer4"))
    if base == "scorecam":
        opts.update({k: v for k, v in (settings.scorecam or {}).items() if v is not None})
    return opts


ONNX_CAM_GRAPHS = ("cam", "scorecam")  # CAM methods a model file stores as graphs (forward-only)


def graph_settings(cam_method: str, options: Mapping) -> dict:
    """The CAM settings a stored CAM graph is traced with; a run's settings must equal them for
    the graph to serve it (onnx_export writes them, OnnxNetworks compares)."""
    out = {"scales": [float(s) for s in options["scales"]], "flip": bool(options["flip"])}
    if cam_method == "scorecam":
        top_k = options.get("top_k")
        out.update(layer=str(options["target_layer"]), top_k=int(top_k) if top_k else None,
                   mask_size=int(options["mask_size"]) if options.get("mask_size") else None,
                   select=str(options.get("select") or "mean"))
    return out


class TorchNetworks:
    """The weak scorer's three forwards on torch: gate probabilities, CAM maps, G(x)."""

    runtime = "torch"

    def __init__(self, classifier, cam_method: str, options: dict, generator=None, device: str = "cpu",
                 bf16: bool = True):
        import torch

        from ..cam import make_cam

        self.torch = torch
        self.device = torch.device(device)
        self.classifier = classifier.to(self.device).eval()
        self.generator = generator.to(self.device).eval() if generator is not None else None
        self.bf16 = bf16 and self.device.type == "cpu"
        self.cam = make_cam(cam_method, self.classifier, bf16=self.bf16, **options)
        if self.device.type == "cpu":
            self.classifier = self.classifier.to(memory_format=torch.channels_last)
        self.difference_mode = getattr(generator, "difference_mode", "l2")

    def normalized(self, tiles: np.ndarray):
        x = self.torch.from_numpy(np.ascontiguousarray(tiles)).to(self.device)
        return self.classifier.normalize(x).contiguous(memory_format=self.torch.channels_last)

    def probabilities(self, tiles: np.ndarray, batch: int) -> np.ndarray:
        torch = self.torch
        xn = self.normalized(tiles)
        out = []
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            for i in range(0, len(xn), batch):
                out.append(torch.sigmoid(self.classifier(xn[i:i + batch]).float()).cpu())
        return torch.cat(out).numpy() if out else np.zeros(0, np.float32)

    def cam_maps(self, tiles: np.ndarray) -> np.ndarray:
        return self.cam(self.normalized(tiles)).float().cpu().numpy()

    def translate(self, spec: np.ndarray) -> np.ndarray:
        from ..models.cyclegan import translate
        return translate(self.generator, spec, autocast=None if self.bf16 else False)  # None: bf16 where fast


class OnnxNetworks:
    """The same three forwards from the model file's ONNX graphs (plain CAM and Score-CAM, at the
    settings their graphs were traced with)."""

    runtime = "onnx"

    def __init__(self, path, meta: dict, component: str, cam_method: str, options: dict, generator: bool,
                 device: str = "auto"):
        from ..runtime import load_network

        graphs = meta["onnx"][component]
        if cam_method not in ONNX_CAM_GRAPHS:
            raise NotOnOnnx(f"{cam_method} needs gradients and runs with --runtime torch")
        info = graphs.get(cam_method)
        if not info:
            raise NotOnOnnx(f"this model file has no ONNX graph of {cam_method} "
                            "(`landslide-wsss export graphs MODEL` adds it; or --runtime torch)")
        wanted = graph_settings(cam_method, options)
        stored = {k: info.get(k) for k in wanted}
        if stored != wanted:
            raise NotOnOnnx(f"the ONNX graph holds {cam_method} at {stored}; other settings ({wanted}) "
                            "run with --runtime torch")
        self.probs = load_network(path, meta, component, "probs", device)
        self.cam = load_network(path, meta, component, cam_method, device)
        # Score-CAM's graph passes k masked inputs per image at once: `chunk` masked inputs per call
        scored = min(int(info.get("top_k") or info["channels"]), int(info["channels"])) if cam_method == "scorecam" else 0
        self.cam_images = max(1, int(options.get("chunk") or 1) // scored) if scored else None
        self.mask_size = info.get("mask_size")
        self.generator = load_network(path, meta, "generator", "translate", device) if generator else None
        self.difference_mode = str((meta.get("generator") or {}).get("difference") or "l2")

    def probabilities(self, tiles: np.ndarray, batch: int) -> np.ndarray:
        out = [self.probs(tiles=tiles[i:i + batch])["probs"] for i in range(0, len(tiles), batch)]
        return np.concatenate(out) if out else np.zeros(0, np.float32)

    def cam_maps(self, tiles: np.ndarray) -> np.ndarray:
        if self.mask_size and min(tiles.shape[-2:]) <= self.mask_size:  # the graph always shrinks to mask_size
            raise ModelError(f"tiles of {tiles.shape[-1]} px are not above Score-CAM's mask_size {self.mask_size}: "
                             "run with --runtime torch")
        step = self.cam_images or len(tiles)
        out = [self.cam(tiles=tiles[i:i + step])["cam"] for i in range(0, len(tiles), step)]
        return np.concatenate(out) if out else np.zeros((0,) + tiles.shape[-2:], np.float32)

    def translate(self, spec: np.ndarray) -> np.ndarray:
        from .student import pad_to_stride
        h, w = spec.shape[-2:]
        return self.generator(x=pad_to_stride(spec, 4))["y"][..., :h, :w]


class WeakScorer:
    """ScoringModel: classifier gate -> CAM (-> CycleGAN difference) -> per-scene fusion."""

    uses_terrain = False

    def __init__(self, classifier, meta: dict, method: Optional[str] = None, generator=None,
                 device: str = "cpu", params: Optional[dict] = None, networks=None):
        """`classifier` (+ `generator`): torch networks; or `networks`, the forwards on another runtime."""
        self.meta = meta
        file_params = meta.get("params") or {}
        method = method or meta.get("method_default") or (params or {}).get("method") \
            or file_params.get("method") or CamParams.method
        spec = METHODS.get(method)
        if spec is None or spec.kind != "weak":
            raise ModelError(f"method {method!r} is not a CAM method of this model ({', '.join(CAM_METHODS)})")
        base = spec.cam
        self.merged = merged_params(meta, base, params)  # what the refinements read their own settings from
        self.settings, self.fusion = typed_settings(self.merged)
        self.cyclegan = spec.generator
        if self.cyclegan and generator is None and (networks is None or networks.generator is None):
            raise ModelError(f"method {method!r} needs a CycleGAN generator, and this model file has none")
        self.name = method
        self.base_method = base
        self.version = str(meta.get("version", __version__))
        self.in_bands = int(meta["in_bands"])
        self.tile_size = int(meta.get("tile_size", 128))
        self.gsd = float(meta["gsd"]) if meta.get("gsd") else None  # working GSD (m); None: the scene's own
        self.map_names = ("cam", "diff") if self.cyclegan else ("cam",)
        self.networks = networks or TorchNetworks(classifier, base, cam_options(self.settings, base, meta), generator,
                                                   device, bool(self.settings.bf16))
        self.runtime = self.networks.runtime

    # the torch networks, for the refinements and the trainers
    @property
    def classifier(self):
        return self.networks.classifier

    @property
    def cam(self):
        return self.networks.cam

    @property
    def device(self):
        return self.networks.device

    @property
    def bf16(self):
        return self.networks.bf16

    @classmethod
    def from_file(cls, path, meta: dict, spec, device: str = "cpu", runtime: str = "torch", params=None):
        """The scorer of registry method `spec` from a model file, its forwards on `runtime`."""
        if meta["architecture"] != ARCHITECTURE:
            raise ModelError(f"{path}: architecture {meta['architecture']!r} is not a weakly supervised classifier model")
        embedded = spec.component != "classifier" and meta.get(spec.component)
        source = spec.component if embedded else "classifier"
        smeta = {**meta, **meta[source], "refinement": source} if embedded else meta
        if runtime == "onnx":
            cam_method = smeta.get("refinement_cam") or spec.cam
            settings, _ = typed_settings(merged_params(smeta, cam_method, params))  # they pick the CAM graph
            networks = OnnxNetworks(path, meta, source, cam_method, cam_options(settings, cam_method, smeta),
                                    spec.generator, device)
            return cls(None, smeta, method=spec.name, device=device, params=params, networks=networks)
        classifier, smeta = classifier_from_file(path, meta, source)
        generator = None
        if spec.generator and meta.get("generator"):
            from ..checkpoint import load_checkpoint
            from ..models.cyclegan import load_generator
            tensors, _ = load_checkpoint(path, prefixes=("generator",))
            generator = load_generator(tensors, meta)
        return cls(classifier, smeta, method=spec.name, generator=generator, device=device, params=params)

    def use_profile(self, name: str) -> bool:
        """Switch to a tuned parameter profile (e.g. "bijie": image chips instead of scenes).
        Returns False (and changes nothing) when the model has no such profile."""
        per = ((self.merged.get("profiles") or {}).get(name) or {}).get(self.base_method)
        if not per:
            return False
        tuned = _tuned({**self.settings.to_dict(), "norm_q": CamParams.norm_q}, per, self.base_method)
        self.settings, _ = typed_settings(tuned)  # a profile without its own norm_q takes the default
        return True

    # -- scoring
    def predict_tiles(self, tiles: np.ndarray, valid: np.ndarray, terrain: Optional[np.ndarray] = None) -> Dict[str, np.ndarray]:
        tiles = np.asarray(tiles, np.float32)
        if tiles.ndim != 4 or tiles.shape[1] < self.in_bands:
            raise ModelError(f"model expects {self.in_bands} band(s), got tiles of shape {tiles.shape}")
        tiles = np.ascontiguousarray(tiles[:, : self.in_bands])
        n, _, h, w = tiles.shape
        valid = np.asarray(valid, bool)
        bs = int(self.settings.batch_size)
        probs = self.networks.probabilities(tiles, bs)
        self.last_probs = probs
        keep = np.flatnonzero(probs >= float(self.settings.gate))
        self.last_kept = keep  # the tiles through the gate (the terrain-crop refinement reads them)
        cam = np.zeros((n, h, w), np.float32)
        diff = np.zeros((n, h, w), np.float32) if self.cyclegan else None
        for i in range(0, len(keep), bs):
            idx = keep[i:i + bs]
            cam[idx] = self.networks.cam_maps(tiles[idx])
            if self.cyclegan:
                from ..fusion import difference_map, normalize_spectral
                spec = normalize_spectral(tiles[idx])
                diff[idx] = difference_map(spec, self.networks.translate(spec), mode=self.networks.difference_mode)
        cam *= valid
        out = {"cam": cam}
        if self.cyclegan:
            out["diff"] = diff * valid
        return out

    @property
    def threshold(self) -> float:
        """The CAM threshold t_C of this method (what `detect --threshold` overrides)."""
        if self.cyclegan:
            return float(self.fusion.t_cam)
        return float(self.settings.thresholds[self.base_method])

    @threshold.setter
    def threshold(self, value: float) -> None:
        if self.cyclegan:
            self.fusion = dataclasses.replace(self.fusion, t_cam=float(value))
        else:
            self.settings = dataclasses.replace(self.settings,
                                                thresholds={**self.settings.thresholds, self.base_method: float(value)})

    def fuse(self, maps: Mapping[str, np.ndarray], stats: SceneStats):
        cam = np.nan_to_num(np.asarray(maps["cam"], np.float32))
        if self.cyclegan:
            return fuse_maps(cam, maps["diff"], stats, self.fusion)
        r = cam_reference(stats, self.settings)
        score = np.clip(cam / r, 0, 1).astype(np.float32)
        mask = clean_mask(score > self.threshold, int(self.settings.open_radius), int(self.settings.min_component_px))
        return score, mask
