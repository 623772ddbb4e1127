"""Set up the detector's Python environment from the wheel the plugin carries. No QGIS import.

    install_environment(profile_dir)   # blocking; call it from a worker thread (install_task.py does)

makes <profile_dir>/landslide_wsss/venv: a virtual environment from a Python >= 3.9 (QGIS's own where it
ships one, else python3 on PATH), `pip install` of the carried wheel (its requirements come from the package
index, or whatever index the user's pip configuration names), a check that `landslide_wsss.cli methods`
runs, and last the marker file that makes environment.resolve_python count the environment. A failed or
cancelled install removes the folder, so nothing half-made is ever used. With a finished install there
already (an update to a newer carried wheel), pip upgrades it in place, and a failed update keeps it when
it still passes the check. Tests drive this module directly.
"""
from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, List, Optional, Sequence

from .environment import MARKER, carried_wheel, interpreter, managed_env, read_marker
from .runner import Canceled, RunError, child_env, end_process, pump, start_process, stop_process

MIN_PYTHON = (3, 9)
PROBE_TIMEOUT_S = 30.0
# What pip prints when it cannot reach the index (urllib3 / requests wording, also behind a proxy).
NETWORK_MARKERS = ("NewConnectionError", "Failed to establish a new connection", "Temporary failure in name resolution",
                   "Name or service not known", "nodename nor servname", "getaddrinfo failed", "Network is unreachable",
                   "ConnectTimeoutError", "Connection to pypi.org timed out", "ProxyError", "Cannot connect to proxy",
                   "Could not fetch URL", "Read timed out", "No route to host", "Connection refused")
NO_NETWORK = ("cannot reach the Python package index to download landslide_wsss's requirements (numpy, rasterio, "
              "onnxruntime, ...). Check the internet connection (behind a proxy, set HTTPS_PROXY for QGIS, or "
              "configure pip's index in pip.conf), then click 'Install environment' again.")
# The probe every candidate Python must pass: its version, and a working venv with pip (Debian and Ubuntu
# split ensurepip off into python3-venv).
_PROBE = ("import sys, json\n"
          "try:\n"
          "    import venv, ensurepip\n"
          "    ok = True\n"
          "except ImportError:\n"
          "    ok = False\n"
          "print(json.dumps({'version': list(sys.version_info[:3]), 'venv': ok}))\n")


class InstallError(RunError):
    """The install failed; the message says why and what to do (no traceback)."""


class NoNetwork(InstallError):
    """pip could not reach the package index."""


@dataclass
class BasePython:
    path: str
    version: tuple


@dataclass
class InstallResult:
    python: str  # the new environment's interpreter
    env: str  # its folder
    package_version: str
    wheel: str
    base_python: str
    seconds: float


def base_python_candidates() -> List[str]:
    """QGIS's own Python first (the one running this code, found beside its prefix), then PATH's."""
    major, minor = sys.version_info[:2]
    found: List[str] = []
    for prefix in dict.fromkeys((sys.exec_prefix, sys.base_exec_prefix)):
        p = Path(prefix)
        if os.name == "nt":
            found.append(str(p / "python.exe"))  # OSGeo4W / the standalone installer: apps/Python3x
        else:
            found += [str(p / "bin" / f"python{major}.{minor}"), str(p / "bin" / "python3")]  # Linux, macOS app
    if Path(sys.executable).name.lower().startswith("python"):  # (inside QGIS it is the qgis binary)
        found.append(sys.executable)
    for name in ("python3", "python"):
        which = shutil.which(name)
        if which:
            found.append(which)
    return list(dict.fromkeys(found))


def probe_python(path: str) -> Optional[dict]:
    """{'version': [3, 11, 2], 'venv': bool} for an interpreter that runs, else None."""
    if not os.path.isfile(path):
        return None
    try:
        res = subprocess.run([path, "-c", _PROBE], capture_output=True, timeout=PROBE_TIMEOUT_S, env=child_env(),
                             stdin=subprocess.DEVNULL, cwd=tempfile.gettempdir())
    except (OSError, subprocess.TimeoutExpired):
        return None
    try:
        info = json.loads(res.stdout.decode("utf-8", "replace").strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None
    return info if res.returncode == 0 and isinstance(info, dict) else None


def find_base_python(candidates: Optional[Iterable[str]] = None) -> BasePython:
    """The first candidate that is a Python >= 3.9 able to make a virtual environment with pip."""
    no_venv = []
    tried = list(base_python_candidates() if candidates is None else candidates)
    for path in tried:
        info = probe_python(path)
        if not info:
            continue
        version = tuple(info.get("version") or ())
        if version[:2] < MIN_PYTHON:
            continue
        if not info.get("venv"):
            no_venv.append(path)
            continue
        return BasePython(path, version)
    if no_venv:
        raise InstallError(f"{no_venv[0]} cannot create virtual environments (its venv/ensurepip modules are "
                           "missing). Install them (Debian/Ubuntu: sudo apt install python3-venv) and try again.")
    need = ".".join(map(str, MIN_PYTHON))
    raise InstallError(f"no Python {need} or newer found to create the environment (tried {', '.join(tried)}). "
                       f"Install Python {need} or newer and try again.")


def install_environment(
    profile_dir,
    wheel: Optional[Path] = None,
    base_python: Optional[str] = None,
    pip_args: Sequence[str] = (),
    on_progress: Optional[Callable[[float], None]] = None,
    on_message: Optional[Callable[[str], None]] = None,
    is_canceled: Optional[Callable[[], bool]] = None,
    env: Optional[dict] = None,
) -> InstallResult:
    """Make (or remake) the plugin's environment in `profile_dir`; blocking. Returns what was installed.

    `wheel`: the landslide_wsss wheel (default: the one the plugin carries). `base_python`: the interpreter
    to make the environment from (default: find_base_python()). `pip_args`: extra `pip install` options
    (an index URL, --no-deps). `env`: the environment variables of the child processes (default: QGIS's,
    without its Python/GDAL/PROJ variables). Raises NoNetwork, InstallError or Canceled; on any of them
    the environment folder is gone, unless it was a finished install before and still passes the check.
    """
    started = time.monotonic()
    progress = on_progress or (lambda p: None)
    say = on_message or (lambda text: None)
    wheel = Path(wheel) if wheel else carried_wheel()
    if wheel is None or not wheel.is_file():
        raise InstallError("this plugin carries no landslide_wsss wheel (a plugin zip built by `make dist` does); "
                           "install landslide_wsss yourself and give the plugin its interpreter")
    venv = managed_env(profile_dir)
    step = _Steps(child_env(env), is_canceled)
    previous = read_marker(venv) if interpreter(venv).is_file() else None
    python = str(interpreter(venv))
    try:
        if previous is not None:  # an update: pip replaces the package in the working environment
            say(f"Updating the environment at {venv}")
            base_path = str(previous.get("base_python", ""))
        else:
            if venv.exists():  # what an interrupted install left
                shutil.rmtree(venv)
            venv.parent.mkdir(parents=True, exist_ok=True)
            progress(1.0)
            base = find_base_python([base_python] if base_python else None)
            base_path = base.path
            say(f"Creating a Python {'.'.join(map(str, base.version))} environment at {venv} (from {base.path})")
            step.run([base.path, "-m", "venv", str(venv)], "creating the virtual environment")
        progress(15.0)
        say(f"Installing {wheel.name} and its requirements")
        pip = _PipProgress(progress, say, start=15.0, end=90.0)
        step.run([python, "-m", "pip", "install", "--no-input", "--disable-pip-version-check", "--progress-bar",
                  "off", "--no-warn-script-location", "--upgrade", *pip_args, str(wheel)], "pip install",
                 on_line=pip.line, classify=_pip_failure)
        progress(90.0)
        say("Checking the installed detector")
        version = _check(step, python)
        result = InstallResult(python=python, env=str(venv), package_version=version, wheel=wheel.name,
                               base_python=base_path, seconds=round(time.monotonic() - started, 1))
        _write_marker(venv, result)
        progress(100.0)
        say(f"landslide_wsss {version} installed in {venv} ({result.seconds:.0f} s)")
        return result
    except BaseException:
        # Never leave a half-made environment behind; a failed update keeps the old one if it still works.
        if previous is None or not _still_works(python, env):
            shutil.rmtree(venv, ignore_errors=True)
        raise


def _check(step: "_Steps", python: str) -> str:
    """The installed detector lists its methods; returns the installed package version."""
    out = step.run([python, "-m", "landslide_wsss.cli", "methods", "--json"], "the check of the installed detector")
    listing = _last_json(out)
    if not listing or "default" not in listing:
        raise InstallError("the installed detector did not list its methods: " + " | ".join(out[-3:]))
    return step.run([python, "-c", "import landslide_wsss; print(landslide_wsss.__version__)"],
                    "the version check")[-1].strip()


def _still_works(python: str, env: Optional[dict]) -> bool:
    try:
        _check(_Steps(child_env(env), None), python)
        return True
    except RunError:
        return False


def install_status(profile_dir, wheel: Optional[Path] = None) -> str:
    """'missing' (no finished install), 'outdated' (made from another wheel than the carried one) or 'ready'."""
    marker = read_marker(managed_env(profile_dir)) if profile_dir else None
    if marker is None or not interpreter(managed_env(profile_dir)).is_file():
        return "missing"
    wheel = wheel or carried_wheel()
    return "outdated" if wheel is not None and marker.get("wheel") != wheel.name else "ready"


def _write_marker(venv: Path, result: InstallResult) -> None:
    tmp = venv / (MARKER + ".tmp")
    tmp.write_text(json.dumps(result.__dict__, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, venv / MARKER)


def _last_json(lines: List[str]) -> Optional[dict]:
    for line in reversed(lines):
        line = line.strip()
        if line.startswith("{"):
            try:
                data = json.loads(line)
            except ValueError:
                continue
            return data if isinstance(data, dict) else None
    return None


def _pip_failure(lines: List[str], rc: int) -> InstallError:
    text = "\n".join(lines)
    if any(m in text for m in NETWORK_MARKERS):
        return NoNetwork(NO_NETWORK)
    errors = [ln.strip() for ln in lines if ln.lstrip().startswith("ERROR:")]
    detail = " | ".join(errors[-3:]) or " | ".join(ln.strip() for ln in lines[-3:] if ln.strip())
    return InstallError(f"pip could not install landslide_wsss (exit code {rc}): {detail}")


class _PipProgress:
    """Maps pip's output onto a progress range: each requirement collected moves it a little, then the
    install step; the number of requirements is not known in advance, so the collect phase is asymptotic."""

    def __init__(self, progress, say, start: float, end: float):
        self.progress, self.say, self.start, self.end = progress, say, start, end
        self.collected = 0

    def line(self, text: str) -> None:
        text = text.strip()
        span = self.end - self.start
        if text.startswith("Collecting ") or text.startswith("Processing "):
            self.collected += 1
            self.progress(self.start + 0.6 * span * (1.0 - 0.9 ** self.collected))
            self.say(text)
        elif text.startswith("Installing collected packages"):
            self.progress(self.start + 0.7 * span)
            self.say("Installing the downloaded packages")


class _Steps:
    """Runs one command at a time (stdout and stderr together, line by line), cancellable."""

    def __init__(self, env: dict, is_canceled: Optional[Callable[[], bool]]):
        self.env = env
        self.is_canceled = is_canceled or (lambda: False)

    def run(self, argv: List[str], what: str, on_line: Optional[Callable[[str], None]] = None,
            classify: Optional[Callable[[List[str], int], InstallError]] = None) -> List[str]:
        if self.is_canceled():
            raise Canceled("installation cancelled; nothing was left behind")
        try:
            proc = start_process(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=self.env,
                                 cwd=tempfile.gettempdir())
        except OSError as exc:
            raise InstallError(f"{what}: cannot start {argv[0]} ({exc})") from None
        lines: List[str] = []
        pipe: "queue.Queue[Optional[str]]" = queue.Queue()
        reader = threading.Thread(target=pump, args=(proc.stdout, pipe.put), daemon=True)
        reader.start()
        try:
            while True:
                if self.is_canceled():
                    stop_process(proc)
                    raise Canceled("installation cancelled; nothing was left behind")
                try:
                    line = pipe.get(timeout=0.1)
                except queue.Empty:
                    continue
                if line is None:
                    break
                lines.append(line)
                if on_line:
                    on_line(line)
            proc.wait()
        finally:
            end_process(proc)
        if proc.returncode != 0:
            if classify:
                raise classify(lines, proc.returncode)
            tail = " | ".join(ln.strip() for ln in lines[-3:] if ln.strip())
            raise InstallError(f"{what} failed (exit code {proc.returncode}): {tail}")
        return lines
