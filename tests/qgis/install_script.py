"""Run inside the desktop QGIS (qgis --code install_script.py) by qgistest_install.py.

A fresh profile, nothing configured: reads its job (desktop_session: raster, output, result path, install
timeout), opens the dialog on the raster layer, clicks Install environment, waits for the background
install, then Run with the embedded model, and writes what it saw to the result JSON file.
"""
import os
import subprocess
import sys
import time

from qgis.core import QgsApplication
from qgis.PyQt.QtWidgets import QAction
from qgis.utils import iface, plugins

sys.path.insert(0, os.environ["LWSSS_QGIS_TESTS"])  # QGIS runs this file's text: its folder is not on sys.path
from desktop_session import JOB, run_detection, start, step  # noqa: E402
from qgis_helpers import PLUGIN_NAME, wait_for  # noqa: E402


def main():
    plugin = plugins[PLUGIN_NAME]
    from landslide_wsss_plugin.settings import resolve

    python, origin = resolve()
    step("before", python=python, origin=origin, profile=QgsApplication.qgisSettingsDirPath())

    raster = iface.addRasterLayer(JOB["raster"], "sample_scene")
    iface.setActiveLayer(raster)
    wait_for(lambda: False, 0.2)
    iface.mainWindow().findChild(QAction, "landslide_wsss_detect").trigger()
    dlg = plugin.dialog
    step("offer", row_visible=dlg.install_row.isVisible(), button=dlg.install_button.text(),
         label=dlg.install_label.text(), python_field=dlg.python_path())

    started = time.monotonic()
    dlg.install_button.click()
    task = dlg.install_task
    progress = []
    task.progressChanged.connect(lambda p: progress.append(round(p, 1)))
    done = wait_for(lambda: task.done, JOB["install_timeout"])
    if not done:
        task.cancel()
        wait_for(lambda: task.done, 60)
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
    step("detect", **run_detection(plugin, 600)[1])


start(main)
