"""Background run for the toolbar action: runner.run_detect inside a QgsTask."""
from __future__ import annotations

import traceback
from typing import Callable, List, Optional, Tuple

from qgis.core import Qgis, QgsMessageLog, QgsTask

from .runner import Canceled, DetectParams, DetectResult, RunError, run_detect

LOG_TAG = "Landslide WSSS"


class DetectTask(QgsTask):
    """Runs one detection; `on_done(task)` is called on the main thread when it ends."""

    def __init__(self, python: str, params: DetectParams, on_done: Optional[Callable[["DetectTask"], None]] = None,
                 description: str = "Landslide detection"):
        super().__init__(description, QgsTask.CanCancel)
        self.python = python
        self.params = params
        self.on_done = on_done
        self.result: Optional[DetectResult] = None
        self.error: Optional[RunError] = None
        self.messages: List[Tuple[str, str]] = []
        self.done = False
        self.pid: Optional[int] = None  # of the detector subprocess, once started

    def run(self) -> bool:  # worker thread: no widgets here
        try:
            self.result = run_detect(self.python, self.params, on_progress=self.setProgress,
                                     on_message=self._message, is_canceled=self.isCanceled,
                                     on_started=self._started)
            return True
        except RunError as exc:
            self.error = exc
            return False
        except Exception as exc:  # never let a traceback reach the user; keep it in the log
            QgsMessageLog.logMessage(traceback.format_exc(), LOG_TAG, Qgis.Critical)
            self.error = RunError(f"unexpected error in the plugin: {exc}")
            return False

    def _started(self, proc) -> None:
        self.pid = proc.pid

    def _message(self, level: str, text: str) -> None:
        self.messages.append((level, text))
        QgsMessageLog.logMessage(text, LOG_TAG, Qgis.Warning if level == "warning" else Qgis.Info)

    def cancel(self) -> None:
        QgsMessageLog.logMessage("cancel requested", LOG_TAG, Qgis.Info)
        super().cancel()

    def finished(self, ok: bool) -> None:  # main thread
        if not ok and self.error is None:
            self.error = Canceled("detection cancelled; nothing was written") if self.isCanceled() else \
                RunError("the detection task ended without a result")
        self.done = True
        if self.on_done:
            self.on_done(self)
