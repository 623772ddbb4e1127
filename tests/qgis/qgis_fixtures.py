"""Fixtures for the tests that run in a real QGIS (make test-qgis).

Layout, on purpose: no conftest.py and no test_*.py in this folder, so the project's main pytest run
(`make test`, the .venv without QGIS) neither collects these tests nor imports anything from here. The
QGIS run uses tests/qgis/pytest.ini (python_files = qgistest_*.py); each test module starts with
`pytest.importorskip` for QGIS and pytest-qgis (a clean skip anywhere else) and takes its fixtures with
`from qgis_fixtures import *`.

These tests run in the QGIS venv (.venv-qgis: Debian's /usr/bin/python3 with --system-site-packages,
pytest-qgis 5.0.2). The detector is the real one: the project's .venv/bin/python (or
LANDSLIDE_WSSS_PYTHON) running `python -m landslide_wsss.cli detect ... --jsonl` with a tiny
random-weight student model file (tests/tiny_models.py) written by the project's own code.
"""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest
import qgis.utils
from qgis.core import QgsProject, QgsRasterLayer, QgsSettings

from qgis_helpers import PLUGIN_NAME, REPO, wait_for, write_geotiff, process_events

__all__ = ["builder", "plugins_dir", "detector_python", "tiny_model", "geotiff", "raster_layer",
           "clean_settings", "plugin", "project_python"]

# Session-wide results shared by the test modules (each module imports these fixtures itself).
_CACHE = {}


def project_python() -> str:
    return os.environ.get("LANDSLIDE_WSSS_PYTHON") or str(REPO / ".venv" / "bin" / "python")


def _load_builder():
    spec = importlib.util.spec_from_file_location("build_plugin_zip", REPO / "scripts" / "build_plugin_zip.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="session")
def builder():
    if "builder" not in _CACHE:
        _CACHE["builder"] = _load_builder()
    return _CACHE["builder"]


@pytest.fixture(scope="session")
def plugins_dir(tmp_path_factory, builder):
    """The plugin laid out as QGIS installs it, in a fresh plugins folder on sys.path."""
    if "plugins_dir" in _CACHE:
        return _CACHE["plugins_dir"]
    d = tmp_path_factory.mktemp("plugins")
    builder.stage(d, builder.read_metadata())
    sys.path.insert(0, str(d))
    qgis.utils.plugin_paths.insert(0, str(d))
    qgis.utils.updateAvailablePlugins()  # as QGIS does at start-up: reads metadata.txt of each plugin
    assert PLUGIN_NAME in qgis.utils.available_plugins
    _CACHE["plugins_dir"] = d
    return d


@pytest.fixture(scope="session")
def detector_python():
    """The project's interpreter; the end-to-end tests need it (CI runs `make setup` first)."""
    if "python" in _CACHE:
        return _CACHE["python"]
    py = project_python()
    if not os.access(py, os.X_OK):
        pytest.fail(f"project interpreter {py} not found: run `make setup` (or set LANDSLIDE_WSSS_PYTHON)")
    cli = subprocess.run([py, "-m", "landslide_wsss.cli", "detect", "--help"], capture_output=True, text=True,
                         timeout=120)
    if cli.returncode != 0 or "--jsonl" not in cli.stdout:
        pytest.fail(f"{py} -m landslide_wsss.cli detect --help does not offer --jsonl:\n{cli.stdout}{cli.stderr}")
    _CACHE["python"] = py
    return py


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, detector_python):
    """A tiny random-weight student model file with its ONNX graph (tests/tiny_models.py: the detector
    runs it on its default runtime), written by the project's own code in its own venv."""
    if "model" in _CACHE:
        return _CACHE["model"]
    path = tmp_path_factory.mktemp("model") / "tiny_student.safetensors"
    code = ("import sys\n"
            "sys.path.insert(0, sys.argv[2])\n"
            "from tiny_models import write_tiny_model\n"
            "write_tiny_model(sys.argv[1], seed=1, tile_size=64, onnx=True)\n")
    subprocess.run([detector_python, "-c", code, str(path), str(REPO / "tests")], check=True, timeout=300)
    assert path.is_file()
    _CACHE["model"] = path
    return path


@pytest.fixture
def geotiff(tmp_path):
    return write_geotiff(tmp_path / "scene.tif")


@pytest.fixture
def raster_layer(geotiff, qgis_new_project):
    layer = QgsRasterLayer(str(geotiff), "scene", "gdal")
    assert layer.isValid()
    QgsProject.instance().addMapLayer(layer)
    yield layer


@pytest.fixture(autouse=True)
def clean_settings():
    """Each test starts without saved plugin settings (the dialog saves some)."""
    QgsSettings().remove("landslide_wsss")
    yield
    QgsSettings().remove("landslide_wsss")


@pytest.fixture
def plugin(plugins_dir, qgis_iface, qgis_processing):
    """The plugin loaded and started the way QGIS does it, through qgis.utils; unloaded afterwards."""
    assert qgis.utils.loadPlugin(PLUGIN_NAME) is True
    assert qgis.utils.startPlugin(PLUGIN_NAME) is True
    obj = qgis.utils.plugins[PLUGIN_NAME]
    process_events(0.1)
    yield obj
    if obj.task is not None and not obj.task.done:
        obj.cancel()
        wait_for(lambda: obj.task.done, 60)
    assert qgis.utils.unloadPlugin(PLUGIN_NAME) is True
