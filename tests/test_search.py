"""Searchers and schedulers driven with scripted metrics: no training, no Ray cluster."""

import pytest

from hyperfcn import records, scheduler, searchers  # noqa: E402
from hyperfcn.config import ModelConfig
from hyperfcn.space import load_space, parse_space

KEYS = ModelConfig.keys()


def _score(cfg):
    # A made-up objective: smaller lr distance from 3e-3 and conv head are "better".
    import math

    return abs(math.log(cfg["learning_rate"] / 3e-3)) + (0.0 if cfg["head"] == "conv" else 0.5)


def _drive(searcher, n):
    """n suggestions, each completed with its made-up score, in order."""
    out = []
    for i in range(n):
        c = searcher.suggest(str(i))
        out.append(c)
        searcher.on_trial_complete(str(i), {"val_loss": _score(c)})
    return out


@pytest.mark.parametrize("name", ["hyperopt", "random", "optuna"])
def test_initial_point_first_then_valid_flat_suggestions(name, deadline):
    deadline(60)
    space = load_space(known_keys=KEYS)
    s = searchers.make_searcher(name, space, "val_loss", "min", seed=3,
                             points=[dict(space.defaults)], n_initial_points=4)
    first = s.suggest("t0")
    assert first == space.defaults
    s.on_trial_complete("t0", {"val_loss": _score(first)})
    for i in range(1, 14):
        cfg = s.suggest(f"t{i}")
        assert space.validate_point(cfg) == cfg  # flat, values form, only active keys
        ModelConfig.from_dict(cfg)
        s.on_trial_complete(f"t{i}", {"val_loss": _score(cfg)})


def test_nested_initial_point_with_conditional_choices_does_not_hang(deadline):
    """Ray 2.60's own HyperOptSearch hangs on exactly this; ours must not."""
    deadline(30)
    space = parse_space({
        "parameters": {
            "head": {"choice": {"dense": {"dense_units": {"choice": [64, 128]}},
                                "conv": {"conv_head_filters": {"choice": [32, 64]}}}},
            "rotation": {"choice": {True: {"rotation_factor": {"uniform": [0.0, 0.3]}},
                                    False: {}}},
            "learning_rate": {"loguniform": [1e-4, 1e-1]},
        },
        "defaults": {"head": "conv", "conv_head_filters": 64, "rotation": True,
                     "rotation_factor": 0.2, "learning_rate": 0.01},
    }, "nested", KEYS)
    points = [dict(space.defaults), {"head": "dense", "dense_units": 128, "rotation": False,
                                     "learning_rate": 0.001}]
    s = searchers.make_searcher("hyperopt", space, "val_loss", "min", 0, points, 2)
    got = [s.suggest("a"), s.suggest("b")]
    assert got == points  # in order, values form
    for i in range(len(got)):
        s.on_trial_complete("ab"[i], {"val_loss": float(i)})
    for i in range(10):  # TPE after the initial points, over the recorded nested docs
        cfg = s.suggest(f"n{i}")
        assert space.validate_point(cfg) == cfg
        s.on_trial_complete(f"n{i}", {"val_loss": 1.0})


@pytest.mark.parametrize("concurrency, samples, n", [
    (1, None, 4), (2, None, 4), (4, None, 8), (32, None, 20), (2, 6, 2), (1, 2, 1),
    (8, 30, 10)])
def test_random_starts_scale_with_concurrency_and_samples(concurrency, samples, n):
    assert searchers.random_starts(concurrency, samples) == n


def test_tpe_takes_over_after_the_random_starts():
    """The same seed draws the same random configs; TPE's first own pick differs."""
    space = load_space(known_keys=KEYS)

    def run(n_initial):
        return _drive(searchers.make_searcher("hyperopt", space, "val_loss", "min", 5,
                                           [dict(space.defaults)], n_initial), 4)

    early, late = run(1 + 2), run(1 + 8)
    assert early[:3] == late[:3]  # the defaults, then two random draws
    assert early[3] != late[3]  # TPE (a model of 3 results) against a 4th random draw


def test_seeded_searcher_is_reproducible():
    space = load_space(known_keys=KEYS)

    def run():
        return _drive(searchers.make_searcher("hyperopt", space, "val_loss", "min", 7, None, 3), 6)

    assert run() == run()


def test_tpe_moves_towards_better_region():
    """After the random start, TPE samples the good head more often than chance."""
    space = load_space(known_keys=KEYS)
    s = searchers.make_searcher("hyperopt", space, "val_loss", "min", 11, None, 8)
    heads = [c["head"] for c in _drive(s, 40)[20:]]
    assert heads.count("conv") > len(heads) / 2


@pytest.mark.parametrize("max_epochs, rungs, rf", [
    (1, [1], 2), (2, [1, 2], 2), (4, [1, 2, 4], 2), (10, [1, 3, 9, 10], 3),
    (30, [1, 3, 9, 27, 30], 3), (100, [4, 12, 36, 100], 3)])
def test_asha_plan_fits_budget(max_epochs, rungs, rf):
    plan = scheduler.plan_scheduler("asha", max_epochs)
    assert plan.rungs() == rungs and plan.reduction_factor == rf
    assert "grace_period" in plan.describe()


class _FakeTrial:
    def __init__(self, tid):
        self.trial_id = tid
        self.config = {}

    def __repr__(self):
        return self.trial_id

    def __hash__(self):
        return hash(self.trial_id)


def test_asha_stops_the_worse_half_at_the_first_rung():
    from ray.tune.schedulers import TrialScheduler

    plan = scheduler.plan_scheduler("asha", 4)
    sched = scheduler.make_scheduler(plan, "val_loss", "min")
    trials = [_FakeTrial(f"t{i}") for i in range(6)]
    for t in trials:
        sched.on_trial_add(None, t)
    decisions = {}
    # scripted: trial i has val_loss i at epoch 1, reported in order
    for i, t in enumerate(trials):
        decisions[t.trial_id] = sched.on_trial_result(
            None, t, {"epoch": 1, "val_loss": float(i), "training_iteration": 1})
    assert decisions["t0"] == TrialScheduler.CONTINUE
    stopped = [k for k, v in decisions.items() if v == TrialScheduler.STOP]
    assert stopped and "t0" not in stopped and "t5" in stopped


def test_asha_lets_the_initial_point_run_to_the_end_but_counts_its_results():
    from ray.tune.schedulers import TrialScheduler

    seed = {"blocks": 4, "learning_rate": 0.003}
    plan = scheduler.plan_scheduler("asha", 9)  # rungs 1, 3, 9
    sched = scheduler.make_scheduler(plan, "val_loss", "min", seeded=[seed])
    trials = [_FakeTrial(f"t{i}") for i in range(6)]
    trials[0].config = {**seed, "dropout": 0.3}  # the initial point, as Tune hands it over
    trials[1].config = {"blocks": 4, "learning_rate": 0.004}  # near it, but not it
    for t in trials:
        sched.on_trial_add(None, t)
    got = {}
    # scripted: the seeded trial starts slowest (val_loss 9 at each rung), the rest better
    for epoch in (1, 3):
        for i, t in enumerate(trials[1:], 1):
            got[t.trial_id, epoch] = sched.on_trial_result(
                None, t, {"epoch": epoch, "val_loss": float(i), "training_iteration": epoch})
        got["t0", epoch] = sched.on_trial_result(
            None, trials[0], {"epoch": epoch, "val_loss": 9.0, "training_iteration": epoch})
    assert got["t0", 1] == got["t0", 3] == TrialScheduler.CONTINUE
    assert got["t5", 1] == TrialScheduler.STOP  # plain ASHA for everyone else
    assert sched.is_seeded(trials[0].config) and not sched.is_seeded(trials[1].config)
    # its results count: a later trial as slow as it is stopped at the first rung
    late = _FakeTrial("late")
    late.config = {"blocks": 2}
    sched.on_trial_add(None, late)
    assert sched.on_trial_result(None, late, {"epoch": 1, "val_loss": 8.0,
                                              "training_iteration": 1}) == TrialScheduler.STOP
    # at max_t every trial stops, the seeded one too
    assert sched.on_trial_result(None, trials[0], {"epoch": 9, "val_loss": 0.5,
                                                   "training_iteration": 9}) == TrialScheduler.STOP


def _report(sched, trial, epoch, acc):
    return sched.on_trial_result(None, trial, {"epoch": epoch, "val_accuracy": acc,
                                               "training_iteration": epoch})


def test_asha_logs_the_trials_it_stops_early(tmp_path):
    """The log tells a scheduler's stop from a budget's cut, and survives a resume."""
    from ray.tune.schedulers import TrialScheduler

    seed = {"blocks": 4}
    log = scheduler.StopLog(tmp_path / "stops.txt")
    sched = scheduler.make_scheduler(scheduler.plan_scheduler("asha", 12), "val_accuracy", "max",
                                  seeded=[seed], stop_log=log)  # rungs 1, 3, 9
    first, good, third, poor, initial = (
        _FakeTrial(n) for n in ("first", "good", "third", "poor", "initial"))
    initial.config = dict(seed)
    for t in (first, good, third, poor, initial):
        sched.on_trial_add(None, t)
    assert _report(sched, first, 1, 0.30) == TrialScheduler.CONTINUE  # first at the rung
    assert _report(sched, good, 1, 0.50) == TrialScheduler.CONTINUE
    assert _report(sched, third, 1, 0.40) == TrialScheduler.CONTINUE
    assert _report(sched, poor, 1, 0.20) == TrialScheduler.STOP
    assert _report(sched, initial, 1, 0.10) == TrialScheduler.CONTINUE  # never stopped
    assert _report(sched, good, 12, 0.80) == TrialScheduler.STOP  # its end, not a stop
    assert log.stops() == {"poor": 1}
    # a file: a resumed search (a new scheduler) and the report read it back
    again = scheduler.StopLog(tmp_path / "stops.txt")
    assert again.stops() == {"poor": 1} and "poor" in again and "good" not in again


def test_a_rung_stops_no_trial_until_it_holds_as_many_results_as_the_reduction_factor():
    """The second trial at a rung is not judged against the first (the fastest) alone."""
    from ray.tune.schedulers import TrialScheduler

    plan = scheduler.plan_scheduler("asha", 12)  # rungs 1, 3, 9; reduction factor 3
    assert plan.min_records == 3 and "once a rung holds 3 results" in plan.describe()
    sched = scheduler.make_scheduler(plan, "val_accuracy", "max")
    trials = [_FakeTrial(f"t{i}") for i in range(5)]
    for t in trials:
        sched.on_trial_add(None, t)
    # scripted: each trial worse than all before it, at epoch 1 and again at epoch 3
    got = [_report(sched, t, 1, 0.5 - 0.1 * i) for i, t in enumerate(trials)]
    assert got == [TrialScheduler.CONTINUE] * 3 + [TrialScheduler.STOP] * 2
    # the third rung result is a fresh count: the first two there pass whatever they show
    assert _report(sched, trials[2], 3, 0.1) == TrialScheduler.CONTINUE
    assert _report(sched, trials[1], 3, 0.05) == TrialScheduler.CONTINUE
    # plain ASHA (one result is enough) stops the second as worse than the first
    from hyperfcn.scheduler import RungScheduler

    plain = RungScheduler("val_accuracy", "max", max_t=12, grace_period=1,
                          reduction_factor=3)
    for t in trials[:2]:
        plain.on_trial_add(None, t)
    assert _report(plain, trials[0], 1, 0.5) == TrialScheduler.CONTINUE
    assert _report(plain, trials[1], 1, 0.4) == TrialScheduler.STOP
    # the trials it let go on are not counted as stopped
    assert sorted(sched.stop_log.stops()) == ["t3", "t4"]


def test_an_early_end_the_scheduler_did_not_log_is_the_budget(tmp_path):
    log = scheduler.StopLog(tmp_path / "stops.txt")
    log.add("stopped", 3)
    asha, fifo, hb = (scheduler.plan_scheduler(n, 12) for n in ("asha", "fifo", "hyperband"))
    cut = scheduler.cut_by_budget
    assert cut(asha, 600, log, "cut", 5) and not cut(asha, 600, log, "stopped", 3)
    assert not cut(asha, 600, log, "done", 12)  # all its epochs: completed
    assert not cut(asha, None, log, "cut", 5)  # no budget, nothing to run out
    assert cut(fifo, 600, log, "cut", 5)
    assert not cut(hb, 600, log, "cut", 5)  # HyperBand's stops are not logged


def test_a_resumed_trials_redone_epochs_replace_its_first_reports(tmp_path):
    import json

    lines = [{"epoch": 1, "val_loss": 1.0}, {"epoch": 2, "val_loss": 0.9},
             {"epoch": 2, "val_loss": 0.8}, {"epoch": 3, "val_loss": 0.7}]
    (tmp_path / "result.json").write_text("\n".join(json.dumps(r) for r in lines) + "\n")
    hist = records.read_history(tmp_path)
    assert [(h["epoch"], h["val_loss"]) for h in hist] == [(1, 1.0), (2, 0.8), (3, 0.7)]


def test_a_new_round_starts_from_the_earlier_rounds_results():
    """Extending a finished search (--resume with more samples): the new round's searcher
    models the earlier trials at once instead of drawing random starts again."""
    name = "hyperopt"
    space = load_space(known_keys=KEYS)
    earlier = _drive(searchers.make_searcher("random", space, "val_loss", "min", 3, None, 8), 30)
    evaluated = [(c, _score(c)) for c in earlier]
    s = searchers.make_searcher(name, space, "val_loss", "min", 4, None, 8, evaluated)
    heads = [c["head"] for c in _drive(s, 12)]
    cold = [c["head"] for c in _drive(
        searchers.make_searcher(name, space, "val_loss", "min", 4, None, 8), 12)]
    assert heads.count("conv") > cold.count("conv") and heads.count("conv") >= 9


def test_plan_round_new_resume_extend_and_refusals(tmp_path):
    from hyperfcn import artifacts as art
    from hyperfcn.errors import UserError
    from hyperfcn.rounds import plan_round

    def exists(*names):
        return lambda n: n in names

    assert plan_round(tmp_path, False, 5, None, exists()).name == "tune"
    with pytest.raises(UserError, match="no search to resume"):
        plan_round(tmp_path, True, 5, None, exists())
    with pytest.raises(UserError, match="holds an interrupted search; add --resume"):
        plan_round(tmp_path, False, 5, None, exists("tune"))
    r = plan_round(tmp_path, True, None, None, exists("tune"))
    assert r.restore and r.name == "tune"
    art.write_json(tmp_path / art.TRIALS_JSON, [
        {"trial_id": "a", "config": {"learning_rate": 0.1}, "status": "completed",
         "best_val_loss": 0.5, "search": "tune"}] * 4)
    art.write_json(tmp_path / art.SEARCH, {"rounds": ["tune"]})
    with pytest.raises(UserError, match="holds a finished search; use a new --out, or "
                                        "--resume with a larger --samples"):
        plan_round(tmp_path, False, 5, None, exists("tune"))
    with pytest.raises(UserError, match="finished with 4 trials; to extend it, give "
                                        "--samples larger than 4"):
        plan_round(tmp_path, True, 4, None, exists("tune"))
    r = plan_round(tmp_path, True, 6, None, exists("tune"))
    assert (r.name, r.restore, r.samples, len(r.earlier)) == ("tune-2", False, 2, 4)
    r = plan_round(tmp_path, True, None, 600.0, exists("tune", "tune-2"))
    assert r.restore and r.name == "tune-2"  # round 2 was interrupted: continue it
    assert len(r.earlier) == 4


def test_the_rung_scheduler_decides_as_rays_asha_when_its_rules_are_off():
    """With one result enough and no recipe, hyperfcn's scheduler on the public hooks makes
    the very decisions Ray's ASHAScheduler makes: same rungs, same cutoffs."""
    import random

    from ray.tune.schedulers import ASHAScheduler

    from hyperfcn.scheduler import RungScheduler

    rng = random.Random(7)
    ours = RungScheduler("val_loss", "min", max_t=12, grace_period=1, reduction_factor=3)
    ray_asha = ASHAScheduler(time_attr="epoch", metric="val_loss", mode="min", max_t=12,
                             grace_period=1, reduction_factor=3)
    trials = [_FakeTrial(f"t{i}") for i in range(30)]
    for t in trials:
        ray_asha.on_trial_add(None, t)
        ours.on_trial_add(None, t)
    alive = {t.trial_id: t for t in trials}
    decisions = 0
    for epoch in range(1, 13):
        for tid in rng.sample(sorted(alive), len(alive)):
            r = {"epoch": epoch, "val_loss": rng.random() + 1 / epoch}
            a = ray_asha.on_trial_result(None, alive[tid], r)
            b = ours.on_trial_result(None, alive[tid], r)
            assert a == b, (tid, epoch)
            decisions += 1
            if a == "STOP":
                ray_asha.on_trial_complete(None, alive[tid], r)
                ours.on_trial_complete(None, alive[tid], r)
                del alive[tid]
    assert decisions > 60 and not alive  # every trial stopped: early, or at max_t


def test_the_search_ends_early_for_the_leading_trials_training_on(monkeypatch, tmp_path):
    """Scripted: two trials of 10 epochs within 1,000 s of search. The search ends once
    half is left, judged on the leading trial's epoch time (a slow leader, whose training
    on would not fit, keeps it going), and it ends between epochs: each trial stops at its
    next result (its checkpoint is saved first, as for a scheduler's stop), the searcher
    suggests no more, and nothing is stopped all at once."""
    import pickle

    from ray.tune.search import Searcher

    from hyperfcn import search

    class Inner(Searcher):
        def suggest(self, trial_id):
            return {"x": 1}

    clock = [1000.0]
    monkeypatch.setattr(search.time, "time", lambda: clock[0])
    # 8 trials at once: the 500 s it may search hold enough trainings of the slow one
    stop = search.LongerFinalStopper("val_loss", search_s=1000.0, max_epochs=10, slots=8)
    searcher = stop.wrap(Inner(metric="val_loss", mode="min"))
    for epoch in (1, 2):
        assert not stop("fast", {"val_loss": 1.0 / epoch, "epoch_seconds": 10.0})
        assert not stop("slow", {"val_loss": 0.9 / epoch, "epoch_seconds": 110.0})
    clock[0] += 600.0  # 400 s left: less than half, but the leader's epochs take 110 s
    assert not stop("slow", {"val_loss": 0.4, "epoch_seconds": 110.0})
    assert searcher.suggest("t3") == {"x": 1}
    assert stop("fast", {"val_loss": 0.1, "epoch_seconds": 10.0})  # the lead changes
    assert searcher.suggest("t4") == Searcher.FINISHED
    assert stop("slow", {"val_loss": 0.3, "epoch_seconds": 110.0})  # its next epoch
    assert not stop.stop_all()
    # Ray saves the search with its wrappers (which must say their state)
    from ray.tune.search import ConcurrencyLimiter, SearchGenerator

    SearchGenerator(ConcurrencyLimiter(searcher, 2)).save_to_dir(str(tmp_path), "s")
    # a two-stage leader is retrained from the start: 400 s of its 30 s epochs are too few
    backbone = {"backbone": "mobilenetv2", "fine_tune": "two_stage"}
    for config, ends in ((backbone, False), ({"backbone": "none"}, True)):
        clock[0] = 1000.0
        other = search.LongerFinalStopper("val_loss", search_s=1000.0, max_epochs=10)
        clock[0] += 600.0
        assert other("a", {"val_loss": 0.1, "epoch_seconds": 30.0, "config": config}) is ends
    # resumed: its clock and its decision start afresh
    again = pickle.loads(pickle.dumps(stop))
    assert not again.ended and not again("fast", {"val_loss": 0.1, "epoch_seconds": 10.0,
                                                 "time_total_s": 10.0})


def test_a_search_too_short_for_its_leader_ends_at_its_first_epoch(monkeypatch):
    """Scripted: one trial at a time, 900 s of search, a leader whose first epoch (which
    also compiles) took 70 s: the 450 s it may search (half) hold fewer than 3 of its
    10-epoch trainings, so the search ends at that first epoch. A leader whose first epoch
    took 14 s searches on, and its faster later epochs do not change that."""
    import pickle

    from hyperfcn import progress, search

    clock = [0.0]
    monkeypatch.setattr(search.time, "time", lambda: clock[0])
    said: list[str] = []
    view = progress.LineView(progress.Board("val_loss", "min", max_epochs=10), said.append)
    monkeypatch.setattr(search.LIVE, "view", view)
    for first_s, ends in ((70.0, True), (14.0, False)):
        clock[0] = 1000.0
        stop = search.LongerFinalStopper("val_loss", search_s=900.0, max_epochs=10, slots=1)
        clock[0] += first_s + 30.0
        assert stop("a", {"val_loss": 1.0, "epoch_seconds": first_s}) is ends
        clock[0] += 10.0
        assert stop("a", {"val_loss": 0.9, "epoch_seconds": 10.0}) is ends  # it stays
    # said once, when it ended, with why
    assert len(said) == 1 and said[0].endswith(
        "the search ends, 800 s before its budget: the 450 s it may search (50% of its 900 "
        "s) hold fewer than 3 trainings of trial a (10 epochs of ~70 s), too few to compare "
        "configurations; the leading trial a trains on for the rest once the running trials "
        "finish their epoch"), said
    # a run saved before `slots` existed resumes as one trial at a time
    old = pickle.loads(pickle.dumps(stop))
    del old.__dict__["slots"]
    again = pickle.loads(pickle.dumps(old))
    assert again.slots == 1


def test_a_recipe_fitted_to_the_search_end_ends_the_search_and_runs_on(monkeypatch):
    """The recipe's first report says it fitted itself to the search's end (the budget is
    too short to search, trial.py): the search ends there, every other trial stops at its
    next result, the searcher suggests no more, and the recipe runs to its planned end,
    past --max-epochs if that is what fits."""
    from ray.tune.search import Searcher

    from hyperfcn import progress, search

    class Inner(Searcher):
        def suggest(self, trial_id):
            return {"x": 1}

    monkeypatch.setattr(search.time, "time", lambda: 1000.0)
    said: list[str] = []
    view = progress.LineView(progress.Board("val_loss", "min", max_epochs=10), said.append)
    monkeypatch.setattr(search.LIVE, "view", view)
    stop = search.LongerFinalStopper("val_loss", search_s=5000.0, max_epochs=10, slots=2)
    searcher = stop.wrap(Inner(metric="val_loss", mode="min"))
    assert not stop("other", {"val_loss": 0.5, "epoch_seconds": 20.0})
    assert not stop("recipe", {"val_loss": 0.9, "epoch_seconds": 45.0, "planned_epochs": 90})
    assert searcher.suggest("t3") == Searcher.FINISHED
    assert stop("other", {"val_loss": 0.4, "epoch_seconds": 20.0})
    for epoch in range(2, 12):
        assert not stop("recipe", {"val_loss": 0.3, "epoch_seconds": 40.0, "epoch": epoch,
                                   "planned_epochs": 90})
    assert len(said) == 1 and "trial recipe (the recipe) trains for the ~90 epochs that " \
        "fit, its learning rate decaying to 0 at the search's end" in said[0], said
    # ASHA stops it at its planned end, not at max_t
    from hyperfcn.scheduler import RungScheduler

    asha = RungScheduler("val_loss", "min", max_t=10, seeded=[{"x": 1}])
    trial = type("T", (), {"trial_id": "recipe", "config": {"x": 1}})()
    for epoch, action in ((10, "CONTINUE"), (11, "CONTINUE"), (90, "STOP")):
        assert asha.on_trial_result(None, trial, {"epoch": epoch, "val_loss": 0.3,
                                                  "planned_epochs": 90}) == action
