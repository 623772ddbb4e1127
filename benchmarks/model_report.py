"""The README's figure tables, printed from a model file's own metadata (every choice and every
figure the default-model command recorded there), so the README can be checked against the file.

    python benchmarks/model_report.py [--model landslide_wsss/weights/default.safetensors]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from landslide_wsss.checkpoint import read_metadata  # noqa: E402
from landslide_wsss.paths import DEFAULT_MODEL  # noqa: E402

NAMES = {"student": "student", "unet": "yardstick"}  # model-file component -> the name in the text


def _f(v, nd=3):
    return "" if v is None else (f"{v:.{nd}f}" if isinstance(v, float) else str(v))


def table(head, rows):
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(_f(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(DEFAULT_MODEL))
    a = ap.parse_args(argv)
    meta = read_metadata(a.model)
    st = meta.get("student") or {}
    teacher = st.get("teacher") or {}
    if teacher.get("holdout"):
        print(f"### Teacher (chosen: {teacher['method']} + {teacher.get('refine', 'none')}, "
              f"bands >= {teacher['t_fg']} / < {teacher['t_bg']})\n")
        rows = [(k, v["fg_iou"], v["bg_precision"], v["ignored"], v["t_fg"], v["t_bg"])
                for k, v in teacher["holdout"].items()]
        print(table(["teacher + refinement", "confident-band IoU", "background precision", "ignored", "t_fg", "t_bg"],
                    rows), "\n")
    scale = st.get("scale") or {}
    if scale.get("table"):
        print(f"### Working scale (chosen: {scale['gsd']:g} m; {scale['steps']} steps each)\n")
        rows = [(f"{g} m", r["bijie_holdout_iou"], r["areaA_strip_iou"], r["mean_iou"], r["threshold"])
                for g, r in scale["table"].items()]
        print(table(["GSD", "Bijie hold-out IoU", "area A strip IoU", "mean", "threshold"], rows), "\n")
    for comp in ("student", "unet"):
        tr = (meta.get(comp) or {}).get("training") or {}
        if tr.get("rounds"):
            print(f"### {NAMES[comp]}: hold-out per round (kept rounds: {tr.get('kept_rounds')})\n")
            print(table(["round", "Bijie hold-out IoU", "area A strip IoU", "mean", "threshold"],
                        [(i, r["bijie_holdout_iou"], r["areaA_strip_iou"], r["mean_iou"], r["threshold"])
                         for i, r in enumerate(tr["rounds"])]), "\n")
    for comp in ("student", "unet"):
        gate = (meta.get(comp) or {}).get("gate") or {}
        if gate.get("chosen"):
            c = gate["chosen"]
            print(f"### {NAMES[comp]}: hysteresis gate (chosen: low {c['low']}, high {c['high']}; {gate['rule']})\n")
            print(table(["setting", "low", "high", "Bijie hold-out IoU", "area A strip IoU", "mean"],
                        [(k, r["low"], r["high"], r["bijie_holdout_iou"], r["areaA_strip_iou"], r["mean_iou"])
                         for k, r in (("plain threshold", gate["plain"]), ("best gate", gate["best_gate"]),
                                      ("chosen", c))]), "\n")
    sel = (meta.get("selection") or {}).get("table")
    if sel:
        print(f"### The rule (chosen: {meta['selection']['chosen']})\n")
        print(table(["candidate", "Bijie hold-out IoU", "area A strip IoU", "mean"],
                    [(m, r["bijie_holdout_iou"], r["areaA_strip_iou"], r["mean_iou"]) for m, r in
                     sorted(sel.items(), key=lambda kv: -kv[1]["mean_iou"])]), "\n")
    val = {k: v for k, v in (meta.get("validation") or {}).items() if isinstance(v, dict) and "bijie_val" in v}
    if val:
        print("### Bijie val.txt and AMU-Net area B (measured once, after every choice)\n")
        rows = []
        for m, r in val.items():
            b, s = r["bijie_val"], r["areaB"]
            rows.append((m, b.get("iou"), b.get("f1"), b.get("precision"), b.get("recall"),
                         b.get("free_images_flagged_share"), b.get("free_pixels_flagged_share"), b.get("seconds"),
                         s.get("iou"), s.get("f1"), s.get("precision"), s.get("recall"), s.get("false_alarm"),
                         s.get("seconds")))
        print(table(["method", "val IoU", "F1", "P", "R", "free img", "free px", "s", "area B IoU", "F1", "P", "R",
                     "FA", "s"], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
