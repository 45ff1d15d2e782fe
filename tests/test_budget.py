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
    (600.0, 10.0, 10, 1, False),  # half of 600 s holds 3 trainings of 100 s
    (500.0, 10.0, 10, 1, True),   # 250 s holds 2.5
    (500.0, 10.0, 10, 2, False),  # two at once: 5
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
