"""The small dialog behind the toolbar button, pre-filled from the active layer and saved settings."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from qgis.core import QgsMapLayerProxyModel, QgsRasterLayer
from qgis.gui import QgsFileWidget, QgsMapLayerComboBox
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtWidgets import (
    QApplication,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from . import settings as saved
from .environment import ENV_VAR, carried_wheel, install_hint, interpreter, managed_env, read_marker
from .install_task import running_install, start_install
from .installer import InstallError, NoNetwork, install_status
from .layers import SourceError, default_bands, default_output, raster_source_path
from .runner import DEVICES, RADIOMETRY, Canceled, DetectParams, RunError, list_methods, normalize_bands

DEFAULT_TEXT = "model default"


class DetectDialog(QDialog):
    def __init__(self, layer: Optional[QgsRasterLayer] = None, parent=None):
        super().__init__(parent)
        self.setObjectName("landslide_wsss_dialog")
        self.setWindowTitle("Detect landslides")
        self.setMinimumWidth(520)
        s = saved.load()
        self._output_dir = s.output_dir
        self._auto_output = ""

        self.layer_combo = QgsMapLayerComboBox(self)
        self.layer_combo.setFilters(QgsMapLayerProxyModel.RasterLayer)
        self.bands = QLineEdit(self)
        self.bands.setPlaceholderText("e.g. 1,2,3 (empty: model default)")
        self.model = QgsFileWidget(self)
        self.model.setFilter("landslide_wsss model (*.safetensors);;All files (*)")
        self.model.lineEdit().setPlaceholderText("empty: embedded default model")
        self.model.setFilePath(s.model)
        self.last_model = QPushButton(self)  # offers the model the last training wrote
        self.last_model.setObjectName("landslide_wsss_last_model")
        trained = saved.last_trained_model()
        self.last_model.setText(f"Last trained: {Path(trained).name}")
        self.last_model.setToolTip(trained)
        self.last_model.setVisible(bool(trained))
        self.last_model.clicked.connect(lambda: self.model.setFilePath(trained))
        self.method = QComboBox(self)  # filled from `methods --json` for the chosen model
        self._saved_method = s.method
        self.device = QComboBox(self)
        self.device.addItems(list(DEVICES))
        self.device.setCurrentText(s.device if s.device in DEVICES else "auto")
        self.tile = _int_box(0, 16384, s.tile, step=64)
        self.overlap = _int_box(-1, 8192, s.overlap, step=16)
        self.threshold = _float_box(-0.01, 1.0, s.threshold, step=0.05, decimals=2)
        self.min_area = _float_box(-1.0, 1e10, s.min_area, step=100.0, decimals=1)
        self.radiometry = QComboBox(self)
        self.radiometry.addItems(list(RADIOMETRY))
        self.radiometry.setToolTip("how band values are mapped onto the model's: auto (uint8 as is, other integers by "
                                   "bit depth, floats <= 1.5 as reflectance), stretch (per-band percentiles onto the "
                                   "model's), none (as read)")
        self.dsm = QgsFileWidget(self)
        self.dsm.setFilter("GeoTIFF (*.tif *.tiff);;All files (*)")
        self.dsm.lineEdit().setPlaceholderText("optional co-registered elevation GeoTIFF")
        self.output = QgsFileWidget(self)
        self.output.setStorageMode(QgsFileWidget.SaveFile)
        self.output.setFilter("GeoPackage (*.gpkg)")
        self.overwrite = QCheckBox("Replace the output if it exists", self)
        self.overwrite.setChecked(s.overwrite)
        self.python = QgsFileWidget(self)
        py, origin = saved.resolve(s.python)
        self.python.setFilePath(py or "")
        self.python.lineEdit().setPlaceholderText("empty: install the environment below")
        self.python.setToolTip(f"Python of the landslide_wsss environment (found via: {origin}). "
                               f"The environment variable {ENV_VAR} overrides the saved value.")
        self.install_row = self._make_install_row()

        form = QFormLayout()
        form.addRow("Raster layer", self.layer_combo)
        form.addRow("Bands", self.bands)
        model_row = QHBoxLayout()
        model_row.addWidget(self.model, 1)
        model_row.addWidget(self.last_model)
        form.addRow("Model", model_row)
        form.addRow("Method", self.method)
        form.addRow("Device", self.device)
        form.addRow("Tile size (px)", self.tile)
        form.addRow("Tile overlap (px)", self.overlap)
        form.addRow("Threshold", self.threshold)
        form.addRow("Minimum area (m²)", self.min_area)
        form.addRow("Radiometry", self.radiometry)
        form.addRow("Elevation (DSM)", self.dsm)
        form.addRow("Output GeoPackage", self.output)
        form.addRow("", self.overwrite)
        form.addRow("Python interpreter", self.python)
        self.error_label = QLabel(self)
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet("color: #b00020")
        self.buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel, self)
        self.buttons.button(QDialogButtonBox.Ok).setText("Run")
        self.buttons.accepted.connect(self._validate_and_accept)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.install_row)  # (below the form: a wrapped label in a form row gets clipped)
        layout.addWidget(self.error_label)
        layout.addWidget(self.buttons)

        self.layer_combo.layerChanged.connect(self._layer_changed)
        if layer is not None:
            self.layer_combo.setLayer(layer)
        self._layer_changed(self.layer_combo.currentLayer())
        self.refresh_methods()
        self.model.fileChanged.connect(self.refresh_methods)
        self.python.fileChanged.connect(self.refresh_methods)
        self.python.fileChanged.connect(self.update_install_row)
        self.install_task = None
        if running_install() is not None:  # an install started from an earlier dialog
            self._follow(running_install())
        self.update_install_row()

    def refresh_methods(self, *_) -> None:
        """The method combo: "default (NAME)" first, then the model's other available methods."""
        model, python = self.model.filePath().strip(), self.python_path()
        if self.method.count() and ((model and not os.path.isfile(model)) or not os.path.isfile(python)):
            return  # a path being typed: keep the current list
        current = self.method.currentData() if self.method.count() else self._saved_method
        QApplication.setOverrideCursor(Qt.WaitCursor)
        try:
            listing = list_methods(python, model)  # cached; a few seconds the first time
        finally:
            QApplication.restoreOverrideCursor()
        self.method.clear()
        self.method.addItem(f"default ({listing.default})" if listing.default else "default", "")
        for name in listing.available:
            if name != listing.default:
                self.method.addItem(name, name)
        self.method.setCurrentIndex(max(0, self.method.findData(current or "")))
        # (no interpreter at all: the install row below says what to do)
        self.error_label.setText(f"Method list unavailable: {listing.error}" if listing.error and python else "")

    # -- the plugin's own environment -------------------------------------------------------
    def _make_install_row(self) -> QWidget:
        row = QWidget(self)
        self.install_label = QLabel(row)
        self.install_label.setObjectName("landslide_wsss_install_label")
        self.install_label.setWordWrap(True)
        self.install_button = QPushButton("Install environment", row)
        self.install_button.setObjectName("landslide_wsss_install")
        self.install_button.clicked.connect(self.begin_install)
        self.install_progress = QProgressBar(row)
        self.install_progress.setObjectName("landslide_wsss_install_progress")
        self.install_progress.setRange(0, 100)
        self.install_cancel = QPushButton("Cancel", row)
        self.install_cancel.setObjectName("landslide_wsss_install_cancel")
        self.install_cancel.clicked.connect(self.cancel_install)
        buttons = QHBoxLayout()
        buttons.setContentsMargins(0, 0, 0, 0)
        buttons.addWidget(self.install_button)
        buttons.addWidget(self.install_progress, 1)
        buttons.addWidget(self.install_cancel)
        layout = QVBoxLayout(row)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.install_label)
        layout.addLayout(buttons)
        return row

    def update_install_row(self, *_) -> None:
        """Offer the install when no interpreter is set or found, or when the plugin's own environment
        was made from an older wheel than the one it carries now; show its progress while it runs."""
        profile = saved.profile_dir()
        wheel = carried_wheel()
        status = install_status(profile, wheel)
        python = self.python_path()
        managed = str(interpreter(managed_env(profile)))
        running = self.install_task is not None and not self.install_task.done
        offer = running or not python or not os.path.isfile(python) or (python == managed and status == "outdated")
        self.install_row.setVisible(offer)
        self.install_progress.setVisible(running)
        self.install_cancel.setVisible(running)
        self.install_button.setVisible(not running)
        self.install_button.setEnabled(wheel is not None)
        self.buttons.button(QDialogButtonBox.Ok).setEnabled(not running)
        if running or not offer:
            return
        if wheel is None:
            self.install_label.setText("No landslide_wsss environment found, and this plugin build carries no "
                                       "package to install. " + install_hint(found=True))
        elif python == managed and status == "outdated":
            self.install_button.setText("Update environment")
            made_from = read_marker(managed_env(profile)).get("wheel", "another package")
            self.install_label.setText(f"The plugin's environment holds {made_from}; this plugin carries "
                                       f"{wheel.name}. Update the environment to it.")
        else:
            self.install_button.setText("Install environment")
            self.install_label.setText(
                "No landslide_wsss environment is set up yet. Install one: a Python environment with "
                "landslide_wsss and its requirements from the Python package index (several hundred MB, a few "
                f"minutes), in {managed_env(profile)}. Or give the Python interpreter of your own above.")

    def begin_install(self) -> None:
        try:
            task = start_install(saved.profile_dir(), carried_wheel())
        except InstallError as exc:
            self.error_label.setText(str(exc))
            return
        self._follow(task)

    def _follow(self, task) -> None:
        self.install_task = task
        task.progressChanged.connect(self._install_progress)
        task.message.connect(self._install_message)
        task.ended.connect(self._install_ended)
        self.install_progress.setValue(int(task.progress()))
        self.install_label.setText(task.last_message or "Installing the landslide_wsss environment…")
        self.error_label.setText("")
        self.update_install_row()

    def cancel_install(self) -> None:
        if self.install_task is not None and not self.install_task.done:
            self.install_task.cancel()

    def _install_progress(self, value: float) -> None:
        self.install_progress.setValue(int(value))

    def _install_message(self, text: str) -> None:
        self.install_label.setText(text)

    def _install_ended(self) -> None:
        task = self.install_task
        if task.result is not None:
            self.python.setFilePath(task.result.python)  # (refreshes the method list)
            self.update_install_row()
            self.install_label.setText(f"Installed landslide_wsss {task.result.package_version} "
                                       f"in {task.result.env}.")
            self.install_row.setVisible(True)
            self.install_button.setVisible(False)
            return
        self.update_install_row()
        err = task.error
        if isinstance(err, NoNetwork):
            self.error_label.setText(f"No network: {err}")
        else:
            self.error_label.setText(f"Installation failed: {err}" if not isinstance(err, Canceled) else str(err))

    def _layer_changed(self, layer) -> None:
        self.bands.setText(default_bands(layer))
        try:
            path = raster_source_path(layer)
        except SourceError:
            return
        current = self.output.filePath()
        if not current or current == self._auto_output:
            self._auto_output = default_output(path, self._output_dir)
            self.output.setFilePath(self._auto_output)

    def params(self) -> DetectParams:
        """The run parameters; raises SourceError / RunError with a message for the user."""
        path = raster_source_path(self.layer_combo.currentLayer())
        out = self.output.filePath().strip()
        if not out:
            raise RunError("choose an output GeoPackage")
        if Path(out).suffix.lower() != ".gpkg":
            out += ".gpkg"
        bands = self.bands.text().strip()
        return DetectParams(
            input=path,
            output=out,
            bands=normalize_bands(bands) if bands else "",
            model=self.model.filePath().strip(),
            device=self.device.currentText(),
            method=self.method.currentData() or "",
            tile=_int_value(self.tile),
            overlap=_int_value(self.overlap),
            threshold=_float_value(self.threshold),
            min_area=_float_value(self.min_area),
            dsm=self.dsm.filePath().strip(),
            radiometry=self.radiometry.currentText(),
            overwrite=self.overwrite.isChecked(),
        )

    def python_path(self) -> str:
        return self.python.filePath().strip()

    def _validate_and_accept(self) -> None:
        try:
            p = self.params()
        except (SourceError, RunError) as exc:
            self.error_label.setText(str(exc))
            return
        if not self.python_path():
            self.error_label.setText("Install the environment first (Install environment), or give the Python "
                                     "interpreter of a landslide_wsss environment.")
            return
        saved.save(saved.SavedSettings(
            python=self._python_to_save(), model=p.model, method=p.method, device=p.device, tile=p.tile,
            overlap=p.overlap, threshold=p.threshold, min_area=p.min_area,
            output_dir=str(Path(p.output).parent), overwrite=p.overwrite))
        self.accept()

    def _python_to_save(self) -> str:
        # Do not freeze a value that only came from the environment variable or the project default.
        chosen = self.python_path()
        resolved, origin = saved.resolve()
        if chosen == (resolved or "") and origin != "plugin settings":
            return saved.load().python
        return chosen


def _int_box(minimum: int, maximum: int, value: Optional[int], step: int) -> QSpinBox:
    box = QSpinBox()
    box.setRange(minimum, maximum)
    box.setSingleStep(step)
    box.setSpecialValueText(DEFAULT_TEXT)  # shown at the minimum
    box.setValue(minimum if value is None else value)
    box.setAlignment(Qt.AlignRight)
    return box


def _float_box(minimum: float, maximum: float, value: Optional[float], step: float, decimals: int) -> QDoubleSpinBox:
    box = QDoubleSpinBox()
    box.setDecimals(decimals)
    box.setRange(minimum, maximum)
    box.setSingleStep(step)
    box.setSpecialValueText(DEFAULT_TEXT)
    box.setValue(minimum if value is None else value)
    box.setAlignment(Qt.AlignRight)
    return box


def _int_value(box: QSpinBox) -> Optional[int]:
    return None if box.value() == box.minimum() else int(box.value())


def _float_value(box: QDoubleSpinBox) -> Optional[float]:
    return None if box.value() <= box.minimum() else float(box.value())
