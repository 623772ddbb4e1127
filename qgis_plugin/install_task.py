"""The plugin's own environment install (installer.install_environment) as a background QgsTask.

One install at a time per QGIS: `start_install` refuses a second one while the first runs, and keeps the
task referenced (a QgsTask whose Python object is collected while it runs crashes QGIS), so a dialog closed
during the install can be reopened and shows the same task's progress.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Sequence

from qgis.core import Qgis, QgsApplication, QgsMessageLog
from qgis.PyQt.QtCore import pyqtSignal

from .installer import InstallError, InstallResult, install_environment
from .runner import Canceled
from .task import LOG_TAG, PluginTask

_RUNNING: List["InstallTask"] = []


class InstallTask(PluginTask):
    """Installs the environment in `profile_dir`. Connect to `message` (each step; emitted from the worker
    thread, so queued to the GUI), `progressChanged` and `ended` (on the main thread, once done is set)."""

    message = pyqtSignal(str)
    ended = pyqtSignal()
    error_type = InstallError
    canceled_text = "installation cancelled; nothing was left behind"
    no_result_text = "the installation ended without a result"

    def __init__(self, profile_dir: str, wheel: Optional[Path] = None, pip_args: Sequence[str] = ()):
        super().__init__("Installing the landslide_wsss environment")
        self.profile_dir = profile_dir
        self.wheel = wheel
        self.pip_args = tuple(pip_args)
        self.result: Optional[InstallResult] = None
        self.last_message = ""

    def work(self) -> InstallResult:  # InstallError, NoNetwork, Canceled: RunErrors
        return install_environment(self.profile_dir, wheel=self.wheel, pip_args=self.pip_args,
                                   on_progress=self.setProgress, on_message=self._message,
                                   is_canceled=self.isCanceled)

    def _message(self, text: str) -> None:
        self.last_message = text
        QgsMessageLog.logMessage(text, LOG_TAG, Qgis.Info)
        self.message.emit(text)

    def finished(self, ok: bool) -> None:  # main thread
        super().finished(ok)
        if self.error is not None:
            QgsMessageLog.logMessage(f"installation failed: {self.error}", LOG_TAG,
                                     Qgis.Info if isinstance(self.error, Canceled) else Qgis.Warning)
        if self in _RUNNING:
            _RUNNING.remove(self)
        self.ended.emit()


def running_install() -> Optional[InstallTask]:
    return _RUNNING[0] if _RUNNING else None


def start_install(profile_dir: str, wheel: Optional[Path] = None, pip_args: Sequence[str] = ()) -> InstallTask:
    """Queue the install; connect to the task's signals before returning to the event loop."""
    if _RUNNING:
        raise InstallError("an installation is already running")
    task = InstallTask(profile_dir, wheel=wheel, pip_args=pip_args)
    _RUNNING.append(task)
    QgsApplication.taskManager().addTask(task)
    return task
