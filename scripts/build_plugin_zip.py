#!/usr/bin/env python3
"""Build the installable QGIS plugin zip: dist/landslide_wsss_plugin-VERSION.zip.

    python3 scripts/build_plugin_zip.py            # -> dist/landslide_wsss_plugin-0.1.0.zip
    python3 scripts/build_plugin_zip.py --stage D  # also/only lay the plugin folder out in D/ (tests)
    python3 scripts/build_plugin_zip.py --wheel dist/landslide_wsss-0.1.0-py3-none-any.whl --portable
                                                   # the zip `make dist` writes, for other machines

The zip holds one folder, landslide_wsss_plugin/, with the sources of qgis_plugin/, the repository's
metadata.txt (the source of truth) and LICENSE, and build_info.json: the version, and (unless --portable)
the repository path, so a plugin built from a checkout finds that checkout's .venv/bin/python by itself.
With --wheel it also carries the package wheel in wheels/, from which the plugin installs its own
environment (qgis_plugin/installer.py). Standard library only.
"""
from __future__ import annotations

import argparse
import configparser
import json
import shutil
import sys
import zipfile
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "qgis_plugin"
PLUGIN_NAME = "landslide_wsss_plugin"
SKIP_DIRS = {"__pycache__", ".pytest_cache", "tests", "wheels"}
SKIP_SUFFIXES = {".pyc", ".pyo", ".orig", ".rej"}
REQUIRED = ("name", "qgisMinimumVersion", "description", "about", "version", "author", "email",
            "repository", "tracker", "icon", "tags", "hasProcessingProvider")


def read_metadata(path: Path = ROOT / "metadata.txt") -> dict:
    cp = configparser.ConfigParser(interpolation=None)
    cp.optionxform = str
    cp.read(path, encoding="utf-8")
    meta = dict(cp["general"])
    missing = [k for k in REQUIRED if not meta.get(k, "").strip()]
    if missing:
        sys.exit(f"error: metadata.txt lacks {', '.join(missing)}")
    if not (SRC / meta["icon"]).is_file():
        sys.exit(f"error: icon {meta['icon']} not found in qgis_plugin/")
    return meta


def plugin_files():
    """(source path, path inside the plugin folder) for every file of the plugin."""
    for p in sorted(SRC.rglob("*")):
        rel = p.relative_to(SRC)
        if p.is_dir() or any(part in SKIP_DIRS for part in rel.parts) or p.suffix in SKIP_SUFFIXES:
            continue
        if rel.name in ("metadata.txt", "LICENSE", "build_info.json"):
            continue  # come from the repository root / are generated
        yield p, rel.as_posix()
    yield ROOT / "metadata.txt", "metadata.txt"
    yield ROOT / "LICENSE", "LICENSE"


def build_info(meta: dict, wheel: Optional[Path] = None, portable: bool = False) -> str:
    info = {"version": meta["version"]}
    if not portable:
        info["repository_path"] = str(ROOT)
    if wheel is not None:
        info["wheel"] = wheel.name
    return json.dumps(info, indent=2) + "\n"


def all_files(wheel: Optional[Path]):
    yield from plugin_files()
    if wheel is not None:
        yield wheel, f"wheels/{wheel.name}"


def check_wheel(wheel: Optional[Path]) -> Optional[Path]:
    if wheel is None:
        return None
    if not wheel.is_file() or not wheel.name.startswith("landslide_wsss-") or wheel.suffix != ".whl":
        sys.exit(f"error: not a landslide_wsss wheel: {wheel}")
    return wheel


def stage(dest: Path, meta: dict, wheel: Optional[Path] = None, portable: bool = False) -> Path:
    """Lay the plugin folder out as QGIS installs it: dest/landslide_wsss_plugin/..."""
    wheel = check_wheel(wheel)
    target = dest / PLUGIN_NAME
    if target.exists():
        shutil.rmtree(target)
    for src, rel in all_files(wheel):
        out = target / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, out)
    (target / "build_info.json").write_text(build_info(meta, wheel, portable), encoding="utf-8")
    return target


def build_zip(meta: dict, out_dir: Path, wheel: Optional[Path] = None, portable: bool = False) -> Path:
    wheel = check_wheel(wheel)
    out_dir.mkdir(parents=True, exist_ok=True)
    zpath = out_dir / f"{PLUGIN_NAME}-{meta['version']}.zip"
    tmp = zpath.with_suffix(".zip.tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for src, rel in all_files(wheel):
            # a wheel is a zip already: stored, not compressed again
            zf.write(src, f"{PLUGIN_NAME}/{rel}", zipfile.ZIP_STORED if rel.endswith(".whl") else None)
        zf.writestr(f"{PLUGIN_NAME}/build_info.json", build_info(meta, wheel, portable))
    tmp.replace(zpath)
    return zpath


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dist", default=str(ROOT / "dist"), help="output folder for the zip (default: dist/)")
    ap.add_argument("--stage", metavar="DIR", help="also copy the plugin folder into DIR (a QGIS plugins folder)")
    ap.add_argument("--no-zip", action="store_true", help="only --stage, no zip")
    ap.add_argument("--wheel", help="carry this landslide_wsss wheel (wheels/), for the plugin's own install")
    ap.add_argument("--portable", action="store_true",
                    help="record no path to this checkout (a zip for other machines)")
    args = ap.parse_args(argv)
    meta = read_metadata()
    wheel = Path(args.wheel) if args.wheel else None
    if args.stage:
        print(stage(Path(args.stage), meta, wheel, args.portable))
    if not args.no_zip:
        print(build_zip(meta, Path(args.dist), wheel, args.portable))
    return 0


if __name__ == "__main__":
    sys.exit(main())
