"""Labels and training in a real QGIS with the real CLI (project .venv): the method list, the label grid,
`train weak` and a detection with the trained model."""
from __future__ import annotations

import pytest

pytest.importorskip("qgis.core", reason="QGIS is not installed (make setup-qgis)")
pytest.importorskip("pytest_qgis", reason="pytest-qgis is not installed (make setup-qgis)")

from qgis_fixtures import *  # noqa: E402,F401,F403 (fixtures)

import os  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
from pathlib import Path  # noqa: E402

from qgis.core import (  # noqa: E402
    QgsApplication,
    QgsExpression,
    QgsFeatureRequest,
    QgsProcessingException,
    QgsProject,
    QgsRenderContext,
    QgsRuleBasedRenderer,
    QgsVectorLayer,
)
from qgis.PyQt.QtCore import Qt  # noqa: E402

from qgis_helpers import process_events, write_geotiff  # noqa: E402

TRAIN_TIMEOUT = 600  # s


def counting_python(folder: Path, real: str) -> tuple:
    """A real interpreter behind a script that logs each start: (path, log file)."""
    log = folder / "starts.log"
    script = folder / "python"
    script.write_text(f'#!/bin/sh\necho "$*" >> "{log}"\nexec "{real}" "$@"\n')
    script.chmod(0o755)
    return str(script), log


def starts(log: Path) -> int:
    return len(log.read_text().splitlines()) if log.exists() else 0


def leftovers(folder: Path, keep):
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


def label_grid(raster_layer, python, out, tile_m=64.0, load=False):
    import processing

    run = processing.runAndLoadResults if load else processing.run
    return run("landslide_wsss:label_grid", {"INPUT": raster_layer, "TILE_M": tile_m, "PYTHON": python,
                                             "OUTPUT": str(out)})


def open_grid(path) -> QgsVectorLayer:
    layer = QgsVectorLayer(f"{path}|layername=label_grid", "grid", "ogr")
    assert layer.isValid()
    QgsProject.instance().addMapLayer(layer)
    return layer


def tick(layer, landslide_fids, commit):
    """label = 1 for `landslide_fids`, 0 elsewhere; committed or left as unsaved edits."""
    index = layer.fields().indexOf("label")
    assert layer.startEditing()
    for f in layer.getFeatures():
        assert layer.changeAttributeValue(f.id(), index, 1 if f.id() in landslide_fids else 0)
    if commit:
        assert layer.commitChanges(), layer.commitErrors()


# -- method list ---------------------------------------------------------------------------------------

def test_method_list_comes_from_the_cli_and_is_cached(plugin, qgis_iface, raster_layer, detector_python, tiny_model,
                                                     tmp_path, monkeypatch):
    from landslide_wsss_plugin.runner import list_methods

    python, log = counting_python(tmp_path, detector_python)
    listing = list_methods(python)
    assert not listing.error, listing.error
    names = [m["name"] for m in listing.methods]
    assert "student" in names and "gradcam" in names
    assert listing.default and listing.available[0] == listing.default
    assert list_methods(python) is listing and starts(log) == 1  # cached

    # The dialog and the Processing help use the same cached list.
    monkeypatch.setenv("LANDSLIDE_WSSS_PYTHON", python)
    qgis_iface.setActiveLayer(raster_layer)
    plugin.run()
    combo = plugin.dialog.method
    items = [combo.itemText(i) for i in range(combo.count())]
    assert items == [f"default ({listing.default})"] + [n for n in listing.available if n != listing.default]
    assert combo.currentIndex() == 0 and plugin.dialog.params().method == ""
    combo.setCurrentIndex(items.index("gradcam"))
    assert plugin.dialog.params().method == "gradcam"
    assert plugin.dialog.error_label.text() == ""
    plugin.dialog.reject()
    help_text = QgsApplication.processingRegistry().algorithmById("landslide_wsss:detect").shortHelpString()
    assert "gradcam" in help_text and listing.default in help_text
    assert starts(log) == 1

    # Per model file, and again when that file changes.
    model = tmp_path / "model.safetensors"
    shutil.copy(tiny_model, model)
    list_methods(python, str(model))
    list_methods(python, str(model))
    assert starts(log) == 2
    st = model.stat()
    os.utime(model, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    list_methods(python, str(model))
    assert starts(log) == 3


def test_dialog_without_method_list_offers_default_and_says_why(plugin, qgis_iface, raster_layer, monkeypatch):
    monkeypatch.setenv("LANDSLIDE_WSSS_PYTHON", "/usr/bin/python3")  # runs, but has no landslide_wsss
    qgis_iface.setActiveLayer(raster_layer)
    plugin.run()
    dlg = plugin.dialog
    assert [dlg.method.itemText(i) for i in range(dlg.method.count())] == ["default"]
    assert "Method list unavailable" in dlg.error_label.text() and "landslide_wsss" in dlg.error_label.text()
    assert dlg.params().method == ""
    dlg.reject()


def test_dialog_offers_the_last_trained_model(plugin, qgis_iface, raster_layer, detector_python, tiny_model):
    from landslide_wsss_plugin import settings

    qgis_iface.setActiveLayer(raster_layer)
    plugin.run()
    assert plugin.dialog.last_model.isHidden()  # nothing trained yet
    assert plugin.dialog.model.filePath() == ""  # the embedded model
    plugin.dialog.reject()
    settings.remember_trained_model(str(tiny_model))
    plugin.run()
    dlg = plugin.dialog
    dlg.python.setFilePath(detector_python)
    assert not dlg.last_model.isHidden() and tiny_model.name in dlg.last_model.text()
    assert dlg.model.filePath() == ""  # offered, not chosen
    dlg.last_model.click()
    assert dlg.model.filePath() == str(tiny_model) and dlg.params().model == str(tiny_model)
    # the method list follows the model (the tiny model file holds the student alone)
    assert [dlg.method.itemText(i) for i in range(dlg.method.count())] == ["default (student)"]
    assert dlg.error_label.text() == ""
    dlg.reject()


# -- label grid ----------------------------------------------------------------------------------------

def test_label_grid_is_loaded_styled_and_ready_to_tick(plugin, raster_layer, detector_python, tmp_path):
    out = tmp_path / "grid.gpkg"
    res = label_grid(raster_layer, detector_python, out, tile_m=64.0, load=True)
    process_events(0.2)
    assert res["OUTPUT"] == str(out) and out.is_file()
    assert res["TILES"] == 9 and res["LAYER_NAME"] == "label_grid"  # 96 px of 2 m: 3 x 3 tiles of 64 m
    assert leftovers(tmp_path, {"scene.tif", "grid.gpkg"}) == []
    loaded = [lyr for lyr in QgsProject.instance().mapLayers().values()
              if isinstance(lyr, QgsVectorLayer) and lyr.source().split("|")[0] == str(out)]
    assert len(loaded) == 1
    layer = loaded[0]
    assert layer.featureCount() == 9 and layer.crs() == raster_layer.crs()
    assert not list(layer.getFeatures(QgsFeatureRequest(QgsExpression('"label" IS NOT NULL'))))

    renderer = layer.renderer()
    assert isinstance(renderer, QgsRuleBasedRenderer)
    context = QgsRenderContext()
    assert renderer.usedAttributes(context) == {"label"}
    # which symbol each kind of tile gets
    index = layer.fields().indexOf("label")
    fids = [f.id() for f in layer.getFeatures()]
    assert layer.startEditing()
    layer.changeAttributeValue(fids[0], index, 1)
    layer.changeAttributeValue(fids[1], index, 0)
    renderer.startRender(context, layer.fields())
    try:
        fills = {}
        for f in layer.getFeatures():
            symbols = renderer.symbolsForFeature(f, context)
            assert len(symbols) == 1
            fills[f.id()] = symbols[0].symbolLayer(0)
    finally:
        renderer.stopRender(context)
    layer.rollBack()
    ticked, none, empty = fills[fids[0]], fills[fids[1]], fills[fids[2]]
    assert ticked.color().red() > 200 and ticked.color().green() < 100 and 0 < ticked.color().alpha() < 255
    assert none.color().green() > none.color().red() and none.color().alpha() < ticked.color().alpha()
    assert empty.brushStyle() == Qt.NoBrush and empty.strokeWidth() < ticked.strokeWidth()

    widget = layer.editorWidgetSetup(index)
    assert widget.type() == "ValueMap"
    values = {k: v for entry in widget.config()["map"] for k, v in entry.items()}
    assert values["landslide"] == 1 and values["none"] == 0


def test_label_grid_reports_the_cli_error(plugin, raster_layer, detector_python, tmp_path):
    out = tmp_path / "grid.gpkg"
    with pytest.raises(QgsProcessingException) as exc:
        label_grid(raster_layer, detector_python, out, tile_m=0)
    assert "tile size 0" in str(exc.value) and "must be > 0" in str(exc.value)
    assert not out.exists() and leftovers(tmp_path, {"scene.tif"}) == []


def test_label_grid_refuses_non_geotiff(plugin, detector_python, tmp_path, qgis_new_project):
    img = write_geotiff(tmp_path / "scene.img", driver="HFA")
    with pytest.raises(QgsProcessingException) as exc:
        label_grid(str(img), detector_python, tmp_path / "grid.gpkg")
    assert "GeoTIFF" in str(exc.value) and "HFA" in str(exc.value)


def test_label_layers_are_passed_as_files_or_written_out(plugin, raster_layer, detector_python, tmp_path):
    """A saved GeoPackage layer goes to the CLI as it is; a memory layer or unsaved edits go through a copy."""
    from landslide_wsss_plugin.layers import vector_file_source, write_geopackage

    out = tmp_path / "grid.gpkg"
    label_grid(raster_layer, detector_python, out)
    grid = open_grid(out)
    assert vector_file_source(grid) == (str(out), "label_grid")
    assert vector_file_source(QgsVectorLayer(str(out), "no layer name", "ogr")) == ("", "")
    memory = QgsVectorLayer("Point?crs=EPSG:32633&field=label:integer", "points", "memory")
    assert vector_file_source(memory) == ("", "")
    tick(grid, {1, 2}, commit=False)
    assert vector_file_source(grid) == ("", "")
    copy = write_geopackage(grid, str(tmp_path / "copy.gpkg"), "labels")
    written = QgsVectorLayer(f"{copy}|layername=labels", "copy", "ogr")
    assert written.featureCount() == 9
    assert sorted(f["label"] for f in written.getFeatures()) == [0] * 7 + [1, 1]  # the unsaved edits
    grid.rollBack()


# -- training ------------------------------------------------------------------------------------------

@pytest.fixture
def train_weak(detector_python):
    cli = subprocess.run([detector_python, "-m", "landslide_wsss.cli", "train", "weak", "--help"],
                         capture_output=True, text=True, timeout=120)
    if cli.returncode != 0:
        pytest.skip(f"`landslide_wsss.cli train weak` is not available yet: {cli.stderr.strip()[-300:]}")
    return detector_python


def embedded_model_has_student(python) -> bool:
    """`train weak` fine-tunes the embedded model's student; without one it refuses before reading labels."""
    from landslide_wsss_plugin.runner import list_methods

    return any(m.get("name") == "student" and m.get("available") for m in list_methods(python).methods)


def test_train_without_landslide_tiles_fails_cleanly(plugin, raster_layer, train_weak, tmp_path):
    import processing
    from landslide_wsss_plugin import settings

    grid = open_grid(label_grid(raster_layer, train_weak, tmp_path / "grid.gpkg")["OUTPUT"])
    tick(grid, set(), commit=True)  # every tile 0: nothing to learn a landslide from
    out = tmp_path / "model.safetensors"
    with pytest.raises(QgsProcessingException) as exc:
        processing.run("landslide_wsss:train", {"INPUT": [raster_layer], "LABELS": grid, "LABEL_FIELD": "label",
                                                "MINUTES": 0.2, "PYTHON": train_weak, "OUTPUT": str(out)})
    if embedded_model_has_student(train_weak):
        assert "no landslide label" in str(exc.value)
    else:  # still the CLI's own error line, about the start model
        assert "student" in str(exc.value) and "Traceback" not in str(exc.value)
    assert not out.exists() and settings.last_trained_model() == ""
    assert leftovers(tmp_path, {"scene.tif", "grid.gpkg"}) == []


@pytest.mark.slow
def test_train_then_detect_with_the_trained_model(plugin, qgis_iface, train_weak, tmp_path, qgis_new_project):
    import processing
    from qgis.core import QgsProcessingFeedback, QgsRasterLayer
    from landslide_wsss_plugin import settings

    if not embedded_model_has_student(train_weak):
        pytest.skip("the embedded model has no student network yet: `train weak` cannot start from it")
    raster = QgsRasterLayer(str(write_geotiff(tmp_path / "scene.tif", size=192)), "scene", "gdal")
    QgsProject.instance().addMapLayer(raster)
    grid = open_grid(label_grid(raster, train_weak, tmp_path / "grid.gpkg")["OUTPUT"])
    assert grid.featureCount() == 36
    tick(grid, {8, 9, 14, 15, 22}, commit=False)  # unsaved edits: trained from a temporary copy
    out = tmp_path / "model.safetensors"
    feedback = QgsProcessingFeedback()
    progress = []
    feedback.progressChanged.connect(progress.append)
    res = processing.run("landslide_wsss:train", {"INPUT": [raster], "LABELS": grid, "MINUTES": 0.2,
                                                  "PYTHON": train_weak, "OUTPUT": str(out)}, feedback=feedback)
    assert res["OUTPUT"] == str(out) and out.is_file() and out.stat().st_size > 0
    assert progress and max(progress) == 100.0
    assert settings.last_trained_model() == str(out)
    assert "Held-out tiles: " in feedback.textLog() and "student kept" in feedback.textLog()
    grid.rollBack()

    det = processing.run("landslide_wsss:detect", {"INPUT": raster, "MODEL": str(out), "DEVICE": 1,
                                                   "PYTHON": train_weak, "OUTPUT": str(tmp_path / "det.gpkg")})
    layer = QgsVectorLayer(f"{det['OUTPUT']}|layername={det['LAYER_NAME']}", "det", "ogr")
    assert layer.isValid() and layer.featureCount() == det["FEATURES"]  # the count said is the layer written
    qgis_iface.setActiveLayer(raster)
    plugin.run()
    plugin.dialog.last_model.click()
    assert plugin.dialog.params().model == str(out)
    plugin.dialog.reject()
