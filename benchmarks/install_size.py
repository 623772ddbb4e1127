"""Size on disk of a fresh detection environment (the wheel and its core requirements) against the full one
(the wheel with the `train` extra: torch and torchvision), each a new virtual environment.

    python benchmarks/install_size.py [--wheel dist/landslide_wsss-*.whl] [--python python3]
        [--skip-full] [--keep DIR] [-o benchmarks/results/install_size.json]

Without --wheel the newest wheel in dist/ (`make dist`) is used, else one is built with `pip wheel`.
Requirements come from pip's configured index. Sizes are the disk blocks the environment folder uses, each
file counted once (hard links), in MB of 10^6 bytes; the largest top-level entries of site-packages show
what the size is made of. Standard library only; a figure, never an assert.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
MB = 1e6


def disk_usage(folder: Path) -> Dict[str, float]:
    """{'disk_mb': blocks used, 'apparent_mb': sum of file sizes, 'files': n}, each inode counted once."""
    seen = set()
    blocks = apparent = files = 0
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            st = os.lstat(os.path.join(dirpath, name))
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            blocks += getattr(st, "st_blocks", 0) * 512 or st.st_size
            apparent += st.st_size
            files += name in filenames
    return {"disk_mb": round(blocks / MB, 1), "apparent_mb": round(apparent / MB, 1), "files": files}


def site_packages(venv: Path) -> Path:
    if os.name == "nt":
        return venv / "Lib" / "site-packages"
    return next((venv / "lib").glob("python3*/site-packages"))


def python_of(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def largest_entries(venv: Path, n: int = 12) -> List[dict]:
    site = site_packages(venv)
    sizes = []
    for entry in site.iterdir():
        size = disk_usage(entry)["disk_mb"] if entry.is_dir() else round(entry.stat().st_size / MB, 1)
        sizes.append({"name": entry.name, "disk_mb": size})
    return sorted(sizes, key=lambda e: -e["disk_mb"])[:n]


def make_env(base_python: str, venv: Path, requirement: str) -> dict:
    """A new venv with `requirement` installed; what it cost and what it holds."""
    t0 = time.monotonic()
    subprocess.run([base_python, "-m", "venv", str(venv)], check=True)
    py = str(python_of(venv))
    subprocess.run([py, "-m", "pip", "install", "-q", "--disable-pip-version-check", requirement], check=True)
    seconds = time.monotonic() - t0
    listed = subprocess.run([py, "-m", "pip", "list", "--format", "json"], check=True, capture_output=True,
                            text=True).stdout
    torch = subprocess.run([py, "-c", "import torch"], capture_output=True).returncode == 0
    ort = subprocess.run([py, "-c", "import onnxruntime"], capture_output=True).returncode == 0
    return dict(disk_usage(venv), requirement=requirement, install_seconds=round(seconds, 1),
                packages=len(json.loads(listed)), torch=torch, onnxruntime=ort, largest=largest_entries(venv))


def find_wheel(explicit: Optional[str], build_dir: Path, base_python: str) -> Path:
    if explicit:
        return Path(explicit).resolve()
    wheels = sorted((ROOT / "dist").glob("landslide_wsss-*.whl"), key=lambda p: p.stat().st_mtime)
    if wheels:
        return wheels[-1]
    subprocess.run([base_python, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(build_dir), str(ROOT)],
                   check=True)
    return next(build_dir.glob("landslide_wsss-*.whl"))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--wheel", help="the landslide_wsss wheel (default: newest in dist/, else built)")
    ap.add_argument("--python", default=sys.executable, help="the Python the environments are made from")
    ap.add_argument("--skip-full", action="store_true", help="only the light environment")
    ap.add_argument("--keep", metavar="DIR", help="make the environments in DIR and keep them")
    ap.add_argument("-o", "--output", default=str(RESULTS / "install_size.json"))
    args = ap.parse_args(argv)

    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="install_size-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        wheel = find_wheel(args.wheel, work / "wheel", args.python)
        if not wheel.is_file():
            print(f"error: no wheel at {wheel}", file=sys.stderr)
            return 2
        result = {
            "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "host": platform.node(), "platform": platform.platform(),
            "python": subprocess.run([args.python, "-c", "import sys; print(sys.version.split()[0])"],
                                     capture_output=True, text=True, check=True).stdout.strip(),
            "wheel": wheel.name, "wheel_mb": round(wheel.stat().st_size / MB, 1),
            "light": make_env(args.python, work / "light", str(wheel)),
        }
        if not args.skip_full:
            result["full"] = make_env(args.python, work / "full", f"{wheel}[train]")
            result["light_share_of_full"] = round(result["light"]["disk_mb"] / result["full"]["disk_mb"], 3)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    tmp.replace(out)
    for kind in ("light", "full"):
        if kind in result:
            r = result[kind]
            print(f"{kind:5s} {r['disk_mb']:8.1f} MB on disk, {r['packages']} packages, torch {r['torch']}, "
                  f"onnxruntime {r['onnxruntime']}, {r['install_seconds']:.0f} s to install")
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
