"""Fixtures for the tests that run in a real QGIS (make test-qgis).

These tests run only in the QGIS venv (.venv-qgis: Debian's /usr/bin/python3 with
--system-site-packages, pytest-qgis 5.0.2). Anywhere else (the project's .venv, a machine without
QGIS) nothing in this folder is collected, so the main `pytest` run never sees them.

The detector is the real one: the project's .venv/bin/python (or LANDSLIDE_WSSS_PYTHON) running
`python -m landslide_wsss.cli detect ... --jsonl` with a tiny random-weight PixelNet model made by the
project itself.
"""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

try:  # QGIS and pytest-qgis both present -> collect; otherwise skip this folder cleanly
    import pytest_qgis  # noqa: F401
    import qgis.core  # noqa: F401

    HAVE_QGIS = True
except Exception:  # ImportError, or a broken QGIS install
    HAVE_QGIS = False

sys.path.insert(0, str(Path(__file__).resolve().parent))
from qgis_helpers import PLUGIN_NAME, REPO, process_events, wait_for, write_geotiff  # noqa: E402

if not HAVE_QGIS:
    collect_ignore_glob = ["test_*.py"]



def project_python() -> str:
    py = os.environ.get("LANDSLIDE_WSSS_PYTHON") or str(REPO / ".venv" / "bin" / "python")
    return py


def _load_builder():
    spec = importlib.util.spec_from_file_location("build_plugin_zip", REPO / "scripts" / "build_plugin_zip.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="session")
def builder():
    return _load_builder()


@pytest.fixture(scope="session")
def plugins_dir(tmp_path_factory, builder):
    """The plugin laid out as QGIS installs it, in a fresh plugins folder on sys.path."""
    if not HAVE_QGIS:
        pytest.skip("QGIS not installed")
    import qgis.utils

    d = tmp_path_factory.mktemp("plugins")
    builder.stage(d, builder.read_metadata())
    sys.path.insert(0, str(d))
    qgis.utils.plugin_paths.insert(0, str(d))
    qgis.utils.updateAvailablePlugins()  # as QGIS does at start-up: reads metadata.txt of each plugin
    assert PLUGIN_NAME in qgis.utils.available_plugins
    yield d
    if str(d) in sys.path:
        sys.path.remove(str(d))


@pytest.fixture(scope="session")
def detector_python():
    """The project's interpreter; the end-to-end tests need it (CI runs `make setup` first)."""
    py = project_python()
    if not os.access(py, os.X_OK):
        pytest.fail(f"project interpreter {py} not found: run `make setup` (or set LANDSLIDE_WSSS_PYTHON)")
    cli = subprocess.run([py, "-m", "landslide_wsss.cli", "detect", "--help"], capture_output=True, text=True,
                         timeout=120)
    if cli.returncode != 0 or "--jsonl" not in cli.stdout:
        pytest.fail(f"{py} -m landslide_wsss.cli detect --help does not offer --jsonl:\n{cli.stdout}{cli.stderr}")
    return py


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, detector_python):
    """A tiny random-weight PixelNet model file, written by the project's own code in its own venv."""
    path = tmp_path_factory.mktemp("model") / "tiny_pixelnet.safetensors"
    code = ("import sys\n"
            "from landslide_wsss.models.pixelnet import PixelNetScorer\n"
            "PixelNetScorer.random(3, width=4, seed=1, tile_size=64, method='pixelnet').save(sys.argv[1])\n")
    subprocess.run([detector_python, "-c", code, str(path)], check=True, timeout=300)
    assert path.is_file()
    return path


@pytest.fixture
def geotiff(tmp_path):
    return write_geotiff(tmp_path / "scene.tif")


@pytest.fixture
def raster_layer(geotiff, qgis_new_project):
    from qgis.core import QgsProject, QgsRasterLayer

    layer = QgsRasterLayer(str(geotiff), "scene", "gdal")
    assert layer.isValid()
    QgsProject.instance().addMapLayer(layer)
    yield layer


@pytest.fixture(autouse=True)
def clean_settings():
    """Each test starts without saved plugin settings (the dialog saves some)."""
    if HAVE_QGIS:
        from qgis.core import QgsSettings

        QgsSettings().remove("landslide_wsss")
    yield
    if HAVE_QGIS:
        from qgis.core import QgsSettings

        QgsSettings().remove("landslide_wsss")


@pytest.fixture
def plugin(plugins_dir, qgis_iface, qgis_processing):
    """The plugin loaded and started the way QGIS does it, through qgis.utils; unloaded afterwards."""
    import qgis.utils

    assert qgis.utils.loadPlugin(PLUGIN_NAME) is True
    assert qgis.utils.startPlugin(PLUGIN_NAME) is True
    obj = qgis.utils.plugins[PLUGIN_NAME]
    process_events(0.1)
    yield obj
    if obj.task is not None and not obj.task.done:
        obj.cancel()
        wait_for(lambda: obj.task.done, 60)
    assert qgis.utils.unloadPlugin(PLUGIN_NAME) is True
