"""The rules that train to choose: the working scale, the share of crops from area A, and the
student's training length.

A rule with no seeds does not train: its documented value stands (by default, see SWEPT: the scale
rule flipped between rebuilds, and the three rules' trials cost about 1 h 40 min, more than half the
rebuild's 2.5-hour budget on this CPU). Not swept, the student is the full-length one (its hard-negative
round is what teaches it landslide-free ground), the working GSD 1.0 m and the area share 0.3. Each trial is a student trained from several seeds (`Rules`: a seed count per rule, the first seed
being the rebuild's); a candidate is judged on its mean hold-out IoU over those seeds (holdout.score),
and it replaces the rule's incumbent (the documented fixed value) only when it beats it by a margin
above the measured seed spread (holdout.choose). So a choice that the seeds cannot tell apart
stays the fixed value, and a rebuild makes the same choice twice. Per-seed figures go into the
tables recorded in the model file's metadata.

Cost (on this 2-core CPU, about 0.85 s per student step at 192 px crops): every extra rule seed
adds one 400-step student per scale and per area-share trial (about 6 minutes each) and one full
student with its self-training and hard-negative rounds (about 20 minutes): about 45 minutes for the
second seed.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Sequence

from .. import holdout
from .networks import SHORT_STEPS, STUDENT_STEPS, made_as, train_network
from .teacher import AREA_SHARE, GSD, make_samples, samples_gsd, teacher_targets
from .workdir import WorkDir, read_json, write_json

SCALE_GSDS = (1.0, 1.6, 2.4)  # working GSDs tried (m); Bijie is 0.8 m, AMU-Net 0.5 m
SCALE_STEP, SCALE_MAX = 0.8, 3.2  # while the coarsest GSD wins, the grid grows by this step, up to this
# (3.2 m = 4x Bijie's 0.8 m: coarser, most Bijie images would be smaller than one training crop)
AREA_SHARES = (0.3, 0.5)               # shares of the crops from area A tried at the working GSD
AREA_SHARE_STEP, AREA_SHARE_MAX = 0.2, 0.7  # while the largest share wins, one step more, up to this
RULE_SEEDS = 2       # seeds per trial of a rule that trains (see the cost above)
SWEPT = ()           # the rules that train by default (none: each keeps its documented value; --sweep)
RULE_MARGIN = 0.01   # the least margin a candidate needs over the incumbent (more when the seeds spread more)


@dataclass(frozen=True)
class Rules:
    """How the rules train and compare: seeds per trial of each rule (0: the rule keeps its documented
    value without training), the least margin, steps of a short and of a full-length student."""
    scale_seeds: int = 0
    area_share_seeds: int = 0
    length_seeds: int = 0
    margin: float = RULE_MARGIN
    short_steps: int = SHORT_STEPS
    full_steps: int = STUDENT_STEPS

    @classmethod
    def with_seeds(cls, seeds: int, swept: Sequence[str] = SWEPT, **kw) -> "Rules":
        """`seeds` for each rule in `swept` (names: scale, area-share, length), none for the others."""
        unknown = set(swept) - {"scale", "area-share", "length"}
        if unknown:
            raise ValueError(f"unknown rule(s) {', '.join(sorted(unknown))}: scale, area-share, length")
        return cls(**{f"{r}_seeds": seeds if r.replace("_", "-") in swept else 0
                      for r in ("scale", "area_share", "length")}, **kw)

    def seed_list(self, first: int, rule: str) -> list:
        """The seeds of a rule's trials: the rebuild's seed first."""
        return [first + k for k in range(getattr(self, f"{rule}_seeds"))]


def sweep_upward(values: Sequence[float], trial: Callable[[float, int], dict], step: float, limit: float,
                 incumbent: float, seeds: Sequence[int], margin: float = RULE_MARGIN):
    """The sweep rule of the working scale and the area A share: `trial(v, seed)` (hold-out figures
    with "mean_iou") for each value and seed; the values compared by holdout.choose against
    `incumbent`; while the largest value tried is chosen, one `step` more is tried (up to `limit`).
    Returns ({f"{v:g}": figures over seeds}, the decision {"chosen", "best", "margin"})."""
    values, table = list(values), {}
    k = 0
    while k < len(values):
        v = values[k]
        k += 1
        table[f"{v:g}"] = holdout.over_seeds([trial(v, s) for s in seeds])
        decision = holdout.choose(table, f"{incumbent:g}", margin)
        if v == values[-1] and float(decision["chosen"]) == max(values) and v + step <= limit + 1e-9:
            values.append(round(v + step, 2))  # the largest tried is chosen: try one step more
    return table, holdout.choose(table, f"{incumbent:g}", margin)


def short_student(data, wd: WorkDir, samples_file: Path, folder: Path, seed: int, first_seed: int, rules: Rules,
                  share=None, log=print) -> dict:
    """A trial's short student (rules.short_steps, no self-training) of one rule seed, trained
    unless already made at the samples' GSD and share; returns its record."""
    folder = wd.seed_folder(folder, seed, first_seed)
    gsd = samples_gsd(samples_file)
    rec = made_as(wd.record("student", folder), gsd, share, rules.short_steps)
    if rec is None:
        rec = train_network(data, samples_file, folder, name="student", steps=rules.short_steps, seed=seed,
                            split_seed=first_seed, area_share=share, log=log)
    return rec


def scale(data, wd: WorkDir, seed: int, rules: Rules, model=None, log=print, gsds=SCALE_GSDS) -> dict:
    """The working scale: short students at each GSD (samples of the cached teacher at that GSD), or
    the fixed GSD when the rule has no seeds."""
    seeds = rules.seed_list(seed, "scale")
    if not seeds:
        return {"gsd": GSD, "table": {}, "seeds": [], "rule": f"fixed at {GSD:g} m (the scale rule not swept)"}
    teacher = read_json(wd.teacher)
    targets = None  # the teacher's pseudo-masks: made once, at the first GSD that needs them

    def trial(g, s):
        nonlocal targets
        sub = wd.scale_trial(g)
        if not wd.samples("weak", sub).is_file():
            targets = targets or teacher_targets(data, seed, teacher, model, log)
            make_samples(data, sub, seed, g, targets, log)
        res = short_student(data, wd, wd.samples("weak", sub), sub, s, seed, rules, log=log)["holdout"]
        log(event="scale", gsd=g, seed=s, **res)
        return res
    table, decision = sweep_upward(gsds, trial, SCALE_STEP, SCALE_MAX, GSD, seeds, rules.margin)
    return {"gsd": float(decision["chosen"]), "table": table, "decision": decision, "steps": rules.short_steps,
            "seeds": seeds,
            "rule": f"mean hold-out IoU (Bijie hold-out + area A strip) over {len(seeds)} seeds of a short student "
                    f"per GSD; another GSD replaces {GSD:g} m only with a margin above the seed spread "
                    f"(at least {rules.margin}); one step coarser while the coarsest tried is chosen"}


def share_folder(wd: WorkDir, share: float, gsd: float) -> Path:
    """Where the short student of a share lies: the scale trial at GSD for AREA_SHARE when the scale
    rule made one (the same recipe: samples at that GSD with their own weights), else the
    area-share trial."""
    trial = wd.scale_trial(gsd)
    if abs(share - AREA_SHARE) < 1e-9 and wd.samples("weak", trial).is_file():
        return trial
    return wd.share_trial(share)


def share_student(data, wd: WorkDir, share: float, gsd: float, seed: int, first_seed: int, rules: Rules,
                  log=print) -> dict:
    """The short student of an area share and rule seed (see share_folder), trained when missing."""
    folder = share_folder(wd, share, gsd)
    if folder == wd.scale_trial(gsd):  # the scale trial's own samples and weights
        return short_student(data, wd, wd.samples("weak", folder), folder, seed, first_seed, rules, log=log)
    return short_student(data, wd, wd.samples("weak"), folder, seed, first_seed, rules, share=share, log=log)


def area_share(data, wd: WorkDir, seed: int, rules: Rules, log=print, shares=AREA_SHARES) -> dict:
    """The share of the student's crops drawn from area A, by the scale rule at the working GSD, or
    the fixed share when the rule has no seeds."""
    gsd = samples_gsd(wd.samples("weak"))
    seeds = rules.seed_list(seed, "area_share")
    if not seeds:
        return {"share": AREA_SHARE, "gsd": gsd, "table": {}, "seeds": [],
                "rule": f"fixed at {AREA_SHARE:g} (the area-share rule not swept)"}

    def trial(share, s):
        res = share_student(data, wd, share, gsd, s, seed, rules, log)["holdout"]
        log(event="area_share", share=share, seed=s, **res)
        return res
    table, decision = sweep_upward(shares, trial, AREA_SHARE_STEP, AREA_SHARE_MAX, AREA_SHARE, seeds, rules.margin)
    return {"share": float(decision["chosen"]), "gsd": gsd, "table": table, "decision": decision,
            "steps": rules.short_steps, "seeds": seeds,
            "rule": f"the scale rule over shares of area A crops (incumbent {AREA_SHARE:g})"}


def full_student(data, wd: WorkDir, seed: int, first_seed: int, share: float, rules: Rules, selftrain_steps: int,
                 max_minutes=None, selftrain_max_minutes=None, log=print) -> Path:
    """The full-length student of one rule seed (with its self-training round and its hard-negative
    round, each kept only when the hold-out says so), on WORK's samples
    at `share`: WORK/student.* for the first seed, WORK/length/seedS/ for the others."""
    folder = wd.second if seed == first_seed else wd.length_trial(seed)
    gsd = samples_gsd(wd.samples("weak"))
    if made_as(wd.record("student", folder), gsd, share, rules.full_steps) is None:
        train_network(data, wd.samples("weak"), folder, name="student", steps=rules.full_steps, seed=seed,
                      split_seed=first_seed, area_share=share, rounds=1, negative_rounds=1,
                      selftrain_steps=selftrain_steps,
                      max_minutes=max_minutes, selftrain_max_minutes=selftrain_max_minutes, log=log)
    return wd.network("student", folder)


def length(data, wd: WorkDir, seed: int, rules: Rules, shares: dict, selftrain_steps: int, max_minutes=None,
           selftrain_max_minutes=None, log=print) -> dict:
    """The rule for how long the student trains: the full-length student (with its self-training
    round when kept) or the short one at the chosen share, by mean hold-out IoU over the rule
    seeds; the full one replaces the short incumbent only with a margin above the seed spread
    (long training on pseudo-masks can learn their noise). Returns the table and the file of the
    rebuild seed's chosen student (with no rule seeds: the full-length one of the rebuild seed)."""
    share, gsd = shares["share"], shares["gsd"]
    figures: Dict[str, list] = {"full": [], "short": []}
    files = {}
    seeds = rules.seed_list(seed, "length")
    if not seeds:  # not swept: the full-length student of the rebuild seed, its rounds kept by the hold-out
        full = full_student(data, wd, seed, seed, share, rules, selftrain_steps, max_minutes, selftrain_max_minutes, log)
        result = {"chosen": "full", "table": {"full": holdout.over_seeds([read_json(full.with_suffix(".json"))["holdout"]])},
                  "seeds": [], "steps": {"full": rules.full_steps},
                  "rule": "fixed: the full-length student with its self-training and hard-negative rounds, each kept "
                          "only when the hold-out rises (the length rule not swept)",
                  "file": str(full)}
        write_json(wd.length, result)
        return result
    for s in seeds:
        full = full_student(data, wd, s, seed, share, rules, selftrain_steps, max_minutes, selftrain_max_minutes, log)
        figures["full"].append(read_json(full.with_suffix(".json"))["holdout"])
        figures["short"].append(share_student(data, wd, share, gsd, s, seed, rules, log)["holdout"])
        if s == seed:
            files = {"full": full, "short": wd.network("student", wd.seed_folder(share_folder(wd, share, gsd), s, seed))}
    table = {k: holdout.over_seeds(v) for k, v in figures.items()}
    decision = holdout.choose(table, "short", rules.margin)
    log(event="training_length", **{k: v["mean_iou"] for k, v in table.items()}, chosen=decision["chosen"])
    result = {"chosen": decision["chosen"], "table": table, "decision": decision,
              "steps": {"full": rules.full_steps, "short": rules.short_steps}, "seeds": seeds,
              "rule": "mean hold-out IoU over the rule seeds of the full-length student (with its self-training "
                      "round when kept) and the short one; the full one only with a margin above the seed spread",
              "file": str(files[decision["chosen"]])}
    write_json(wd.length, result)
    return result
