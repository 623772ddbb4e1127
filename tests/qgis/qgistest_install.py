"""The plugin sets up its own environment (installer.py, the dialog's Install environment).

In this QGIS process: where the interpreter comes from, the base Python, an unreachable package index, a
cancelled install, the dialog's offer. Then one end-to-end run of the desktop QGIS with a fresh profile
(nothing configured): install from the wheel `make dist` put in the plugin zip, requirements from the
package index -> detect on the sample scene -> polygons.
"""
from __future__ import annotations

import pytest

pytest.importorskip("qgis.core", reason="QGIS is not installed (make setup-qgis)")
pytest.importorskip("pytest_qgis", reason="pytest-qgis is not installed (make setup-qgis)")

from qgis_fixtures import *  # noqa: E402,F401,F403 (fixtures)

import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import zipfile  # noqa: E402

from qgis.core import QgsApplication  # noqa: E402
from qgis.PyQt.QtWidgets import QAction  # noqa: E402

from qgis_helpers import PLUGIN_NAME, REPO, desktop_profile, process_events, run_desktop_qgis, wait_for  # noqa: E402

DIST = REPO / "dist"
INSTALL_TIMEOUT = 1200  # s: a fresh environment from the package index (a few minutes; slow mirrors more)
QGIS_TIMEOUT = INSTALL_TIMEOUT + 300


def unreachable_index(monkeypatch):
    """pip sees only an index nobody answers at (a closed local port): no configuration file, no local
    wheel folders."""
    for key in list(os.environ):
        if key.startswith("PIP_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")


@pytest.fixture(scope="session")
def dist_wheel():
    wheels = sorted(DIST.glob("landslide_wsss-*.whl"))
    if not wheels:
        pytest.fail("no wheel in dist/: run `make dist` first (make test-qgis does)")
    return wheels[-1]


@pytest.fixture
def portable_plugin(plugins_dir, dist_wheel):
    """The staged plugin as a user installs it from the `make dist` zip: no path to this checkout (so its
    .venv is not found) and the wheel in wheels/. Restored afterwards."""
    plugin_dir = plugins_dir / PLUGIN_NAME
    info = plugin_dir / "build_info.json"
    saved = info.read_text(encoding="utf-8")
    data = json.loads(saved)
    data.pop("repository_path", None)
    info.write_text(json.dumps(data), encoding="utf-8")
    (plugin_dir / "wheels").mkdir()
    shutil.copy2(dist_wheel, plugin_dir / "wheels" / dist_wheel.name)
    yield plugin_dir
    info.write_text(saved, encoding="utf-8")
    shutil.rmtree(plugin_dir / "wheels")


def open_dialog(plugin, iface, layer):
    """The toolbar button on the active raster layer, as a user opens the dialog."""
    iface.setActiveLayer(layer)
    iface.currentLayerChanged.emit(iface.mapCanvas())  # (pytest-qgis' interface does not emit it itself)
    process_events()
    iface.mainWindow().findChild(QAction, "landslide_wsss_detect").trigger()
    assert plugin.dialog is not None and plugin.dialog.isVisible()
    return plugin.dialog


def make_venv(path):
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True, timeout=120)
    return path


def test_interpreter_order_ends_with_the_plugins_own_environment(plugin, portable_plugin, tmp_path, monkeypatch):
    import landslide_wsss_plugin.environment as env

    monkeypatch.delenv("LANDSLIDE_WSSS_PYTHON", raising=False)
    profile = tmp_path / "profile"
    assert env.resolve_python("", profile) == (None, "not found")
    venv = make_venv(env.managed_env(profile))
    # an install that did not finish (no marker) is never used
    assert env.resolve_python("", profile) == (None, "not found")
    (venv / env.MARKER).write_text(json.dumps({"wheel": "landslide_wsss-0.0.0-py3-none-any.whl"}))
    python = str(env.interpreter(venv))
    assert env.resolve_python("", profile) == (python, env.ORIGIN_MANAGED)
    # the setting and the environment variable still win
    assert env.resolve_python("/saved/python", profile) == ("/saved/python", "plugin settings")
    monkeypatch.setenv("LANDSLIDE_WSSS_PYTHON", "/somewhere/python")
    assert env.resolve_python("/saved/python", profile)[0] == "/somewhere/python"
    monkeypatch.delenv("LANDSLIDE_WSSS_PYTHON")
    # a source checkout's .venv wins over it too
    info = portable_plugin / "build_info.json"
    info.write_text(json.dumps({"version": "x", "repository_path": str(REPO)}))
    assert env.resolve_python("", profile)[0] == str(REPO / ".venv" / "bin" / "python")

    import landslide_wsss_plugin.installer as installer

    # made from another wheel than the one the plugin carries now: the dialog offers an update
    assert installer.install_status(profile) == "outdated"
    assert installer.install_status(tmp_path / "elsewhere") == "missing"


def test_base_python_is_qgis_own_or_a_clear_message(plugin, tmp_path):
    import landslide_wsss_plugin.installer as installer

    base = installer.find_base_python()
    assert base.version[:2] >= (3, 9)
    assert base.path in installer.base_python_candidates()
    assert base.path.startswith(sys.exec_prefix)  # QGIS's own Python (Debian: /usr/bin/python3.x)
    not_python = tmp_path / "not-python"
    not_python.write_text("#!/bin/sh\nexit 1\n")
    not_python.chmod(0o755)
    with pytest.raises(installer.InstallError) as exc:
        installer.find_base_python([str(not_python), str(tmp_path / "missing")])
    assert "Python 3.9 or newer" in str(exc.value) and str(not_python) in str(exc.value)


def test_no_network_gives_one_clear_message_and_leaves_nothing(plugin, portable_plugin, tmp_path, monkeypatch):
    import landslide_wsss_plugin.installer as installer

    unreachable_index(monkeypatch)
    profile = tmp_path / "profile"
    steps, progress = [], []
    with pytest.raises(installer.NoNetwork) as exc:
        installer.install_environment(profile, on_message=steps.append, on_progress=progress.append)
    assert str(exc.value) == installer.NO_NETWORK
    assert "cannot reach the Python package index" in str(exc.value)
    assert any(s.startswith("Creating a Python 3.") for s in steps)  # it got as far as pip
    assert progress == sorted(progress) and progress[-1] >= 15
    assert not installer.managed_env(profile).exists()
    assert sorted(p.name for p in (profile / "landslide_wsss").iterdir()) == []


def test_failed_update_of_a_broken_environment_removes_it(plugin, portable_plugin, tmp_path, monkeypatch):
    """A finished install that no longer works (here: its pip is gone) is updated in place; when that
    fails too, the folder goes, so the dialog offers a fresh install instead of a broken interpreter."""
    import landslide_wsss_plugin.environment as env
    import landslide_wsss_plugin.installer as installer

    unreachable_index(monkeypatch)
    profile = tmp_path / "profile"
    venv = make_venv(env.managed_env(profile))
    (venv / env.MARKER).write_text(json.dumps({"wheel": "landslide_wsss-0.0.0-py3-none-any.whl"}))
    assert installer.install_status(profile) == "outdated"
    steps = []
    with pytest.raises(installer.InstallError) as exc:
        installer.install_environment(profile, on_message=steps.append)
    assert "No module named pip" in str(exc.value)
    assert steps[0] == f"Updating the environment at {venv}"
    assert not venv.exists() and installer.install_status(profile) == "missing"


def test_cancel_stops_the_install_and_leaves_nothing(plugin, portable_plugin, tmp_path):
    import time

    import landslide_wsss_plugin.installer as installer

    profile = tmp_path / "profile"
    cancel_at = []

    def message(text):
        if text.startswith("Creating") and not cancel_at:
            cancel_at.append(time.monotonic() + 0.5)  # while `python -m venv` runs

    started = time.monotonic()
    with pytest.raises(installer.Canceled):
        installer.install_environment(profile, on_message=message,
                                      is_canceled=lambda: bool(cancel_at) and time.monotonic() > cancel_at[0])
    assert time.monotonic() - started < 30
    assert not installer.managed_env(profile).exists()


def test_dialog_offers_install_and_reports_no_network(plugin, portable_plugin, qgis_iface, raster_layer, monkeypatch):
    monkeypatch.delenv("LANDSLIDE_WSSS_PYTHON", raising=False)
    unreachable_index(monkeypatch)
    profile = QgsApplication.qgisSettingsDirPath()
    managed = os.path.join(profile, "landslide_wsss", "venv")
    shutil.rmtree(managed, ignore_errors=True)
    dlg = open_dialog(plugin, qgis_iface, raster_layer)
    assert dlg.python_path() == ""
    assert dlg.install_row.isVisibleTo(dlg) and dlg.install_button.isEnabled()
    assert dlg.install_button.text() == "Install environment"
    assert managed in dlg.install_label.text()
    assert dlg.error_label.text() == ""  # no method-list error: the install row explains
    run = dlg.buttons.button(dlg.buttons.Ok)
    dlg.install_button.click()
    assert dlg.install_progress.isVisibleTo(dlg) and dlg.install_cancel.isVisibleTo(dlg)
    assert not run.isEnabled()  # no run while the environment is being made
    task = dlg.install_task
    assert wait_for(lambda: task.done, 300)
    process_events(0.1)
    assert task.result is None
    assert dlg.error_label.text().startswith("No network: cannot reach the Python package index")
    assert dlg.install_button.isVisibleTo(dlg) and run.isEnabled()
    assert not os.path.exists(managed)
    assert dlg.python_path() == ""


@pytest.mark.slow
@pytest.mark.timeout(QGIS_TIMEOUT + 120)
@pytest.mark.skipif(not shutil.which("qgis") or not shutil.which("xvfb-run"),
                    reason="desktop QGIS or xvfb-run not installed (apt-get install qgis xvfb xauth)")
def test_fresh_profile_installs_its_environment_and_detects(detector_python, tmp_path):
    """Desktop QGIS, a fresh profile with the `make dist` plugin zip unzipped into it, no interpreter
    configured anywhere: the dialog's Install environment, then detect with the embedded model."""
    zips = sorted(DIST.glob(f"{PLUGIN_NAME}-*.zip"))
    assert zips, "no plugin zip in dist/: run `make dist` first (make test-qgis does)"
    with zipfile.ZipFile(zips[-1]) as zf:
        names = zf.namelist()
        wheels = [n for n in names if n.startswith(f"{PLUGIN_NAME}/wheels/landslide_wsss-") and n.endswith(".whl")]
        assert len(wheels) == 1, names
        info = json.loads(zf.read(f"{PLUGIN_NAME}/build_info.json"))
        assert "repository_path" not in info and info["wheel"] == wheels[0].rsplit("/", 1)[1]
    profiles = tmp_path / "profiles_root"
    profile = desktop_profile(profiles, zips[-1])

    # The scene: the project's sample scene (small), made by the project's own environment.
    scene = tmp_path / "sample_scene.tif"
    subprocess.run([detector_python, "-m", "landslide_wsss.cli", "sample-scene", str(scene), "--size", "512"],
                   check=True, timeout=300, capture_output=True)
    job = {"raster": str(scene), "output": str(tmp_path / "sample_landslides.gpkg"),
           "result": str(tmp_path / "result.json"), "install_timeout": INSTALL_TIMEOUT}
    desktop = run_desktop_qgis("install_script.py", job, tmp_path, profiles, QGIS_TIMEOUT,
                               unset=("VIRTUAL_ENV", "PYTHONPATH"))
    result, steps = desktop.result, desktop.steps
    assert steps["before"]["python"] is None and steps["before"]["origin"] == "not found"
    offer = steps["offer"]
    assert offer["row_visible"] and offer["button"] == "Install environment" and offer["python_field"] == ""
    install = steps["install"]
    venv = profile / "landslide_wsss" / "venv"
    assert install["done"] and install["error"] is None, install
    assert install["python"] == str(venv / "bin" / "python") and install["python_field"] == install["python"]
    assert install["origin"] == "environment installed by the plugin"
    assert (venv / "landslide_wsss_install.json").is_file()
    assert install["torch_importable"] is False  # the light install: no torch
    run = steps["detect"]
    assert run["done"] and run["error"] is None, run
    assert run["layer_valid"] and run["features"] >= 1 and run["layer_features"] == run["features"]
    assert os.path.isfile(job["output"])
    bad = [m for m in result["log"] if m["level"] == 2 and (PLUGIN_NAME in m["message"] or "Traceback" in m["message"])]
    assert not bad, bad


def test_dialog_cancel_stops_the_install(plugin, portable_plugin, qgis_iface, raster_layer, monkeypatch):
    monkeypatch.delenv("LANDSLIDE_WSSS_PYTHON", raising=False)
    managed = os.path.join(QgsApplication.qgisSettingsDirPath(), "landslide_wsss", "venv")
    shutil.rmtree(managed, ignore_errors=True)
    dlg = open_dialog(plugin, qgis_iface, raster_layer)
    dlg.install_button.click()
    task = dlg.install_task
    assert wait_for(lambda: os.path.isdir(managed) or task.done, 60)  # `python -m venv` is at work
    dlg.install_cancel.click()
    assert wait_for(lambda: task.done, 60)
    process_events(0.1)
    assert task.result is None and dlg.error_label.text() == "installation cancelled; nothing was left behind"
    assert not os.path.exists(managed)
    assert dlg.install_button.isVisibleTo(dlg) and not dlg.install_cancel.isVisibleTo(dlg)


def test_dialog_offers_update_when_the_plugin_carries_another_wheel(plugin, portable_plugin, qgis_iface,
                                                                    raster_layer, monkeypatch):
    import landslide_wsss_plugin.environment as env

    monkeypatch.delenv("LANDSLIDE_WSSS_PYTHON", raising=False)
    venv = env.managed_env(QgsApplication.qgisSettingsDirPath())
    shutil.rmtree(venv, ignore_errors=True)
    try:
        make_venv(venv)
        (venv / env.MARKER).write_text(json.dumps({"wheel": "landslide_wsss-0.0.1-py3-none-any.whl"}))
        dlg = open_dialog(plugin, qgis_iface, raster_layer)
        assert dlg.python_path() == str(env.interpreter(venv))  # the old environment is still used
        assert dlg.install_row.isVisibleTo(dlg) and dlg.install_button.text() == "Update environment"
        assert "landslide_wsss-0.0.1-py3-none-any.whl" in dlg.install_label.text()
        assert env.carried_wheel().name in dlg.install_label.text()
        assert dlg.buttons.button(dlg.buttons.Ok).isEnabled()
        dlg.reject()
    finally:
        shutil.rmtree(venv, ignore_errors=True)
