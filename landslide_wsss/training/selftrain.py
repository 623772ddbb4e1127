"""The one self-training rule, for the rebuild's student and for `train weak`.

A round relabels the landslide samples with the network's confident predictions (student.relabel:
>= ST_HI landslide, <= ST_LO background, landslide-free samples stay exact background) and trains
SELFTRAIN_STEPS more steps at SELFTRAIN_LR on them. The round is kept only when the hold-out
measure (holdout.score: best-threshold mean landslide IoU over the hold-out sets) rises by at
least SELFTRAIN_MARGIN; otherwise the network before the round is kept and no further round runs.
The same comparison decides whether a fine-tuned network replaces a start network (`keeps`).
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence

SELFTRAIN_STEPS = 350   # the 5-minute round of the rebuild on this CPU (half the 706-step, 10-minute student)
SELFTRAIN_LR = 3e-4
SELFTRAIN_MARGIN = 0.0  # a round must improve the hold-out; no larger margin was measured to be needed


def keeps(new: dict, old: dict, margin: float = SELFTRAIN_MARGIN) -> bool:
    """The rule's comparison: `new` hold-out figures replace `old` ones only when better by `margin`."""
    return new["mean_iou"] > old["mean_iou"] + margin


def self_train(net, samples: Sequence, measure: Callable[[object], dict], start: dict, *, rounds: int = 1,
               steps: int = SELFTRAIN_STEPS, lr: float = SELFTRAIN_LR, seed: int = 0,
               state_path: Callable[[int], object] = lambda r: None, max_minutes: Optional[float] = None,
               log: Optional[Callable] = None, progress: bool = False, margin: float = SELFTRAIN_MARGIN):
    """Up to `rounds` self-training rounds of `net` (whose hold-out figures are `start`), each kept
    only by the rule. `measure(net)` gives hold-out figures; `state_path(r)` the resumable state of
    round r (None: none). Returns (net with the kept weights, the kept figures, the record)."""
    from .student import fit_student, relabel
    best, best_sd = start, {k: v.clone() for k, v in net.state_dict().items()}
    record = {"rounds": [start], "kept_rounds": 0, "steps": steps, "lr": lr, "margin": margin, "runs": []}
    for r in range(1, rounds + 1):
        relabelled = relabel(net, samples)
        net, run = fit_student(relabelled, net, steps, lr=lr, seed=seed + r, state_path=state_path(r), log=log,
                               max_minutes=max_minutes, progress=progress)
        res = measure(net)
        if log:
            log(event="self_training", round=r, **res)
        record["rounds"].append(res)
        record["runs"].append(run)
        if not keeps(res, best, margin):
            break
        best, best_sd, samples = res, {k: v.clone() for k, v in net.state_dict().items()}, relabelled
        record["kept_rounds"] = r
    net.load_state_dict(best_sd)
    return net.eval(), best, record
