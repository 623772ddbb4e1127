"""Landslide WSSS QGIS plugin: detect landslides in a GeoTIFF raster layer.

The detector (PyTorch) runs in the landslide_wsss project's own Python environment as a subprocess;
nothing here imports torch, pip GDAL or landslide_wsss.
"""


def classFactory(iface):  # noqa: N802 (QGIS plugin entry point)
    from .plugin import LandslideWSSSPlugin

    return LandslideWSSSPlugin(iface)
