"""What every command's parsing shares (the `landslide-wsss` CLI and the trainers' own parsers)."""
from __future__ import annotations

import argparse
import json
import sys


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, no usage dump
        sys.stderr.write(f"error: {message} (see {self.prog} --help)\n")
        raise SystemExit(2)


def emit(event: dict) -> None:
    """One JSON-lines event on stdout (the QGIS plugin reads these)."""
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()
