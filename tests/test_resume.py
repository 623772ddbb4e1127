"""Interruption: a detect_directory run killed with SIGKILL resumes without redoing finished scenes."""
import json
import signal
import subprocess
import sys
import time

import geopandas as gpd
import pytest

from conftest import blob_scene, write_tif
from tiny_models import write_tiny_model


def _scenes(tmp_path, n=6, size=384):
    d = tmp_path / "scenes"
    d.mkdir()
    for k in range(n):
        data, _ = blob_scene(h=size, w=size, boxes=((40, 40, 200, 160),), seed=k)
        write_tif(d / f"scene{k}.tif", data, nodata=0)
    model = tmp_path / "m.safetensors"
    write_tiny_model(model, tile_size=32, threshold=0.0)
    return d, model


def _finished(journal):
    """Finished parts only: a part being written when the kill lands is a hidden temp file."""
    return [p for p in journal.glob("*.gpkg") if not p.name.startswith(".")]


def _start(d, out, model):
    cmd = [sys.executable, "-m", "landslide_wsss.cli", "detect", str(d), "-o", str(out), "--model", str(model),
           "--jsonl", "--tile", "32", "--overlap", "8", "--min-area", "0", "--batch-size", "4"]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_sigkill_then_resume_finishes_every_scene_once(tmp_path):
    d, model = _scenes(tmp_path)
    out = tmp_path / "all.gpkg"
    journal = tmp_path / "all.gpkg.parts"
    proc = _start(d, out, model)
    deadline = time.time() + 120
    while time.time() < deadline and len(_finished(journal)) < 2:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    time.sleep(1.0)  # pool workers die with the parent; nothing may be added after this
    done_before = len(_finished(journal))
    assert 2 <= done_before < 6, "the kill should land while scenes remain"
    assert not out.exists()
    proc = _start(d, out, model)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    events = [json.loads(line) for line in stdout.splitlines()]
    resumed = [e["text"] for e in events if e["event"] == "message" and "resuming" in e["text"]]
    assert resumed and resumed[0].startswith(f"resuming: {done_before} of 6")
    gdf = gpd.read_file(out)
    assert sorted(gdf.scene.unique()) == [f"scene{k}" for k in range(6)]
    # threshold 0 marks every valid pixel: exactly one polygon per scene, none twice
    assert gdf.groupby("scene").size().tolist() == [1] * 6
    assert not journal.exists()


@pytest.mark.parametrize("sig,code,said", [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")])
def test_interrupt_or_kill_stops_cleanly(tmp_path, sig, code, said):
    """Ctrl-C and `kill` both stop the run with one error line, no output and no hidden temporary file."""
    d, model = _scenes(tmp_path, n=3, size=512)
    out = tmp_path / "all.gpkg"
    proc = _start(d, out, model)
    while proc.poll() is None:
        line = proc.stdout.readline()
        if '"progress"' in line:
            break
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=120)
    # three 512 px scenes at 32 px tiles take far longer than the signal's delivery: the run must stop
    assert proc.returncode == code, stderr
    assert stderr.strip().splitlines()[-1].startswith(f"error: {said}") and "Traceback" not in stderr
    assert not out.exists()  # the journal stays, for a resume
    journal = tmp_path / "all.gpkg.parts"
    assert [p.name for p in journal.iterdir() if p.name.startswith(".")] == []
