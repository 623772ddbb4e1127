"""The rebuild as a declared pipeline (training/rebuild/): the stage table and its driver (resume
markers, --stage, what follows a re-run stage), the work directory, the rules' seed comparison,
and the one self-training rule (training/selftrain.py)."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from landslide_wsss.training import holdout
from landslide_wsss.training import student as st
from landslide_wsss.training.rebuild import stages
from landslide_wsss.training.rebuild.sweeps import Rules
from landslide_wsss.training.rebuild.workdir import WorkDir
from test_student import SMALL, _blob_samples


@pytest.fixture
def recorded(monkeypatch):
    """The real stage table with each stage's work replaced by a record of its name (what is under
    test is the driver's order, markers and invalidation; each stage's work has its own tests)."""
    ran, fail = [], set()

    def recorder(name):
        def run(settings, log):
            if name in fail:
                fail.discard(name)
                raise KeyboardInterrupt  # an interrupted run
            ran.append(name)
        return run
    monkeypatch.setattr(stages, "STAGES", [dataclasses.replace(s, run=recorder(s.name)) for s in stages.STAGES])
    return ran, fail


def _settings(tmp_path, **kw):
    return stages.Settings(data=tmp_path / "data", out=tmp_path / "model.safetensors", work=WorkDir(tmp_path / "runs"),
                           **kw)


def _quiet(**rec):
    pass


def test_all_runs_the_table_in_order_and_resumes_where_it_was_interrupted(tmp_path, recorded):
    ran, fail = recorded
    s = _settings(tmp_path)
    fail.add("scale")
    with pytest.raises(KeyboardInterrupt):
        stages.run(s, "all", log=_quiet)
    assert ran == ["train", "tune", "cyclegan", "refine", "teacher"]
    ran.clear()
    assert stages.run(s, "all", log=_quiet) == ran == list(stages.STAGE_NAMES[5:])  # from the interrupted stage on
    ran.clear()
    assert stages.run(s, "all", log=_quiet) == [] and ran == []  # everything finished for these settings
    assert json.loads(s.work.marker("student").read_text())["rules"]["length_seeds"] == Rules().length_seeds


def test_a_stage_runs_after_its_missing_work_inputs_and_the_stages_after_it_follow(tmp_path, recorded):
    ran, _ = recorded
    s = _settings(tmp_path)
    stages.run(s, "unet", log=_quiet)
    assert ran == ["teacher", "scale", "pseudo", "area-share", "unet"]  # the model file's parts are not rebuilt
    ran.clear()
    stages.run(s, "unet", log=_quiet)
    assert ran == ["unet"]  # named: re-run although finished
    stages.run(s, "all", log=_quiet)
    ran.clear()
    stages.run(s, "scale", log=_quiet)
    stages.run(s, "all", log=_quiet)
    assert ran == ["scale", "pseudo", "area-share", "student", "unet", "gate", "select", "graphs", "evaluate"]


def test_changed_settings_rerun_the_stages_they_shape(tmp_path, recorded):
    ran, _ = recorded
    stages.run(_settings(tmp_path), "all", log=_quiet)
    ran.clear()
    stages.run(_settings(tmp_path, yardstick_steps=10), "all", log=_quiet)
    assert ran == ["unet", "gate", "select", "graphs", "evaluate"]
    ran.clear()
    stages.run(_settings(tmp_path, yardstick_steps=10, rules=Rules(length_seeds=1)), "all", log=_quiet)
    assert ran == ["scale", "pseudo", "area-share", "student", "unet", "gate", "select", "graphs", "evaluate"]
    ran.clear()
    stages.run(_settings(tmp_path, yardstick_steps=10, rules=Rules(length_seeds=1), seed=1), "all", log=_quiet)
    assert ran == list(stages.STAGE_NAMES)  # another seed: another model


def test_command_line_lengths_are_steps_and_budgets_only_stop_early(tmp_path):
    from landslide_wsss.training.default import settings_from_args
    s, stage = settings_from_args(["--stage", "unet", "--log-dir", str(tmp_path), "--unet-minutes", "25",
                                   "--rule-seeds", "3"])
    assert stage == "unet" and s.work.root == tmp_path and s.rules == Rules.with_seeds(3)
    assert (s.rules.scale_seeds, s.rules.area_share_seeds, s.rules.length_seeds) == (0, 0, 0)
    swept, _ = settings_from_args(["--sweep", "scale,length"])
    assert (swept.rules.scale_seeds, swept.rules.area_share_seeds, swept.rules.length_seeds) == (2, 0, 2)
    with pytest.raises(SystemExit) as e:
        settings_from_args(["--sweep", "scale,depth"])
    assert e.value.code == 2
    assert s.yardstick_steps == 3186 and s.yardstick_max_minutes == 25 and s.student_max_minutes is None
    with pytest.raises(SystemExit) as e:
        settings_from_args(["--stage", "nope"])
    assert e.value.code == 2
    with pytest.raises(SystemExit):
        settings_from_args(["--unet-steps", "0"])


def test_workdir_owns_the_paths_and_markers(tmp_path):
    wd = WorkDir(tmp_path)
    assert wd.scale_trial(2.4) == tmp_path / "second_stage" / "scale" / "gsd2.4"
    assert wd.seed_folder(wd.scale_trial(2.4), 0, 0) == wd.scale_trial(2.4)
    assert wd.seed_folder(wd.scale_trial(2.4), 1, 0) == wd.scale_trial(2.4) / "seed1"
    assert wd.state("student", round=1).name == "student.st1.state.safetensors"
    assert not wd.is_done("teacher", {"seed": 0})
    wd.mark_done("teacher", {"seed": 0})
    assert wd.is_done("teacher", {"seed": 0}) and not wd.is_done("teacher", {"seed": 1})
    wd.forget("teacher")
    assert not wd.is_done("teacher", {"seed": 0})


def test_area_share_rule_reuses_the_scale_trial_and_compares_seed_means(tmp_path, monkeypatch):
    """sweeps.area_share: the scale trial at the working GSD stands for AREA_SHARE on each seed (not
    retrained); the other shares train one short student per seed on WORK's samples; a share
    replaces the incumbent only by a margin above the seeds' spread. (The trainer is replaced by a
    recorder: the stage's bookkeeping is under test; the trainer has its own tests.)"""
    from landslide_wsss.training.rebuild import sweeps, teacher
    wd = WorkDir(tmp_path)
    samples = [st.Sample(np.zeros((3, 8, 8), np.uint8), np.zeros((8, 8), np.uint8), n, n.endswith(".png"))
               for n in ("areaA_0", "ls_0.png")]
    wd.second.mkdir(parents=True)
    teacher.save_samples(wd.samples("weak"), samples, {"gsd": 2.4})
    trained = []
    gain = {0.5: 0.05, 0.7: 0.004}

    def fake_train(data, samples_file, folder, *, name, steps, seed, split_seed, area_share=None, **kw):
        trained.append((area_share, seed, steps))
        mean = 0.40 + gain.get(area_share, 0.0) + 0.01 * seed
        rec = {"holdout": {"mean_iou": mean}, "gsd": teacher.samples_gsd(samples_file),
               "area_share": area_share if area_share is not None else teacher.AREA_SHARE, "training": {"steps": steps}}
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{name}.json").write_text(json.dumps(rec))
        return rec
    monkeypatch.setattr(sweeps, "train_network", fake_train)
    for seed in (0, 1):  # the scale trial at 2.4 m, both seeds: AREA_SHARE's students
        folder = wd.seed_folder(wd.scale_trial(2.4), seed, 0)
        teacher.save_samples(wd.samples("weak", wd.scale_trial(2.4)), samples, {"gsd": 2.4})
        fake_train("data", wd.samples("weak", wd.scale_trial(2.4)), folder, name="student", steps=400, seed=seed,
                   split_seed=0)
    trained.clear()
    r = sweeps.area_share("data", wd, 0, Rules.with_seeds(2, ("area-share",)), log=_quiet)
    assert trained == [(0.5, 0, 400), (0.5, 1, 400), (0.7, 0, 400), (0.7, 1, 400)]
    assert r["gsd"] == 2.4 and r["share"] == 0.5  # +0.05 over 0.3, above the 0.01 spread; 0.7 below 0.5
    assert [f["mean_iou"] for f in r["table"]["0.3"]["per_seed"]] == pytest.approx([0.40, 0.41])
    assert r["table"]["0.3"]["spread"] == 0.01
    trained.clear()
    gain[0.5] = 0.005  # within the margin: the incumbent stays
    for f in wd.second.glob("area_share/**/student.json"):
        f.unlink()
    r = sweeps.area_share("data", wd, 0, Rules.with_seeds(2, ("area-share",)), log=_quiet)
    assert r["share"] == 0.3 and r["decision"]["best"] == "0.5"


def _recording_trainer(trained, gain):
    """A stand-in for networks.train_network that records what it was asked to train and writes the
    record a trained network leaves (the rules' bookkeeping is under test; the trainer has its own)."""
    from landslide_wsss.training.rebuild import teacher

    def fake_train(data, samples_file, folder, *, name, steps, seed, split_seed, area_share=None, **kw):
        trained.append((folder.name, area_share, seed, steps))
        rec = {"holdout": {"mean_iou": 0.40 + gain.get(steps, 0.0) + 0.01 * seed},
               "gsd": teacher.samples_gsd(samples_file),
               "area_share": area_share if area_share is not None else teacher.AREA_SHARE, "training": {"steps": steps}}
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{name}.json").write_text(json.dumps(rec))
        return rec
    return fake_train


def test_rules_without_seeds_keep_their_documented_values_and_the_length_rule_trains_on_work_samples(
        tmp_path, monkeypatch):
    """By default no rule trains: the scale and area share keep their fixed values and the student is
    the full-length one of the rebuild seed, each recorded as fixed. Swept, the length rule (with no
    scale trial to reuse) trains its short students on WORK's samples at the share, beside the full
    ones, and keeps the short incumbent within the spread."""
    from landslide_wsss.training.rebuild import sweeps, teacher
    wd = WorkDir(tmp_path)
    wd.second.mkdir(parents=True)
    teacher.save_samples(wd.samples("weak"), [st.Sample(np.zeros((3, 8, 8), np.uint8), np.zeros((8, 8), np.uint8),
                                                        "ls_0.png", True)], {"gsd": teacher.GSD})
    trained = []
    rules = Rules()
    full, short = rules.full_steps, rules.short_steps
    monkeypatch.setattr(sweeps, "train_network", _recording_trainer(trained, {full: 0.005}))
    assert (rules.scale_seeds, rules.area_share_seeds, rules.length_seeds) == (0, 0, 0)
    sc = sweeps.scale("data", wd, 0, rules, log=_quiet)  # no teacher file needed: nothing is made
    assert sc["gsd"] == teacher.GSD == 1.0 and sc["seeds"] == [] and "fixed" in sc["rule"]
    sh = sweeps.area_share("data", wd, 0, rules, log=_quiet)
    assert sh["share"] == teacher.AREA_SHARE and sh["gsd"] == 1.0 and "fixed" in sh["rule"] and trained == []
    fixed = sweeps.length("data", wd, 0, rules, sh, selftrain_steps=3, log=_quiet)
    assert trained == [("second_stage", 0.3, 0, full)] and "fixed" in fixed["rule"]
    assert fixed["chosen"] == "full" and fixed["file"] == str(wd.network("student", wd.second))
    assert fixed["table"]["full"]["mean_iou"] == pytest.approx(0.405)
    trained.clear()
    r = sweeps.length("data", wd, 0, Rules.with_seeds(2, ("length",)), sh, selftrain_steps=3, log=_quiet)
    assert trained == [("share0.3", 0.3, 0, short), ("seed1", 0.3, 1, full), ("seed1", 0.3, 1, short)]
    assert r["chosen"] == "short" and r["file"] == str(wd.network("student", wd.share_trial(0.3)))
    assert [f["mean_iou"] for f in r["table"]["short"]["per_seed"]] == pytest.approx([0.40, 0.41])


def test_choose_keeps_the_incumbent_unless_beaten_by_more_than_the_spread():
    table = {"a": holdout.over_seeds([{"mean_iou": 0.40}, {"mean_iou": 0.42}]),
             "b": holdout.over_seeds([{"mean_iou": 0.44}, {"mean_iou": 0.41}])}
    assert table["b"]["spread"] == 0.03 and table["b"]["mean_iou"] == 0.425
    assert holdout.choose(table, "a", 0.01) == {"chosen": "a", "best": "b", "margin": 0.03}
    table["b"] = holdout.over_seeds([{"mean_iou": 0.46}, {"mean_iou": 0.47}])
    assert holdout.choose(table, "a", 0.01)["chosen"] == "b"
    assert holdout.choose(table, "a", 0.1)["chosen"] == "a"  # the least margin holds even without spread


def _briefly_trained():
    """Four blob samples, a small student trained 8 steps on them, a hold-out of two and its score."""
    from landslide_wsss.models.student import StudentNet
    samples = _blob_samples(n=4)
    mean, std = st.band_stats(samples)
    torch.manual_seed(0)
    net = StudentNet(mean=mean, std=std, **SMALL)
    net, _ = st.fit_student(samples, net, 8, crop=64, batch=4, progress=False)
    items = {"held": [(s.image, s.target, None) for s in samples[:2]]}
    return samples, net, items, holdout.score(net, items)


@pytest.mark.parametrize("better", [True, False])
def test_self_training_round_is_kept_only_when_the_hold_out_rises(better):
    """selftrain.self_train: a round trains on the relabelled samples; kept when the hold-out rises,
    otherwise the network comes back exactly as it was."""
    from landslide_wsss.training.selftrain import self_train
    samples, net, items, start = _briefly_trained()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    measured = []

    def measure(n):  # the real hold-out score, moved up or down to steer the rule
        r = dict(holdout.score(n, items))
        measured.append(r)
        r["mean_iou"] = start["mean_iou"] + (0.1 if better else -0.1) * len(measured)
        return r
    net, kept, record = self_train(net, samples, measure, start, rounds=2, steps=3, seed=0)
    after = net.state_dict()
    same = all(torch.equal(before[k], after[k]) for k in before)
    assert record["rounds"][0] == start and len(record["runs"]) == (2 if better else 1)
    assert record["runs"][0]["done"] == 3 and record["runs"][0]["stopped_early"] is None
    if better:
        assert record["kept_rounds"] == 2 and kept == measured[-1] and not same
    else:
        assert record["kept_rounds"] == 0 and kept == start and same


def test_mine_negatives_draws_the_false_alarms_more_often_within_each_source():
    """student.mine_negatives: a landslide-free sample the network marks more gets more weight, each
    source's landslide-free total and the landslide samples stay, targets are untouched."""
    rng = np.random.default_rng(0)

    def sample(name, positive, weight):
        tgt = np.ones((8, 8), np.uint8) if positive else np.zeros((8, 8), np.uint8)
        return st.Sample(rng.integers(0, 255, (3, 8, 8)).astype(np.uint8), tgt, name, positive, weight)
    samples = [sample("ls_1", True, 0.2), sample("nls_1", False, 0.2), sample("nls_2", False, 0.2),
               sample("areaA_r0_c0", False, 0.2), sample("areaA_r0_c8", False, 0.2)]
    marked = {"nls_1": 0.5, "nls_2": 0.0, "areaA_r0_c0": 0.25, "areaA_r0_c8": 0.25}
    by_image = {id(s.image): marked.get(s.name, 1.0) for s in samples}

    def predict(net, image):  # a network that marks the given share of each image's pixels
        p = np.zeros(image.shape[1:], np.float32)
        p.flat[: int(round(by_image[id(image)] * p.size))] = 0.9
        return p
    out = st.mine_negatives(None, samples, 0.5, predict=predict)
    w = {s.name: s.weight for s in out}
    assert w["ls_1"] == 0.2
    assert w["nls_1"] == pytest.approx(0.4 * (0.25 + 0.5)) and w["nls_2"] == pytest.approx(0.4 * 0.25)
    assert w["areaA_r0_c0"] == pytest.approx(0.2) and w["areaA_r0_c8"] == pytest.approx(0.2)  # equal alarms: even
    assert all(np.array_equal(a.target, b.target) and a.image is b.image for a, b in zip(out, samples))
    quiet = st.mine_negatives(None, samples, 0.95, predict=predict)  # nothing above the threshold: as before
    assert [s.weight for s in quiet] == [s.weight for s in samples]


def test_hard_negative_round_trains_on_mined_samples_and_keeps_only_a_better_network():
    """selftrain.hard_negatives: one round at the hold-out's threshold, by the one rule (kept when the
    hold-out rises; otherwise the network comes back exactly as it was)."""
    from landslide_wsss.training.selftrain import hard_negatives
    samples, net, items, start = _briefly_trained()
    before = {k: v.clone() for k, v in net.state_dict().items()}

    def worse(n):
        return {**holdout.score(n, items), "mean_iou": start["mean_iou"] - 0.1}
    net, kept, record = hard_negatives(net, samples, worse, start, rounds=1, steps=3, seed=0)
    assert record["kept_rounds"] == 0 and kept == start and len(record["runs"]) == 1
    assert record["runs"][0]["done"] == 3 and record["runs"][0]["seed"] == 101
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_stage_times_read_the_drivers_log_and_count_a_resumed_stage_once(tmp_path, recorded):
    """benchmarks/rebuild_times.py reads the wall seconds the driver logs per stage; an interrupted
    run of a stage is listed apart, its finished run counted once; a cut-short line is skipped."""
    import sys
    from pathlib import Path

    from landslide_wsss.training.common import Logger
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from benchmarks.rebuild_times import stage_times
    _, fail = recorded
    s = _settings(tmp_path)
    log = Logger(s.work.log, quiet=True)
    fail.add("cyclegan")
    with pytest.raises(KeyboardInterrupt):
        stages.run(s, "all", log=log)
    with open(s.work.log, "a") as fh:
        fh.write('{"t": 1.0, "event": "sta')  # a kill mid-line
        fh.write("\n")
    stages.run(s, "all", log=log)
    times = stage_times(s.work.log)
    assert list(times["stages"]) == list(stages.STAGE_NAMES)
    assert times["interrupted"] == {"cyclegan": 1} and times["unfinished"] == []
    assert all(v["seconds"] >= 0 and v["started"] for v in times["stages"].values())
    assert times["total_seconds"] == pytest.approx(sum(v["seconds"] for v in times["stages"].values()), abs=0.1)


def test_a_saved_metadata_json_compares_as_its_model_file(tmp_path):
    """compare_rebuilds.py --save-metadata keeps a rebuild's choices and figures beyond its work
    directory; the saved JSON then reads as the model file did, and a changed figure shows."""
    import sys
    from pathlib import Path

    import torch

    from landslide_wsss.checkpoint import save_checkpoint
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from benchmarks.compare_rebuilds import choices, figures, load_metadata, main
    meta = {"architecture": "test", "in_bands": 3, "version": "0", "method_default": "student", "student": {"gsd": 1.0, "teacher": {"method": "cam", "refine": "slic"}},
            "validation": {"note": "text", "student": {"bijie_val": {"iou": 0.3, "precision": 0.4},
                                                        "areaB": {"iou": 0.31}}}}
    model = save_checkpoint(tmp_path / "a.safetensors", {"w": torch.zeros(1)}, meta)
    saved = tmp_path / "a.json"
    assert main(["--save-metadata", str(saved), str(model)]) == 0
    a, b = load_metadata(model), load_metadata(saved)
    assert choices(a) == choices(b) and figures(a) == figures(b)
    assert figures(b) == {"student areaB iou": 0.31, "student bijie_val iou": 0.3, "student bijie_val precision": 0.4}
    assert choices(b)["working GSD (m)"] == 1.0 and choices(b)["teacher refinement"] == "slic"
    with pytest.raises(SystemExit) as exc:
        main([str(model)])  # no LABEL=
    assert exc.value.code == 2


def test_the_model_card_lists_every_fine_tuning_round_and_whether_it_was_kept():
    """A student record with a self-training and a hard-negative round shows both, each marked kept
    or not; an older record (self-training rounds only, at the top level) reads as before."""
    from landslide_wsss.model_card import training_rounds

    def fig(m):
        return {"bijie_holdout_iou": m / 4, "areaA_strip_iou": m, "mean_iou": m, "threshold": 0.5}
    new = {"rounds": [fig(0.36), fig(0.33)], "kept_rounds": 0,
           "self_training": {"rounds": [fig(0.36), fig(0.33)], "kept_rounds": 0},
           "hard_negatives": {"rounds": [fig(0.36), fig(0.41), fig(0.40)], "kept_rounds": 1}}
    assert [(n, r["mean_iou"], k) for n, r, k in training_rounds(new)] == [
        ("trained", 0.36, ""), ("self-training 1", 0.33, "no"), ("hard negatives 1", 0.41, "yes"),
        ("hard negatives 2", 0.40, "no")]
    old = {"rounds": [fig(0.44), fig(0.45)], "kept_rounds": 1}
    assert [(n, k) for n, _, k in training_rounds(old)] == [("trained", ""), ("self-training 1", "yes")]


def test_student_trials_weigh_the_bijie_draw_as_each_trial_says(tmp_path):
    """benchmarks/student_trials.py: `even` draws every Bijie image alike (the landslide images'
    share is their count's), `landslide-share` gives them 60 %; area A keeps the
    rebuild's area share in both."""
    import sys
    from pathlib import Path

    from landslide_wsss.training import student as st
    from landslide_wsss.training.rebuild import teacher as tc
    from landslide_wsss.training.rebuild.workdir import write_json
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from benchmarks.student_trials import trial_samples
    def sample(name, positive):
        return st.Sample(np.zeros((3, 8, 8), np.uint8), np.zeros((8, 8), np.uint8), name, positive)
    samples = ([sample(f"areaA_r{k}", True) for k in range(2)] + [sample(f"ls_{k}", True) for k in range(2)]
               + [sample(f"nls_{k}", False) for k in range(6)])
    second = tmp_path / "work" / "second_stage"
    tc.save_samples(second / "weak_samples.safetensors", samples, {"gsd": 1.0})
    write_json(second / "area_share.json", {"share": 0.4})
    for trial, slides in (("even", 0.6 * 2 / 8), ("landslide-share", 0.6 * 0.6)):
        path = trial_samples(trial, tmp_path / "work", None, None, 0, tmp_path / "trials", print)
        got, meta = tc.load_samples(path)
        assert sum(s.weight for s in got if s.name.startswith("areaA")) == pytest.approx(0.4)
        assert sum(s.weight for s in got if s.name.startswith("ls_")) == pytest.approx(slides)
        assert sum(s.weight for s in got) == pytest.approx(1.0)
        assert meta["landslide_share"] == pytest.approx(slides / 0.6)
