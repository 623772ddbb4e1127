"""ScoringModel for a segmentation network at its working GSD: the weakly supervised student
(`student`, trained on pseudo-masks) and the supervised yardstick (`unet`, the same network on
true masks). One network pass per tile; map "prob"; mask = prob > threshold, and where the model
file has a gate (`gate_high`), only the blobs with a core > gate_high (hysteresis; both chosen on the
hold-out and stored in the model file). Scenes are fused in row blocks with a halo, so a blob whose
core lies farther away than the halo is judged within its block. The core resamples scenes to `gsd` and maps the result
back to the scene's grid.
"""
from __future__ import annotations

from typing import Callable, Optional

import numpy as np

from .. import __version__
from ..errors import ModelError
from ..params import SegmentationSettings


def mirror_fill(tile: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """A tile whose valid pixels form its top-left rectangle (a small image or scene padded up to
    the tile) gets the rest mirrored from that rectangle, as in training; other tiles as they are."""
    rows, cols = valid.any(axis=1), valid.any(axis=0)
    if valid.all() or not valid.any():
        return tile
    h, w = int(rows.sum()), int(cols.sum())
    if not (rows[:h].all() and cols[:w].all() and valid[:h, :w].all()):
        return tile
    th, tw = valid.shape
    return np.pad(tile[:, :h, :w], ((0, 0), (0, th - h), (0, tw - w)), mode="symmetric")


def pad_to_stride(x: np.ndarray, stride: int) -> np.ndarray:
    """(N, C, H, W) padded at the bottom / right to multiples of `stride`, as the network does it
    in torch (reflect, or edge where the side is too short to reflect)."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % stride, (-w) % stride
    if not (ph or pw):
        return x
    mode = "reflect" if h > ph and w > pw else "edge"
    return np.pad(x, ((0, 0), (0, 0), (0, ph), (0, pw)), mode=mode)


def torch_forward(net, device: str) -> Callable[[np.ndarray], np.ndarray]:
    """Raw tiles -> probability with the torch network (bf16 autocast + channels_last on CPU)."""
    import torch

    dev = torch.device(device)
    net = net.to(dev).eval()
    bf16 = dev.type == "cpu"
    if bf16:
        net = net.to(memory_format=torch.channels_last)

    def forward(tiles: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(tiles)).to(dev)
        with torch.inference_mode(), torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16):
            xn = net.normalize(x).contiguous(memory_format=torch.channels_last)
            return torch.sigmoid(net(xn).float())[:, 0].cpu().numpy()

    forward.net = net  # training code reaches the network through the scorer
    return forward


def onnx_forward(network, stride: int) -> Callable[[np.ndarray], np.ndarray]:
    """Raw tiles -> probability with the stored ONNX graph (sides padded to the stride and cropped)."""

    def forward(tiles: np.ndarray) -> np.ndarray:
        h, w = tiles.shape[-2:]
        return network(tiles=pad_to_stride(tiles, stride))["prob"][:, :h, :w]

    return forward


class SegmentationScorer:
    uses_terrain = False
    map_names = ("prob",)
    chunk = 2  # tiles per network pass (torch: bf16 batches of two)

    def __init__(self, forward: Callable[[np.ndarray], np.ndarray], component: dict, name: str, version: str,
                 runtime: str = "torch"):
        self.forward = forward
        self.runtime = runtime
        if runtime == "onnx":  # one tile per pass: 50 MB less peak memory than two, no slower (area B)
            self.chunk = 1
        self.name = name
        self.version = version
        self.meta = component
        settings = SegmentationSettings.from_component(component)
        self.in_bands, self.tile_size, self.overlap = settings.in_bands, settings.tile_size, settings.overlap
        self.gsd, self.threshold, self.gate_high = settings.gsd, settings.threshold, settings.gate_high

    @property
    def net(self):
        """The torch network (torch runtime only; the trainers read it)."""
        return self.forward.net

    @classmethod
    def from_file(cls, path, meta: dict, spec, device: str = "cpu", runtime: str = "torch", params=None):
        """The `spec.component` network of a model file, on `runtime`."""
        if params:
            raise ModelError(f"method {spec.name!r} takes no CAM parameters")
        comp = meta.get(spec.component)
        if not comp or not comp.get("config"):
            raise ModelError(f"{path}: method {spec.name!r} needs a {spec.component} network and this model file "
                             f"has none (train one with `landslide-wsss train {spec.trainer}`)")
        version = str(meta.get("version", __version__))
        if runtime == "onnx":
            from ..runtime import load_network

            info = meta["onnx"][spec.component]["prob"]
            net = load_network(path, meta, spec.component, "prob", device=device)
            return cls(onnx_forward(net, int(info.get("stride", 16))), comp, spec.name, version, runtime)
        from ..checkpoint import load_checkpoint

        tensors, meta = load_checkpoint(path, prefixes=(spec.component,))  # only what the method reads
        return load_segmentation(tensors, meta, path, spec.component, spec.name, device)

    def predict_tiles(self, tiles, valid, terrain=None):
        tiles = np.asarray(tiles, np.float32)
        if tiles.ndim != 4 or tiles.shape[1] < self.in_bands:
            raise ModelError(f"model expects {self.in_bands} band(s), got tiles of shape {tiles.shape}")
        valid = np.asarray(valid, bool)
        tiles = np.stack([mirror_fill(t[: self.in_bands], v) for t, v in zip(tiles, valid)]) if len(tiles) else \
            tiles[:, : self.in_bands]
        out = [self.forward(tiles[i:i + self.chunk]) for i in range(0, len(tiles), self.chunk)]
        prob = np.concatenate(out) if out else np.zeros((0,) + tiles.shape[2:], np.float32)
        return {"prob": (prob * valid).astype(np.float32)}

    def fuse(self, maps, stats):
        p = np.clip(np.asarray(maps["prob"], np.float32), 0, 1)
        return p, detection_mask(p, self.threshold, self.gate_high)


def detection_mask(p: np.ndarray, threshold: float, gate_high: Optional[float] = None) -> np.ndarray:
    """What a segmentation network's probability `p` marks: p > threshold, and with a gate only the
    blobs holding a core p > gate_high (hysteresis)."""
    from ..morphology import hysteresis
    mask = p > threshold
    if gate_high is not None:
        mask = hysteresis(mask, p > float(gate_high))
    return mask


def load_segmentation(tensors, meta, path, prefix: str, name: str, device: str = "cpu") -> Optional[SegmentationScorer]:
    """The `prefix` component of a model file as a torch scorer, or None when the file has none."""
    from ..models.student import load_student

    comp = meta.get(prefix)
    if not comp:
        return None
    net = load_student(tensors, comp["config"], prefix, path)
    return SegmentationScorer(torch_forward(net, device), comp, name, str(meta.get("version", __version__)))
