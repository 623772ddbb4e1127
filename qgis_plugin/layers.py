"""QGIS-side helpers shared by the toolbar action and the Processing algorithm:
which raster layers can be used, dialog defaults, and the styled result layer."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Tuple

from qgis.core import (
    QgsEditorWidgetSetup,
    QgsFillSymbol,
    QgsGraduatedSymbolRenderer,
    QgsMapLayer,
    QgsProject,
    QgsProviderRegistry,
    QgsRasterLayer,
    QgsRendererRange,
    QgsRuleBasedRenderer,
    QgsSingleSymbolRenderer,
    QgsValueMapFieldFormatter,
    QgsVectorFileWriter,
    QgsVectorLayer,
)

SUPPORTED = (
    "Landslide WSSS works on GeoTIFF files on disk (.tif / .tiff, opened through GDAL) in a projected or "
    "geographic CRS. Save other rasters as GeoTIFF first: right-click the layer > Export > Save As... > "
    "GeoTIFF, or Raster > Conversion > Translate."
)
GEOTIFF_DRIVERS = ("GTiff", "COG")
GEOTIFF_SUFFIXES = (".tif", ".tiff", ".gtif")
SCORE_FIELD = "score_mean"
# Yellow -> dark red, one class per 0.2 of score_mean; fills semi-transparent, outline solid.
SCORE_CLASSES = ("#fee08b", "#fdae61", "#f46d43", "#d73027", "#a50026")
FILL_ALPHA = 120  # of 255
OUTLINE = "#67000d"
LABEL_FIELD = "label"
# (legend, filter, fill symbol) of the label grid: ticked tiles stand out, unticked ones stay faint.
LABEL_RULES = (
    ("landslide (1)", '"label" = 1', {"color": "227,26,28,140", "outline_color": "#b10026", "outline_width": "0.5"}),
    ("none (0)", '"label" = 0', {"color": "51,160,44,40", "outline_color": "#33a02c", "outline_width": "0.4"}),
    ("not looked at", '"label" IS NULL', {"style": "no", "outline_color": "#969696", "outline_width": "0.15"}),
)
LABEL_VALUE_MAP = [{"landslide": 1}, {"none": 0}, {"not looked at": QgsValueMapFieldFormatter.NULL_VALUE}]
VECTOR_SUFFIXES = (".gpkg", ".shp", ".geojson", ".json")


class SourceError(Exception):
    """The layer is not something the detector can read; the message says what is supported."""


def raster_source_path(layer: Optional[QgsMapLayer]) -> str:
    """The GeoTIFF file behind a raster layer, or SourceError with a clear message."""
    if layer is None:
        raise SourceError("Select a raster layer first. " + SUPPORTED)
    if not isinstance(layer, QgsRasterLayer):
        raise SourceError(f"'{layer.name()}' is not a raster layer. " + SUPPORTED)
    if not layer.isValid():
        raise SourceError(f"'{layer.name()}' is not a valid (readable) raster layer. " + SUPPORTED)
    provider = layer.providerType()
    if provider != "gdal":
        raise SourceError(f"'{layer.name()}' comes from the '{provider}' data provider, not a file. " + SUPPORTED)
    parts = QgsProviderRegistry.instance().decodeUri("gdal", layer.source())
    path = parts.get("path") or ""
    if not path or path.startswith("/vsi") or not os.path.isfile(path):
        raise SourceError(f"'{layer.name()}' is not a file on disk ({layer.source()}). " + SUPPORTED)
    if parts.get("layerName"):
        raise SourceError(f"'{layer.name()}' is a subdataset of {path}. " + SUPPORTED)
    driver = _gdal_driver(path)
    if driver is None:
        if Path(path).suffix.lower() not in GEOTIFF_SUFFIXES:
            raise SourceError(f"'{layer.name()}' is a {Path(path).suffix or 'suffix-less'} file. " + SUPPORTED)
    elif driver not in GEOTIFF_DRIVERS:
        raise SourceError(f"'{layer.name()}' is a {driver} raster, not a GeoTIFF. " + SUPPORTED)
    if not layer.crs().isValid():
        raise SourceError(f"'{layer.name()}' has no coordinate reference system. " + SUPPORTED)
    return path


def _gdal_driver(path: str) -> Optional[str]:
    """Driver short name through QGIS's own GDAL bindings (never a pip GDAL); None if unavailable."""
    try:
        from osgeo import gdal
    except ImportError:
        return None
    ds = gdal.OpenEx(path, gdal.OF_RASTER | gdal.OF_READONLY)
    if ds is None:
        return None
    try:
        return ds.GetDriver().ShortName
    finally:
        ds = None


def default_bands(layer: Optional[QgsMapLayer]) -> str:
    """The bands the layer shows as RGB, else 1,2,3 (or 1 for a single-band raster)."""
    if not isinstance(layer, QgsRasterLayer) or not layer.isValid():
        return "1,2,3"
    renderer = layer.renderer()
    if renderer is not None and renderer.type() == "multibandcolor":
        bands = [renderer.redBand(), renderer.greenBand(), renderer.blueBand()]
        if all(b > 0 for b in bands):
            return ",".join(str(b) for b in bands)
    n = layer.bandCount()
    return "1,2,3" if n >= 3 else ",".join(str(b) for b in range(1, n + 1)) or "1"


def default_output(raster_path: str, folder: Optional[str] = None) -> str:
    p = Path(raster_path)
    out_dir = Path(folder) if folder and Path(folder).is_dir() else p.parent
    return str(out_dir / f"{p.stem}_landslides.gpkg")


def _fill(color: str) -> QgsFillSymbol:
    symbol = QgsFillSymbol.createSimple({
        "color": color,
        "outline_color": OUTLINE,
        "outline_width": "0.4",
        "outline_width_unit": "MM",
        "style": "solid",
    })
    fill = symbol.symbolLayer(0).color()
    fill.setAlpha(FILL_ALPHA)
    symbol.symbolLayer(0).setColor(fill)
    return symbol


def style_result_layer(layer: QgsVectorLayer) -> None:
    """Outline + semi-transparent fill graded by score_mean (5 fixed classes over 0..1)."""
    if layer.fields().indexOf(SCORE_FIELD) < 0:
        layer.setRenderer(QgsSingleSymbolRenderer(_fill(SCORE_CLASSES[-2])))
    else:
        ranges = []
        n = len(SCORE_CLASSES)
        for i, color in enumerate(SCORE_CLASSES):
            lo, hi = i / n, (i + 1) / n
            ranges.append(QgsRendererRange(lo, hi, _fill(color), f"score {lo:.1f} - {hi:.1f}"))
        renderer = QgsGraduatedSymbolRenderer(SCORE_FIELD, ranges)
        renderer.setClassAttribute(SCORE_FIELD)
        layer.setRenderer(renderer)
    layer.triggerRepaint()


def style_label_grid(layer: QgsVectorLayer) -> None:
    """Rules on `label` (1 red, 0 green, NULL grey outline) and a value map to tick tiles with."""
    root = QgsRuleBasedRenderer.Rule(None)
    for legend, expression, props in LABEL_RULES:
        root.appendChild(QgsRuleBasedRenderer.Rule(QgsFillSymbol.createSimple(props), 0, 0, expression, legend))
    layer.setRenderer(QgsRuleBasedRenderer(root))
    index = layer.fields().indexOf(LABEL_FIELD)
    if index >= 0:
        layer.setEditorWidgetSetup(index, QgsEditorWidgetSetup("ValueMap", {"map": LABEL_VALUE_MAP}))
    layer.triggerRepaint()


def vector_file_source(layer: QgsVectorLayer) -> Tuple[str, str]:
    """(file, layer name or "") when the CLI can read the layer's file as QGIS shows it, else ("", ""):
    other providers (memory, ...), a filter, unsaved edits, or a GeoPackage URI without a layer name."""
    if layer.providerType() != "ogr" or layer.subsetString() or layer.isModified():
        return "", ""
    parts = QgsProviderRegistry.instance().decodeUri("ogr", layer.source())
    path, name = parts.get("path") or "", parts.get("layerName") or ""
    if not os.path.isfile(path) or Path(path).suffix.lower() not in VECTOR_SUFFIXES:
        return "", ""
    if Path(path).suffix.lower() == ".gpkg" and not name:
        return "", ""
    return path, name


def write_geopackage(layer: QgsVectorLayer, path: str, layer_name: str) -> str:
    """The layer's current features (edits included) as a new GeoPackage; SourceError if that fails."""
    options = QgsVectorFileWriter.SaveVectorOptions()
    options.driverName = "GPKG"
    options.layerName = layer_name
    res = QgsVectorFileWriter.writeAsVectorFormatV3(layer, path, QgsProject.instance().transformContext(), options)
    if res[0] != QgsVectorFileWriter.NoError:
        raise SourceError(f"cannot write '{layer.name()}' to {path}: {res[1]}")
    return path


def open_result_layer(path: str, layer_name: str = "", display_name: str = "") -> QgsVectorLayer:
    uri = f"{path}|layername={layer_name}" if layer_name else path
    layer = QgsVectorLayer(uri, display_name or layer_name or Path(path).stem, "ogr")
    if not layer.isValid() and layer_name:  # fall back to the first layer of the file
        layer = QgsVectorLayer(path, display_name or Path(path).stem, "ogr")
    return layer


def add_result_layer(path: str, layer_name: str = "", display_name: str = "",
                     project: Optional[QgsProject] = None) -> QgsVectorLayer:
    """Open the GeoPackage layer, style it and add it to the project (main thread only)."""
    layer = open_result_layer(path, layer_name, display_name)
    if not layer.isValid():
        raise SourceError(f"the result {path} could not be opened as a vector layer")
    style_result_layer(layer)
    (project or QgsProject.instance()).addMapLayer(layer)
    return layer
