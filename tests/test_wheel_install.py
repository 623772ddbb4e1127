"""The wheel in a fresh virtual environment, without torch: `landslide-wsss detect` on the sample scene.

Builds the wheel the way `make dist` does (pip wheel, no dependencies), installs it with its core
requirements from pip's configured index into a new venv (a few minutes the first time), and runs the
installed command-line tool there: never this checkout's code.
"""
from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
INSTALL_TIMEOUT = 1200


def run(argv, **kw):
    # a neutral folder and no PYTHONPATH: the venv must use its installed copy, not this checkout
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, env=env, **kw)


@pytest.fixture(scope="module")
def light_env(tmp_path_factory):
    work = tmp_path_factory.mktemp("wheel_install")
    built = run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", work / "dist", ROOT],
                timeout=600, cwd=work)
    assert built.returncode == 0, built.stderr[-3000:]
    wheel = next((work / "dist").glob("landslide_wsss-*-py3-none-any.whl"))
    venv = work / "venv"
    made = run([sys.executable, "-m", "venv", venv], timeout=300, cwd=work)
    assert made.returncode == 0, made.stderr[-3000:]
    bindir = venv / ("Scripts" if os.name == "nt" else "bin")
    installed = run([bindir / "python", "-m", "pip", "install", "-q", "--disable-pip-version-check", wheel],
                    timeout=INSTALL_TIMEOUT, cwd=work)
    assert installed.returncode == 0, installed.stdout[-3000:] + installed.stderr[-3000:]
    return {"work": work, "wheel": wheel, "python": bindir / "python", "cli": bindir / "landslide-wsss"}


@pytest.mark.slow
def test_wheel_carries_the_embedded_model(light_env):
    with zipfile.ZipFile(light_env["wheel"]) as zf:
        names = set(zf.namelist())
    shipped = sorted(p.name for p in (ROOT / "landslide_wsss" / "weights").iterdir()
                     if p.suffix in (".safetensors", ".onnx", ".json"))
    assert "default.safetensors" in shipped
    for name in shipped:
        assert f"landslide_wsss/weights/{name}" in names
    assert not [n for n in names if n.startswith(("tests/", "qgis_plugin/", "benchmarks/"))]


@pytest.mark.slow
def test_installed_wheel_detects_without_torch(light_env):
    work, python, cli = light_env["work"], light_env["python"], light_env["cli"]
    torch = run([python, "-c", "import torch"], cwd=work)
    assert torch.returncode != 0 and "No module named 'torch'" in torch.stderr
    where = run([python, "-c", "import landslide_wsss; print(landslide_wsss.__file__)"], cwd=work)
    assert where.returncode == 0 and str(ROOT) not in where.stdout and "site-packages" in where.stdout

    scene, out = work / "sample_scene.tif", work / "sample_scene.gpkg"
    made = run([cli, "sample-scene", scene, "--size", "512"], cwd=work, timeout=300)
    assert made.returncode == 0, made.stderr[-3000:]
    detected = run([cli, "detect", scene, "-o", out], cwd=work, timeout=600)
    assert detected.returncode == 0, detected.stderr[-3000:]

    import geopandas as gpd

    polygons = gpd.read_file(out)
    assert len(polygons) >= 1
    assert {"area_m2", "score_mean", "score_max", "scene", "method", "model_version"} <= set(polygons.columns)
    assert (polygons.geometry.geom_type.isin(["Polygon", "MultiPolygon"])).all()
    assert polygons.geometry.is_valid.all() and (polygons["area_m2"] > 0).all()
