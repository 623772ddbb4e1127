"""The wall time of each stage of a rebuild, from its work directory's stage events.

    python benchmarks/rebuild_times.py WORK [--name rebuild_times]

WORK is the rebuild's `--log-dir` (runs/ by default); its second_stage/log.jsonl holds one `stage`
event per start and finish, the finish with the stage's wall seconds. A stage that was resumed
counts its last run only (the earlier, interrupted runs are listed apart). Prints a markdown table
and writes benchmarks/results/NAME.json. Nothing is re-run or re-timed here."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import save  # noqa: E402
from landslide_wsss.training.rebuild.stages import STAGE_NAMES  # noqa: E402


def stage_times(log_file: Path) -> dict:
    """{"stages": {name: {"seconds", "started"}}, "interrupted": {name: starts without a finish},
    "total_seconds": the finished stages' sum}."""
    done, started, interrupted = {}, {}, {}
    for line in Path(log_file).read_text().splitlines():
        try:
            ev = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by a kill
        if ev.get("event") != "stage" or ev.get("stage") not in STAGE_NAMES:
            continue
        name = ev["stage"]
        if ev.get("status") == "start":
            if name in started:  # started again before finishing: the earlier run was interrupted
                interrupted[name] = interrupted.get(name, 0) + 1
            started[name] = ev.get("at")
        elif ev.get("status") == "done" and "seconds" in ev:
            done[name] = {"seconds": float(ev["seconds"]), "started": started.pop(name, None)}
    stages = {n: done[n] for n in STAGE_NAMES if n in done}
    return {"stages": stages, "interrupted": interrupted, "unfinished": sorted(started),
            "total_seconds": round(sum(v["seconds"] for v in stages.values()), 1)}


def markdown(times: dict) -> str:
    rows = ["| stage | minutes |", "|---|---|"]
    rows += [f"| {n} | {v['seconds'] / 60:.1f} |" for n, v in times["stages"].items()]
    rows.append(f"| **all finished stages** | **{times['total_seconds'] / 60:.1f}** |")
    return "\n".join(rows)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("work", type=Path, help="the rebuild's work directory (--log-dir)")
    ap.add_argument("--name", default="rebuild_times")
    a = ap.parse_args(argv)
    log_file = a.work / "second_stage" / "log.jsonl"
    if not log_file.is_file():
        ap.error(f"{log_file}: no stage log there")
    times = stage_times(log_file)
    md = markdown(times)
    print(md)
    path = save(a.name, {**times, "work": str(a.work), "markdown": md})
    print(f"-> {path}")


if __name__ == "__main__":
    main()
