"""Two (or more) rebuilt model files side by side: every choice the rebuild's rules made and every
validation figure it recorded, with the largest difference of each figure between the files.

    python benchmarks/compare_rebuilds.py A=/path/a.safetensors B=/path/b.safetensors [--tolerance 0.01]
    python benchmarks/compare_rebuilds.py --save-metadata benchmarks/results/rebuild_A.json /path/a.safetensors

A PATH may also be such a saved metadata JSON: a rebuild's work directory does not outlive its
machine, so its file's choices and figures are kept in the repository to compare the next one with.

Prints a markdown table and writes benchmarks/results/compare_rebuilds.json. The figures are the ones
each file's `evaluate` stage wrote (val.txt and area B); nothing is re-measured here."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import save  # noqa: E402
from landslide_wsss.checkpoint import read_metadata  # noqa: E402

# (label, path into the metadata): what the rules chose
CHOICES = [
    ("default method", "method_default"),
    ("teacher CAM", "student/teacher/method"),
    ("teacher refinement", "student/teacher/refine"),
    ("teacher bands (fg, bg)", ("student/teacher/t_fg", "student/teacher/t_bg")),
    ("working GSD (m)", "student/gsd"),
    ("area A share", "student/area_share"),
    ("landslide images' share of the Bijie draw", "student/landslide_share"),
    ("student length", "student/training/length_rule/chosen"),
    ("self-training rounds kept", "student/training/self_training/kept_rounds"),
    ("hard-negative rounds kept", "student/training/hard_negatives/kept_rounds"),
    ("student gate (low, high)", ("student/gate/chosen/low", "student/gate/chosen/high")),
    ("yardstick gate (low, high)", ("unet/gate/chosen/low", "unet/gate/chosen/high")),
]
FIGURES = ("iou", "precision", "free_images_flagged_share")


def _at(meta, path):
    for key in path.split("/"):
        if not isinstance(meta, dict) or key not in meta:
            return None
        meta = meta[key]
    return meta


def choices(meta: dict) -> dict:
    out = {label: (tuple(_at(meta, p) for p in path) if isinstance(path, tuple) else _at(meta, path))
           for label, path in CHOICES}
    for profile, methods in sorted((meta.get("tuning") or {}).items()):
        if not isinstance(methods, dict):
            continue
        for method, tuned in sorted(methods.items()):
            if isinstance(tuned, dict) and "threshold" in tuned:
                out[f"{profile} {method} (norm, threshold)"] = (tuned.get("norm"), tuned.get("threshold"))
    return out


def figures(meta: dict) -> dict:
    out = {}
    for method, sets in sorted((meta.get("validation") or {}).items()):
        if not isinstance(sets, dict):  # the note
            continue
        for name, row in sorted(sets.items()):
            for fig in FIGURES:
                if fig in row:
                    out[f"{method} {name} {fig}"] = row[fig]
    return out


def load_metadata(path) -> dict:
    """A model file's metadata, or a metadata JSON saved by --save-metadata."""
    if str(path).endswith(".json"):
        return json.loads(Path(path).read_text())
    return read_metadata(path)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+", help="LABEL=PATH of each model file or saved metadata JSON")
    ap.add_argument("--tolerance", type=float, default=0.01, help="the IoU agreement the rebuilds must reach")
    ap.add_argument("--save-metadata", metavar="JSON", help="write the one model file's metadata to JSON and stop")
    a = ap.parse_args(argv)
    if a.save_metadata:
        if len(a.models) != 1:
            ap.error("--save-metadata takes one model file")
        Path(a.save_metadata).write_text(json.dumps(read_metadata(a.models[0].split("=", 1)[-1]), indent=1) + "\n")
        print(a.save_metadata)
        return 0
    bad = [m for m in a.models if "=" not in m]
    if bad:
        ap.error(f"give each model as LABEL=PATH: {', '.join(bad)}")
    files = dict(m.split("=", 1) for m in a.models)
    metas = {label: load_metadata(path) for label, path in files.items()}
    labels = list(metas)
    chosen = {label: choices(m) for label, m in metas.items()}
    figs = {label: figures(m) for label, m in metas.items()}
    rows_c = [{"choice": k, **{label: chosen[label].get(k) for label in labels},
               "same": len({repr(chosen[label].get(k)) for label in labels}) == 1}
              for k in dict.fromkeys(k for label in labels for k in chosen[label])]
    rows_f = []
    for k in dict.fromkeys(k for label in labels for k in figs[label]):
        vals = [figs[label].get(k) for label in labels]
        spread = max(vals) - min(vals) if None not in vals else None
        rows_f.append({"figure": k, **dict(zip(labels, vals)), "spread": spread})
    ious = [r["spread"] for r in rows_f if r["figure"].endswith(" iou") and r["spread"] is not None]
    summary = {"files": files, "choices_same": all(r["same"] for r in rows_c),
               "largest_iou_spread": max(ious) if ious else None, "tolerance": a.tolerance,
               "within_tolerance": bool(ious) and max(ious) <= a.tolerance}
    print("| choice | " + " | ".join(labels) + " | same |\n|---|" + "---|" * (len(labels) + 1))
    for r in rows_c:
        print(f"| {r['choice']} | " + " | ".join(str(r[label]) for label in labels) + f" | {'yes' if r['same'] else 'NO'} |")
    print("\n| figure | " + " | ".join(labels) + " | spread |\n|---|" + "---|" * (len(labels) + 1))
    for r in rows_f:
        cells = [f"{r[label]:.4f}" if isinstance(r[label], float) else str(r[label]) for label in labels]
        print(f"| {r['figure']} | " + " | ".join(cells) + f" | {r['spread'] if r['spread'] is None else round(r['spread'], 4)} |")
    print(f"\nsame choices: {summary['choices_same']}; largest IoU spread {summary['largest_iou_spread']} "
          f"(tolerance {a.tolerance})")
    print(save("compare_rebuilds", {"summary": summary, "choices": rows_c, "figures": rows_f}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
