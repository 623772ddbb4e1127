"""Saved dialog values (QgsSettings under `landslide_wsss/`)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional, Tuple

from qgis.core import QgsApplication, QgsSettings

from .environment import resolve_python

PREFIX = "landslide_wsss/"


@dataclass
class SavedSettings:
    python: str = ""
    model: str = ""
    method: str = ""
    device: str = "auto"
    tile: Optional[int] = None
    overlap: Optional[int] = None
    threshold: Optional[float] = None
    min_area: Optional[float] = None
    output_dir: str = ""
    overwrite: bool = True


def _opt(value, cast):
    if value in (None, "", "None"):
        return None
    try:
        return cast(value)
    except (TypeError, ValueError):
        return None


def load() -> SavedSettings:
    s = QgsSettings()
    g = lambda key, default="": s.value(PREFIX + key, default)  # noqa: E731
    return SavedSettings(
        python=str(g("python") or ""),
        model=str(g("model") or ""),
        method=str(g("method") or ""),
        device=str(g("device", "auto") or "auto"),
        tile=_opt(g("tile"), int),
        overlap=_opt(g("overlap"), int),
        threshold=_opt(g("threshold"), float),
        min_area=_opt(g("min_area"), float),
        output_dir=str(g("output_dir") or ""),
        overwrite=str(g("overwrite", "true")).lower() in ("true", "1", "yes"),
    )


def save(values: SavedSettings) -> None:
    s = QgsSettings()
    for key, value in values.__dict__.items():
        s.setValue(PREFIX + key, "" if value is None else (str(value).lower() if isinstance(value, bool) else value))


def profile_dir() -> str:
    """The QGIS profile folder, where the plugin installs its own environment."""
    return QgsApplication.qgisSettingsDirPath()


def resolve(setting: Optional[str] = None) -> Tuple[Optional[str], str]:
    """(interpreter, where it came from): env var > `setting` (default: the saved one) > project .venv >
    the plugin's own environment in the profile folder."""
    return resolve_python(load().python if setting is None else setting, profile_dir())


def configured_python() -> Optional[str]:
    """The interpreter the plugin will use now."""
    return resolve()[0]


def remember_trained_model(path: str) -> None:
    """Kept apart from the dialog values, which the dialog rewrites as a whole."""
    QgsSettings().setValue(PREFIX + "last_trained_model", path)


def last_trained_model() -> str:
    """The model the last successful training wrote, if that file still exists."""
    path = str(QgsSettings().value(PREFIX + "last_trained_model", "") or "")
    return path if path and os.path.isfile(path) else ""
