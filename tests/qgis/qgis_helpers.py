"""Helpers shared by the QGIS tests (imported by conftest.py and the test modules)."""
from __future__ import annotations

import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PLUGIN_NAME = "landslide_wsss_plugin"
SCENE_EPSG = 32633  # not the sample scene's CRS on purpose: the result must follow the raster


def write_geotiff(path: Path, size: int = 96, bands: int = 3, epsg: int = SCENE_EPSG, driver: str = "GTiff",
                  seed: int = 0) -> Path:
    """A small real raster through QGIS's GDAL (textured bands, a nodata border, projected CRS)."""
    import numpy as np
    from osgeo import gdal, osr

    rng = np.random.default_rng(seed)
    drv = gdal.GetDriverByName(driver)
    ds = drv.Create(str(path), size, size, bands, gdal.GDT_Byte)
    ds.SetGeoTransform((500_000.0, 2.0, 0.0, 5_200_000.0, 0.0, -2.0))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    ds.SetProjection(srs.ExportToWkt())
    yy, xx = np.mgrid[0:size, 0:size]
    for b in range(bands):
        arr = (60 + 40 * np.sin(xx / 7.0 + b) * np.cos(yy / 11.0) + rng.normal(0, 8, (size, size)))
        arr = np.clip(arr, 1, 255).astype(np.uint8)
        arr[:4, :] = 0  # nodata stripe
        band = ds.GetRasterBand(b + 1)
        band.WriteArray(arr)
        band.SetNoDataValue(0)
    ds.FlushCache()
    ds = None
    return path


def process_events(seconds: float = 0.0) -> None:
    """Run the Qt event loop for `seconds`, including deferred deletions (deleteLater)."""
    from qgis.PyQt.QtCore import QCoreApplication, QEvent

    end = time.monotonic() + seconds
    while True:
        QCoreApplication.processEvents()
        QCoreApplication.sendPostedEvents(None, QEvent.DeferredDelete)
        if time.monotonic() >= end:
            return
        time.sleep(0.02)


def wait_for(predicate, timeout: float, step: float = 0.05) -> bool:
    from qgis.PyQt.QtCore import QCoreApplication

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        QCoreApplication.processEvents()
        if predicate():
            return True
        time.sleep(step)
    QCoreApplication.processEvents()
    return bool(predicate())
