"""Typed parameter sets and the one way to build them from model metadata or a caller's mapping.

`from_mapping(cls, value)`: None -> the defaults, an instance -> itself, a mapping -> the
dataclass from its known keys (other keys belong to other parameter sets stored beside it, e.g. a
model's "params" holds CamParams' fields plus "fusion" and "terrain_crop"); a wrong type is a
ValueError naming the field.

CamParams are the weak scorer's settings (classifier gate, CAM method and its options, the scene
normalization and threshold of the CAM, mask clean-up); FusionParams (fusion.py) and CropParams
(cam/terrain_crop.py) are the CycleGAN fusion's and the terrain crop's.

The DEFAULT_* constants at the end are the defaults of detect's output options and of the label grid:
the functions and the CLI both read them here (a module without heavy imports, so parsing the command
line loads no geospatial stack).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Type, TypeVar

T = TypeVar("T")
_NUMBER = (int, float)


def from_mapping(cls: Type[T], value: Any) -> T:
    if value is None:
        return cls()
    if isinstance(value, cls):
        return value
    if not isinstance(value, Mapping):
        raise ValueError(f"{cls.__name__}: expected a mapping, got {type(value).__name__}")
    out = {}
    for f in dataclasses.fields(cls):
        if f.name not in value:
            continue
        v = value[f.name]
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        if default is not None and v is not None:
            want = (_NUMBER if isinstance(default, _NUMBER) and not isinstance(default, bool)
                    else (list, tuple) if isinstance(default, (list, tuple)) else type(default))
            if isinstance(v, bool) and want is _NUMBER or not isinstance(v, want):
                kind = getattr(want, "__name__", "a number" if want is _NUMBER else "a list")
                raise ValueError(f"{cls.__name__}.{f.name}: expected {kind}, got {v!r}")
        out[f.name] = v
    return cls(**out)


@dataclass
class CamParams:
    method: str = "gradcam"
    gate: float = 0.5                # classifier probability below which a tile's CAM is zeroed
    norm: str = "vmax"               # scene normalization of the CAM: vmax | quantile | abs
    norm_q: float = 0.99
    abs_ref: float = 1.0
    abs_floor: float = 0.0
    thresholds: Dict[str, float] = field(default_factory=lambda: {"cam": 0.3, "gradcam": 0.3, "gradcam++": 0.3,
                                                                  "scorecam": 0.3})
    open_radius: int = 1
    min_component_px: int = 16
    scorecam: Dict[str, Any] = field(default_factory=lambda: {"top_k": 32, "mask_size": None, "chunk": 64})
    scales: List[float] = field(default_factory=lambda: [1.0])
    flip: bool = False
    bf16: bool = True
    batch_size: int = 32

    def __post_init__(self):
        if self.norm not in ("vmax", "quantile", "abs"):
            raise ValueError(f"CamParams.norm must be vmax, quantile or abs, not {self.norm!r}")
        if not float(self.gate) >= 0.0:  # above 1 closes the gate for every tile
            raise ValueError(f"CamParams.gate must be >= 0, not {self.gate}")
        if not self.scales or any(float(s) <= 0 for s in self.scales):
            raise ValueError(f"CamParams.scales must be positive, not {self.scales}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def defaults() -> dict:
    """CamParams' defaults as the plain dict stored in model metadata."""
    return CamParams().to_dict()


# detect's and the label grid's defaults (pipeline.detect, vectorize, labels.label_grid, cli, train weak)
DEFAULT_MIN_AREA_M2 = 100.0   # polygons below this area are dropped
DEFAULT_SIMPLIFY_PX = 1.0     # polygon simplification tolerance in pixels
DEFAULT_BATCH = 8             # tiles per read batch (two in memory: 16 cost area B 26 MB more peak RSS, no speed)
DEFAULT_LAYER = "landslides"  # the output GeoPackage's layer
GRID_LAYER = "label_grid"     # the label grid's layer
DEFAULT_TILE_M = 64.0         # the label grid's tile side in metres


@dataclass(frozen=True)
class SegmentationSettings:
    """A segmentation network's settings as its model-file component records them (the student and
    the yardstick; training/rebuild/networks.py writes them): read once, here, by the scorer and
    the exports."""
    in_bands: int = 3
    tile_size: int = 256         # inference tile at the working GSD
    overlap: int = 32            # tile overlap (px); a component without one takes tile_size // 8
    gsd: Any = None              # working GSD (m); None: the scene's own
    threshold: float = 0.5       # mask = prob > threshold
    gate_high: Any = None        # hysteresis core threshold; None: no gate

    @classmethod
    def from_component(cls, comp: Mapping[str, Any]) -> "SegmentationSettings":
        tile = int(comp.get("tile_size") or cls.tile_size)
        gsd, high = comp.get("gsd"), comp.get("gate_high")
        return cls(in_bands=int((comp.get("config") or {}).get("in_bands") or cls.in_bands), tile_size=tile,
                   overlap=int(comp["overlap"]) if comp.get("overlap") is not None else tile // 8,
                   gsd=float(gsd) if gsd else None,
                   threshold=float(comp["threshold"]) if comp.get("threshold") is not None else cls.threshold,
                   gate_high=float(high) if high is not None else None)
