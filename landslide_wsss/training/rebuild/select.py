"""The rule that picks the default method: the candidate with the best mean landslide IoU over the
Bijie train hold-out and the area A strip, measured by the same `evaluate` path users run.
Validation data (Bijie val, area B) is never looked at."""
from __future__ import annotations

from .. import holdout
from .workdir import WorkDir

SELECT_CANDIDATES = ("student", "cam", "gradcam", "gradcam++", "gradcam-cyclegan", "rcm-mam",
                     "adversarial-erasing")  # scorecam: 10x the cost


def select(data, out, wd: WorkDir, seed=0, candidates=SELECT_CANDIDATES, log=print) -> dict:
    from ...checkpoint import update_model_file
    from ...wsss import load_model
    measure = holdout.evaluate_path(data, wd.holdout_split, wd.strip_mask, seed)
    table = {}
    for m in candidates:
        table[m] = measure(load_model(out, method=m, device="cpu"))
        log(event="select", method=m, **table[m])
    best = max(table, key=lambda k: table[k]["mean_iou"])

    def apply(meta):
        meta["method_default"] = best
        meta.setdefault("params", {})["method"] = best
        meta["selection"] = {"rule": "best mean landslide IoU over the Bijie train hold-out and the area A strip "
                                     "(evaluate bijie / evaluate scene on them); validation data never used",
                             "table": table, "chosen": best}
    update_model_file(out, meta=apply)
    return table
