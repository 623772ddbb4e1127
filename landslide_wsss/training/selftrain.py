"""The one rule for rounds that fine-tune a trained network on remade samples, for the rebuild's
student and for `train weak`.

Two kinds of round, one rule:
- self-training relabels the landslide samples with the network's confident predictions
  (student.relabel: >= ST_HI landslide, <= ST_LO background; landslide-free samples stay exact
  background);
- hard negatives re-weight the landslide-free samples by the network's own false alarms on them
  (student.mine_negatives: drawn more often where it marks something).
Each round trains SELFTRAIN_STEPS more steps at SELFTRAIN_LR on the remade samples and is kept
only when the hold-out measure (holdout.score: best-threshold mean landslide IoU over the hold-out
sets) rises by more than SELFTRAIN_MARGIN; otherwise the network before the round is kept and no
further round of that kind runs. The same comparison decides whether a fine-tuned network
replaces a start network (`keeps`).
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence

SELFTRAIN_STEPS = 350   # the 5-minute round of the rebuild on this CPU (half the 706-step, 10-minute student)
SELFTRAIN_LR = 3e-4
SELFTRAIN_MARGIN = 0.0  # a round must improve the hold-out; no larger margin was measured to be needed
NEGATIVES_SEED = 100    # hard-negative rounds draw their batches from seed + NEGATIVES_SEED + round


def keeps(new: dict, old: dict, margin: float = SELFTRAIN_MARGIN) -> bool:
    """The rule's comparison: `new` hold-out figures replace `old` ones only when better by `margin`."""
    return new["mean_iou"] > old["mean_iou"] + margin


def fine_tune_rounds(net, samples: Sequence, measure: Callable[[object], dict], start: dict, *,
                     remake: Callable[[object, Sequence, dict], Sequence], event: str, rounds: int = 1,
                     steps: int = SELFTRAIN_STEPS, lr: float = SELFTRAIN_LR, seed: int = 0,
                     state_path: Callable[[int], object] = lambda r: None, max_minutes: Optional[float] = None,
                     log: Optional[Callable] = None, progress: bool = False, margin: float = SELFTRAIN_MARGIN):
    """Up to `rounds` rounds of `net` (whose hold-out figures are `start`), each on the samples
    `remake(net, samples, best figures)` gives and kept only by the rule. `measure(net)` gives
    hold-out figures; `state_path(r)` the resumable state of round r (None: none). Returns (net
    with the kept weights, the kept figures, the record)."""
    from .student import fit_student
    best, best_sd = start, {k: v.clone() for k, v in net.state_dict().items()}
    record = {"rounds": [start], "kept_rounds": 0, "steps": steps, "lr": lr, "margin": margin, "runs": []}
    for r in range(1, rounds + 1):
        remade = remake(net, samples, best)
        net, run = fit_student(remade, net, steps, lr=lr, seed=seed + r, state_path=state_path(r), log=log,
                               max_minutes=max_minutes, progress=progress)
        res = measure(net)
        if log:
            log(event=event, round=r, **res)
        record["rounds"].append(res)
        record["runs"].append(run)
        if not keeps(res, best, margin):
            break
        best, best_sd, samples = res, {k: v.clone() for k, v in net.state_dict().items()}, remade
        record["kept_rounds"] = r
    net.load_state_dict(best_sd)
    return net.eval(), best, record


def self_train(net, samples: Sequence, measure: Callable[[object], dict], start: dict, **kw):
    """Self-training rounds (student.relabel), by the rule above."""
    from .student import relabel
    return fine_tune_rounds(net, samples, measure, start, remake=lambda n, s, best: relabel(n, s),
                            event="self_training", **kw)


def hard_negatives(net, samples: Sequence, measure: Callable[[object], dict], start: dict, *, seed: int = 0, **kw):
    """Hard-negative rounds (student.mine_negatives at the hold-out's threshold), by the rule above."""
    from .student import mine_negatives
    return fine_tune_rounds(net, samples, measure, start, event="hard_negatives", seed=seed + NEGATIVES_SEED,
                            remake=lambda n, s, best: mine_negatives(n, s, float(best["threshold"])), **kw)
