"""One end-to-end run of the desktop QGIS application under xvfb-run, with the plugin installed from the
built zip into a fresh profile (scripts/build_plugin_zip.py -> unzip into <profile>/python/plugins)."""
from __future__ import annotations

import pytest

pytest.importorskip("qgis.core", reason="QGIS is not installed (make setup-qgis)")
pytest.importorskip("pytest_qgis", reason="pytest-qgis is not installed (make setup-qgis)")

from qgis_fixtures import *  # noqa: E402,F401,F403 (fixtures)

import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import zipfile  # noqa: E402


from qgis_helpers import PLUGIN_NAME, SCENE_EPSG, desktop_profile, run_desktop_qgis, write_geotiff  # noqa: E402

QGIS_TIMEOUT = 420


@pytest.mark.skipif(not shutil.which("qgis") or not shutil.which("xvfb-run"),
                    reason="desktop QGIS or xvfb-run not installed (apt-get install qgis xvfb xauth)")
def test_desktop_qgis_with_plugin_from_zip(builder, tiny_model, detector_python, tmp_path):
    meta = builder.read_metadata()
    zpath = builder.build_zip(meta, tmp_path / "dist")
    assert zpath.name == f"landslide_wsss_plugin-{meta['version']}.zip"
    with zipfile.ZipFile(zpath) as zf:
        names = set(zf.namelist())
        for f in ("__init__.py", "metadata.txt", "LICENSE", "icon.png", "runner.py", "provider.py"):
            assert f"{PLUGIN_NAME}/{f}" in names
        assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
        assert not [n for n in names if not n.startswith(PLUGIN_NAME + "/")]

    # A fresh profile: the plugin unzipped into it and enabled; the interpreter comes from the
    # plugin's saved setting (not the environment variable).
    profiles = tmp_path / "profiles_root"
    desktop_profile(profiles, zpath, f"\n[landslide_wsss]\npython={detector_python}\n")

    raster = write_geotiff(tmp_path / "scene.tif", size=96)
    job = {
        "raster": str(raster), "model": str(tiny_model),
        "processing_output": str(tmp_path / "proc.gpkg"), "button_output": str(tmp_path / "button.gpkg"),
        "result": str(tmp_path / "result.json"),
    }
    desktop = run_desktop_qgis("desktop_script.py", job, tmp_path, profiles, QGIS_TIMEOUT)
    result, steps, log = desktop.result, desktop.steps, desktop.log
    assert steps["plugin active"]["active"]
    assert steps["action"]["found"] and steps["action"]["in_toolbar"]
    assert steps["action state"] == {"name": "action state", "raster": True, "vector": False, "raster_again": True}
    assert steps["processing"]["output"] == job["processing_output"] and steps["processing"]["features"] >= 1
    assert steps["dialog"]["python"] == str(detector_python)
    run = steps["button run"]
    assert run["done"] and run["error"] is None, run
    assert run["layer_valid"] and run["layer_in_project"]
    assert run["layer_crs"] == run["raster_crs"] == f"EPSG:{SCENE_EPSG}"
    assert run["layer_features"] == run["features"] >= 1
    assert run["renderer"] == "graduatedSymbol"
    assert {"area_m2", "score_mean", "score_max", "scene", "method", "model_version"} <= set(run["fields"])
    assert os.path.isfile(job["button_output"]) and os.path.isfile(job["processing_output"])
    assert desktop.returncode == 0, log
    # no Python error from the plugin anywhere in QGIS's message log (tracebacks land there)
    # (levels: 0 info, 1 warning, 2 critical, 3 success)
    bad = [m for m in result["log"] if (m["level"] == 2 and (PLUGIN_NAME in m["message"] or "Traceback" in m["message"]))
           or (m["tag"] == "Landslide WSSS" and m["level"] in (1, 2))]
    assert not bad, bad

    # qgis_process (the command-line Processing runner) with the same profile: the provider comes from the
    # enabled plugin, the interpreter from its saved setting.
    qp = shutil.which("qgis_process.bin") or shutil.which("qgis_process")  # Debian's wrapper adds a bad option
    if qp:
        out = tmp_path / "qgis_process.gpkg"
        env_qp = dict(desktop.env, QGIS_CUSTOM_CONFIG_PATH=str(profiles), QT_QPA_PLATFORM="offscreen")
        run = subprocess.run([qp, "--json", "run", "landslide_wsss:detect", "--", f"INPUT={raster}",
                              f"MODEL={tiny_model}", "DEVICE=1", "TILE=64", "THRESHOLD=0", f"OUTPUT={out}"],
                             env=env_qp, capture_output=True, text=True, timeout=QGIS_TIMEOUT, cwd=str(tmp_path))
        assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
        res = json.loads(run.stdout)["results"]
        assert res["OUTPUT"] == str(out) and out.is_file() and res["FEATURES"] >= 1
