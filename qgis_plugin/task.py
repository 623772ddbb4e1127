"""Background runs as QgsTasks: the shape they share (PluginTask) and the toolbar action's detection."""
from __future__ import annotations

import traceback
from typing import Callable, List, Optional, Tuple

from qgis.core import Qgis, QgsMessageLog, QgsTask

from .runner import Canceled, DetectParams, DetectResult, RunError, run_detect

LOG_TAG = "Landslide WSSS"


class PluginTask(QgsTask):
    """One blocking call (`work`) in the worker thread, cancellable. After `finished` (main thread),
    `done` is True and either `result` holds what `work` returned or `error` a RunError whose text is
    for the user (a Canceled one when cancelled); an unexpected exception is logged with its traceback,
    never shown as one."""

    error_type = RunError  # the error for an unexpected exception or an end without a result
    canceled_text = "cancelled"
    no_result_text = "the task ended without a result"

    def __init__(self, description: str):
        super().__init__(description, QgsTask.CanCancel)
        self.result = None
        self.error: Optional[RunError] = None
        self.done = False

    def work(self):  # worker thread: no widgets here
        raise NotImplementedError

    def run(self) -> bool:
        try:
            self.result = self.work()
            return True
        except RunError as exc:
            self.error = exc
            return False
        except Exception as exc:  # never let a traceback reach the user; keep it in the log
            QgsMessageLog.logMessage(traceback.format_exc(), LOG_TAG, Qgis.Critical)
            self.error = self.error_type(f"unexpected error in the plugin: {exc}")
            return False

    def finished(self, ok: bool) -> None:  # main thread
        if not ok and self.error is None:
            self.error = Canceled(self.canceled_text) if self.isCanceled() else self.error_type(self.no_result_text)
        self.done = True


class DetectTask(PluginTask):
    """Runs one detection; `on_done(task)` is called on the main thread when it ends."""

    canceled_text = "detection cancelled; nothing was written"
    no_result_text = "the detection task ended without a result"

    def __init__(self, python: str, params: DetectParams, on_done: Optional[Callable[["DetectTask"], None]] = None,
                 description: str = "Landslide detection"):
        super().__init__(description)
        self.python = python
        self.params = params
        self.on_done = on_done
        self.result: Optional[DetectResult] = None
        self.messages: List[Tuple[str, str]] = []
        self.pid: Optional[int] = None  # of the detector subprocess, once started

    def work(self) -> DetectResult:
        return run_detect(self.python, self.params, on_progress=self.setProgress, on_message=self._message,
                          is_canceled=self.isCanceled, on_started=self._started)

    def _started(self, proc) -> None:
        self.pid = proc.pid

    def _message(self, level: str, text: str) -> None:
        self.messages.append((level, text))
        QgsMessageLog.logMessage(text, LOG_TAG, Qgis.Warning if level == "warning" else Qgis.Info)

    def cancel(self) -> None:
        QgsMessageLog.logMessage("cancel requested", LOG_TAG, Qgis.Info)
        super().cancel()

    def finished(self, ok: bool) -> None:  # main thread
        super().finished(ok)
        if self.on_done:
            self.on_done(self)
