"""The plugin inside a real QGIS: loading, the action's state, messages for unusable input/environment."""
from __future__ import annotations

import pytest

pytest.importorskip("qgis.core", reason="QGIS is not installed (make setup-qgis)")
pytest.importorskip("pytest_qgis", reason="pytest-qgis is not installed (make setup-qgis)")

from qgis_fixtures import *  # noqa: E402,F401,F403 (fixtures)

import configparser  # noqa: E402

from qgis.core import Qgis, QgsApplication, QgsProject, QgsRasterLayer, QgsVectorLayer  # noqa: E402
from qgis.PyQt.QtWidgets import QAction  # noqa: E402

from qgis_helpers import PLUGIN_NAME, REPO, process_events, write_geotiff  # noqa: E402


def activate(iface, layer):
    """Make `layer` the active layer. pytest-qgis' interface does not emit currentLayerChanged by itself
    (the desktop test covers the real signal), so emit it as QGIS does."""
    iface.setActiveLayer(layer)
    iface.currentLayerChanged.emit(iface.mapCanvas())
    process_events()


def action_of(iface) -> QAction:
    action = iface.mainWindow().findChild(QAction, "landslide_wsss_detect")
    assert action is not None, "toolbar action landslide_wsss_detect not found"
    return action


def messages(iface, level):
    return list(iface.messageBar().get_messages(level))


def test_metadata_is_complete():
    cp = configparser.ConfigParser(interpolation=None)
    cp.optionxform = str
    cp.read(REPO / "metadata.txt", encoding="utf-8")
    g = cp["general"]
    assert g["qgisMinimumVersion"] == "3.22"
    assert g["hasProcessingProvider"] == "yes"
    assert g["version"] == "0.1.0"
    for key in ("name", "description", "about", "author", "email", "repository", "tracker", "icon", "tags"):
        assert g[key].strip(), key
    assert (REPO / "qgis_plugin" / g["icon"]).is_file()


def test_load_start_unload_through_qgis_utils(plugins_dir, qgis_iface, qgis_processing):
    import qgis.utils

    assert qgis.utils.pluginMetadata(PLUGIN_NAME, "version") == "0.1.0"
    assert qgis.utils.pluginMetadata(PLUGIN_NAME, "hasProcessingProvider") == "yes"
    assert qgis.utils.loadPlugin(PLUGIN_NAME) is True
    assert qgis.utils.startPlugin(PLUGIN_NAME) is True
    try:
        assert qgis.utils.isPluginLoaded(PLUGIN_NAME)
        registry = QgsApplication.processingRegistry()
        assert registry.providerById("landslide_wsss") is not None
        alg = registry.algorithmById("landslide_wsss:detect")
        assert alg is not None
        names = [p.name() for p in alg.parameterDefinitions()]
        assert names[0] == "INPUT" and "OUTPUT" in names
        for name in ("BANDS", "MODEL", "METHOD", "DEVICE", "TILE", "OVERLAP", "THRESHOLD", "MIN_AREA", "DSM"):
            assert name in names
        action = action_of(qgis_iface)
        assert not action.icon().isNull()
        # The plugin must not have pulled the detector (torch, pip GDAL, landslide_wsss) into QGIS.
        import sys

        assert "torch" not in sys.modules
        assert "landslide_wsss" not in sys.modules
        assert "rasterio" not in sys.modules
    finally:
        assert qgis.utils.unloadPlugin(PLUGIN_NAME) is True
    process_events()
    assert QgsApplication.processingRegistry().providerById("landslide_wsss") is None
    assert qgis_iface.mainWindow().findChild(QAction, "landslide_wsss_detect") is None


def test_action_enabled_only_for_rasters(plugin, qgis_iface, raster_layer):
    vector = QgsVectorLayer("Polygon?crs=EPSG:32633", "polys", "memory")
    assert vector.isValid()
    QgsProject.instance().addMapLayer(vector)
    action = action_of(qgis_iface)
    activate(qgis_iface, raster_layer)
    assert action.isEnabled()
    activate(qgis_iface, vector)
    assert not action.isEnabled()
    activate(qgis_iface, raster_layer)
    assert action.isEnabled()


def test_dialog_prefilled_from_layer(plugin, qgis_iface, raster_layer, geotiff):
    activate(qgis_iface, raster_layer)
    action_of(qgis_iface).trigger()
    dlg = plugin.dialog
    assert dlg is not None and dlg.isVisible()
    assert dlg.layer_combo.currentLayer() is raster_layer
    assert dlg.bands.text() == "1,2,3"
    assert dlg.output.filePath() == str(geotiff.parent / "scene_landslides.gpkg")
    p = dlg.params()
    assert p.input == str(geotiff) and p.device == "auto" and p.tile is None and p.threshold is None
    dlg.reject()


def test_non_geotiff_raster_gets_a_clear_message(plugin, qgis_iface, tmp_path, qgis_new_project):
    img = write_geotiff(tmp_path / "scene.img", driver="HFA")  # ERDAS Imagine: a raster, but not a GeoTIFF
    layer = QgsRasterLayer(str(img), "erdas", "gdal")
    assert layer.isValid()
    QgsProject.instance().addMapLayer(layer)
    activate(qgis_iface, layer)
    qgis_iface.messageBar().clear_messages()
    action_of(qgis_iface).trigger()
    warn = messages(qgis_iface, Qgis.Warning)
    assert warn and "GeoTIFF" in warn[-1] and "HFA" in warn[-1]
    assert plugin.dialog is None  # no dialog for an unsupported source


def test_missing_environment_gives_a_message_not_a_crash(plugin, qgis_iface, raster_layer, tmp_path, monkeypatch):
    monkeypatch.setenv("LANDSLIDE_WSSS_PYTHON", str(tmp_path / "no-such-env" / "bin" / "python"))
    qgis_iface.messageBar().clear_messages()
    problem = plugin.check_environment()
    assert problem and "Install environment" in problem and "LANDSLIDE_WSSS_PYTHON" in problem
    warn = messages(qgis_iface, Qgis.Warning)
    assert any("Install environment" in m for m in warn)
    # Running anyway: the dialog opens, Run does not start anything and says what to install.
    activate(qgis_iface, raster_layer)
    action_of(qgis_iface).trigger()
    dlg = plugin.dialog
    assert dlg.python_path() == str(tmp_path / "no-such-env" / "bin" / "python")
    dlg.buttons.button(dlg.buttons.Ok).click()
    process_events(0.1)
    assert plugin.task is None
    assert any("Install environment" in m for m in messages(qgis_iface, Qgis.Warning))
    assert not (tmp_path / "scene_landslides.gpkg").exists()


def test_broken_environment_python_without_package(plugin, qgis_iface, monkeypatch):
    # An interpreter that runs but has no landslide_wsss (Debian's python here).
    monkeypatch.setenv("LANDSLIDE_WSSS_PYTHON", "/usr/bin/python3")
    problem = plugin.check_environment()
    assert problem and "landslide_wsss" in problem and "Install environment" in problem


def test_plugin_loads_when_environment_missing(plugins_dir, qgis_iface, qgis_processing, monkeypatch, tmp_path):
    import qgis.utils

    monkeypatch.setenv("LANDSLIDE_WSSS_PYTHON", str(tmp_path / "missing-python"))
    qgis_iface.messageBar().clear_messages()
    assert qgis.utils.loadPlugin(PLUGIN_NAME) is True
    assert qgis.utils.startPlugin(PLUGIN_NAME) is True
    process_events(0.2)  # the environment check runs once QGIS is idle
    try:
        assert any("Install environment" in m for m in messages(qgis_iface, Qgis.Warning))
        assert not messages(qgis_iface, Qgis.Critical)
    finally:
        assert qgis.utils.unloadPlugin(PLUGIN_NAME) is True


def test_interpreter_found_without_configuration(plugin, monkeypatch):
    """No env var, no saved setting: the plugin built from this checkout finds <repo>/.venv/bin/python."""
    monkeypatch.delenv("LANDSLIDE_WSSS_PYTHON", raising=False)
    import landslide_wsss_plugin.environment as env

    python, origin = env.resolve_python("")
    assert python == str(REPO / ".venv" / "bin" / "python")
    assert "project environment" in origin
    monkeypatch.setenv("LANDSLIDE_WSSS_PYTHON", "/somewhere/python")
    assert env.resolve_python("/saved/python")[0] == "/somewhere/python"
    monkeypatch.delenv("LANDSLIDE_WSSS_PYTHON")
    assert env.resolve_python("/saved/python") == ("/saved/python", "plugin settings")


def test_non_file_raster_sources_get_a_clear_message(plugin, qgis_iface, qgis_new_project):
    from osgeo import gdal

    xyz = QgsRasterLayer("type=xyz&url=http://127.0.0.1:9/%7Bz%7D/%7Bx%7D/%7By%7D.png&zmin=0&zmax=19",
                         "tiles", "wms")
    mem_path = "/vsimem/lwsss_scene.tif"
    drv = gdal.GetDriverByName("GTiff")
    ds = drv.Create(mem_path, 16, 16, 3, gdal.GDT_Byte)
    ds.SetGeoTransform((0, 1, 0, 16, 0, -1))
    ds = None
    vsimem = QgsRasterLayer(mem_path, "in memory", "gdal")
    checked = []
    try:
        for layer, expected in ((xyz, "'wms' data provider"), (vsimem, "not a file on disk")):
            if not layer.isValid():
                continue  # (an XYZ layer may be refused by an offline QGIS; the message path is the same)
            QgsProject.instance().addMapLayer(layer)
            activate(qgis_iface, layer)
            qgis_iface.messageBar().clear_messages()
            action_of(qgis_iface).trigger()
            warn = messages(qgis_iface, Qgis.Warning)
            assert warn and expected in warn[-1] and "GeoTIFF" in warn[-1], warn
            assert plugin.dialog is None
            checked.append(layer.name())
    finally:
        gdal.Unlink(mem_path)
    assert "in memory" in checked, checked
