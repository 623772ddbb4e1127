"""MODEL_CARD.md from a model file's own metadata: what the networks are, the data they were trained
on, every choice the rebuild's rules made on the hold-outs, and the figures measured once on Bijie
val.txt and AMU-Net area B. `landslide-wsss model-card [--model M] -o MODEL_CARD.md [--overwrite]`; no torch.
"""
from __future__ import annotations

from pathlib import Path
from typing import List


NAMES = {"student": "student", "unet": "yardstick"}  # model-file component -> the name in the text


def _f(v, nd=3):
    return "" if v is None else (f"{v:.{nd}f}" if isinstance(v, float) else str(v))


def table(head, rows):
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(_f(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def _summary(meta: dict, path: Path) -> List[str]:
    st = meta.get("student") or {}
    onnx = meta.get("onnx") or {}
    training = meta.get("training") or {}
    lines = [
        "# Model card: landslide_wsss default model",
        "",
        f"Generated from the metadata of `{path.name}` (version `{meta.get('version')}`) by "
        "`landslide-wsss model-card`; every figure below is read from the file.",
        "",
        "## What it is",
        "",
        f"- Default method: **{meta.get('method_default')}**. Input: {meta.get('in_bands')} bands "
        f"({', '.join(meta.get('bands') or [])}), 8-bit values as trained.",
        f"- Student (segmentation network trained on pseudo-masks from image-level labels): working GSD "
        f"{_f(st.get('gsd'), 2)} m, tile {st.get('tile_size')} px, mask threshold {_f(st.get('threshold'), 2)}"
        + (f", hysteresis core {_f(st.get('gate_high'), 2)}" if st.get("gate_high") is not None else "") + ".",
        "- Components: " + ", ".join(k for k in ("classifier", "generator", "student", "unet", "rcm-mam",
                                                 "adversarial-erasing") if meta.get(k) or k == "classifier")
        + "; ONNX graphs for " + (", ".join(sorted(onnx)) or "none") + " (the light runtime).",
        "- The supervised yardstick (`unet`) is the student's network trained on true masks under the same "
        "protocol: it shows what pixel labels would add; it is not a weakly supervised method.",
        "",
        "## Training data",
        "",
    ]
    lines += [f"- {d}" for d in training.get("data", [])]
    lines += [
        "- Image-level labels only for every weak component (Bijie file-name prefixes; AMU-Net tiles labelled by "
        "whether they contain landslide pixels); pixel masks are used by the yardstick and by evaluation only.",
        "- Neither Bijie val.txt nor AMU-Net area B was seen by any training step or rule.",
        "",
        "## Choices made on the hold-outs",
        "",
    ]
    return lines


def training_rounds(tr: dict) -> list:
    """(name, hold-out figures, kept) of a network's training and of each fine-tuning round after it:
    self-training, then hard negatives (a file from before the hard-negative round has only the first)."""
    rows = [("trained", tr["rounds"][0], "")]
    kinds = [("self-training", tr.get("self_training") or {"rounds": tr["rounds"], "kept_rounds": tr.get("kept_rounds")}),
             ("hard negatives", tr.get("hard_negatives") or {})]
    for name, rec in kinds:
        for r, figures in enumerate((rec.get("rounds") or [])[1:], start=1):
            rows.append((f"{name} {r}", figures, "yes" if r <= int(rec.get("kept_rounds") or 0) else "no"))
    return rows


def render(meta: dict, path) -> str:
    """The model card of a model file, as markdown."""
    path = Path(path)
    lines = _summary(meta, path)

    def out(*parts):
        lines.append(" ".join(str(p) for p in parts))

    st = meta.get("student") or {}
    teacher = st.get("teacher") or {}
    if teacher.get("holdout"):
        out(f"### Teacher (chosen: {teacher['method']} + {teacher.get('refine', 'none')}, "
              f"bands >= {teacher['t_fg']} / < {teacher['t_bg']})\n")
        rows = [(k, v["fg_iou"], v["bg_precision"], v.get("leak", "-"), v["ignored"], v["t_fg"], v["t_bg"])
                for k, v in teacher["holdout"].items()]
        out(table(["teacher + refinement", "confident-band IoU", "background precision", "landslide in background",
                   "ignored", "t_fg", "t_bg"],
                    rows), "\n")
    scale = st.get("scale") or {}
    if scale.get("table"):
        out(f"### Working scale (chosen: {scale['gsd']:g} m; {scale['steps']} steps each)\n")
        rows = [(f"{g} m", r["bijie_holdout_iou"], r["areaA_strip_iou"], r["mean_iou"], r["threshold"])
                for g, r in scale["table"].items()]
        out(table(["GSD", "Bijie hold-out IoU", "area A strip IoU", "mean", "threshold"], rows), "\n")
    for comp in ("student", "unet"):
        tr = (meta.get(comp) or {}).get("training") or {}
        if tr.get("rounds"):
            out(f"### {NAMES[comp]}: hold-out per round\n")
            out(table(["round", "Bijie hold-out IoU", "area A strip IoU", "mean", "threshold", "kept"],
                      [(name, r["bijie_holdout_iou"], r["areaA_strip_iou"], r["mean_iou"], r["threshold"], kept)
                       for name, r, kept in training_rounds(tr)]), "\n")
    for comp in ("student", "unet"):
        gate = (meta.get(comp) or {}).get("gate") or {}
        if gate.get("chosen"):
            c = gate["chosen"]
            out(f"### {NAMES[comp]}: hysteresis gate (chosen: low {c['low']}, high {c['high']}; {gate['rule']})\n")
            out(table(["setting", "low", "high", "Bijie hold-out IoU", "area A strip IoU", "mean"],
                        [(k, r["low"], r["high"], r["bijie_holdout_iou"], r["areaA_strip_iou"], r["mean_iou"])
                         for k, r in (("plain threshold", gate["plain"]), ("best gate", gate["best_gate"]),
                                      ("chosen", c))]), "\n")
    sel = (meta.get("selection") or {}).get("table")
    if sel:
        out(f"### The rule (chosen: {meta['selection']['chosen']})\n")
        out(table(["candidate", "Bijie hold-out IoU", "area A strip IoU", "mean"],
                    [(m, r["bijie_holdout_iou"], r["areaA_strip_iou"], r["mean_iou"]) for m, r in
                     sorted(sel.items(), key=lambda kv: -kv[1]["mean_iou"])]), "\n")
    val = {k: v for k, v in (meta.get("validation") or {}).items() if isinstance(v, dict) and "bijie_val" in v}
    if val:
        out("### Bijie val.txt and AMU-Net area B (measured once, after every choice)\n")
        rows = []
        for m, r in val.items():
            b, s = r["bijie_val"], r["areaB"]
            rows.append((m, b.get("iou"), b.get("f1"), b.get("precision"), b.get("recall"),
                         b.get("free_images_flagged_share"), b.get("free_pixels_flagged_share"), b.get("seconds"),
                         s.get("iou"), s.get("f1"), s.get("precision"), s.get("recall"), s.get("false_alarm"),
                         s.get("seconds")))
        out(table(["method", "val IoU", "F1", "P", "R", "free img", "free px", "s", "area B IoU", "F1", "P", "R",
                     "FA", "s"], rows))
    lines += ["", "## Limits", "",
              "- Trained on 8-bit RGB aerial / satellite imagery (0.5 m AMU-Net, 0.8 m TripleSat Bijie); other "
              "sensors go through the radiometry rule and are read at the working GSD.",
              "- Where landslides are rare, the weak methods mark landslide-free ground (see the free-image "
              "columns above): check the polygons before acting on them.",
              "- Figures on other regions will differ; measure on your own labelled ground when you can."]
    return "\n".join(lines) + "\n"


def write(model_path, out, overwrite: bool = False) -> Path:
    from .checkpoint import read_metadata
    from .raster import atomic_output, check_output

    check_output(out, overwrite)  # before reading the model: an existing card is refused at once
    text = render(read_metadata(model_path), model_path)
    with atomic_output(out, overwrite=overwrite) as tmp:
        Path(tmp).write_text(text)
    return Path(out)
