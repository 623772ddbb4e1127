"""Which Python runs the detector, and what to tell the user when there is none.

Order: the environment variable LANDSLIDE_WSSS_PYTHON, the plugin setting (`landslide_wsss/python`, set
in the dialog), the project's `.venv` next to a source checkout (the repository recorded in build_info.json
by scripts/build_plugin_zip.py, or the folder above the plugin when it runs straight from the repository's
qgis_plugin/), then the environment the plugin installed itself in the QGIS profile folder
(installer.py; it counts once its marker file says the install finished). No QGIS import here.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import List, Optional, Tuple

ENV_VAR = "LANDSLIDE_WSSS_PYTHON"
PLUGIN_DIR = Path(__file__).resolve().parent
WHEELS_DIR = PLUGIN_DIR / "wheels"  # the package wheel the plugin zip carries (make dist)
MANAGED_FOLDER = Path("landslide_wsss") / "venv"  # under the QGIS profile folder
MARKER = "landslide_wsss_install.json"  # written last by installer.py: the install finished
ORIGIN_MANAGED = "environment installed by the plugin"
DIALOG = "Raster ▸ Landslide WSSS ▸ Detect landslides…"


def interpreter(venv: Path) -> Path:
    """The Python of a virtual environment folder."""
    return venv / "Scripts" / "python.exe" if os.name == "nt" else venv / "bin" / "python"


def venv_python(repo: Path) -> Path:
    return interpreter(repo / ".venv")


def managed_env(profile_dir) -> Path:
    """Where the plugin installs its environment: <QGIS profile folder>/landslide_wsss/venv."""
    return Path(profile_dir) / MANAGED_FOLDER


def read_marker(venv: Path) -> Optional[dict]:
    """The finished install's record, or None (no install, or one that did not finish)."""
    try:
        data = json.loads((venv / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def managed_python(profile_dir) -> Optional[str]:
    """The interpreter of the plugin's own finished install in `profile_dir`, if there is one."""
    if not profile_dir:
        return None
    venv = managed_env(profile_dir)
    py = interpreter(venv)
    return str(py) if read_marker(venv) is not None and py.is_file() else None


def carried_wheel(wheels_dir: Path = WHEELS_DIR) -> Optional[Path]:
    """The landslide_wsss wheel inside the plugin (there is one in a zip built by `make dist`)."""
    wheels = sorted(wheels_dir.glob("landslide_wsss-*.whl")) if wheels_dir.is_dir() else []
    return wheels[-1] if wheels else None


def candidate_repos() -> List[Path]:
    repos = []
    info = PLUGIN_DIR / "build_info.json"
    if info.is_file():
        try:
            repo = json.loads(info.read_text(encoding="utf-8")).get("repository_path")
            if repo:
                repos.append(Path(repo))
        except (OSError, ValueError):
            pass
    repos.append(PLUGIN_DIR.parent)  # running from <repo>/qgis_plugin
    return repos


def resolve_python(setting: Optional[str] = None, profile_dir=None) -> Tuple[Optional[str], str]:
    """(interpreter path or None, where it came from). `profile_dir`: the QGIS profile folder, where
    the plugin's own install lives (None: not looked for)."""
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        return env, f"environment variable {ENV_VAR}"
    if setting and setting.strip():
        return setting.strip(), "plugin settings"
    for repo in candidate_repos():
        py = venv_python(repo)
        if py.is_file():
            return str(py), f"project environment {repo}"
    managed = managed_python(profile_dir)
    if managed:
        return managed, ORIGIN_MANAGED
    return None, "not found"


def install_hint(python: Optional[str] = None, found: bool = False) -> str:
    where = "" if found else (f"No Python interpreter at {python}. " if python else
                              "The landslide_wsss Python environment was not found. ")
    return (
        where
        + f"Open the Landslide WSSS dialog ({DIALOG}) on a raster layer and click 'Install environment': "
        "it installs landslide_wsss into a Python environment in your QGIS profile folder (it downloads "
        "its requirements from the Python package index, pypi.org). Or install the landslide_wsss wheel "
        "(in the plugin folder, wheels/) with pip into a Python 3.9 or newer environment of your own, "
        "and give the plugin that interpreter in the dialog (Python interpreter) or in the environment "
        "variable " + ENV_VAR + "."
    )
