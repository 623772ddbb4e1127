"""Faults around the outputs: a full file system (a small tmpfs, where mounting is permitted), two runs
writing one output at once, a damaged or foreign `train weak` state folder."""
import subprocess
import threading

import geopandas as gpd
import numpy as np
import pytest
import rasterio

from conftest import ThresholdScorer
from landslide_wsss import api
from landslide_wsss.cli import main
from landslide_wsss.errors import InputError, OutputError
from test_student import _region, _ticked, start_model  # noqa: F401 (a fixture)


@pytest.fixture
def full_disk(tmp_path):
    """A 256 KiB tmpfs with 20 KiB left: too small for any output. Skipped where mounting is not permitted."""
    mnt = tmp_path / "full"
    mnt.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)], capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({res.stderr.strip() or res.returncode}): the full-disk case needs one")
    try:
        (mnt / "filler").write_bytes(b"\0" * 240_000)
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


def _one_error(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "no space left" in err[0], err
    return err[0]


def test_detect_on_a_full_disk_leaves_nothing(full_disk, utm_scene, capsys):
    scene, _ = utm_scene
    argv = ["detect", str(scene), "-o", str(full_disk / "o.gpkg"), "--quiet", "--device", "cpu",
            "--score-raster", str(full_disk / "score.tif")]
    assert main(argv) == 2
    _one_error(capsys)
    assert sorted(p.name for p in full_disk.iterdir()) == ["filler"]


def test_train_weak_on_a_full_disk_leaves_nothing(full_disk, tmp_path, start_model, capsys):  # noqa: F811
    scene, mask = _region(tmp_path)
    labels, _ = _ticked(tmp_path, scene, mask)
    argv = ["train", "weak", "--image", str(scene), "--labels", str(labels), "--tile-m", "16", "--minutes", "0.3",
            "--init", str(start_model), "-o", str(full_disk / "mine.safetensors"), "--quiet"]
    assert main(argv) == 2
    _one_error(capsys)
    assert sorted(p.name for p in full_disk.iterdir()) == ["filler"]


def test_two_detects_to_one_output_never_interleave(tmp_path, utm_scene):
    scene, _ = utm_scene
    alone = api.detect(scene, None, model=ThresholdScorer(), min_area_m2=0)
    out = tmp_path / "o.gpkg"
    results = {}

    def run(k, overwrite):
        try:
            results[k] = len(api.detect(scene, out, model=ThresholdScorer(), min_area_m2=0, overwrite=overwrite))
        except OutputError as exc:
            results[k] = exc

    for overwrite in (True, False):
        out.unlink(missing_ok=True)
        threads = [threading.Thread(target=run, args=(k, overwrite)) for k in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if overwrite:  # both finish; the file is one of them, whole
            assert results == {0: len(alone), 1: len(alone)}
        else:  # exactly one creates it; the other (at its start or at its end) says so and replaces nothing
            assert sorted(isinstance(r, OutputError) for r in results.values()) == [False, True], results
            assert len(alone) in results.values()
        back = gpd.read_file(out, layer="landslides")
        assert len(back) == len(alone) and back.is_valid.all()
        assert sorted(p.name for p in tmp_path.iterdir() if ".part" in p.name) == []


def test_output_appearing_meanwhile_is_not_replaced(tmp_path):
    """The step that guards the race above, made deterministic: a file written while this run worked."""
    from landslide_wsss.raster import atomic_output
    out = tmp_path / "o.txt"
    with pytest.raises(OutputError, match="appeared while this run was writing"):
        with atomic_output(out) as tmp:
            tmp.write_text("mine")
            out.write_text("theirs")
    assert out.read_text() == "theirs" and [p.name for p in tmp_path.iterdir()] == ["o.txt"]


@pytest.mark.parametrize("case", ["a-file", "foreign-folder", "garbled-key", "damaged-checkpoint", "foreign-checkpoint"])
def test_bad_state_folder_is_one_clean_error(tmp_path, case):
    from landslide_wsss.checkpoint import save_checkpoint
    from landslide_wsss.training.weak import _check_state
    import torch
    key = "0123456789abcdef"
    state = tmp_path / "m.safetensors.state"
    if case == "a-file":
        state.write_text("x")
    else:
        state.mkdir()
        (state / "key.txt").write_text(key)
    if case == "foreign-folder":
        (state / "holiday.jpg").write_bytes(b"\xff\xd8")
    elif case == "garbled-key":
        (state / "key.txt").write_bytes(b"\x00\xff" * 8)
    elif case == "damaged-checkpoint":
        (state / "fit.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\": 1" + b"\0" * 50)
    elif case == "foreign-checkpoint":
        save_checkpoint(state / "fit.safetensors", {"w": torch.zeros(2)},
                        {"architecture": "wsss-classifier", "in_bands": 3, "version": "x"})
    before = sorted(p.name for p in state.iterdir()) if state.is_dir() else None
    with pytest.raises(InputError, match="state"):
        _check_state(state, key)
    assert (sorted(p.name for p in state.iterdir()) if state.is_dir() else None) == before  # nothing removed


def test_state_of_other_inputs_is_replaced_and_a_foreign_folder_refused_by_the_cli(tmp_path, start_model, capsys):  # noqa: F811
    from landslide_wsss.training.weak import _check_state
    state = tmp_path / "old.state"
    state.mkdir()
    (state / "key.txt").write_text("fedcba9876543210")
    _check_state(state, "0123456789abcdef")  # ours, of other inputs: a fresh start
    assert not state.exists()
    scene, mask = _region(tmp_path)
    labels, _ = _ticked(tmp_path, scene, mask)
    out = tmp_path / "mine.safetensors"
    foreign = tmp_path / "mine.safetensors.state"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine, keep")
    argv = ["train", "weak", "--image", str(scene), "--labels", str(labels), "--tile-m", "16", "--minutes", "0.3",
            "--init", str(start_model), "-o", str(out), "--quiet"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "not a train weak state folder" in err[0]
    assert (foreign / "notes.txt").read_text() == "mine, keep" and not out.exists()
    assert np.array_equal(sorted(p.name for p in foreign.iterdir()), ["notes.txt"])



# train weak as a process of its own, as the CLI runs it, with a short run: state written every 5 steps
# (100 in a real run), so that every point is reached in seconds
TRAIN_WEAK = """
import sys
import landslide_wsss.training.student as st
from landslide_wsss.training.common import Logger
from landslide_wsss.training.weak import train_weak
st.STATE_EVERY = 5
scene, labels, init, out = sys.argv[1:5]
train_weak([scene], labels, out, init=init, tile_m=16.0, minutes=5, steps=40, log=Logger(), progress=False)
"""


def _train_weak_cmd(*args):
    import sys
    return [sys.executable, "-c", TRAIN_WEAK, *map(str, args)]


def _kill_when(cmd, ready, timeout=120.0):
    """Start `cmd`, SIGKILL it as soon as `ready()` holds (polled every few ms); returns its stderr.
    Fails when it ends on its own first: the point the test meant to cut never came."""
    import os
    import signal
    import time
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    t0 = time.time()
    while proc.poll() is None and not ready() and time.time() - t0 < timeout:
        time.sleep(0.005)
    assert proc.poll() is None and ready(), f"rc {proc.returncode} before the point to kill"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    return proc.stderr.read().decode()


def _state_step(path):
    from landslide_wsss.checkpoint import read_metadata
    try:
        return int(read_metadata(path)["step"]) if path.is_file() else 0
    except Exception:  # noqa: BLE001 (written by a rename: whole or absent; absent meanwhile)
        return 0


def test_train_weak_killed_at_any_point_resumes_to_a_valid_model(tmp_path, start_model):  # noqa: F811
    """SIGKILL as the state folder appears, after a fine-tune state write, after a later one by the
    resumed run; after each the output is absent, and the same command run again goes on from the state (not from
    zero) and ends with a valid model, its steps done, and no state folder."""
    import json
    import os

    from landslide_wsss.checkpoint import read_metadata
    from landslide_wsss.wsss import load_model
    scene, mask = _region(tmp_path)
    labels, _ = _ticked(tmp_path, scene, mask)
    out = tmp_path / "mine.safetensors"
    state = tmp_path / "mine.safetensors.state"
    cmd = _train_weak_cmd(scene, labels, start_model, out)

    _kill_when(cmd, lambda: state.is_dir())
    assert not out.exists()
    _kill_when(cmd, lambda: _state_step(state / "fit.safetensors") >= 10)
    assert not out.exists()
    fit_step = _state_step(state / "fit.safetensors")
    err = _kill_when(cmd, lambda: _state_step(state / "fit.safetensors") >= fit_step + 10)
    assert not out.exists()
    assert f"event=resume step={fit_step} total=40" in err, err[-800:]  # the fine-tune went on from its state
    first = [int(w.split("=")[1]) for w in err.split() if w.startswith("step=")]
    assert first[1] == fit_step + 5, err[-800:]  # its next record: not step 5 again
    last = _state_step(state / "fit.safetensors")
    res = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert res.returncode == 0, res.stderr[-800:]
    assert f"event=resume step={last} total=40" in res.stderr, res.stderr[-800:]
    assert not state.exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(("mine", ".mine"))) == [out.name]
    meta = read_metadata(out)["trained_on"]
    assert meta["fine_tune"]["done"] == 40 and meta["stopped_early"] is None, json.dumps(meta)[:500]
    model = load_model(out, device="cpu")
    with rasterio.open(scene) as ds:
        tile = ds.read(window=((0, 64), (0, 64))).astype(np.float32)
    probs = model.predict_tiles(tile[None], np.ones((1, 64, 64), bool))
    maps = list(probs.values()) if isinstance(probs, dict) else [probs]
    assert maps and all(np.asarray(m).shape[-2:] == (64, 64) and np.isfinite(m).all() for m in maps)


def test_a_state_write_cut_short_is_dropped_not_refused(tmp_path):
    """A kill during a state write, or the output's, leaves atomic_output's temporary file: resume drops it."""
    from landslide_wsss.training.weak import _check_state
    key = "0123456789abcdef"
    state = tmp_path / "m.safetensors.state"
    state.mkdir()
    (state / "key.txt").write_text(key)
    (state / ".fit.safetensors.x1y2.part.safetensors").write_bytes(b"\x10\x00")
    (state / ".key.txt.a9.part.txt").write_text("0123")
    _check_state(state, key)
    assert sorted(p.name for p in state.iterdir()) == ["key.txt"]


def test_a_killed_writers_temporary_file_goes_with_the_next_write_a_running_ones_stays(tmp_path):
    """A run killed mid-write (SIGKILL: nothing of it can clean up) leaves its hidden temporary file; the
    next write of the same output removes it, but never the file of a writer still running, nor another
    output's."""
    import subprocess
    import sys

    from landslide_wsss.raster import _writer_tag, atomic_output
    host = _writer_tag().partition("-")[0]
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    names = {"killed": f".o.gpkg.{host}-{int(dead.stdout)}.abc123.part.gpkg",
             "older version": ".o.gpkg.abc123.part.gpkg",
             "running": f".o.gpkg.{_writer_tag()}.xyz789.part.gpkg",
             "another host": f".o.gpkg.{int(host, 16) ^ 1:08x}-{int(dead.stdout)}.abc123.part.gpkg",
             "another output": f".o.gpkg.b.{host}-{int(dead.stdout)}.abc123.part.gpkg"}
    for name in names.values():
        (tmp_path / name).write_bytes(b"x")
    with atomic_output(tmp_path / "o.gpkg") as tmp:
        tmp.write_text("whole")
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted([names["running"], names["another host"], names["another output"], "o.gpkg"])
