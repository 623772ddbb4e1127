"""QGIS-side helpers shared by the toolbar action and the Processing algorithm:
which raster layers can be used, dialog defaults, and the styled result layer."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from qgis.core import (
    QgsFillSymbol,
    QgsGraduatedSymbolRenderer,
    QgsMapLayer,
    QgsProject,
    QgsProviderRegistry,
    QgsRasterLayer,
    QgsRendererRange,
    QgsSingleSymbolRenderer,
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
