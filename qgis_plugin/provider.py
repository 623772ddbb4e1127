"""Processing provider `landslide_wsss` with the algorithm `detect` (landslide_wsss:detect)."""
from __future__ import annotations

import os
from pathlib import Path

from qgis.core import (
    QgsProcessing,
    QgsProcessingAlgorithm,
    QgsProcessingException,
    QgsProcessingLayerPostProcessorInterface,
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
    QgsProcessingParameterVectorDestination,
    QgsProcessingProvider,
    QgsVectorLayer,
)
from qgis.PyQt.QtGui import QIcon

from .environment import resolve_python
from .layers import SourceError, raster_source_path, style_result_layer
from .runner import DEVICES, METHODS, DetectError, DetectParams, EnvironmentProblem, normalize_bands, run_detect
from .settings import load as load_settings

ICON = os.path.join(os.path.dirname(__file__), "icon.png")


class LandslideProvider(QgsProcessingProvider):
    def id(self):
        return "landslide_wsss"

    def name(self):
        return "Landslide WSSS"

    def longName(self):
        return "Landslide WSSS (weakly supervised landslide detection)"

    def icon(self):
        return QIcon(ICON)

    def loadAlgorithms(self):
        self.addAlgorithm(DetectAlgorithm())

    def supportedOutputVectorLayerExtensions(self):
        return ["gpkg"]

    def defaultVectorFileExtension(self, hasGeometry=True):
        return "gpkg"


class _StylePostProcessor(QgsProcessingLayerPostProcessorInterface):
    """Styles the result when Processing loads it into the project (runs on the main thread)."""

    instances = []  # keep Python wrappers alive until QGIS has used them

    def postProcessLayer(self, layer, context, feedback):
        if isinstance(layer, QgsVectorLayer) and layer.isValid():
            style_result_layer(layer)

    @classmethod
    def create(cls):
        pp = cls()
        cls.instances.append(pp)
        del cls.instances[:-16]
        return pp


class DetectAlgorithm(QgsProcessingAlgorithm):
    INPUT = "INPUT"
    BANDS = "BANDS"
    MODEL = "MODEL"
    METHOD = "METHOD"
    DEVICE = "DEVICE"
    TILE = "TILE"
    OVERLAP = "OVERLAP"
    THRESHOLD = "THRESHOLD"
    MIN_AREA = "MIN_AREA"
    DSM = "DSM"
    PYTHON = "PYTHON"
    OUTPUT = "OUTPUT"

    def createInstance(self):
        return DetectAlgorithm()

    def name(self):
        return "detect"

    def displayName(self):
        return "Detect landslides"

    def group(self):
        return ""

    def groupId(self):
        return ""

    def icon(self):
        return QIcon(ICON)

    def shortHelpString(self):
        return (
            "Detects landslides in a GeoTIFF raster layer and writes them as polygons to a GeoPackage "
            "(attributes area_m2, score_mean, score_max, scene, method, model_version) in the raster's CRS.\n\n"
            "Empty optional parameters use the model's defaults. The detector runs in the landslide_wsss "
            "Python environment (parameter 'Python interpreter', the plugin setting, or the environment "
            "variable LANDSLIDE_WSSS_PYTHON). Method names: " + ", ".join(METHODS) + ", and NAME-cyclegan."
        )

    def initAlgorithm(self, config=None):
        self.addParameter(QgsProcessingParameterRasterLayer(self.INPUT, "Raster layer (GeoTIFF)"))
        self.addParameter(QgsProcessingParameterString(self.BANDS, "Bands (e.g. 1,2,3; empty: model default)",
                                                       defaultValue="", optional=True))
        self.addParameter(QgsProcessingParameterFile(self.MODEL, "Model file (empty: embedded default model)",
                                                     extension="safetensors", optional=True))
        self.addParameter(QgsProcessingParameterString(self.METHOD, "Method (empty: the model's method)",
                                                       defaultValue="", optional=True))
        self.addParameter(QgsProcessingParameterEnum(self.DEVICE, "Device", options=list(DEVICES), defaultValue=0))
        self.addParameter(QgsProcessingParameterNumber(self.TILE, "Tile size in pixels (empty: model default)",
                                                       type=QgsProcessingParameterNumber.Integer, minValue=16,
                                                       optional=True))
        self.addParameter(QgsProcessingParameterNumber(self.OVERLAP, "Tile overlap in pixels (empty: default)",
                                                       type=QgsProcessingParameterNumber.Integer, minValue=0,
                                                       optional=True))
        self.addParameter(QgsProcessingParameterNumber(self.THRESHOLD, "Threshold 0..1 (empty: model default)",
                                                       type=QgsProcessingParameterNumber.Double, minValue=0.0,
                                                       maxValue=1.0, optional=True))
        self.addParameter(QgsProcessingParameterNumber(self.MIN_AREA, "Minimum area in m² (empty: default)",
                                                       type=QgsProcessingParameterNumber.Double, minValue=0.0,
                                                       optional=True))
        self.addParameter(QgsProcessingParameterFile(self.DSM, "Elevation GeoTIFF (DSM, optional)",
                                                     extension="tif", optional=True))
        python = QgsProcessingParameterFile(self.PYTHON, "Python interpreter of the landslide_wsss environment",
                                            optional=True, fileFilter="All files (*)")  # 'python' has no suffix
        python.setFlags(python.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
        self.addParameter(python)
        self.addParameter(QgsProcessingParameterVectorDestination(
            self.OUTPUT, "Landslides (GeoPackage)", type=QgsProcessing.TypeVectorPolygon))
        self.addOutput(QgsProcessingOutputString("LAYER_NAME", "Layer name in the GeoPackage"))
        self.addOutput(QgsProcessingOutputNumber("FEATURES", "Number of landslide polygons"))

    def _opt_number(self, parameters, name, context, integer):
        value = parameters.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        return self.parameterAsInt(parameters, name, context) if integer else \
            self.parameterAsDouble(parameters, name, context)

    def build_params(self, parameters, context) -> DetectParams:
        layer = self.parameterAsRasterLayer(parameters, self.INPUT, context)
        try:
            path = raster_source_path(layer)
        except SourceError as exc:
            raise QgsProcessingException(str(exc))
        output = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        if not output or Path(output).suffix.lower() != ".gpkg":
            raise QgsProcessingException(f"The output must be a GeoPackage (.gpkg) file, got {output!r}.")
        bands = (self.parameterAsString(parameters, self.BANDS, context) or "").strip()
        try:
            bands = normalize_bands(bands) if bands else ""
        except DetectError as exc:
            raise QgsProcessingException(str(exc))
        return DetectParams(
            input=path,
            output=output,
            bands=bands,
            model=(self.parameterAsFile(parameters, self.MODEL, context) or "").strip(),
            device=DEVICES[self.parameterAsEnum(parameters, self.DEVICE, context)],
            method=(self.parameterAsString(parameters, self.METHOD, context) or "").strip(),
            tile=self._opt_number(parameters, self.TILE, context, True),
            overlap=self._opt_number(parameters, self.OVERLAP, context, True),
            threshold=self._opt_number(parameters, self.THRESHOLD, context, False),
            min_area=self._opt_number(parameters, self.MIN_AREA, context, False),
            dsm=(self.parameterAsFile(parameters, self.DSM, context) or "").strip(),
            overwrite=True,  # Processing destinations are always replaced
        )

    def processAlgorithm(self, parameters, context, feedback):
        params = self.build_params(parameters, context)
        python = (self.parameterAsFile(parameters, self.PYTHON, context) or "").strip() or \
            resolve_python(load_settings().python)[0]
        feedback.pushInfo(f"Detecting landslides in {params.input} with {python}")

        def message(level, text):
            (feedback.reportError(text, False) if level == "warning" else feedback.pushInfo(text))

        try:
            result = run_detect(python, params, on_progress=feedback.setProgress, on_message=message,
                                is_canceled=feedback.isCanceled)
        except EnvironmentProblem as exc:
            raise QgsProcessingException(f"The landslide_wsss environment is not usable: {exc}")
        except DetectError as exc:
            if feedback.isCanceled():
                feedback.pushInfo(str(exc))
                return {}
            raise QgsProcessingException(str(exc))
        feedback.pushInfo(f"{result.features} landslide polygon(s) written to {result.output} "
                          f"(layer {result.layer}, CRS {result.crs})")
        if context.willLoadLayerOnCompletion(result.output):
            details = context.layerToLoadOnCompletionDetails(result.output)
            details.setPostProcessor(_StylePostProcessor.create())
        return {self.OUTPUT: result.output, "LAYER_NAME": result.layer, "FEATURES": result.features}
