"""The two places the package finds files without being told: the embedded model, and the data folder
of the training, evaluation and benchmark commands (`shared/data` beside the repository, or the folder
named by the LANDSLIDE_WSSS_DATA environment variable)."""
from __future__ import annotations

import os
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
DEFAULT_MODEL = PACKAGE / "weights" / "default.safetensors"
DATA_DIR = Path(os.environ.get("LANDSLIDE_WSSS_DATA") or PACKAGE.parent.parent / "shared" / "data")
