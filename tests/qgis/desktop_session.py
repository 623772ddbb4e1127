"""What the scripts the desktop QGIS runs (`qgis --code desktop_script.py` / `install_script.py`) share.

Importing it reads the job (a JSON file named by LWSSS_DESKTOP_JOB: the script's inputs and its result
path) and records QGIS's message log into the result. `start(main)` runs `main` once the main window is
up and plugins are loaded, records any exception (never left to a modal error dialog), writes the result
JSON file and quits QGIS. qgis_helpers.run_desktop_qgis starts QGIS with such a script and reads the result.
"""
import json
import os
import traceback

from qgis.core import QgsApplication, QgsProject
from qgis.PyQt.QtCore import QTimer
from qgis.PyQt.QtWidgets import QDialogButtonBox

from qgis_helpers import wait_for

JOB_VARIABLE = "LWSSS_DESKTOP_JOB"
with open(os.environ[JOB_VARIABLE], encoding="utf-8") as _fh:
    JOB = json.load(_fh)
RESULT = {"ok": False, "steps": [], "log": []}


def _log(message, tag, level):
    RESULT["log"].append({"tag": tag, "level": int(level), "message": message[:2000]})


QgsApplication.messageLog().messageReceived.connect(_log)


def step(name, **values):
    RESULT["steps"].append(dict(name=name, **values))


def run_detection(plugin, timeout):
    """Click Run in the plugin's open dialog and wait for its detection task: (the layer it added, the
    values every run's step records: done, error, features, layer_valid, layer_features)."""
    plugin.dialog.buttons.button(QDialogButtonBox.Ok).click()
    task = plugin.task
    done = wait_for(lambda: task is not None and task.done, timeout)
    layer = plugin.last_layer
    return layer, dict(done=done, error=str(task.error) if task and task.error else None,
                       features=task.result.features if task and task.result else None,
                       layer_valid=bool(layer and layer.isValid()),
                       layer_features=layer.featureCount() if layer else None)


def _finish():
    with open(JOB["result"] + ".tmp", "w", encoding="utf-8") as fh:
        json.dump(RESULT, fh, indent=2, default=str)
    os.replace(JOB["result"] + ".tmp", JOB["result"])
    QgsProject.instance().clear()
    QgsProject.instance().setDirty(False)
    QTimer.singleShot(100, QgsApplication.instance().quit)
    QTimer.singleShot(20000, lambda: os._exit(3))  # if quitting hangs, the result is written anyway


def start(main):
    """Run `main()` half a second from now (the main window up, plugins loaded); then `ok` is True
    unless it raised, and QGIS quits."""

    def run():
        try:
            main()
            RESULT["ok"] = True
        except Exception:
            RESULT["error"] = traceback.format_exc()
        _finish()

    QTimer.singleShot(500, run)
