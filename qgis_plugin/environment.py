"""Which Python runs the detector, and what to tell the user when there is none.

Order: the environment variable LANDSLIDE_WSSS_PYTHON, the plugin setting
(`landslide_wsss/python`, set in the dialog), then the project's `.venv` next to a source checkout
(the repository recorded in build_info.json by scripts/build_plugin_zip.py, or the folder above
the plugin when it runs straight from the repository's qgis_plugin/). No QGIS import here.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import List, Optional, Tuple

ENV_VAR = "LANDSLIDE_WSSS_PYTHON"
REPO_URL = "https://github.com/landslide-wsss/landslide_wsss"
PLUGIN_DIR = Path(__file__).resolve().parent


def venv_python(repo: Path) -> Path:
    if os.name == "nt":
        return repo / ".venv" / "Scripts" / "python.exe"
    return repo / ".venv" / "bin" / "python"


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


def resolve_python(setting: Optional[str] = None) -> Tuple[Optional[str], str]:
    """(interpreter path or None, where it came from)."""
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        return env, f"environment variable {ENV_VAR}"
    if setting and setting.strip():
        return setting.strip(), "plugin settings"
    for repo in candidate_repos():
        py = venv_python(repo)
        if py.is_file():
            return str(py), f"project environment {repo}"
    return None, "not found"


def install_hint(python: Optional[str] = None, found: bool = False) -> str:
    where = "" if found else (f"No Python interpreter at {python}. " if python else
                              "The landslide_wsss Python environment was not found. ")
    return (
        where
        + "Install it outside QGIS: git clone " + REPO_URL + " && cd landslide_wsss && make setup "
        "(creates .venv with PyTorch and landslide_wsss). Then give the plugin that interpreter, "
        ".../landslide_wsss/.venv/bin/python, in the Landslide WSSS dialog (Python interpreter) "
        "or in the environment variable " + ENV_VAR + "."
    )
