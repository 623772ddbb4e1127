"""The one code path that runs the project's CLI: argv, subprocess, JSON lines, cancel, atomic output.

Used by the toolbar task (task.py), the dialog (method list) and the Processing algorithms (provider.py).
Imports neither QGIS nor landslide_wsss: each command runs in the project's own Python environment as

    PY -m landslide_wsss.cli detect INPUT -o OUT.gpkg --jsonl [options]
    PY -m landslide_wsss.cli train weak --image A.tif [...] --labels L.gpkg -o OUT.safetensors --jsonl [options]
    PY -m landslide_wsss.cli labels grid SCENE.tif -o OUT.gpkg --tile-m M --json
    PY -m landslide_wsss.cli methods --json [--model PATH]

--jsonl commands speak one JSON object per stdout line:
    {"event": "progress", "percent": float}
    {"event": "message", "level": "info|warning", "text": str}
    {"event": "result", "output": path, ...}
    {"event": "error", "message": str}              (with exit code 2)
--json commands print one JSON object (no "event" key), which is their result. Either way a refused
input is also one `error: ...` line on stderr with exit code 2.

A command that writes a file writes it into a private temporary directory beside OUT; only a finished
run is moved to OUT, so a failed, killed or cancelled run leaves nothing at OUT (and no temporary files).
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
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

from .environment import install_hint

DEVICES = ("auto", "cpu", "cuda")
RADIOMETRY = ("auto", "stretch", "none")  # `detect --radiometry`: how band values map onto the model's
INTERRUPT_GRACE_S = 2.0
TERMINATE_GRACE_S = 5.0
METHODS_TIMEOUT_S = 120.0
# Variables QGIS sets for its own Python/GDAL/PROJ; inherited by the child they would mix QGIS's
# libraries and data files with the project environment's wheels.
_SCRUB_ENV = ("PYTHONHOME", "PYTHONPATH", "PYTHONSTARTUP", "GDAL_DATA", "GDAL_DRIVER_PATH", "PROJ_LIB",
              "PROJ_DATA", "QGIS_PREFIX_PATH", "VIRTUAL_ENV", "__PYVENV_LAUNCHER__")


class RunError(Exception):
    """A run failed; the message is meant for the user (no traceback)."""


class EnvironmentProblem(RunError):
    """The project's Python environment is missing or broken; the message says how to install it."""


class Canceled(RunError):
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
    radiometry: str = "auto"  # auto | stretch | none


@dataclass
class DetectResult:
    output: str
    features: int
    crs: str
    layer: str
    messages: List[str] = field(default_factory=list)


@dataclass
class LabelGridParams:
    input: str  # GeoTIFF scene
    output: str  # .gpkg
    tile_m: float = 64.0


@dataclass
class LabelGridResult:
    output: str
    tiles: int
    crs: str
    layer: str


@dataclass
class TrainParams:
    images: List[str]  # GeoTIFF scenes
    labels: str  # vector file (gpkg / shp / geojson)
    output: str  # .safetensors
    layer: str = ""  # layer of a multi-layer labels file
    label_field: str = "label"
    minutes: float = 30.0
    radiometry: str = "auto"  # auto | stretch | none


@dataclass
class TrainResult:
    output: str
    details: dict = field(default_factory=dict)  # the CLI's whole result event
    messages: List[str] = field(default_factory=list)


@dataclass
class MethodList:
    """`methods --json`: the model's default method and every method with its `available` flag."""

    default: str = ""
    model: str = ""
    methods: List[dict] = field(default_factory=list)
    error: str = ""  # why the list could not be read (then only "default" is offered)

    @property
    def available(self) -> List[str]:
        """Names of the usable methods, the default first."""
        names = [str(m.get("name")) for m in self.methods if m.get("available") and m.get("name")]
        return sorted(names, key=lambda n: n != self.default)


def normalize_bands(text: str) -> str:
    """'1, 2 3' -> '1,2,3'; raises RunError for anything else than positive integers."""
    parts = [p for p in text.replace(";", ",").replace(" ", ",").split(",") if p.strip()]
    try:
        nums = [int(p) for p in parts]
    except ValueError:
        raise RunError(f"bands must be a comma-separated list of band numbers such as 1,2,3 (got {text!r})") from None
    if any(n < 1 for n in nums):
        raise RunError(f"band numbers start at 1 (got {text!r})")
    return ",".join(str(n) for n in nums)


def detect_args(params: DetectParams, output: str) -> List[str]:
    """The CLI arguments of one detection writing to `output`."""
    args = ["detect", params.input, "-o", output, "--jsonl"]
    if params.overwrite:
        args.append("--overwrite")
    if params.model:
        args += ["--model", params.model]
    if params.device and params.device != "auto":
        if params.device not in DEVICES:
            raise RunError(f"device must be one of {', '.join(DEVICES)} (got {params.device!r})")
        args += ["--device", params.device]
    if params.method:
        args += ["--method", params.method]
    if params.tile is not None:
        args += ["--tile", str(int(params.tile))]
    if params.overlap is not None:
        args += ["--overlap", str(int(params.overlap))]
    if params.bands and params.bands.strip():
        args += ["--bands", normalize_bands(params.bands)]
    if params.min_area is not None:
        args += ["--min-area", _num(params.min_area)]
    if params.threshold is not None:
        args += ["--threshold", _num(params.threshold)]
    if params.dsm:
        args += ["--dsm", params.dsm]
    return args + _radiometry_args(params.radiometry)


def label_grid_args(params: LabelGridParams, output: str) -> List[str]:
    return ["labels", "grid", params.input, "-o", output, "--tile-m", _num(params.tile_m), "--overwrite", "--json"]


def train_args(params: TrainParams, output: str) -> List[str]:
    args = ["train", "weak"]
    for image in params.images:
        args += ["--image", image]
    args += ["--labels", params.labels]
    if params.layer:
        args += ["--layer", params.layer]
    args += ["--label-field", params.label_field or "label", "--minutes", _num(params.minutes),
             "-o", output, "--overwrite", "--jsonl"]
    return args + _radiometry_args(params.radiometry)


def _radiometry_args(radiometry: str) -> List[str]:
    if not radiometry or radiometry == "auto":
        return []
    if radiometry not in RADIOMETRY:
        raise RunError(f"radiometry must be one of {', '.join(RADIOMETRY)} (got {radiometry!r})")
    return ["--radiometry", radiometry]


def _num(x: float) -> str:
    return repr(float(x)).rstrip("0").rstrip(".") if float(x) != int(x) else str(int(x))


def _abs(path: str) -> str:
    return os.path.abspath(os.path.expanduser(path)) if path else ""


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


def check_output_path(path: str, suffix: str, kind: str, overwrite: bool = True) -> Path:
    out = Path(path).expanduser()
    if out.suffix.lower() != suffix:
        raise RunError(f"the output must be a {kind} file ending in {suffix} (got {out.name!r})")
    if not out.parent.is_dir():
        raise RunError(f"the output folder does not exist: {out.parent}")
    if not os.access(out.parent, os.W_OK):
        raise RunError(f"the output folder is not writable: {out.parent}")
    if out.exists() and not overwrite:
        raise RunError(f"{out} already exists (tick 'overwrite' to replace it)")
    return out.resolve()


def _check_input(path: str, what: str) -> None:
    if not os.path.isfile(path):
        raise RunError(f"{what} not found: {path}")


def _check_python(python: Optional[str]) -> None:
    if not python or not os.path.isfile(python) or not os.access(python, os.X_OK):
        raise EnvironmentProblem(install_hint(python))


def run_detect(python: Optional[str], params: DetectParams, **callbacks) -> DetectResult:
    """Run one detection to the end (blocking; call it from a worker thread). `callbacks`: see run_cli.

    Raises EnvironmentProblem, RunError or Canceled; on any of them nothing is left at the output.
    """
    _check_python(python)
    out = check_output_path(params.output, ".gpkg", "GeoPackage", params.overwrite)
    # The child runs in its private folder: hand it absolute paths.
    params = replace(params, input=_abs(params.input), model=_abs(params.model), dsm=_abs(params.dsm))
    _check_input(params.input, "input raster")
    result, messages = run_to_file(python, out, lambda tmp: detect_args(params, tmp), "detection",
                                   overwrite=params.overwrite, **callbacks)
    return DetectResult(output=result["output"], features=_int(result.get("features")), crs=str(result.get("crs", "")),
                        layer=str(result.get("layer") or out.stem), messages=messages)


def run_label_grid(python: Optional[str], params: LabelGridParams, **callbacks) -> LabelGridResult:
    """`labels grid`: the scene's tile grid with an empty `label` field, as a GeoPackage."""
    _check_python(python)
    out = check_output_path(params.output, ".gpkg", "GeoPackage")
    params = replace(params, input=_abs(params.input))
    _check_input(params.input, "input raster")
    result, _ = run_to_file(python, out, lambda tmp: label_grid_args(params, tmp), "label grid", **callbacks)
    return LabelGridResult(output=result["output"], tiles=_int(result.get("tiles")), crs=str(result.get("crs", "")),
                           layer=str(result.get("layer") or "label_grid"))


def run_train(python: Optional[str], params: TrainParams, **callbacks) -> TrainResult:
    """`train weak`: a model file fine-tuned on the scenes and their labels."""
    _check_python(python)
    out = check_output_path(params.output, ".safetensors", "model (.safetensors)")
    params = replace(params, images=[_abs(p) for p in params.images], labels=_abs(params.labels))
    if not params.images:
        raise RunError("choose at least one GeoTIFF scene to train on")
    for image in params.images:
        _check_input(image, "input raster")
    _check_input(params.labels, "label file")
    result, messages = run_to_file(python, out, lambda tmp: train_args(params, tmp), "training", **callbacks)
    return TrainResult(output=result["output"], details=result, messages=messages)


_METHODS_CACHE: Dict[tuple, MethodList] = {}


def list_methods(python: Optional[str], model: str = "") -> MethodList:
    """`methods --json [--model PATH]`, cached per (python, model, model mtime). Never raises: a failed
    call gives an empty list with `error` set (and is not cached, so a repaired environment is seen)."""
    model = _abs(model)
    try:
        mtime = os.stat(model).st_mtime_ns if model else None
    except OSError:
        mtime = None
    key = (python, model, mtime)
    if key in _METHODS_CACHE:
        return _METHODS_CACHE[key]
    deadline = time.monotonic() + METHODS_TIMEOUT_S
    try:
        _check_python(python)
        result, _ = run_cli(python, ["methods", "--json"] + (["--model", model] if model else []), "method list",
                            is_canceled=lambda: time.monotonic() > deadline)
    except Canceled:
        return MethodList(model=model, error=f"the method list took longer than {METHODS_TIMEOUT_S:g} s")
    except RunError as exc:
        return MethodList(model=model, error=str(exc))
    methods = result.get("methods")
    listing = MethodList(default=str(result.get("default") or ""), model=str(result.get("model") or model),
                         methods=[m for m in methods if isinstance(m, dict)] if isinstance(methods, list) else [])
    _METHODS_CACHE[key] = listing
    return listing


def _int(value) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return -1


def run_to_file(python: str, out: Path, args_for: Callable[[str], List[str]], what: str, overwrite: bool = True,
                **callbacks) -> Tuple[dict, List[str]]:
    """Run a command that writes one file: `args_for(tmp)` writes it into a private folder beside `out`,
    and only a successful run is moved to `out`. Returns (result with `output` = out, messages)."""
    tmpdir = tempfile.mkdtemp(prefix=".landslide_wsss-", dir=str(out.parent))
    try:
        tmp_out = os.path.join(tmpdir, out.name)
        result, messages = run_cli(python, args_for(tmp_out), what, scratch=tmpdir, **callbacks)
        produced = Path(tmpdir, str(result.get("output") or tmp_out))  # (an absolute output replaces tmpdir)
        if not produced.is_file():
            produced = Path(tmp_out)
        if not produced.is_file():
            raise RunError(f"the {what} reported success but wrote no {out.suffix} file")
        if out.exists() and not overwrite:
            raise RunError(f"{out} appeared during the run; not overwritten")
        os.replace(str(produced), str(out))
        return dict(result, output=str(out)), messages
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


def run_cli(
    python: str,
    args: List[str],
    what: str,
    scratch: Optional[str] = None,
    on_progress: Optional[Callable[[float], None]] = None,
    on_message: Optional[Callable[[str, str], None]] = None,
    is_canceled: Optional[Callable[[], bool]] = None,
    on_started: Optional[Callable[[subprocess.Popen], None]] = None,
    poll_s: float = 0.1,
) -> Tuple[dict, List[str]]:
    """Run `python -m landslide_wsss.cli ARGS` to the end (blocking) in `scratch` (its private folder)
    or a neutral folder, and return (its result object, the texts of its messages).

    `what` names the run in messages ("detection"). Raises EnvironmentProblem, RunError or Canceled.
    """
    argv = [python, "-m", "landslide_wsss.cli", *args]
    # cwd: never QGIS's, where a landslide_wsss source folder could be imported by accident
    try:
        proc = start_process(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env=child_env(scratch=scratch), cwd=scratch or tempfile.gettempdir())
    except OSError as exc:
        raise EnvironmentProblem(f"cannot start {python}: {exc}. " + install_hint(python)) from None
    messages: List[str] = []
    try:
        if on_started:
            on_started(proc)
        lines: "queue.Queue[Optional[str]]" = queue.Queue()
        stderr_tail: List[str] = []
        t_out = threading.Thread(target=pump, args=(proc.stdout, lines.put), daemon=True)
        t_err = threading.Thread(target=pump, args=(proc.stderr, lambda s: _tail(stderr_tail, s)), daemon=True)
        t_out.start()
        t_err.start()
        result = None
        error = None
        stdout_done = False
        while True:
            if is_canceled and is_canceled():
                stop_process(proc)
                raise Canceled(f"{what} cancelled; nothing was written")
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
            if kind is None:  # a --json command's one object
                result = event
            elif kind == "progress" and on_progress:
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
        if proc.returncode != 0 or result is None:
            raise _failure(python, args, what, proc.returncode, error, stderr_tail)
        return result, messages
    finally:
        end_process(proc)


def start_process(argv: List[str], **popen_kwargs) -> subprocess.Popen:
    """`subprocess.Popen` (stdin closed) in a process group of its own, so that stop_process reaches the
    child's own children too (the CLI's workers, pip's builds); no console window on Windows."""
    if os.name == "posix":
        popen_kwargs["start_new_session"] = True
    else:
        popen_kwargs["creationflags"] = getattr(subprocess, "CREATE_NO_WINDOW", 0) | getattr(
            subprocess, "CREATE_NEW_PROCESS_GROUP", 0)
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL, **popen_kwargs)


def end_process(proc: subprocess.Popen) -> None:
    """After reading a child: stop it if it still runs (an error or a cancel on our side) and close its pipes."""
    if proc.poll() is None:
        stop_process(proc)
    for stream in (proc.stdout, proc.stderr):
        if stream is None:
            continue
        try:
            stream.close()
        except (OSError, ValueError):
            pass


def pump(stream, put) -> None:
    """Reader thread: each line of `stream` (decoded, line end dropped) to `put`, then None at its end."""
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


def stop_process(proc: subprocess.Popen) -> None:
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


def _failure(python: str, args: List[str], what: str, rc: int, error: Optional[str],
             stderr_tail: List[str]) -> RunError:
    stderr_text = "\n".join(stderr_tail)
    # argparse's answer to an option or command it does not know yet (`train weak`, `--jsonl`, ...)
    unknown = [w for w in args[:2] if f"invalid choice: '{w}'" in stderr_text]
    if unknown or ("unrecognized arguments" in stderr_text and any(a.startswith("--json") for a in args)):
        detail = " ".join(unknown) if unknown else "--jsonl/--json"
        return EnvironmentProblem(
            f"the landslide_wsss installed for {python} is too old for this plugin (no {detail}). "
            "Update it: 'Install environment' in the Landslide WSSS dialog for the plugin's own environment, "
            "or git pull && make setup in a landslide_wsss source checkout.")
    # Exit 2 is a deliberate "bad input" answer; anything else that smells of a failed import means
    # the environment itself is broken (a missing or mismatched torch, GDAL, ... wheel).
    if rc != 2 and any(m in (error or stderr_text) for m in _ENV_MARKERS):
        detail = error or (stderr_tail[-1].strip() if stderr_tail else "")
        return EnvironmentProblem(f"the landslide_wsss environment at {python} is broken ({detail}). "
                                  + install_hint(python, found=True))
    if error:
        return RunError(error)
    err_lines = [ln for ln in stderr_tail if ln.startswith("error:")]
    if err_lines:
        return RunError(err_lines[-1][len("error:"):].strip())
    if rc == 0:
        return RunError(f"the {what} ended without reporting a result (is landslide_wsss up to date?)")
    if os.name == "posix" and rc is not None and rc < 0:
        return RunError(f"the {what} was stopped by signal {-rc}"
                        + (" (out of memory?)" if -rc == signal.SIGKILL else ""))
    last = " | ".join(ln.strip() for ln in stderr_tail[-3:] if ln.strip())
    return RunError(f"the {what} failed with exit code {rc}" + (f": {last}" if last else ""))


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
