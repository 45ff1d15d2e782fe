"""The progress callback inside a real (small, local) Ray Tune run with scripted metrics."""

import pytest

from hyperfcn.tuning import scheduler, search, session


def _scripted(config):
    from ray import tune

    for epoch in range(1, 5):
        tune.report({"epoch": epoch, "val_loss": config["q"] + 1.0 / epoch,
                     "val_accuracy": 0.5})


@pytest.mark.integration
def test_each_trial_end_is_shown_once_with_the_asha_rung(tmp_path, deadline):
    import sys

    import ray.cloudpickle
    from ray import tune

    from hyperfcn.progress import Board, LineView

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers lack tests/
    deadline(240)
    session.start(num_cpus=2)
    try:
        lines: list[str] = []
        plan = scheduler.plan_scheduler("asha", 4)
        view = LineView(Board("val_loss", "min", 4, rungs=tuple(plan.rungs())), lines.append)
        tuner = tune.Tuner(
            _scripted, param_space={"q": tune.grid_search([0, 1, 2, 3, 4, 5])},
            tune_config=tune.TuneConfig(scheduler=scheduler.make_scheduler(plan, "val_loss",
                                                                        "min"),
                                        max_concurrent_trials=2),
            run_config=tune.RunConfig(storage_path=str(tmp_path), verbose=0,
                                      callbacks=[search.ProgressCallback()]))
        search.LIVE.view = view
        tuner.fit()
    finally:
        session.shutdown()
    text = "\n".join(lines)
    ended = [ln for ln in lines if " done" in ln or " stopped at " in ln]
    assert len(ended) == 6, text  # every trial's end is shown exactly once
    assert "stopped at rung" in text, text
    assert text.count(" done") >= 1


def _slow(config):
    import time

    from ray import tune

    for epoch in range(1, 200):
        time.sleep(0.1)
        tune.report({"epoch": epoch, "val_loss": 1.0 / epoch, "val_accuracy": 0.5})


@pytest.mark.integration
def test_a_trial_the_budget_cuts_off_is_shown_as_out_of_budget(tmp_path, deadline):
    """Ray marks it TERMINATED like an ASHA stop; ASHA's log of its own stops tells them apart."""
    import functools
    import sys

    import ray.cloudpickle
    from ray import tune

    from hyperfcn.progress import Board, LineView

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    deadline(240)
    session.start(num_cpus=2)
    try:
        lines: list[str] = []
        plan = scheduler.plan_scheduler("asha", 199)
        log = scheduler.StopLog(tmp_path / "stops.txt")
        view = LineView(Board("val_loss", "min", 199, budget_s=3, rungs=tuple(plan.rungs())),
                        lines.append)
        cut = functools.partial(scheduler.cut_by_budget, plan, 3, log)
        sched = scheduler.make_scheduler(plan, "val_loss", "min", stop_log=log)
        search.LIVE.view, search.LIVE.out_of_budget = view, cut
        tune.Tuner(_slow, tune_config=tune.TuneConfig(num_samples=1, time_budget_s=3,
                                                      scheduler=sched),
                   run_config=tune.RunConfig(storage_path=str(tmp_path), verbose=0,
                                             callbacks=[search.ProgressCallback()])
                   ).fit()
    finally:
        session.shutdown()
    text = "\n".join(lines)
    assert "out of budget at epoch" in text and "stopped" not in text, text
    assert log.stops() == {}


def test_the_callback_pickles_with_a_live_terminal_view():
    """Ray pickles callbacks with the experiment (and hands them back on Tuner.restore); a
    rich Live view holds locks, so the callback finds it in search.LIVE."""
    import io

    import ray.cloudpickle
    from rich.console import Console

    from hyperfcn.progress import Board, LiveView

    view = LiveView(Board("val_loss", "min", 3),
                    console=Console(file=io.StringIO(), force_terminal=True))
    search.LIVE.view = view  # the live view stays in the driver, outside the callback
    try:
        cb = ray.cloudpickle.loads(ray.cloudpickle.dumps(search.ProgressCallback()))
        cb.on_trial_result(0, [], type("T", (), {"trial_id": "x"})(), {"val_loss": 1.0})
        assert view.board.rows["x"].last == 1.0  # the restored callback feeds this view
    finally:
        view.close()
        search.LIVE.view = None
