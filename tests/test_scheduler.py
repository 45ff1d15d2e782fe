"""ASHA with hyperfcn's rung rules, driven with scripted results: no training, no Ray
cluster."""

import pytest

from hyperfcn.config import ModelConfig
from hyperfcn.tuning import scheduler  # noqa: E402

KEYS = ModelConfig.keys()


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
    from hyperfcn.tuning.scheduler import RungScheduler

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


def test_the_rung_scheduler_decides_as_rays_asha_when_its_rules_are_off():
    """With one result enough and no recipe, hyperfcn's scheduler on the public hooks makes
    the very decisions Ray's ASHAScheduler makes: same rungs, same cutoffs."""
    import random

    from ray.tune.schedulers import ASHAScheduler

    from hyperfcn.tuning.scheduler import RungScheduler

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

