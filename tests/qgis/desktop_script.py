"""Run inside the desktop QGIS (qgis --code desktop_script.py) by qgistest_desktop.py.

Reads its job (desktop_session: raster, model, outputs, result path), drives the plugin the way a user
does (active layer, toolbar button, dialog, Run) and through Processing, and writes what it saw to the
result JSON file.
"""
import os
import sys

from qgis.core import QgsProject, QgsVectorLayer
from qgis.PyQt.QtWidgets import QAction
from qgis.utils import active_plugins, iface, plugins

sys.path.insert(0, os.environ["LWSSS_QGIS_TESTS"])  # QGIS runs this file's text: its folder is not on sys.path
from desktop_session import JOB, run_detection, start, step  # noqa: E402
from qgis_helpers import PLUGIN_NAME, wait_for  # noqa: E402


def main():
    step("plugin active", active=PLUGIN_NAME in active_plugins, loaded=PLUGIN_NAME in plugins)
    plugin = plugins[PLUGIN_NAME]
    action = iface.mainWindow().findChild(QAction, "landslide_wsss_detect")
    step("action", found=action is not None, text=action.text() if action else None,
         in_toolbar=bool(action and action.associatedWidgets()))

    raster = iface.addRasterLayer(JOB["raster"], "scene")
    iface.setActiveLayer(raster)
    wait_for(lambda: False, 0.2)
    enabled_raster = action.isEnabled()
    vector = QgsVectorLayer("Point?crs=EPSG:4326", "points", "memory")
    QgsProject.instance().addMapLayer(vector)
    iface.setActiveLayer(vector)
    wait_for(lambda: False, 0.2)
    enabled_vector = action.isEnabled()
    iface.setActiveLayer(raster)
    wait_for(lambda: False, 0.2)
    step("action state", raster=enabled_raster, vector=enabled_vector, raster_again=action.isEnabled())

    import processing

    res = processing.run("landslide_wsss:detect", {
        "INPUT": raster, "MODEL": JOB["model"], "DEVICE": 1, "TILE": 64, "OVERLAP": 8, "THRESHOLD": 0.0,
        "MIN_AREA": 10, "OUTPUT": JOB["processing_output"]})
    step("processing", output=res.get("OUTPUT"), features=res.get("FEATURES"), layer=res.get("LAYER_NAME"))

    action.trigger()
    dlg = plugin.dialog
    dlg.model.setFilePath(JOB["model"])
    dlg.device.setCurrentText("cpu")
    dlg.tile.setValue(64)
    dlg.overlap.setValue(8)
    dlg.threshold.setValue(0.0)
    dlg.min_area.setValue(10.0)
    dlg.output.setFilePath(JOB["button_output"])
    step("dialog", python=dlg.python_path(), layer=dlg.layer_combo.currentLayer().name())
    layer, values = run_detection(plugin, 240)
    step("button run", **values, layer_in_project=bool(layer and QgsProject.instance().mapLayer(layer.id())),
         layer_crs=layer.crs().authid() if layer else None, raster_crs=raster.crs().authid(),
         renderer=layer.renderer().type() if layer else None, fields=layer.fields().names() if layer else None)


start(main)
