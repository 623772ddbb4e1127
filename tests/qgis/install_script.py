"""Run inside the desktop QGIS (qgis --code install_script.py) by qgistest_install.py.

A fresh profile, nothing configured: reads its job from LWSSS_INSTALL_JOB (raster, output, result path,
install timeout), opens the dialog on the raster layer, clicks Install environment, waits for the
background install, then Run with the embedded model, and writes what it saw to the result JSON file.
Any exception is recorded, never left to a modal error dialog.
"""
import json
import os
import subprocess
import time
import traceback

from qgis.core import QgsApplication, QgsProject
from qgis.PyQt.QtCore import QCoreApplication, QTimer
from qgis.PyQt.QtWidgets import QAction, QDialogButtonBox
from qgis.utils import iface, plugins

JOB = json.load(open(os.environ["LWSSS_INSTALL_JOB"], encoding="utf-8"))
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
    plugin = plugins[PLUGIN]
    from landslide_wsss_plugin.settings import resolve

    python, origin = resolve()
    step("before", python=python, origin=origin, profile=QgsApplication.qgisSettingsDirPath())

    raster = iface.addRasterLayer(JOB["raster"], "sample_scene")
    iface.setActiveLayer(raster)
    wait(lambda: False, 0.2)
    iface.mainWindow().findChild(QAction, "landslide_wsss_detect").trigger()
    dlg = plugin.dialog
    step("offer", row_visible=dlg.install_row.isVisible(), button=dlg.install_button.text(),
         label=dlg.install_label.text(), python_field=dlg.python_path())

    started = time.monotonic()
    dlg.install_button.click()
    task = dlg.install_task
    progress = []
    task.progressChanged.connect(lambda p: progress.append(round(p, 1)))
    done = wait(lambda: task.done, JOB["install_timeout"])
    if not done:
        task.cancel()
        wait(lambda: task.done, 60)
    python, origin = resolve()
    torch = subprocess.run([python, "-c", "import torch"], capture_output=True) if python else None
    step("install", done=done, seconds=round(time.monotonic() - started, 1),
         error=str(task.error) if task.error else None, python=task.result.python if task.result else None,
         python_field=dlg.python_path(), origin=origin, progress_max=max(progress or [0]),
         progress_steps=len(progress), torch_importable=None if torch is None else torch.returncode == 0,
         label=dlg.install_label.text(), row_visible=dlg.install_row.isVisible())
    if not done or task.error:
        raise RuntimeError(f"the install did not finish: {task.error}")

    dlg.output.setFilePath(JOB["output"])
    dlg.device.setCurrentText("cpu")
    dlg.buttons.button(QDialogButtonBox.Ok).click()
    run = plugin.task
    done = wait(lambda: run is not None and run.done, 600)
    layer = plugin.last_layer
    step("detect", done=done, error=str(run.error) if run and run.error else None,
         features=run.result.features if run and run.result else None,
         layer_valid=bool(layer and layer.isValid()),
         layer_features=layer.featureCount() if layer else None)
    RESULT["ok"] = True


def run():
    try:
        main()
    except Exception:
        RESULT["error"] = traceback.format_exc()
    finish()


# Start once the main window is up and plugins are loaded.
QTimer.singleShot(500, run)
