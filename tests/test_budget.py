"""The budget's rules as pure numbers, without Keras or Ray: the epochs a command plans,
when a budget is too short to search, and how many epochs fit in the time left."""

import types

import pytest

from hyperfcn import budget
from hyperfcn.cli import _opts, build_parser
from hyperfcn.options import TuneOptions


def test_train_plans_the_same_epochs_from_the_cli_and_from_python(tmp_path):
    """`train --budget` without --max-epochs: as many as fit (up to 1000), whether typed or
    called; without a budget, 10; --max-epochs always wins."""
    cases = [([], None, 10), (["--budget", "5m"], 300.0, budget.TRAIN_BUDGET_MAX_EPOCHS),
             (["--budget", "5m", "--max-epochs", "7"], 300.0, 7)]
    for extra, budget_s, want in cases:
        args = build_parser().parse_args(["train", str(tmp_path), "--config", "c.json",
                                          *extra])
        cli = _opts(args)
        py = TuneOptions(data=tmp_path, budget_s=budget_s,
                         max_epochs=7 if "--max-epochs" in extra else None)
        assert budget.train_epochs(cli.max_epochs, cli.budget_s) == want
        assert budget.train_epochs(py.max_epochs, py.budget_s) == want


def test_a_search_trains_its_trials_ten_epochs_unless_told():
    assert budget.tune_epochs(None) == budget.DEFAULT_EPOCHS == 10
    assert budget.tune_epochs(4) == 4


@pytest.mark.parametrize("search_s, epoch_s, max_epochs, slots, short", [
    (1200.0, 10.0, 10, 1, False),  # a quarter of 1,200 s holds 3 trainings of 100 s
    (1000.0, 10.0, 10, 1, True),   # 250 s holds 2.5
    (1000.0, 10.0, 10, 2, False),  # two at once: 5
])
def test_too_short_to_search_is_fewer_than_three_trainings_of_the_leader(
        search_s, epoch_s, max_epochs, slots, short):
    assert budget.too_short_to_search(search_s, epoch_s, max_epochs, slots) is short


def test_epochs_that_fit_keep_a_margin_and_never_undo_epochs_done():
    assert budget.epochs_that_fit(2, 10.0, 100.0, 50) == 2 + int(100 // (10 * budget.FIT_MARGIN))
    assert budget.epochs_that_fit(5, 10.0, 0.0, 50) == 5
    assert budget.epochs_that_fit(0, 10.0, 1e9, 12) == 12


def test_a_last_partial_epoch_fits_the_rest_of_the_time():
    end, tail = budget.epochs_and_tail(1, train_s=9.0, val_s=1.0, left_s=25.0, n_steps=100,
                                       max_epochs=50)
    whole = budget.epochs_that_fit(1, 10.0, 25.0, 50)
    assert end in (whole, whole + 1) and 0 <= tail < 100
    if tail:
        assert end == whole + 1
    assert budget.epochs_and_tail(1, 9.0, 1.0, 1e9, 100, 5) == (5, 0)  # capped, no tail


def test_a_budget_that_the_final_step_alone_would_use_up_is_refused(tmp_path):
    import time

    summary = types.SimpleNamespace(val_counts={"a": 100})  # ~30 s kept for the final step
    with pytest.raises(budget.UserError, match="--budget 5s: too short"):
        budget.search_budget(TuneOptions(data=tmp_path, budget_s=5.0), time.time(), summary)
    left = budget.search_budget(TuneOptions(data=tmp_path, budget_s=600.0), time.time(),
                                summary)
    assert left == pytest.approx(600.0 - budget.final_reserve(summary), abs=1.0)


def _epochs(*seconds: tuple[float, float]) -> list[dict[str, float]]:
    return [{"epoch_seconds": e, "val_seconds": v} for e, v in seconds]


def test_a_run_is_timed_by_the_median_of_its_epochs_so_one_busy_epoch_moves_nothing():
    t = budget.Timing.of(_epochs((10.0, 1.0), (90.0, 9.0), (12.0, 1.2)))
    assert (t.epoch_s, t.val_s) == (12.0, 1.2)
    assert budget.Timing.of(_epochs((5.0, 8.0))).val_s == 5.0  # never above the epoch
    with pytest.raises(ValueError, match="no epochs"):
        budget.Timing.of([])


def test_the_first_epoch_which_compiles_times_a_run_only_until_another_has_run():
    assert budget.timed_epoch_s([40.0]) == 40.0
    assert budget.timed_epoch_s([40.0, 10.0, 12.0]) == 11.0


def test_a_deadline_plans_whole_epochs_then_a_partial_one_and_stops_steps_before_validating():
    d = budget.Deadline(until=1000.0, max_epochs=50, n_steps=100)
    t = budget.Timing(epoch_s=10.0, val_s=2.0)
    # 95 s left: 9 whole epochs of 10.5 s (FIT_MARGIN), then 0.1 s for an epoch's steps
    assert d.plan(done=2, timing=t, now=905.0) == (2 + 9, 0)
    # 100 s left: 9 whole epochs use 94.5 s; 5.5 s less a validation (2.1 s) holds 3.4 s
    # of training, 0.40 of an epoch's 8.4 s: a last epoch of 40 steps
    assert d.plan(done=2, timing=t, now=900.0) == (12, 40)
    assert d.plan(done=2, timing=t, now=0.0) == (50, 0)  # at most max_epochs
    assert d.plan(done=2, timing=t, now=2000.0) == (2, 0)  # past it: what is done
    assert d.steps_stop_at(t) == pytest.approx(1000.0 - budget.FIT_MARGIN * 2.0)


def test_the_recipe_fitted_to_a_search_plans_to_end_before_the_search_does():
    clock = budget.SearchClock(until=500.0, search_s=300.0, max_epochs=4)
    d = budget.Deadline.search_end(clock, n_steps=10)
    assert d.until == 500.0 - budget.SEARCH_END_SLACK_S
    assert d.max_epochs == budget.MAX_LONGER * 4 == clock.epoch_cap


def test_a_deadline_fitted_run_replans_at_each_half_of_what_is_left():
    at, seen = budget.PROBE_EPOCHS, []
    while (half := budget.next_replan(at, 20)) is not None:
        seen.append(half)
        at = half
    assert seen == [11, 15, 17, 18, 19]  # the last epoch runs on the last plan
    # a short plan, timed on a slow second epoch, is re-timed after its next epoch
    assert budget.next_replan(2, 5) == 3 and budget.next_replan(4, 5) is None
