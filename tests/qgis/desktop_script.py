"""Run inside the desktop QGIS (qgis --code desktop_script.py) by test_qgis_desktop.py.

Reads its job from the environment variable LWSSS_DESKTOP_JOB (a JSON file: raster, model, outputs, result
path), drives the plugin the way a user does (active layer, toolbar button, dialog, Run) and through
Processing, writes what it saw to the result JSON file and quits QGIS. Any exception is recorded, never
left to a modal error dialog.
"""
import json
import os
import time
import traceback

from qgis.core import QgsApplication, QgsProject, QgsVectorLayer
from qgis.PyQt.QtCore import QCoreApplication, QTimer
from qgis.PyQt.QtWidgets import QAction, QDialogButtonBox
from qgis.utils import active_plugins, iface, plugins

JOB = json.load(open(os.environ["LWSSS_DESKTOP_JOB"], encoding="utf-8"))
RESULT = {"ok": False, "steps": [], "log": []}
PLUGIN = "landslide_wsss_plugin"


def _log(message, tag, level):
    RESULT["log"].append({"tag": tag, "level": int(level), "message": message[:2000]})


QgsApplication.messageLog().messageReceived.connect(_log)


def step(name, **values):
    RESULT["steps"].append(dict(name=name, **values))


def finish():
    with open(JOB["result"] + ".tmp", "w", encoding="utf-8") as fh:
        json.dump(RESULT, fh, indent=2, default=str)
    os.replace(JOB["result"] + ".tmp", JOB["result"])
    QgsProject.instance().clear()
    QgsProject.instance().setDirty(False)
    QTimer.singleShot(100, QgsApplication.instance().quit)
    QTimer.singleShot(20000, lambda: os._exit(3))  # if quitting hangs, the result is written anyway


def wait(predicate, timeout):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        QCoreApplication.processEvents()
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def main():
    step("plugin active", active=PLUGIN in active_plugins, loaded=PLUGIN in plugins)
    plugin = plugins[PLUGIN]
    action = iface.mainWindow().findChild(QAction, "landslide_wsss_detect")
    step("action", found=action is not None, text=action.text() if action else None,
         in_toolbar=bool(action and action.associatedWidgets()))

    raster = iface.addRasterLayer(JOB["raster"], "scene")
    iface.setActiveLayer(raster)
    wait(lambda: False, 0.2)
    enabled_raster = action.isEnabled()
    vector = QgsVectorLayer("Point?crs=EPSG:4326", "points", "memory")
    QgsProject.instance().addMapLayer(vector)
    iface.setActiveLayer(vector)
    wait(lambda: False, 0.2)
    enabled_vector = action.isEnabled()
    iface.setActiveLayer(raster)
    wait(lambda: False, 0.2)
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
    dlg.buttons.button(QDialogButtonBox.Ok).click()
    task = plugin.task
    done = wait(lambda: task is not None and task.done, 240)
    layer = plugin.last_layer
    step("button run", done=done, error=str(task.error) if task and task.error else None,
         features=task.result.features if task and task.result else None,
         layer_valid=bool(layer and layer.isValid()),
         layer_in_project=bool(layer and QgsProject.instance().mapLayer(layer.id())),
         layer_crs=layer.crs().authid() if layer else None, raster_crs=raster.crs().authid(),
         layer_features=layer.featureCount() if layer else None,
         renderer=layer.renderer().type() if layer else None,
         fields=layer.fields().names() if layer else None)
    RESULT["ok"] = True


def run():
    try:
        main()
    except Exception:
        RESULT["error"] = traceback.format_exc()
    finish()


# Start once the main window is up and plugins are loaded.
QTimer.singleShot(500, run)
