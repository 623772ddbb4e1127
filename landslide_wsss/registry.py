"""The one registry of methods: what `--method NAME` means, what it needs from a model file, and
which command trains it. `landslide-wsss methods --json` prints it; the QGIS plugin reads that.

kind        weak        classifier + CAM method (+ CycleGAN difference for NAME-cyclegan)
            refined     a CAM refinement of the seeds (terrain-crop, rcm-mam, adversarial-erasing)
            student     segmentation network trained on pseudo-masks (the second stage)
            supervised  the same network trained on true masks (the yardstick `unet`)
component   the part of the model file it reads (prefix of the tensors)
scorer      the scorer class that serves it (module:Class, imported when the method is loaded)
onnx        whether its forward runs on onnxruntime (the light install); the others need torch
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Dict, Optional

from .errors import ModelError


@dataclass(frozen=True)
class Method:
    name: str
    kind: str
    description: str
    cam: Optional[str] = None        # CAM method read at inference
    refinement: Optional[str] = None # the CAM refinement it applies (kind "refined")
    generator: bool = False          # needs the CycleGAN generator
    terrain: bool = False            # reads the DSM when one is given
    component: str = "classifier"    # tensors it needs in the model file
    trainer: Optional[str] = None    # `landslide-wsss train NAME`
    scorer: str = "landslide_wsss.scorers.weak:WeakScorer"
    onnx: bool = False               # forward-only, runs on onnxruntime

    def scorer_class(self):
        """The class that serves this method (its module is imported only now: torch stays out of
        the light install unless a torch-only method is asked for)."""
        import importlib

        module, _, cls = self.scorer.partition(":")
        return getattr(importlib.import_module(module), cls)


_CAMS = {
    "cam": "class activation map of the classifier's last stage",
    "gradcam": "Grad-CAM (gradient-weighted channels)",
    "gradcam++": "Grad-CAM++ (higher-order gradient weights)",
    "scorecam": "Score-CAM (channels weighted by the score of the masked input)",
}
_REFINEMENTS = {
    "terrain-crop": ("cam", True, "classifier", "terrain-guided CAM cropping (DSM/slope when given)"),
    "rcm-mam": ("cam", False, "rcm-mam", "classifier fine-tuned with region-contrastive + multi-scale self-supervision"),
    "adversarial-erasing": ("gradcam", False, "adversarial-erasing", "end-to-end adversarial erasing localizer"),
}


SEGMENTATION = "landslide_wsss.scorers.student:SegmentationScorer"
REFINED = "landslide_wsss.refinements:RefinedScorer"
ONNX_CAMS = ("cam", "scorecam")  # forward-only; the gradient-based CAMs need torch
ONNX_REFINEMENTS = ("rcm-mam", "terrain-crop")  # plain CAM (on its own classifier; on crops); adversarial erasing reads Grad-CAM


def _build() -> Dict[str, Method]:
    out: Dict[str, Method] = {}
    out["student"] = Method("student", "student", "segmentation student trained on CAM pseudo-masks + self-training "
                            "(one pass per tile, at its working GSD)", component="student", trainer="default",
                            scorer=SEGMENTATION, onnx=True)
    for name, text in (("yardstick", "supervised yardstick: the student's network trained on true masks"),
                       ("unet", "the supervised yardstick under its earlier name")):
        out[name] = Method(name, "supervised", text, component="unet", trainer="default", scorer=SEGMENTATION,
                           onnx=True)
    for cam, text in _CAMS.items():
        out[cam] = Method(cam, "weak", text, cam=cam, trainer="classifier", onnx=cam in ONNX_CAMS)
        out[f"{cam}-cyclegan"] = Method(f"{cam}-cyclegan", "weak", f"{text}, gating the CycleGAN difference",
                                        cam=cam, generator=True, trainer="cyclegan", onnx=cam in ONNX_CAMS)
    for ref, (cam, terrain, comp, text) in _REFINEMENTS.items():
        out[ref] = Method(ref, "refined", text, cam=cam, refinement=ref, terrain=terrain, component=comp, trainer=ref,
                          scorer=REFINED, onnx=ref in ONNX_REFINEMENTS)
        out[f"{ref}-cyclegan"] = Method(f"{ref}-cyclegan", "refined", f"{text}, gating the CycleGAN difference",
                                        cam=cam, refinement=ref, generator=True, terrain=terrain, component=comp,
                                        trainer=ref, scorer=REFINED, onnx=ref in ONNX_REFINEMENTS)
    return out


METHODS: Dict[str, Method] = _build()
CAM_METHODS = tuple(m.name for m in METHODS.values() if m.kind == "weak" and not m.generator)
# refinement -> the CAM method it reads at inference
REFINEMENTS = {m.name: m.cam for m in METHODS.values() if m.kind == "refined" and not m.generator}


def get(name: str) -> Method:
    try:
        return METHODS[name]
    except KeyError:
        raise ModelError(f"unknown method {name!r}; choose from {', '.join(METHODS)}") from None


def listing(default: Optional[str] = None, available=None) -> dict:
    """The registry as JSON-ready data: {"default": NAME, "methods": [{"name", "kind", ...}]}.
    `available(method) -> bool` marks which methods the given model file can run."""
    rows = []
    for m in METHODS.values():
        row = asdict(m)
        if available is not None:
            row["available"] = bool(available(m))
        rows.append(row)
    return {"default": default, "methods": rows}
