"""End to end in a real QGIS with the real detector subprocess (project .venv, tiny student model file)."""
from __future__ import annotations

import pytest

pytest.importorskip("qgis.core", reason="QGIS is not installed (make setup-qgis)")
pytest.importorskip("pytest_qgis", reason="pytest-qgis is not installed (make setup-qgis)")

from qgis_fixtures import *  # noqa: E402,F401,F403 (fixtures)

import os  # noqa: E402
from pathlib import Path  # noqa: E402

from qgis.core import (  # noqa: E402
    Qgis,
    QgsCoordinateReferenceSystem,
    QgsGraduatedSymbolRenderer,
    QgsProcessingException,
    QgsProject,
    QgsRasterLayer,
    QgsVectorLayer,
    QgsWkbTypes,
)
from qgis.PyQt.QtWidgets import QAction, QDialogButtonBox, QPushButton  # noqa: E402

from qgis_helpers import SCENE_EPSG, process_events, wait_for, write_geotiff  # noqa: E402

FIELDS = {"area_m2", "score_mean", "score_max", "scene", "method", "model_version"}
TIMEOUT = 240  # s, for one detector run (the interpreter start with torch dominates)


def activate(iface, layer):
    iface.setActiveLayer(layer)
    iface.currentLayerChanged.emit(iface.mapCanvas())  # pytest-qgis' iface does not emit it itself
    process_events()


def leftovers(folder: Path, keep):
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


def fill_dialog(dlg, python, model, output, threshold=0.0):
    dlg.python.setFilePath(str(python))
    dlg.model.setFilePath(str(model))
    dlg.device.setCurrentText("cpu")
    dlg.tile.setValue(64)
    dlg.overlap.setValue(8)
    dlg.threshold.setValue(threshold)
    dlg.min_area.setValue(10.0)
    dlg.output.setFilePath(str(output))


def check_result_layer(layer: QgsVectorLayer, raster: QgsRasterLayer, expected_features: int):
    assert layer.isValid()
    assert layer.providerType() == "ogr"
    assert layer.source().split("|")[0].endswith(".gpkg")
    assert layer.crs() == raster.crs() == QgsCoordinateReferenceSystem(f"EPSG:{SCENE_EPSG}")
    assert QgsWkbTypes.geometryType(layer.wkbType()) == QgsWkbTypes.PolygonGeometry
    assert FIELDS <= set(layer.fields().names())
    assert layer.featureCount() == expected_features
    for f in layer.getFeatures():
        g = f.geometry()
        assert g.isGeosValid()
        assert g.boundingBox().intersects(raster.extent())
        assert f["area_m2"] > 0 and abs(f["area_m2"] - g.area()) <= 0.01 * g.area() + 1
        assert 0.0 <= f["score_mean"] <= f["score_max"] <= 1.0
        assert f["scene"] == "scene"
    # styled: graduated by score_mean, semi-transparent fill, visible outline
    renderer = layer.renderer()
    assert isinstance(renderer, QgsGraduatedSymbolRenderer)
    assert renderer.classAttribute() == "score_mean"
    ranges = renderer.ranges()  # keep the copies alive while their symbols are used
    assert len(ranges) == 5 and ranges[0].lowerValue() == 0.0 and ranges[-1].upperValue() == 1.0
    for rng in ranges:
        fill = rng.symbol().symbolLayer(0)
        assert 0 < fill.color().alpha() < 255  # semi-transparent fill
        assert fill.strokeColor().alpha() == 255 and fill.strokeWidth() > 0  # solid outline


def test_toolbar_button_runs_detector_and_adds_layer(plugin, qgis_iface, raster_layer, geotiff, tiny_model,
                                                     detector_python, tmp_path):
    activate(qgis_iface, raster_layer)
    action = qgis_iface.mainWindow().findChild(QAction, "landslide_wsss_detect")
    assert action.isEnabled()
    action.trigger()
    dlg = plugin.dialog
    assert dlg is not None and dlg.isVisible()
    out = tmp_path / "scene_landslides.gpkg"
    fill_dialog(dlg, detector_python, tiny_model, out)
    dlg.buttons.button(QDialogButtonBox.Ok).click()
    task = plugin.task
    assert task is not None, qgis_iface.messageBar().get_messages(Qgis.Warning)
    progress = []
    task.progressChanged.connect(progress.append)
    assert wait_for(lambda: task.done, TIMEOUT), "detection did not finish"
    assert task.error is None, str(task.error)
    res = task.result
    assert res.output == str(out) and out.is_file()
    assert res.features >= 1  # threshold 0: every valid pixel is "landslide"
    assert progress and max(progress) == 100.0
    layer = plugin.last_layer
    assert layer is not None and QgsProject.instance().mapLayer(layer.id()) is layer
    check_result_layer(layer, raster_layer, res.features)
    import sys

    assert not {"torch", "landslide_wsss", "rasterio", "pyogrio"} & set(sys.modules)  # all in the subprocess
    assert any("written to" in m for m in qgis_iface.messageBar().get_messages(Qgis.Success))
    # nothing else left beside the output (no temporary run folder)
    assert leftovers(tmp_path, {"scene.tif", "scene_landslides.gpkg"}) == []
    # the dialog values were saved for next time
    plugin.run()
    assert plugin.dialog.model.filePath() == str(tiny_model)
    assert plugin.dialog.tile.value() == 64 and plugin.dialog.device.currentText() == "cpu"
    plugin.dialog.reject()


def test_cancel_stops_the_subprocess_and_leaves_nothing(plugin, qgis_iface, tiny_model, detector_python, tmp_path,
                                                         qgis_new_project):
    big = write_geotiff(tmp_path / "scene.tif", size=1536)  # long enough to be cancelled mid-run
    raster = QgsRasterLayer(str(big), "scene", "gdal")
    QgsProject.instance().addMapLayer(raster)
    activate(qgis_iface, raster)
    qgis_iface.mainWindow().findChild(QAction, "landslide_wsss_detect").trigger()
    out = tmp_path / "scene_landslides.gpkg"
    fill_dialog(plugin.dialog, detector_python, tiny_model, out, threshold=0.5)
    plugin.dialog.tile.setValue(32)
    plugin.dialog.overlap.setValue(0)
    plugin.dialog.buttons.button(QDialogButtonBox.Ok).click()
    task = plugin.task
    assert task is not None
    progress = []
    task.progressChanged.connect(progress.append)
    # wait until the detector is really working (progress reported), then press the message bar's Cancel
    assert wait_for(lambda: task.done or any(0 < p < 100 for p in progress), TIMEOUT)
    assert not task.done, "the run finished before it could be cancelled; make the scene larger"
    assert task.pid is not None
    cancel = qgis_iface.messageBar().findChild(QPushButton, "landslide_wsss_cancel")
    assert cancel is not None
    cancel.click()
    assert wait_for(lambda: task.done, 60), "cancel did not stop the run"
    assert task.result is None
    assert "cancel" in str(task.error)
    with pytest.raises(ProcessLookupError):
        os.kill(task.pid, 0)  # the subprocess is gone (and reaped)
    assert not out.exists()
    assert leftovers(tmp_path, {"scene.tif"}) == []  # no partial GeoPackage, no temp folder
    assert not [lyr for lyr in QgsProject.instance().mapLayers().values() if isinstance(lyr, QgsVectorLayer)]


def test_processing_algorithm_runs(plugin, raster_layer, geotiff, tiny_model, detector_python, tmp_path):
    import processing
    from qgis.core import QgsProcessingFeedback

    out = tmp_path / "proc.gpkg"
    feedback = QgsProcessingFeedback()
    progress = []
    feedback.progressChanged.connect(progress.append)
    res = processing.run("landslide_wsss:detect", {
        "INPUT": raster_layer,
        "BANDS": "1,2,3",
        "MODEL": str(tiny_model),
        "DEVICE": 1,  # cpu
        "TILE": 64,
        "OVERLAP": 8,
        "THRESHOLD": 0.0,
        "MIN_AREA": 10,
        "PYTHON": str(detector_python),
        "OUTPUT": str(out),
    }, feedback=feedback)
    assert res["OUTPUT"] == str(out) and out.is_file()
    assert res["FEATURES"] >= 1 and res["LAYER_NAME"]
    assert progress and max(progress) == 100.0
    layer = QgsVectorLayer(f"{out}|layername={res['LAYER_NAME']}", "proc", "ogr")
    assert layer.isValid()
    assert layer.crs() == raster_layer.crs()
    assert FIELDS <= set(layer.fields().names())
    assert layer.featureCount() == res["FEATURES"]
    assert leftovers(tmp_path, {"scene.tif", "proc.gpkg"}) == []


def test_processing_temporary_output_and_env_var(plugin, raster_layer, tiny_model, detector_python, monkeypatch):
    """No PYTHON parameter: the interpreter comes from LANDSLIDE_WSSS_PYTHON; TEMPORARY_OUTPUT gives a .gpkg."""
    import processing

    monkeypatch.setenv("LANDSLIDE_WSSS_PYTHON", str(detector_python))
    res = processing.run("landslide_wsss:detect", {
        "INPUT": raster_layer.source(), "MODEL": str(tiny_model), "DEVICE": 1, "TILE": 64, "THRESHOLD": 0.0,
        "OUTPUT": "TEMPORARY_OUTPUT"})
    assert res["OUTPUT"].endswith(".gpkg") and Path(res["OUTPUT"]).is_file()


def test_processing_reports_detector_errors(plugin, raster_layer, detector_python, tmp_path):
    import processing

    bad_model = tmp_path / "bad.safetensors"
    bad_model.write_bytes(b"not a model at all")
    out = tmp_path / "bad.gpkg"
    with pytest.raises(QgsProcessingException) as exc:
        processing.run("landslide_wsss:detect", {"INPUT": raster_layer, "MODEL": str(bad_model), "DEVICE": 1,
                                                 "PYTHON": str(detector_python), "OUTPUT": str(out)})
    assert "safetensors" in str(exc.value) or "model" in str(exc.value)
    assert not out.exists()
    assert leftovers(tmp_path, {"scene.tif", "bad.safetensors"}) == []


def test_processing_with_missing_environment(plugin, raster_layer, tmp_path, monkeypatch):
    import processing

    monkeypatch.setenv("LANDSLIDE_WSSS_PYTHON", str(tmp_path / "nowhere" / "python"))
    with pytest.raises(QgsProcessingException) as exc:
        processing.run("landslide_wsss:detect", {"INPUT": raster_layer, "OUTPUT": str(tmp_path / "x.gpkg")})
    assert "Install environment" in str(exc.value)
    assert not (tmp_path / "x.gpkg").exists()


def test_processing_rejects_non_geotiff(plugin, tmp_path, qgis_new_project):
    import processing

    img = write_geotiff(tmp_path / "scene.img", driver="HFA")
    with pytest.raises(QgsProcessingException) as exc:
        processing.run("landslide_wsss:detect", {"INPUT": str(img), "OUTPUT": str(tmp_path / "x.gpkg")})
    assert "GeoTIFF" in str(exc.value)



def test_processing_result_is_loaded_and_styled(plugin, raster_layer, tiny_model, detector_python, tmp_path):
    """What the Processing dialog does: run, then load the OUTPUT layer (the plugin styles it on load)."""
    import processing

    out = tmp_path / "loaded.gpkg"
    res = processing.runAndLoadResults("landslide_wsss:detect", {
        "INPUT": raster_layer, "MODEL": str(tiny_model), "DEVICE": 1, "TILE": 64, "THRESHOLD": 0.0,
        "PYTHON": str(detector_python), "OUTPUT": str(out)})
    process_events(0.2)
    loaded = [lyr for lyr in QgsProject.instance().mapLayers().values()
              if isinstance(lyr, QgsVectorLayer) and lyr.source().split("|")[0] == str(out)]
    assert len(loaded) == 1, res
    check_result_layer(loaded[0], raster_layer, res["FEATURES"])


@pytest.fixture
def broken_env(tmp_path):
    """A real, broken environment: a venv whose landslide_wsss package cannot import its dependencies."""
    import subprocess

    venv = tmp_path / "broken-venv"
    subprocess.run(["/usr/bin/python3", "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    site = next(venv.glob("lib/python3*/site-packages"))
    pkg = site / "landslide_wsss"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "cli.py").write_text("import torch_that_is_not_installed  # noqa\n")
    return venv / "bin" / "python"


def test_broken_environment_button_and_processing(plugin, qgis_iface, raster_layer, broken_env, tmp_path):
    import processing

    # The cheap check passes (the package is there), the run itself fails: the message says what to do.
    plugin.start(plugin_params(raster_layer, tmp_path / "b.gpkg"), str(broken_env))
    task = plugin.task
    assert task is not None
    assert wait_for(lambda: task.done, TIMEOUT)
    assert task.result is None and "broken" in str(task.error) and "Install environment" in str(task.error)
    assert any("Install environment" in m for m in qgis_iface.messageBar().get_messages(Qgis.Warning))
    assert not (tmp_path / "b.gpkg").exists()
    with pytest.raises(QgsProcessingException) as exc:
        processing.run("landslide_wsss:detect", {"INPUT": raster_layer, "PYTHON": str(broken_env),
                                                 "OUTPUT": str(tmp_path / "p.gpkg")})
    assert "torch_that_is_not_installed" in str(exc.value) and "Install environment" in str(exc.value)
    assert not (tmp_path / "p.gpkg").exists()


def plugin_params(layer, output):
    from landslide_wsss_plugin.runner import DetectParams

    return DetectParams(input=layer.source(), output=str(output), device="cpu")


def test_all_nodata_scene_gives_empty_layer_and_warning(plugin, qgis_iface, tiny_model, detector_python, tmp_path,
                                                        qgis_new_project):
    """The detector's warning events reach the message bar; an all-clear scene is an empty, valid layer."""
    from osgeo import gdal, osr

    path = tmp_path / "scene.tif"
    ds = gdal.GetDriverByName("GTiff").Create(str(path), 64, 64, 3, gdal.GDT_Byte)
    ds.SetGeoTransform((500_000.0, 2.0, 0.0, 5_200_000.0, 0.0, -2.0))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(SCENE_EPSG)
    ds.SetProjection(srs.ExportToWkt())
    for b in range(3):
        ds.GetRasterBand(b + 1).SetNoDataValue(0)
    ds = None
    raster = QgsRasterLayer(str(path), "scene", "gdal")
    QgsProject.instance().addMapLayer(raster)
    activate(qgis_iface, raster)
    qgis_iface.mainWindow().findChild(QAction, "landslide_wsss_detect").trigger()
    fill_dialog(plugin.dialog, detector_python, tiny_model, tmp_path / "empty.gpkg")
    qgis_iface.messageBar().clear_messages()
    plugin.dialog.buttons.button(QDialogButtonBox.Ok).click()
    task = plugin.task
    assert wait_for(lambda: task.done, TIMEOUT)
    assert task.error is None and task.result.features == 0
    layer = plugin.last_layer
    assert layer.isValid() and layer.featureCount() == 0 and layer.crs() == raster.crs()
    assert any("nothing to detect" in m for m in qgis_iface.messageBar().get_messages(Qgis.Warning))
