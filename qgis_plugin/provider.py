"""Processing provider `landslide_wsss`: landslide_wsss:detect, landslide_wsss:label_grid, landslide_wsss:train."""
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
    QgsProcessingParameterField,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
    QgsProcessingParameterVectorDestination,
    QgsProcessingParameterVectorLayer,
    QgsProcessingProvider,
    QgsProcessingUtils,
    QgsVectorLayer,
)
from qgis.PyQt.QtGui import QIcon

from .layers import (
    SourceError,
    raster_source_path,
    style_label_grid,
    style_result_layer,
    vector_file_source,
    write_geopackage,
)
from .runner import (
    DEVICES,
    RADIOMETRY,
    DetectParams,
    EnvironmentProblem,
    LabelGridParams,
    RunError,
    TrainParams,
    list_methods,
    normalize_bands,
    run_detect,
    run_label_grid,
    run_train,
)
from .settings import last_trained_model, remember_trained_model
from .settings import resolve as resolve_settings

ICON = os.path.join(os.path.dirname(__file__), "icon.png")
ENV_HELP = ("It runs in the landslide_wsss Python environment (parameter 'Python interpreter', the plugin "
            "setting, or the environment variable LANDSLIDE_WSSS_PYTHON).")


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
        for alg in (DetectAlgorithm(), LabelGridAlgorithm(), TrainAlgorithm()):
            self.addAlgorithm(alg)

    def supportedOutputVectorLayerExtensions(self):
        return ["gpkg"]

    def defaultVectorFileExtension(self, hasGeometry=True):
        return "gpkg"


class _StylePostProcessor(QgsProcessingLayerPostProcessorInterface):
    """Styles a result when Processing loads it into the project (runs on the main thread)."""

    instances = []  # keep Python wrappers alive until QGIS has used them

    def __init__(self, style):
        super().__init__()
        self.style = style

    def postProcessLayer(self, layer, context, feedback):
        if isinstance(layer, QgsVectorLayer) and layer.isValid():
            self.style(layer)

    @classmethod
    def create(cls, style):
        pp = cls(style)
        cls.instances.append(pp)
        del cls.instances[:-16]
        return pp


def style_on_load(context, output: str, style) -> None:
    if context.willLoadLayerOnCompletion(output):
        context.layerToLoadOnCompletionDetails(output).setPostProcessor(_StylePostProcessor.create(style))


class _CliAlgorithm(QgsProcessingAlgorithm):
    """What the algorithms share: the advanced PYTHON parameter and one runner call with progress,
    messages and cancel wired to the feedback."""

    PYTHON = "PYTHON"

    def createInstance(self):
        return type(self)()

    def group(self):
        return ""

    def groupId(self):
        return ""

    def icon(self):
        return QIcon(ICON)

    def add_python_parameter(self):
        python = QgsProcessingParameterFile(self.PYTHON, "Python interpreter of the landslide_wsss environment",
                                            optional=True, fileFilter="All files (*)")  # 'python' has no suffix
        python.setFlags(python.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
        self.addParameter(python)

    def python(self, parameters, context) -> str:
        return (self.parameterAsFile(parameters, self.PYTHON, context) or "").strip() or \
            resolve_settings()[0]

    def raster_path(self, layer) -> str:
        try:
            return raster_source_path(layer)
        except SourceError as exc:
            raise QgsProcessingException(str(exc))

    def call_runner(self, run_fn, python, params, feedback):
        """run_fn(python, params, ...) -> its result, or None when cancelled."""
        def message(level, text):
            (feedback.reportError(text, False) if level == "warning" else feedback.pushInfo(text))

        try:
            result = run_fn(python, params, on_progress=feedback.setProgress, on_message=message,
                            is_canceled=feedback.isCanceled)
            feedback.setProgress(100)  # (a command may report its last progress below 100)
            return result
        except EnvironmentProblem as exc:
            raise QgsProcessingException(f"The landslide_wsss environment is not usable: {exc}")
        except RunError as exc:
            if feedback.isCanceled():
                feedback.pushInfo(str(exc))
                return None
            raise QgsProcessingException(str(exc))


def methods_help() -> str:
    """The methods of the embedded model, for the help texts (cached `methods --json`)."""
    listing = list_methods(resolve_settings()[0])
    if listing.error:
        return f"(The method list is not available: {listing.error})"
    return f"Methods of the embedded model (default {listing.default}): " + ", ".join(listing.available) + "."


class DetectAlgorithm(_CliAlgorithm):
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
    RADIOMETRY = "RADIOMETRY"
    OUTPUT = "OUTPUT"

    def name(self):
        return "detect"

    def displayName(self):
        return "Detect landslides"

    def shortHelpString(self):
        trained = last_trained_model()
        return (
            "Detects landslides in a GeoTIFF raster layer and writes them as polygons to a GeoPackage "
            "(attributes area_m2, score_mean, score_max, scene, method, model_version) in the raster's CRS.\n\n"
            "Empty optional parameters use the model's defaults; MODEL empty = the embedded default model"
            + (f" (last trained model: {trained})" if trained else "") + ". "
            + ENV_HELP + "\n\n" + methods_help()
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
        self.addParameter(QgsProcessingParameterEnum(
            self.RADIOMETRY, "Radiometry (auto: by data type; stretch: per-band percentiles onto the model's)",
            options=list(RADIOMETRY), defaultValue=0))
        self.add_python_parameter()
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
        path = self.raster_path(self.parameterAsRasterLayer(parameters, self.INPUT, context))
        output = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        if not output or Path(output).suffix.lower() != ".gpkg":
            raise QgsProcessingException(f"The output must be a GeoPackage (.gpkg) file, got {output!r}.")
        bands = (self.parameterAsString(parameters, self.BANDS, context) or "").strip()
        try:
            bands = normalize_bands(bands) if bands else ""
        except RunError as exc:
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
            radiometry=RADIOMETRY[self.parameterAsEnum(parameters, self.RADIOMETRY, context)],
            overwrite=True,  # Processing destinations are always replaced
        )

    def processAlgorithm(self, parameters, context, feedback):
        params = self.build_params(parameters, context)
        python = self.python(parameters, context)
        feedback.pushInfo(f"Detecting landslides in {params.input} with {python}")
        result = self.call_runner(run_detect, python, params, feedback)
        if result is None:
            return {}
        feedback.pushInfo(f"{result.features} landslide polygon(s) written to {result.output} "
                          f"(layer {result.layer}, CRS {result.crs})")
        style_on_load(context, params.output, style_result_layer)
        return {self.OUTPUT: params.output, "LAYER_NAME": result.layer, "FEATURES": result.features}


class LabelGridAlgorithm(_CliAlgorithm):
    INPUT = "INPUT"
    TILE_M = "TILE_M"
    OUTPUT = "OUTPUT"

    def name(self):
        return "label_grid"

    def displayName(self):
        return "Label grid to tick (training labels)"

    def shortHelpString(self):
        return ("Writes the raster's tile grid as polygons with an empty integer field 'label' to a GeoPackage. "
                "Tick the tiles in QGIS: 1 = landslide, 0 = no landslide, empty = not looked at (the loaded "
                "layer is styled that way and edits 'label' through a value map). Train a model on the ticked "
                "grid with 'Train a model from labels'.\n\n" + ENV_HELP)

    def initAlgorithm(self, config=None):
        self.addParameter(QgsProcessingParameterRasterLayer(self.INPUT, "Raster layer (GeoTIFF)"))
        # No minimum here: the CLI checks the value (> 0) and says what is wrong.
        self.addParameter(QgsProcessingParameterNumber(self.TILE_M, "Tile side in metres", defaultValue=64.0,
                                                       type=QgsProcessingParameterNumber.Double))
        self.add_python_parameter()
        self.addParameter(QgsProcessingParameterVectorDestination(
            self.OUTPUT, "Label grid (GeoPackage)", type=QgsProcessing.TypeVectorPolygon))
        self.addOutput(QgsProcessingOutputString("LAYER_NAME", "Layer name in the GeoPackage"))
        self.addOutput(QgsProcessingOutputNumber("TILES", "Number of tiles"))

    def processAlgorithm(self, parameters, context, feedback):
        output = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        params = LabelGridParams(input=self.raster_path(self.parameterAsRasterLayer(parameters, self.INPUT, context)),
                                 output=output, tile_m=self.parameterAsDouble(parameters, self.TILE_M, context))
        result = self.call_runner(run_label_grid, self.python(parameters, context), params, feedback)
        if result is None:
            return {}
        feedback.pushInfo(f"{result.tiles} tiles of {params.tile_m:g} m written to {result.output} (CRS {result.crs})")
        style_on_load(context, output, style_label_grid)
        return {self.OUTPUT: output, "LAYER_NAME": result.layer, "TILES": result.tiles}


class TrainAlgorithm(_CliAlgorithm):
    INPUT = "INPUT"
    LABELS = "LABELS"
    LABEL_FIELD = "LABEL_FIELD"
    MINUTES = "MINUTES"
    RADIOMETRY = "RADIOMETRY"
    OUTPUT = "OUTPUT"
    LABELS_LAYER = "labels"  # layer name of the temporary GeoPackage

    def name(self):
        return "train"

    def displayName(self):
        return "Train a model from labels"

    def shortHelpString(self):
        return ("Fine-tunes the default model on your GeoTIFF scenes with image-level labels and writes a model "
                "file (.safetensors) for 'Detect landslides' (parameter MODEL; the dialog offers the last "
                "trained model).\n\nLabels: a ticked label grid (field 'label': 1 landslide, 0 none, empty "
                "ignored), or, when the layer has no such field, landslide outlines (polygons) or an inventory "
                "(points). Memory layers and unsaved edits are written to a temporary GeoPackage first.\n\n"
                + ENV_HELP)

    def initAlgorithm(self, config=None):
        self.addParameter(QgsProcessingParameterMultipleLayers(self.INPUT, "Raster layers (GeoTIFF)",
                                                               layerType=QgsProcessing.TypeRaster))
        self.addParameter(QgsProcessingParameterVectorLayer(
            self.LABELS, "Labels (ticked grid, outlines or points)",
            types=[QgsProcessing.TypeVectorPolygon, QgsProcessing.TypeVectorPoint]))
        self.addParameter(QgsProcessingParameterField(self.LABEL_FIELD, "Label field (1 landslide, 0 none)",
                                                      defaultValue="label", parentLayerParameterName=self.LABELS,
                                                      optional=True))
        self.addParameter(QgsProcessingParameterNumber(self.MINUTES, "Training time budget in minutes",
                                                       defaultValue=30.0, type=QgsProcessingParameterNumber.Double))
        self.addParameter(QgsProcessingParameterEnum(
            self.RADIOMETRY, "Radiometry (auto: by data type; stretch: per-band percentiles onto the model's)",
            options=list(RADIOMETRY), defaultValue=0))
        self.add_python_parameter()
        self.addParameter(QgsProcessingParameterFileDestination(
            self.OUTPUT, "Model file", fileFilter="landslide_wsss model (*.safetensors)"))

    def prepareAlgorithm(self, parameters, context, feedback):
        # The main thread (in the Processing dialog): the place to read layers and write the temporary copy.
        self.images = [self.raster_path(layer) for layer in self.parameterAsLayerList(parameters, self.INPUT, context)]
        if not self.images:
            raise QgsProcessingException("Choose at least one GeoTIFF raster layer to train on.")
        labels = self.parameterAsVectorLayer(parameters, self.LABELS, context)
        if labels is None or not labels.isValid():
            raise QgsProcessingException("Choose a valid label layer (points or polygons).")
        self.labels, self.labels_layer = vector_file_source(labels)
        if not self.labels:
            path = QgsProcessingUtils.generateTempFilename("labels.gpkg")
            try:
                self.labels = write_geopackage(labels, path, self.LABELS_LAYER)
            except SourceError as exc:
                raise QgsProcessingException(str(exc))
            self.labels_layer = self.LABELS_LAYER
            feedback.pushInfo(f"'{labels.name()}' written to {path} for the training")
        return True

    def processAlgorithm(self, parameters, context, feedback):
        output = self.parameterAsFileOutput(parameters, self.OUTPUT, context)
        params = TrainParams(
            images=self.images, labels=self.labels, layer=self.labels_layer, output=output,
            label_field=(self.parameterAsString(parameters, self.LABEL_FIELD, context) or "").strip() or "label",
            minutes=self.parameterAsDouble(parameters, self.MINUTES, context),
            radiometry=RADIOMETRY[self.parameterAsEnum(parameters, self.RADIOMETRY, context)])
        python = self.python(parameters, context)
        feedback.pushInfo(f"Training on {', '.join(params.images)} with labels {params.labels} using {python}")
        result = self.call_runner(run_train, python, params, feedback)
        if result is None:
            return {}
        remember_trained_model(result.output)
        feedback.pushInfo(f"Model written to {result.output}")
        held = result.details.get("holdout") or {}
        if "landslide_tiles_found" in held:  # what the held-out tiles showed, and which student the file has
            feedback.pushInfo(
                f"Held-out tiles: {held['landslide_tiles_found']:.0%} of {held['landslide_tiles']} landslide tiles found, "
                f"{held['free_pixels_marked']:.1%} of the landslide-free pixels marked"
                + ("; fine-tuned student kept" if result.details.get("fine_tuned_student_kept")
                   else "; the start model's student kept (the fine-tuned one was not better there)"))
        return {self.OUTPUT: output}
