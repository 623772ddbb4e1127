"""The plugin object: toolbar button + Raster menu entry, Processing provider, background runs."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from qgis.core import Qgis, QgsApplication, QgsMapLayerType, QgsMessageLog, QgsProject
from qgis.PyQt.QtCore import QTimer
from qgis.PyQt.QtGui import QIcon
from qgis.PyQt.QtWidgets import QAction, QProgressBar, QPushButton

from .dialog import DetectDialog
from .install_task import running_install
from .layers import SourceError, add_result_layer, raster_source_path
from .provider import LandslideProvider
from .runner import Canceled, EnvironmentProblem, RunError, probe_environment
from .settings import resolve as resolve_settings
from .task import LOG_TAG, DetectTask

ACTION_NAME = "landslide_wsss_detect"
MENU = "&Landslide WSSS"
TITLE = "Landslide WSSS"
ICON = os.path.join(os.path.dirname(__file__), "icon.png")


class LandslideWSSSPlugin:
    def __init__(self, iface):
        self.iface = iface
        self.provider: Optional[LandslideProvider] = None
        self.action: Optional[QAction] = None
        self.toolbar = None
        self.dialog: Optional[DetectDialog] = None
        self.task: Optional[DetectTask] = None
        self.progress_item = None
        self.last_error: Optional[str] = None
        self.last_layer = None
        self.environment_message: Optional[str] = None

    # -- life cycle -------------------------------------------------------------------------
    def initProcessing(self):  # noqa: N802
        if self.provider is None:
            self.provider = LandslideProvider()
            QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self):  # noqa: N802
        self.initProcessing()
        self.action = QAction(QIcon(ICON), "Detect landslides…", self.iface.mainWindow())
        self.action.setObjectName(ACTION_NAME)
        self.action.setToolTip("Detect landslides in the active GeoTIFF raster layer")
        self.action.setWhatsThis("Runs the landslide_wsss detector on the active raster layer")
        self.action.triggered.connect(self.run)
        self.toolbar = self.iface.addToolBar(TITLE)
        self.toolbar.setObjectName("landslide_wsss_toolbar")
        self.toolbar.addAction(self.action)
        self.iface.addPluginToRasterMenu(MENU, self.action)
        self.iface.currentLayerChanged.connect(self.update_action_state)
        self.update_action_state()
        # Tell the user about a missing environment once QGIS has finished starting.
        QTimer.singleShot(0, self.check_environment)

    def unload(self):
        if self.task is not None and not self.task.done:
            self.task.cancel()
        if running_install() is not None:  # its folder is removed: nothing half-installed stays
            running_install().cancel()
        try:
            self.iface.currentLayerChanged.disconnect(self.update_action_state)
        except (TypeError, RuntimeError):
            pass
        if self.action is not None:
            self.iface.removePluginRasterMenu(MENU, self.action)
            if self.toolbar is not None:
                self.toolbar.removeAction(self.action)
            self.action.deleteLater()
            self.action = None
        if self.toolbar is not None:
            self.toolbar.deleteLater()
            self.toolbar = None
        if self.dialog is not None:
            self.dialog.close()
            self.dialog.deleteLater()
            self.dialog = None
        self._clear_progress()
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None

    # -- state ------------------------------------------------------------------------------
    def update_action_state(self, *_):
        if self.action is None:
            return
        layer = self.iface.activeLayer()
        self.action.setEnabled(layer is not None and layer.type() == QgsMapLayerType.RasterLayer)

    def check_environment(self) -> Optional[str]:
        python, origin = resolve_settings()
        problem = probe_environment(python)
        self.environment_message = problem
        if problem:
            self.push(f"Detection is not available yet. {problem}", Qgis.Warning, duration=30)
            QgsMessageLog.logMessage(f"{problem} (interpreter from {origin})", LOG_TAG, Qgis.Warning)
        return problem

    def push(self, text: str, level=Qgis.Info, duration: int = 10) -> None:
        if level in (Qgis.Warning, Qgis.Critical):
            self.last_error = text
        QgsMessageLog.logMessage(text, LOG_TAG, level)
        self.iface.messageBar().pushMessage(TITLE, text, level=level, duration=duration)

    # -- the action -------------------------------------------------------------------------
    def run(self):
        if self.task is not None and not self.task.done:
            self.push("A detection is already running; cancel it first or wait.", Qgis.Info)
            return
        layer = self.iface.activeLayer()
        try:
            raster_source_path(layer)
        except SourceError as exc:
            self.push(str(exc), Qgis.Warning)
            return
        if self.dialog is not None:
            self.dialog.deleteLater()
        self.dialog = DetectDialog(layer, self.iface.mainWindow())
        self.dialog.accepted.connect(self._dialog_accepted)
        self.dialog.show()  # non-blocking; the dialog validates before accepting
        self.dialog.raise_()

    def _dialog_accepted(self):
        dialog = self.dialog
        try:
            params = dialog.params()
        except (SourceError, RunError) as exc:
            self.push(str(exc), Qgis.Warning)
            return
        self.start(params, dialog.python_path() or resolve_settings()[0])

    def start(self, params, python: Optional[str]) -> Optional[DetectTask]:
        """Start a background run (also the entry point for scripts)."""
        problem = probe_environment(python)
        if problem:
            self.environment_message = problem
            self.push(problem, Qgis.Warning, duration=0)
            return None
        name = os.path.basename(params.input)
        self.task = DetectTask(python, params, on_done=self._task_done, description=f"Detecting landslides in {name}")
        self._show_progress(self.task, name)
        QgsApplication.taskManager().addTask(self.task)
        return self.task

    def cancel(self):
        if self.task is not None and not self.task.done:
            self.task.cancel()

    def _show_progress(self, task, name):
        self._clear_progress()
        bar = self.iface.messageBar()
        item = bar.createMessage(TITLE, f"Detecting landslides in {name}…")
        progress = QProgressBar(item)
        progress.setObjectName("landslide_wsss_progress")
        progress.setRange(0, 100)
        progress.setMaximumWidth(220)
        cancel = QPushButton("Cancel", item)
        cancel.setObjectName("landslide_wsss_cancel")
        cancel.clicked.connect(self.cancel)
        item.layout().addWidget(progress)
        item.layout().addWidget(cancel)
        task.progressChanged.connect(lambda p: progress.setValue(int(p)))
        self.progress_item = bar.pushWidget(item, Qgis.Info)

    def _clear_progress(self):
        if self.progress_item is not None:
            try:
                self.iface.messageBar().popWidget(self.progress_item)
            except RuntimeError:
                pass
            self.progress_item = None

    def _task_done(self, task: DetectTask):
        self._clear_progress()
        for level, text in task.messages:
            if level == "warning":
                self.push(text, Qgis.Warning)
        if task.result is not None:
            res = task.result
            try:
                self.last_layer = add_result_layer(res.output, res.layer, display_name=Path(res.output).stem,
                                                   project=QgsProject.instance())
            except SourceError as exc:
                self.push(str(exc), Qgis.Critical)
                return
            self.push(f"{res.features} landslide polygon(s) written to {res.output}", Qgis.Success)
            return
        err = task.error
        if isinstance(err, Canceled):
            self.push(str(err), Qgis.Info)
        elif isinstance(err, EnvironmentProblem):
            self.environment_message = str(err)
            self.push(str(err), Qgis.Warning, duration=0)
        else:
            self.push(f"Detection failed: {err}", Qgis.Critical, duration=0)
