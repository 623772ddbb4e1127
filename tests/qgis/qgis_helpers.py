"""Helpers shared by the QGIS tests (the fixtures, the test modules and the desktop scripts)."""
from __future__ import annotations

import json
import os
import subprocess
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
PLUGIN_NAME = "landslide_wsss_plugin"
SCENE_EPSG = 32633  # not the sample scene's CRS on purpose: the result must follow the raster


def write_geotiff(path: Path, size: int = 96, bands: int = 3, epsg: int = SCENE_EPSG, driver: str = "GTiff",
                  seed: int = 0) -> Path:
    """A small real raster through QGIS's GDAL (textured bands, a nodata border, projected CRS)."""
    import numpy as np
    from osgeo import gdal, osr

    rng = np.random.default_rng(seed)
    drv = gdal.GetDriverByName(driver)
    ds = drv.Create(str(path), size, size, bands, gdal.GDT_Byte)
    ds.SetGeoTransform((500_000.0, 2.0, 0.0, 5_200_000.0, 0.0, -2.0))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    ds.SetProjection(srs.ExportToWkt())
    yy, xx = np.mgrid[0:size, 0:size]
    for b in range(bands):
        arr = (60 + 40 * np.sin(xx / 7.0 + b) * np.cos(yy / 11.0) + rng.normal(0, 8, (size, size)))
        arr = np.clip(arr, 1, 255).astype(np.uint8)
        arr[:4, :] = 0  # nodata stripe
        band = ds.GetRasterBand(b + 1)
        band.WriteArray(arr)
        band.SetNoDataValue(0)
    ds.FlushCache()
    ds = None
    return path


def process_events(seconds: float = 0.0) -> None:
    """Run the Qt event loop for `seconds`, including deferred deletions (deleteLater)."""
    from qgis.PyQt.QtCore import QCoreApplication, QEvent

    end = time.monotonic() + seconds
    while True:
        QCoreApplication.processEvents()
        QCoreApplication.sendPostedEvents(None, QEvent.DeferredDelete)
        if time.monotonic() >= end:
            return
        time.sleep(0.02)


def wait_for(predicate, timeout: float, step: float = 0.05) -> bool:
    from qgis.PyQt.QtCore import QCoreApplication

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        QCoreApplication.processEvents()
        if predicate():
            return True
        time.sleep(step)
    QCoreApplication.processEvents()
    return bool(predicate())


def desktop_profile(root: Path, plugin_zip: Path, settings: str = "") -> Path:
    """A fresh QGIS profile `default` under `root` (the --profiles-path) with the plugin zip unzipped into
    it and enabled, no tips or version check; `settings` is appended to its QGIS3.ini."""
    profile = root / "profiles" / "default"  # "default": the profile qgis_process uses too
    (profile / "python" / "plugins").mkdir(parents=True)
    (profile / "QGIS").mkdir()
    with zipfile.ZipFile(plugin_zip) as zf:
        zf.extractall(profile / "python" / "plugins")
    (profile / "QGIS" / "QGIS3.ini").write_text(
        f"[PythonPlugins]\n{PLUGIN_NAME}=true\n\n[qgis]\ncheckVersion=false\nshowTips322=false\n" + settings,
        encoding="utf-8")
    return profile


@dataclass
class DesktopRun:
    result: dict  # what the script wrote (desktop_session: ok, steps, log)
    steps: dict  # its steps by name
    log: str  # the tail of QGIS's stdout and stderr
    returncode: int
    env: dict  # the environment QGIS ran with


def run_desktop_qgis(script: str, job: dict, workdir: Path, profiles: Path, timeout: float,
                     unset=()) -> DesktopRun:
    """The desktop QGIS under xvfb-run with the profile `default` of `profiles`, running `script` (a file in
    this folder, built on desktop_session) on `job` (written to workdir/job.json; job["result"] is where the
    script writes what it saw). LANDSLIDE_WSSS_PYTHON, QT_QPA_PLATFORM, QGIS_CUSTOM_CONFIG_PATH and the
    `unset` variables are left out of its environment. Asserts that the script wrote its result and ran
    to the end."""
    job_file = workdir / "job.json"
    job_file.write_text(json.dumps(job), encoding="utf-8")
    env = dict(os.environ, LWSSS_DESKTOP_JOB=str(job_file), LWSSS_QGIS_TESTS=str(HERE))
    for key in ("LANDSLIDE_WSSS_PYTHON", "QT_QPA_PLATFORM", "QGIS_CUSTOM_CONFIG_PATH", *unset):
        env.pop(key, None)
    cmd = ["xvfb-run", "-a", "-s", "-screen 0 1280x1024x24", "qgis", "--profiles-path", str(profiles),
           "--profile", "default", "--nologo", "--noversioncheck", "--code", str(HERE / script)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, cwd=str(workdir))
    log = (proc.stdout + proc.stderr)[-4000:]
    result_file = Path(job["result"])
    assert result_file.is_file(), f"QGIS wrote no result (exit {proc.returncode}):\n{log}"
    result = json.loads(result_file.read_text(encoding="utf-8"))
    assert result["ok"], result.get("error", "") + "\n" + json.dumps(result["steps"], indent=1) + "\n" + log
    return DesktopRun(result, {s["name"]: s for s in result["steps"]}, log, proc.returncode, env)
