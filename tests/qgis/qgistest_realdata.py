"""The toolbar button on the real AMU-Net area A scene (../shared/data; skips where it is absent).

Uses the embedded default model when the package ships one (landslide_wsss/weights/*.safetensors) with the
area's DSM, otherwise the tiny random-weight student model file (then it checks the plugin plumbing on a
real, large, partly-nodata GeoTIFF rather than detection quality).
"""
from __future__ import annotations

import pytest

pytest.importorskip("qgis.core", reason="QGIS is not installed (make setup-qgis)")
pytest.importorskip("pytest_qgis", reason="pytest-qgis is not installed (make setup-qgis)")

from qgis_fixtures import *  # noqa: E402,F401,F403 (fixtures)

from qgis.core import QgsProject, QgsRasterLayer  # noqa: E402
from qgis.PyQt.QtWidgets import QAction, QDialogButtonBox  # noqa: E402

from qgis_helpers import REPO, process_events, wait_for  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "amunet"
FIELDS = {"area_m2", "score_mean", "score_max", "scene", "method", "model_version"}


@pytest.mark.realdata
@pytest.mark.slow
@pytest.mark.skipif(not (DATA / "areaA_rgb.tif").is_file(), reason="../shared/data/amunet not present")
def test_button_on_amunet_area_a(plugin, qgis_iface, qgis_new_project, detector_python, tiny_model, tmp_path):
    raster = QgsRasterLayer(str(DATA / "areaA_rgb.tif"), "areaA_rgb", "gdal")
    assert raster.isValid()
    QgsProject.instance().addMapLayer(raster)
    qgis_iface.setActiveLayer(raster)
    qgis_iface.currentLayerChanged.emit(qgis_iface.mapCanvas())
    process_events()
    action = qgis_iface.mainWindow().findChild(QAction, "landslide_wsss_detect")
    assert action.isEnabled()
    action.trigger()
    dlg = plugin.dialog
    assert dlg.bands.text() == "1,2,3"
    embedded = sorted((REPO / "landslide_wsss" / "weights").glob("*.safetensors"))
    dlg.python.setFilePath(detector_python)
    if embedded:
        dlg.model.setFilePath("")  # the embedded default model
        dlg.dsm.setFilePath(str(DATA / "areaA_dsm.tif"))
    else:
        dlg.model.setFilePath(str(tiny_model))
        dlg.device.setCurrentText("cpu")
    out = tmp_path / "areaA_landslides.gpkg"
    dlg.output.setFilePath(str(out))
    dlg.buttons.button(QDialogButtonBox.Ok).click()
    task = plugin.task
    assert task is not None
    assert wait_for(lambda: task.done, 1200), "detection on area A did not finish"
    assert task.error is None, str(task.error)
    layer = plugin.last_layer
    assert layer.isValid() and QgsProject.instance().mapLayer(layer.id()) is layer
    assert layer.crs().authid() == raster.crs().authid() == "EPSG:32647"
    assert FIELDS <= set(layer.fields().names())
    assert layer.featureCount() == task.result.features >= 1
    assert layer.extent().intersects(raster.extent())
    assert layer.renderer().type() == "graduatedSymbol"
