"""The model card's tables, printed from a model file's own metadata (every choice and every figure
the default-model command recorded there), so the docs can be checked against the file.

    python benchmarks/model_report.py [--model landslide_wsss/weights/default.safetensors]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from landslide_wsss.checkpoint import read_metadata  # noqa: E402
from landslide_wsss.model_card import render  # noqa: E402
from landslide_wsss.wsss import DEFAULT_MODEL  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(DEFAULT_MODEL))
    a = ap.parse_args(argv)
    print(render(read_metadata(a.model), a.model))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
