"""Segmentation metrics accumulated over a whole split (pixel counts summed, then ratios).

Landslide class = 1. Reference pixels equal to `ignore` (255) are left out. Reported:
iou (landslide-class IoU), f1, precision, recall, miou (mean of the landslide and background IoUs),
plus the raw counts. Empty denominators give 0.0 (no landslide predicted and none present: iou 0,
flagged by the counts).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

IGNORE = 255


@dataclass
class Confusion:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    def update(self, pred, target, ignore: int = IGNORE) -> "Confusion":
        """pred: bool/0-1 array; target: 0/1 with `ignore` values skipped. Same shape."""
        pred = np.asarray(pred).astype(bool)
        target = np.asarray(target)
        if pred.shape != target.shape:
            raise ValueError(f"prediction {pred.shape} and reference {target.shape} differ in shape")
        keep = target != ignore
        t = (target == 1) & keep
        p = pred & keep
        tp = int(np.count_nonzero(p & t))
        fp = int(np.count_nonzero(p & ~t))
        fn = int(np.count_nonzero(~p & t))
        tn = int(np.count_nonzero(keep)) - tp - fp - fn
        self.tp += tp
        self.fp += fp
        self.fn += fn
        self.tn += tn
        return self

    def __iadd__(self, other: "Confusion") -> "Confusion":
        self.tp += other.tp
        self.fp += other.fp
        self.fn += other.fn
        self.tn += other.tn
        return self

    @staticmethod
    def _div(a, b) -> float:
        return float(a) / float(b) if b else 0.0

    @property
    def iou(self) -> float:
        return self._div(self.tp, self.tp + self.fp + self.fn)

    @property
    def iou_background(self) -> float:
        return self._div(self.tn, self.tn + self.fp + self.fn)

    @property
    def precision(self) -> float:
        return self._div(self.tp, self.tp + self.fp)

    @property
    def recall(self) -> float:
        return self._div(self.tp, self.tp + self.fn)

    @property
    def f1(self) -> float:
        return self._div(2 * self.tp, 2 * self.tp + self.fp + self.fn)

    @property
    def miou(self) -> float:
        return 0.5 * (self.iou + self.iou_background)

    @property
    def false_alarm(self) -> float:
        """Share of the background (landslide-free ground) marked as landslide."""
        return self._div(self.fp, self.fp + self.tn)

    def as_dict(self) -> dict:
        return {"iou": self.iou, "f1": self.f1, "precision": self.precision, "recall": self.recall,
                "miou": self.miou, "iou_background": self.iou_background, "false_alarm": self.false_alarm,
                "tp": self.tp, "fp": self.fp, "fn": self.fn, "tn": self.tn}


def segmentation_metrics(preds, targets, ignore: int = IGNORE) -> dict:
    """Metrics over pairs of (prediction, reference) arrays, counts accumulated over all pairs."""
    c = Confusion()
    for p, t in zip(preds, targets):
        c.update(p, t, ignore)
    return c.as_dict()
