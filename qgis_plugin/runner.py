"""The one code path that runs a detection: argv, subprocess, JSON lines, cancel, atomic output.

Used by the toolbar task (task.py) and by the Processing algorithm (provider.py). Imports neither
QGIS nor landslide_wsss: the detector runs in the project's own Python environment as

    PY -m landslide_wsss.cli detect INPUT -o OUT.gpkg --jsonl [options]

and speaks one JSON object per stdout line:
    {"event": "progress", "percent": float}
    {"event": "message", "level": "info|warning", "text": str}
    {"event": "result", "output": path, "features": int, "crs": str, "layer": str}
    {"event": "error", "message": str}              (with exit code 2)

The child writes into a private temporary directory beside OUT; only a finished run is moved to OUT,
so a failed, killed or cancelled run leaves nothing at OUT (and no temporary files either).
"""
from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, List, Optional

from .environment import install_hint

METHODS = (
    "cam",
    "gradcam",
    "gradcam++",
    "scorecam",
    "scorecam-cyclegan",
    "unet",
    "terrain-crop",
    "rcm-mam",
    "adversarial-erasing",
)
DEVICES = ("auto", "cpu", "cuda")
INTERRUPT_GRACE_S = 2.0
TERMINATE_GRACE_S = 5.0
# Variables QGIS sets for its own Python/GDAL/PROJ; inherited by the child they would mix QGIS's
# libraries and data files with the project environment's wheels.
_SCRUB_ENV = ("PYTHONHOME", "PYTHONPATH", "PYTHONSTARTUP", "GDAL_DATA", "GDAL_DRIVER_PATH", "PROJ_LIB",
              "PROJ_DATA", "QGIS_PREFIX_PATH", "VIRTUAL_ENV", "__PYVENV_LAUNCHER__")


class DetectError(Exception):
    """A run failed; the message is meant for the user (no traceback)."""


class EnvironmentProblem(DetectError):
    """The project's Python environment is missing or broken; the message says how to install it."""


class Canceled(DetectError):
    """The run was cancelled by the user; nothing was written."""


@dataclass
class DetectParams:
    """Everything the dialog and the Processing algorithm can set. Empty / None = the CLI's default."""

    input: str
    output: str
    bands: str = ""  # "1,2,3"; empty = the model's default
    model: str = ""  # empty = embedded default model
    device: str = "auto"
    method: str = ""  # empty = the model's method
    tile: Optional[int] = None
    overlap: Optional[int] = None
    threshold: Optional[float] = None
    min_area: Optional[float] = None
    dsm: str = ""
    overwrite: bool = True


@dataclass
class DetectResult:
    output: str
    features: int
    crs: str
    layer: str
    messages: List[str] = field(default_factory=list)


def normalize_bands(text: str) -> str:
    """'1, 2 3' -> '1,2,3'; raises DetectError for anything else than positive integers."""
    parts = [p for p in text.replace(";", ",").replace(" ", ",").split(",") if p.strip()]
    try:
        nums = [int(p) for p in parts]
    except ValueError:
        raise DetectError(f"bands must be a comma-separated list of band numbers such as 1,2,3 (got {text!r})") from None
    if any(n < 1 for n in nums):
        raise DetectError(f"band numbers start at 1 (got {text!r})")
    return ",".join(str(n) for n in nums)


def build_argv(python: str, params: DetectParams, output: Optional[str] = None) -> List[str]:
    """The command line for one run; `output` overrides params.output (the private temp path)."""
    argv = [python, "-m", "landslide_wsss.cli", "detect", params.input, "-o", output or params.output, "--jsonl"]
    if params.overwrite:
        argv.append("--overwrite")
    if params.model:
        argv += ["--model", params.model]
    if params.device and params.device != "auto":
        if params.device not in DEVICES:
            raise DetectError(f"device must be one of {', '.join(DEVICES)} (got {params.device!r})")
        argv += ["--device", params.device]
    if params.method:
        argv += ["--method", params.method]
    if params.tile is not None:
        argv += ["--tile", str(int(params.tile))]
    if params.overlap is not None:
        argv += ["--overlap", str(int(params.overlap))]
    if params.bands and params.bands.strip():
        argv += ["--bands", normalize_bands(params.bands)]
    if params.min_area is not None:
        argv += ["--min-area", _num(params.min_area)]
    if params.threshold is not None:
        argv += ["--threshold", _num(params.threshold)]
    if params.dsm:
        argv += ["--dsm", params.dsm]
    return argv


def _num(x: float) -> str:
    return repr(float(x)).rstrip("0").rstrip(".") if float(x) != int(x) else str(int(x))


def child_env(base=None, scratch: Optional[str] = None) -> dict:
    env = dict(os.environ if base is None else base)
    for key in _SCRUB_ENV:
        env.pop(key, None)
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONIOENCODING"] = "utf-8"
    if scratch:
        # The child's temporary files go into the private run folder too, so a killed run
        # leaves no work files in the system temp folder either.
        for key in ("TMPDIR", "TMP", "TEMP"):
            env[key] = scratch
    return env


def check_output_path(params: DetectParams) -> Path:
    out = Path(params.output).expanduser()
    if out.suffix.lower() != ".gpkg":
        raise DetectError(f"the output must be a GeoPackage file ending in .gpkg (got {out.name!r})")
    if not out.parent.is_dir():
        raise DetectError(f"the output folder does not exist: {out.parent}")
    if not os.access(out.parent, os.W_OK):
        raise DetectError(f"the output folder is not writable: {out.parent}")
    if out.exists() and not params.overwrite:
        raise DetectError(f"{out} already exists (tick 'overwrite' to replace it)")
    return out.resolve()


def run_detect(
    python: Optional[str],
    params: DetectParams,
    on_progress: Optional[Callable[[float], None]] = None,
    on_message: Optional[Callable[[str, str], None]] = None,
    is_canceled: Optional[Callable[[], bool]] = None,
    on_started: Optional[Callable[[subprocess.Popen], None]] = None,
    poll_s: float = 0.1,
) -> DetectResult:
    """Run one detection to the end (blocking; call it from a worker thread).

    Raises EnvironmentProblem, DetectError or Canceled; on any of them nothing is left at the output.
    """
    if not python or not os.path.isfile(python) or not os.access(python, os.X_OK):
        raise EnvironmentProblem(install_hint(python))
    out = check_output_path(params)
    # The child runs in its private folder: hand it absolute paths.
    params = replace(params, input=os.path.abspath(os.path.expanduser(params.input)),
                     model=os.path.abspath(os.path.expanduser(params.model)) if params.model else "",
                     dsm=os.path.abspath(os.path.expanduser(params.dsm)) if params.dsm else "")
    if not os.path.isfile(params.input):
        raise DetectError(f"input raster not found: {params.input}")
    messages: List[str] = []
    tmpdir = tempfile.mkdtemp(prefix=".landslide_wsss-", dir=str(out.parent))
    proc = None
    try:
        tmp_out = os.path.join(tmpdir, out.name)
        argv = build_argv(python, params, output=tmp_out)
        kwargs = dict(stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                      env=child_env(scratch=tmpdir), cwd=tmpdir)
        if os.name == "posix":
            kwargs["start_new_session"] = True  # own process group: cancel reaches its workers too
        else:
            kwargs["creationflags"] = getattr(subprocess, "CREATE_NO_WINDOW", 0) | getattr(
                subprocess, "CREATE_NEW_PROCESS_GROUP", 0)
        try:
            proc = subprocess.Popen(argv, **kwargs)
        except OSError as exc:
            raise EnvironmentProblem(f"cannot start {python}: {exc}. " + install_hint(python)) from None
        if on_started:
            on_started(proc)
        lines: "queue.Queue[Optional[str]]" = queue.Queue()
        stderr_tail: List[str] = []
        t_out = threading.Thread(target=_pump, args=(proc.stdout, lines.put), daemon=True)
        t_err = threading.Thread(target=_pump, args=(proc.stderr, lambda s: _tail(stderr_tail, s)), daemon=True)
        t_out.start()
        t_err.start()
        result = None
        error = None
        stdout_done = False
        while True:
            if is_canceled and is_canceled():
                _stop(proc)
                raise Canceled("detection cancelled; nothing was written")
            try:
                line = lines.get(timeout=poll_s)
            except queue.Empty:
                if stdout_done and proc.poll() is not None:
                    break
                continue
            if line is None:
                stdout_done = True
                continue
            event = _parse(line)
            if event is None:
                continue
            kind = event.get("event")
            if kind == "progress" and on_progress:
                try:
                    on_progress(max(0.0, min(100.0, float(event.get("percent", 0.0)))))
                except (TypeError, ValueError):
                    pass
            elif kind == "message":
                text = str(event.get("text", ""))
                messages.append(text)
                level = str(event.get("level", "info")).lower()
                if on_message:
                    on_message("warning" if level in ("warning", "error", "critical") else "info", text)
            elif kind == "result":
                result = event
            elif kind == "error":
                error = str(event.get("message", "")) or None
        proc.wait()
        t_err.join(timeout=2)
        rc = proc.returncode
        if rc != 0 or result is None:
            raise _failure(python, rc, error, stderr_tail)
        produced = Path(str(result.get("output") or tmp_out))
        if not produced.is_file():
            produced = Path(tmp_out)
        if not produced.is_file():
            raise DetectError("the detector reported success but wrote no GeoPackage")
        if out.exists() and not params.overwrite:
            raise DetectError(f"{out} appeared during the run; not overwritten")
        os.replace(str(produced), str(out))
        try:
            features = int(result.get("features", -1))
        except (TypeError, ValueError):
            features = -1
        return DetectResult(output=str(out), features=features, crs=str(result.get("crs", "")),
                            layer=str(result.get("layer") or out.stem), messages=messages)
    finally:
        if proc is not None:
            if proc.poll() is None:
                _stop(proc)
            for stream in (proc.stdout, proc.stderr):
                try:
                    stream.close()
                except (OSError, ValueError):
                    pass
        shutil.rmtree(tmpdir, ignore_errors=True)


def _pump(stream, put) -> None:
    try:
        for raw in iter(stream.readline, b""):
            put(raw.decode("utf-8", errors="replace").rstrip("\r\n"))
    except (OSError, ValueError):
        pass
    finally:
        put(None)


def _tail(buf: List[str], line: Optional[str], keep: int = 40) -> None:
    if line is None:
        return
    buf.append(line)
    del buf[:-keep]


def _parse(line: str):
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        event = json.loads(line)
    except json.JSONDecodeError:
        return None
    return event if isinstance(event, dict) else None


def _stop(proc: subprocess.Popen) -> None:
    """Stop the child and its process group: SIGINT (the CLI cleans up and exits 130), then SIGTERM,
    then SIGKILL, each after a short grace period. Whatever it leaves behind is in the private run
    folder, which the caller deletes."""
    steps = [(signal.SIGINT, INTERRUPT_GRACE_S, False), (signal.SIGTERM, TERMINATE_GRACE_S, False),
             (signal.SIGKILL, TERMINATE_GRACE_S, True)] if os.name == "posix" else \
        [(None, TERMINATE_GRACE_S, False), (None, TERMINATE_GRACE_S, True)]
    for sig, grace, kill in steps:
        if proc.poll() is not None:
            return
        _signal(proc, sig, kill=kill)
        try:
            proc.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


def _signal(proc, sig, kill=False) -> None:
    try:
        if os.name == "posix":
            os.killpg(proc.pid, sig)
        elif kill:
            proc.kill()
        else:
            proc.terminate()
    except (ProcessLookupError, PermissionError, OSError):
        try:
            proc.kill() if kill else proc.terminate()
        except OSError:
            pass


_ENV_MARKERS = ("No module named", "ModuleNotFoundError", "ImportError", "DLL load failed",
                "cannot open shared object file", "undefined symbol", "GLIBC")


def _failure(python: str, rc: int, error: Optional[str], stderr_tail: List[str]) -> DetectError:
    stderr_text = "\n".join(stderr_tail)
    if "unrecognized arguments" in stderr_text and "--jsonl" in stderr_text:
        return EnvironmentProblem(
            f"the landslide_wsss installed for {python} is too old for this plugin (no --jsonl). "
            "Update it: git pull && make setup in the landslide_wsss repository.")
    # Exit 2 is a deliberate "bad input" answer; anything else that smells of a failed import means
    # the environment itself is broken (a missing or mismatched torch, GDAL, ... wheel).
    if rc != 2 and any(m in (error or stderr_text) for m in _ENV_MARKERS):
        detail = error or (stderr_tail[-1].strip() if stderr_tail else "")
        return EnvironmentProblem(f"the landslide_wsss environment at {python} is broken ({detail}). "
                                  + install_hint(python, found=True))
    if error:
        return DetectError(error)
    err_lines = [ln for ln in stderr_tail if ln.startswith("error:")]
    if err_lines:
        return DetectError(err_lines[-1][len("error:"):].strip())
    if rc == 0:
        return DetectError("the detector ended without reporting a result (is landslide_wsss up to date?)")
    if os.name == "posix" and rc is not None and rc < 0:
        return DetectError(f"the detector was stopped by signal {-rc}"
                           + (" (out of memory?)" if -rc == signal.SIGKILL else ""))
    last = " | ".join(ln.strip() for ln in stderr_tail[-3:] if ln.strip())
    return DetectError(f"the detector failed with exit code {rc}" + (f": {last}" if last else ""))


def probe_environment(python: Optional[str], timeout_s: float = 20.0) -> Optional[str]:
    """Cheap check (no torch import): None when `python` runs and can find landslide_wsss.cli,
    else a user-facing message saying what to install and how."""
    if not python or not os.path.isfile(python) or not os.access(python, os.X_OK):
        return install_hint(python)
    # find_spec of the top-level package only: importing it could pull in torch (slow).
    code = ("import importlib.util, os, sys\n"
            "spec = importlib.util.find_spec('landslide_wsss')\n"
            "dirs = list(spec.submodule_search_locations or []) if spec else []\n"
            "ok = any(os.path.isfile(os.path.join(d, 'cli.py')) for d in dirs)\n"
            "sys.stdout.write('ok' if ok else 'missing')\n")
    try:
        # cwd: a neutral folder, so a landslide_wsss source folder in QGIS's cwd is not found by accident
        res = subprocess.run([python, "-c", code], capture_output=True, timeout=timeout_s,
                             env=child_env(), stdin=subprocess.DEVNULL, cwd=tempfile.gettempdir())
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"cannot run {python} ({exc}). " + install_hint(python, found=True)
    out = res.stdout.decode("utf-8", "replace").strip()
    if res.returncode != 0 or out != "ok":
        detail = res.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["landslide_wsss not installed"]
        return f"{python} cannot run landslide_wsss ({detail[0]}). " + install_hint(python, found=True)
    return None
