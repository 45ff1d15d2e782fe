"""The trial code on tiny arrays: build -> fit -> report, restore, NaN, final retrain path."""

import contextlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from hyperfcn.errors import TrialError
from hyperfcn.metrics import score
from hyperfcn.trial import LocalReporter, TrialSettings, run_trial

CFG = {"image_size": 16, "batch_size": 4, "blocks": 2, "filters": 8, "dense_units": 16,
       "learning_rate": 0.01, "flip": "horizontal", "rotation": True, "contrast": True}


class SavingReporter:
    """Keeps a copy of every checkpoint, like Ray does, and can hand one back."""

    def __init__(self, root: Path, restore: Path | None = None):
        self.root, self.restore, self.history, self.saved = root, restore, [], []

    def report(self, metrics, checkpoint_dir):
        self.history.append(metrics)
        if checkpoint_dir:
            dst = self.root / f"ckpt{len(self.saved)}"
            shutil.copytree(checkpoint_dir, dst)
            self.saved.append(dst)

    @contextlib.contextmanager
    def restore_dir(self):
        yield str(self.restore) if self.restore else None


def test_reports_every_epoch_with_the_metrics_tune_needs(tiny_data, tmp_path):
    rep = SavingReporter(tmp_path)
    out = run_trial(CFG, tiny_data, TrialSettings(max_epochs=2), rep)
    assert [m["epoch"] for m in rep.history] == [1, 2]
    for m in rep.history:
        assert {"val_loss", "val_calibrated_loss", "val_accuracy", "loss", "accuracy",
                "epoch"} <= set(m)
        assert 0 <= m["val_accuracy"] <= 1 and m["val_loss"] > 0
    assert rep.saved == []  # a short trial saves no checkpoint (the default: every 60 s)
    assert out.model is not None and out.best["epoch"] in (1, 2)


def test_reports_where_the_trials_time_went(tiny_data, tmp_path):
    rep = SavingReporter(tmp_path)
    run_trial(CFG, tiny_data, TrialSettings(max_epochs=2), rep)
    first, second = rep.history
    # setup: once per trial, before the first fit (it includes this process's start)
    assert first["setup_seconds"] == second["setup_seconds"] > 0
    for m in rep.history:
        assert 0 < m["val_seconds"] < m["epoch_seconds"] <= m["seconds"]
    # the epochs' own times add up to the time since the first fit began
    assert (second["seconds"] - first["seconds"]
            == pytest.approx(second["epoch_seconds"], abs=0.5))


def test_checkpoints_every_epoch_but_the_last_when_asked(tiny_data, tmp_path):
    rep = SavingReporter(tmp_path)
    run_trial(CFG, tiny_data, TrialSettings(max_epochs=3, checkpoint_every_s=0), rep)
    assert [json.loads((d / "state.json").read_text())["epoch"] for d in rep.saved] == [1, 2]


def test_checkpoints_once_the_interval_has_passed(tiny_data, tmp_path, monkeypatch):
    import hyperfcn.trial as trial_mod

    clock = [0.0]

    def tick():  # 10 s later at each reading: the start, each epoch's end, each save
        clock[0] += 10.0
        return clock[0]

    monkeypatch.setattr(trial_mod, "_clock", tick)
    rep = SavingReporter(tmp_path)
    run_trial(CFG, tiny_data, TrialSettings(max_epochs=6, checkpoint_every_s=25), rep)
    epochs = [json.loads((d / "state.json").read_text())["epoch"] for d in rep.saved]
    # 30 s after the start at epoch 3; epoch 6 is as far past that save, but the last
    assert epochs == [3]


def test_restores_from_checkpoint_and_continues(tiny_data, tmp_path):
    first = SavingReporter(tmp_path / "a")
    run_trial(CFG, tiny_data, TrialSettings(max_epochs=2, checkpoint_every_s=0), first)
    assert len(first.saved) == 1
    second = SavingReporter(tmp_path / "b", restore=first.saved[-1])
    run_trial(CFG, tiny_data, TrialSettings(max_epochs=3), second)
    assert [m["epoch"] for m in second.history] == [2, 3]


def test_nan_loss_fails_the_trial_with_the_reason(tiny_data, monkeypatch):
    import keras

    import hyperfcn.model as model_mod

    real = model_mod.build_training_model

    def nan_model(cfg, k, seed=None, **kw):
        m, core = real(cfg, k, seed, **kw)
        m.compile(optimizer="adam", loss=lambda y, p: keras.ops.mean(p) * np.nan)
        return m, core

    monkeypatch.setattr(model_mod, "build_training_model", nan_model)
    with pytest.raises(TrialError, match="loss became nan in epoch 1"):
        run_trial(CFG, tiny_data, TrialSettings(max_epochs=2), LocalReporter())


def test_final_retrain_early_stops_and_restores_best(tiny_data):
    rep = LocalReporter()
    out = run_trial({**CFG, "learning_rate": 0.05}, tiny_data,
                    TrialSettings(max_epochs=6, patience=1), rep)
    best_epoch = out.best["epoch"]
    assert len(rep.history) <= 6
    from hyperfcn.data.arrays import labels_of
    from hyperfcn.feed import predict_packed

    val = tiny_data.val[16]
    got = score(predict_packed(out.model, val, 4), labels_of(val))
    assert got["val_loss"] == pytest.approx(rep.history[best_epoch - 1]["val_loss"], rel=1e-4)


def test_unprepared_image_size_is_a_clear_error(tiny_data):
    with pytest.raises(TrialError, match="image_size 32 was not prepared"):
        run_trial({**CFG, "image_size": 32}, tiny_data, TrialSettings(max_epochs=1),
                  LocalReporter())


def test_score():
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    s = score(probs, np.array([0, 1, 1]))
    assert s["val_accuracy"] == pytest.approx(2 / 3)
    assert s["val_loss"] == pytest.approx(-(np.log(0.9) + np.log(0.8) + np.log(0.4)) / 3)


def _softmax(z):
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def test_the_calibrated_loss_is_blind_to_confidence_and_never_above_the_plain_one(
        monkeypatch):
    from hyperfcn import metrics as arrays

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 5, 400)
    z = rng.normal(0, 1, (400, 5))
    z[np.arange(400), labels] += 2.0
    sharp, soft = _softmax(3 * z), _softmax(z / 2)
    cal = arrays.calibrated_loss(sharp, labels)
    assert cal == pytest.approx(arrays.calibrated_loss(soft, labels), rel=1e-4)
    for p in (sharp, soft):
        assert cal <= score(p, labels)["val_loss"] + 1e-9
    monkeypatch.setattr(arrays, "CALIBRATION_ROWS", 50)  # fitted on a subsample
    assert arrays.calibrated_loss(soft, labels) == pytest.approx(cal, rel=0.05)
    assert np.isnan(arrays.calibrated_loss(np.zeros((0, 5)), np.zeros(0, int)))


def test_label_smoothing_costs_plain_loss_but_not_calibrated_loss():
    """What picked the wrong digits model: 100 right answers at 0.91 (label smoothing's
    ceiling) against 98 right at 0.99 and 2 wrong."""
    labels = np.zeros(100, int)
    smooth = np.tile([0.91] + [0.09 / 9] * 9, (100, 1))
    sharp = np.tile([0.99] + [0.01 / 9] * 9, (100, 1))
    sharp[:2] = [0.3, 0.61] + [0.09 / 8] * 8
    s, o = score(smooth, labels), score(sharp, labels)
    assert s["val_loss"] > o["val_loss"]  # plain loss prefers the model that errs
    assert s["val_calibrated_loss"] < o["val_calibrated_loss"]


def test_a_reused_worker_keeps_nothing_compiled_from_earlier_trials(tiny_data):
    """Workers are reused across trials, so a trial must not leave traced graphs behind.

    Before forget_compiled, each TensorFlow trial left its whole training step alive through
    a gradient function registered in TensorFlow's global registry (~10 MB per trial).
    """
    import gc

    import keras

    if keras.backend.backend() != "tensorflow":
        pytest.skip("the registry leak is TensorFlow's")
    from tensorflow.python.framework import ops
    from tensorflow.python.framework.func_graph import FuncGraph

    def live_graphs() -> int:
        gc.collect()
        return sum(isinstance(o, FuncGraph) for o in gc.get_objects())

    def custom_gradients() -> int:
        return sum(str(k).startswith("CustomGradient-") for k in ops._gradient_registry._registry)

    counts = []
    for lr in (0.01, 0.02, 0.03):
        run_trial({**CFG, "learning_rate": lr}, tiny_data, TrialSettings(max_epochs=1),
                  LocalReporter())
        counts.append((live_graphs(), custom_gradients()))
    # the last trial's own graphs are still registered until the next trial starts;
    # earlier trials' are gone, so the counts do not grow with the number of trials
    assert counts[0][1] > 0, "the trial should trace a graph-mode custom gradient"
    assert counts[1] == counts[2], counts
    from hyperfcn.runtime import forget_compiled

    forget_compiled()
    assert custom_gradients() == 0 and live_graphs() == 0


def test_a_trial_traces_its_training_step_once(tiny_data, monkeypatch):
    """An optimizer left to build itself in the first step makes its variables inside
    TensorFlow's trace, and TensorFlow then traces the whole step again (1.5 s of every
    trial's first epoch on the CPU)."""
    import keras

    if keras.backend.backend() != "tensorflow":
        pytest.skip("tracing twice is TensorFlow's")
    from keras.src.backend.tensorflow.trainer import TensorFlowTrainer

    traces = []
    step = TensorFlowTrainer.train_step

    def counted(self, data):
        traces.append(1)
        return step(self, data)

    monkeypatch.setattr(TensorFlowTrainer, "train_step", counted)
    run_trial(CFG, tiny_data, TrialSettings(max_epochs=2), LocalReporter())
    assert len(traces) == 1


def test_a_trial_stopped_by_the_scheduler_ends_within_a_step(tiny_data, tmp_path):
    """A reused worker waits for the stopped trial's thread; it must not finish its epoch."""

    class StoppingReporter(SavingReporter):
        def __init__(self, root, stop_after_steps):
            super().__init__(root)
            self.asked, self.stop_after = 0, stop_after_steps

        def stop_requested(self):
            self.asked += 1
            return self.asked > self.stop_after

    # 16 images, batch 4: 4 steps an epoch. Asked to stop during epoch 2's second step.
    rep = StoppingReporter(tmp_path, stop_after_steps=5)
    out = run_trial(CFG, tiny_data, TrialSettings(max_epochs=5), rep)
    assert [m["epoch"] for m in rep.history] == [1]
    assert rep.asked == 6, "checked before every step until asked, then no more steps"
    assert [h["epoch"] for h in out.history] == [1]


@pytest.mark.parametrize("tf_copy", [True, False], ids=["tf-ops", "generator"])
def test_training_batches_follow_each_epochs_plan_with_autotuning_off(tiny_data, tf_copy,
                                                                      monkeypatch):
    """Epoch e's batches depend only on (seed, e), so a resumed trial sees the batches it
    would have seen; under TensorFlow, tf.data's autotuner stays off (its thread held up
    the end of fits by seconds), with the worker's TensorFlow copy of the arrays or, past
    the copy limit, a generator over the shared arrays."""
    import keras

    from hyperfcn import feed as trial
    from hyperfcn.data.buckets import batch_plan
    from hyperfcn.feed import train_input as _train_input

    if not tf_copy:
        monkeypatch.setattr(trial, "TF_COPY_LIMIT_BYTES", 0)
    monkeypatch.setattr(trial, "_tf_copies", {})
    packed = tiny_data.train[16]
    ds = _train_input(packed, 4, 3, seed=7, first_epoch=1, last_epoch=3)
    if keras.backend.backend() == "tensorflow":
        copies = dict(trial._tf_copies)
        assert len(copies) == (len(packed.buckets) if tf_copy else 0)
        _train_input(packed, 4, 3, seed=8, first_epoch=0, last_epoch=1)
        assert trial._tf_copies == copies, "one copy per worker, not one per trial"
    expected = [(packed.buckets[b].x[idx], packed.buckets[b].y[idx])
                for e in (1, 2)
                for b, idx, _ in batch_plan(packed, 4, np.random.default_rng([7, e]))]
    if keras.backend.backend() == "tensorflow":
        assert ds.options().autotune.enabled is False
        got = [(np.asarray(x), np.asarray(y)) for x, y in ds]
    else:
        got = [ds[i] for i in range(len(ds))]
        ds.on_epoch_end()
        got += [ds[i] for i in range(len(ds))]
    assert len(got) == len(expected)
    for (x, y), (ex, ey) in zip(got, expected):
        assert x.dtype == np.float32 and np.array_equal(x, ex.astype(np.float32))
        assert np.array_equal(y.argmax(1), ey) and y.shape == (4, 3)


@pytest.mark.parametrize("done,epoch_s,left,cap,want", [
    (2, 10.0, 100.0, 1000, 11),  # 9 more epochs of 10.5 s (FIT_MARGIN) fit in 100 s
    (2, 10.0, 5.0, 1000, 2),  # none fit: the timed epochs are the run
    (2, 10.0, 1e6, 50, 50),  # --max-epochs bounds it
    (2, 10.0, -3.0, 1000, 2),  # the deadline has passed
])
def test_a_budgeted_run_has_the_epochs_that_fit(done, epoch_s, left, cap, want):
    from hyperfcn.budget import epochs_that_fit

    assert epochs_that_fit(done, epoch_s, left, cap) == want


def _recorded_plans(monkeypatch) -> list[dict]:
    """Every Cosine.plan call's numbers."""
    import hyperfcn.model

    plans = []
    real = hyperfcn.model.Cosine.plan

    def plan(self, **numbers):
        plans.append(numbers)
        real(self, **numbers)

    monkeypatch.setattr(hyperfcn.model.Cosine, "plan", plan)
    return plans


@pytest.mark.parametrize("far,max_epochs,epochs", [(True, 4, 4), (False, 10, 1)])
def test_a_budgeted_run_spans_its_schedule_over_the_epochs_that_fit(tiny_data, monkeypatch,
                                                                    far, max_epochs, epochs):
    """Two epochs at the starting learning rate time an epoch; then the cosine schedule
    goes on from the peak to 0 over every epoch that fits, and early stopping waits for
    their end. A deadline already past ends the run at its first epoch."""
    import time

    from hyperfcn.data.buckets import steps

    plans = _recorded_plans(monkeypatch)
    rep = LocalReporter()
    until = time.time() + (1e6 if far else -1.0)
    run_trial({**CFG, "lr_schedule": "cosine"}, tiny_data,
              TrialSettings(max_epochs=max_epochs, patience=1, fit_until=until), rep)
    assert len(rep.history) == epochs
    n_steps = steps(tiny_data.train[16], 4)
    assert all(h["lr"] == pytest.approx(0.01) for h in rep.history[:2])  # held
    assert plans == ([{"at": 2 * n_steps, "phase": 0.0, "total": n_steps * epochs}] if far
                     else [])


def test_the_cosine_is_keras_cosine_decay_and_its_rest_goes_on_from_where_it_was():
    """With at and phase 0 the schedule is Keras' CosineDecay; part way, stretched, it
    starts at the same learning rate and still ends at 0; total 0 holds."""
    import keras

    from hyperfcn.model import Cosine

    cosine = keras.optimizers.schedules.CosineDecay(0.1, decay_steps=80)
    for step in (0, 10, 50, 80, 90):
        assert float(Cosine(0.1, total=80)(step)) == pytest.approx(float(cosine(step)),
                                                                    abs=1e-6)
    same = Cosine(0.1, at=50, phase=50 / 80, total=80)
    for step in (50, 60, 79, 80, 90):
        assert float(same(step)) == pytest.approx(float(cosine(step)), abs=1e-6)
    longer = Cosine(0.1, at=50, phase=50 / 80, total=120)
    assert float(longer(50)) == pytest.approx(float(cosine(50)), abs=1e-6)
    assert float(cosine(50)) > float(longer(100)) > float(longer(120)) == pytest.approx(0.0)
    assert float(Cosine(0.1)(1000)) == pytest.approx(0.1)
    assert Cosine.from_config(longer.get_config()).get_config() == longer.get_config()


@pytest.mark.parametrize("plans,epochs,rest", [
    ((8, 6), 6, True),  # epochs timed slower half-way: the rest shrinks to fit
    ((8, 8, 8, 8), 8, False),  # the plan holds (at 5, 6 and 7): the schedule stays
])
def test_a_budgeted_run_is_re_planned_half_way(tiny_data, monkeypatch, plans, epochs, rest):
    """The timed epochs plan 8; half-way (epoch 5) the epochs so far time it again, and
    the rest of the cosine spans the new plan from where the schedule was."""
    import time

    import hyperfcn.budget
    from hyperfcn.data.buckets import steps

    planned = iter(plans)
    # after the first epoch, more than one more fits; then the scripted plans
    monkeypatch.setattr(hyperfcn.budget, "epochs_and_tail",
                        lambda done, *a: (99, 0) if done == 1 else (next(planned), 0))
    made = _recorded_plans(monkeypatch)
    rep = LocalReporter()
    run_trial({**CFG, "lr_schedule": "cosine"}, tiny_data,
              TrialSettings(max_epochs=20, patience=1, fit_until=time.time() + 1e6), rep)
    assert len(rep.history) == epochs
    n = steps(tiny_data.train[16], 4)
    assert made == [{"at": 2 * n, "phase": 0.0, "total": 8 * n}] + (
        [{"at": 5 * n, "phase": 0.5, "total": 6 * n}] if rest else [])
    # the learning rate each epoch ended at follows the plans: no jump where they change
    lrs = [h["lr"] for h in rep.history]
    assert all(a > b for a, b in zip(lrs[1:], lrs[2:]))
    assert lrs[-1] == pytest.approx(0.0, abs=1e-7)


def test_a_short_plan_timed_on_a_slow_epoch_is_re_timed_after_the_next(tiny_data, monkeypatch):
    """A busy second epoch plans 5 epochs where 9 fit at the steady pace: the plan is
    re-timed after the third epoch, and at each half of the rest down to the last epoch,
    so the run trains its 9 with its learning rate reaching 0 at the end."""
    import time

    import hyperfcn.budget

    calls: list[int] = []
    planned = iter((5, 9, 9, 9, 9))

    def fit(done, *a):
        if done == 1:
            return 99, 0
        calls.append(done)
        return next(planned), 0

    monkeypatch.setattr(hyperfcn.budget, "epochs_and_tail", fit)
    rep = LocalReporter()
    run_trial({**CFG, "lr_schedule": "cosine"}, tiny_data,
              TrialSettings(max_epochs=40, patience=1, fit_until=time.time() + 1e6), rep)
    assert len(rep.history) == 9 and calls == [2, 3, 6, 7, 8]
    assert rep.history[-1]["lr"] == pytest.approx(0.0, abs=1e-7)


def test_a_budgeted_run_is_re_planned_each_time_half_its_rest_has_run(tiny_data, monkeypatch):
    """A plan of 20 is re-timed at epoch 11 (half of the 18 after the timed 2): 16 fit;
    again at 13 (half of the 5 left): 18 fit; again at 15, 16 and 17: 18 still, so the
    schedule stays; the last epoch runs on the last plan. Each re-plan goes on from where
    the cosine is, with the epochs since the last plan timing it, and the run ends at 0."""
    import time

    import hyperfcn.budget
    from hyperfcn.data.buckets import steps

    calls: list[tuple[int, float]] = []
    planned = iter((20, 16, 18, 18, 18, 18))

    def fit(done, train_s, val_s, left, n_steps, cap):
        if done == 1:  # after the first epoch: more than one more fits
            return 99, 0
        calls.append((done, train_s + val_s))
        return next(planned), 0

    monkeypatch.setattr(hyperfcn.budget, "epochs_and_tail", fit)
    made = _recorded_plans(monkeypatch)
    rep = LocalReporter()
    run_trial({**CFG, "lr_schedule": "cosine"}, tiny_data,
              TrialSettings(max_epochs=40, patience=1, fit_until=time.time() + 1e6), rep)
    assert len(rep.history) == 18
    assert [done for done, _ in calls] == [2, 11, 13, 15, 16, 17]
    secs = [h["epoch_seconds"] for h in rep.history]
    assert calls[2][1] == pytest.approx(sorted(secs[11:13])[0] / 2 + sorted(secs[11:13])[1]
                                        / 2)  # the median of epochs 12-13 alone
    n = steps(tiny_data.train[16], 4)
    phase = 0.5 + 0.5 * 2 / 5  # where the cosine was at epoch 13
    assert made[:2] == [{"at": 2 * n, "phase": 0.0, "total": 20 * n},
                        {"at": 11 * n, "phase": pytest.approx(0.5), "total": 16 * n}]
    assert made[2] == {"at": 13 * n, "phase": pytest.approx(phase, rel=1e-6),
                       "total": 18 * n}
    assert len(made) == 3
    lrs = [h["lr"] for h in rep.history]
    assert all(a > b for a, b in zip(lrs[1:], lrs[2:]))
    assert lrs[-1] == pytest.approx(0.0, abs=1e-7)


def _scripted_epochs(monkeypatch, seconds: list[float], start: float = 1000.0) -> list[float]:
    """The trial's clock (hyperfcn.trial.time.time) stands still but for each epoch, which
    takes its scripted seconds (the last repeats; a partial epoch its share of them): epoch
    times and the time left are the script's, whatever the machine does."""
    import time as real_time
    import types

    import hyperfcn.trial

    clock = [start]
    fake = types.SimpleNamespace(time=lambda: clock[0], monotonic=real_time.monotonic)
    monkeypatch.setattr(hyperfcn.trial, "time", fake)
    real = hyperfcn.trial._Trial._metrics
    done = [0]

    def metrics(self, epoch, logs):
        took = seconds[min(done[0], len(seconds) - 1)]
        if self.tail_steps and epoch + 1 == self.end_epoch:  # a partial last epoch
            took *= self.tail_steps / self.n_steps
        clock[0] += took
        done[0] += 1
        return real(self, epoch, logs)

    monkeypatch.setattr(hyperfcn.trial._Trial, "_metrics", metrics)
    return clock


def _fitted_recipe(monkeypatch, tiny_data, seconds, search_s, max_epochs=10, racers=()):
    """The recipe run as a budgeted search's trial with scripted epoch times: (its reports,
    the clock, the search's clock, the schedule plans it made)."""
    from hyperfcn.budget import SearchClock

    clock = _scripted_epochs(monkeypatch, seconds)
    plans = _recorded_plans(monkeypatch)
    rep = LocalReporter()
    search = SearchClock(until=clock[0] + search_s, search_s=search_s, max_epochs=max_epochs,
                         racers=racers)
    run_trial({**CFG, "lr_schedule": "cosine"}, tiny_data,
              TrialSettings(max_epochs=max_epochs, clock=search), rep)
    return rep, clock, search, plans


def test_a_recipe_given_3_epochs_of_budget_trains_its_schedule_over_those_3(tiny_data,
                                                                            monkeypatch):
    """Scripted: a search of 130 s, epochs of 40 s after a first of 45 s (it compiles).
    The first epoch shows the budget too short to search (65 s may search, far less than 3
    trainings of 10 epochs), so the trial fits itself to the search's end: its cosine holds
    where the first epoch left it while the second epoch times the plan (3 epochs fit), as
    `train --budget`'s timing epochs hold, and then goes on to 0 at the end of the third,
    where a 10-epoch trial cut by the budget would have stopped near its peak learning
    rate."""
    from hyperfcn.data.buckets import steps

    rep, clock, search, plans = _fitted_recipe(monkeypatch, tiny_data, [45.0, 40.0], 130.0, 10)
    n = steps(tiny_data.train[16], 4)
    assert [h["epoch"] for h in rep.history] == [1, 2, 3]
    assert plans == [{"at": n, "phase": pytest.approx(0.1), "total": n},  # held
                     {"at": 2 * n, "phase": pytest.approx(0.1), "total": 3 * n}]
    assert [h["planned_epochs"] for h in rep.history] == [2, 2, 3]  # estimated, then timed
    lrs = [h["lr"] for h in rep.history]
    assert lrs[0] == pytest.approx(lrs[1]) and lrs[2] == pytest.approx(0.0, abs=1e-7)
    assert clock[0] <= search.until  # it ended within the search's time


def test_a_recipe_whose_budget_holds_a_search_runs_its_max_epochs(tiny_data, monkeypatch):
    """The same recipe with 3,000 s of search: 1,500 s hold 3 trainings of 3 epochs of 45 s,
    so it searches: the trial runs its --max-epochs on its own schedule, planning nothing."""
    rep, clock, search, plans = _fitted_recipe(monkeypatch, tiny_data, [45.0, 40.0], 3000.0, 3)
    assert [h["epoch"] for h in rep.history] == [1, 2, 3] and plans == []
    assert not any("planned_epochs" in h for h in rep.history)


def test_a_recipe_fitted_to_a_long_search_end_trains_past_max_epochs(tiny_data, monkeypatch):
    """Too short to search (3 trainings of 10 epochs of 10 s do not fit in the 200 s it may
    search), but 400 s hold ~39 epochs: the recipe trains them all (at most 10x
    --max-epochs), re-planned as it goes, and its learning rate reaches 0 at the end."""
    rep, clock, search, plans = _fitted_recipe(monkeypatch, tiny_data, [12.0, 10.0], 400.0, 10)
    assert 30 <= len(rep.history) <= 40 and clock[0] <= search.until
    assert rep.history[-1]["planned_epochs"] == len(rep.history)
    assert rep.history[-1]["lr"] == pytest.approx(0.0, abs=1e-7)


def test_a_recipe_with_variants_to_race_decides_on_its_second_epoch(tiny_data, monkeypatch):
    """Scripted: 800 s of search, --max-epochs 4, a first epoch of 45 s (it compiles: too
    short to search) and steady epochs of 10 s. With two variants to race, the second
    epoch decides: a quarter of 800 s, less the 35 s each variant's first epoch spends
    compiling, holds the 4 epochs of the recipe and its two variants, so the recipe trains
    its 4 epochs, its cosine (held while the second epoch decided) ending at 0 at the last
    as the variants' do, and says the race's length (the stopper stops each racer there).
    Without variants it fits itself at once, as before."""
    from hyperfcn.data.buckets import steps

    rep, clock, search, plans = _fitted_recipe(monkeypatch, tiny_data, [45.0, 10.0], 800.0,
                                               4, racers=(1.0, 1.0))
    n = steps(tiny_data.train[16], 4)
    assert [h["epoch"] for h in rep.history] == [1, 2, 3, 4]
    assert plans == [{"at": n, "phase": pytest.approx(0.25), "total": n},
                     {"at": 2 * n, "phase": pytest.approx(0.25), "total": 4 * n}]
    assert rep.history[-1]["lr"] == pytest.approx(0.0, abs=1e-7)
    assert [h.get("race_epochs") for h in rep.history] == [None, 4, 4, 4]
    assert not any("planned_epochs" in h for h in rep.history)
    alone, *_ = _fitted_recipe(monkeypatch, tiny_data, [45.0, 10.0], 800.0, 4)
    assert alone.history[0]["planned_epochs"] and not any(
        "race_epochs" in h for h in alone.history)


def test_a_race_too_long_for_the_budget_leaves_the_recipe_fitted_to_it(tiny_data,
                                                                       monkeypatch):
    """400 s of search: a quarter, less the variants' compiling, holds no epoch of three
    racers of 30 s, fewer than a race needs, so at its second epoch the recipe fits itself to the
    search's end (its learning rate reaching 0 there) and races nothing. Its learning rate
    held while it waited, and the second epoch, a steady one, times the plan at once: no
    third epoch runs before the plan, as `train --budget` plans after two."""
    from hyperfcn.data.buckets import steps

    rep, clock, search, plans = _fitted_recipe(monkeypatch, tiny_data, [45.0, 30.0], 400.0,
                                               10, racers=(1.0, 1.0))
    n = steps(tiny_data.train[16], 4)
    assert not any("race_epochs" in h for h in rep.history)
    assert "planned_epochs" not in rep.history[0]  # it waited for the second epoch's time
    assert plans[0] == {"at": n, "phase": pytest.approx(0.1), "total": n}  # held
    assert plans[1]["at"] == 2 * n and plans[1]["phase"] == pytest.approx(0.1)
    assert rep.history[1]["lr"] == pytest.approx(rep.history[0]["lr"])
    assert rep.history[-1]["planned_epochs"] == len(rep.history) > 2
    assert rep.history[-1]["lr"] == pytest.approx(0.0, abs=1e-7)
    assert clock[0] <= search.until


def test_train_with_a_budget_ends_on_a_partial_epoch_at_its_deadline(tiny_data, monkeypatch):
    """`train --budget`, scripted: epochs of 40 s after a first of 45 s, 145 s to the
    deadline. After the two timing epochs 60 s are left: one whole epoch (42 s with the
    margin) and 43% of another fit, so the run ends on a partial epoch of the steps that
    fit, its cosine reaching 0 at that epoch's last step, where whole epochs alone would
    leave 18 s of the budget unused."""
    from hyperfcn.data.buckets import steps

    clock = _scripted_epochs(monkeypatch, [45.0, 40.0])
    plans = _recorded_plans(monkeypatch)
    rep = LocalReporter()
    run_trial({**CFG, "lr_schedule": "cosine"}, tiny_data,
              TrialSettings(max_epochs=10, patience=1, fit_until=clock[0] + 145.0), rep)
    n = steps(tiny_data.train[16], 4)
    tail = int(18.0 / (40.0 * 1.05) * n)
    assert 0 < tail < n
    assert plans == [{"at": 2 * n, "phase": 0.0, "total": 3 * n + tail}]
    assert [h["epoch"] for h in rep.history] == [1, 2, 3, 4]
    assert rep.history[-1]["lr"] == pytest.approx(0.0, abs=1e-7)
    assert clock[0] <= 1000.0 + 145.0


@pytest.mark.parametrize("left,epochs", [(50.0, 2), (10.0, 1)])
def test_train_whose_budget_holds_less_than_two_epochs_plans_after_the_first(
        tiny_data, monkeypatch, left, epochs):
    """`train --budget`, scripted: a first epoch of 80 s (it compiles), then 40 s ones. With
    50 s left after it, a second timing epoch at the starting learning rate would overrun
    the deadline: the rest is planned at once, a partial epoch whose cosine ends at 0 at its
    last step. With 10 s left, nothing more is worth its validation: the run ends there."""
    from hyperfcn.data.buckets import steps

    clock = _scripted_epochs(monkeypatch, [80.0, 40.0])
    plans = _recorded_plans(monkeypatch)
    rep = LocalReporter()
    run_trial({**CFG, "lr_schedule": "cosine"}, tiny_data,
              TrialSettings(max_epochs=10, patience=1, fit_until=clock[0] + 80.0 + left),
              rep)
    assert len(rep.history) == epochs and clock[0] <= 1000.0 + 80.0 + left
    if epochs == 2:
        n = steps(tiny_data.train[16], 4)
        tail = int(left / (80.0 * 1.05) * n)
        assert 0 < tail < n
        assert plans == [{"at": n, "phase": 0.0, "total": n + tail}]
        assert rep.history[-1]["lr"] == pytest.approx(0.0, abs=1e-7)
    else:
        assert plans == []


def test_a_recipe_with_less_than_an_epoch_left_trains_a_partial_one_to_the_end(tiny_data,
                                                                             monkeypatch):
    """Scripted: a search of 130 s whose recipe's first epoch took 80 s. No whole epoch more
    fits in the 48 s left, but more than half of one does: the run ends on a partial epoch
    of the steps that fit, planned at once, its learning rate reaching 0 at its last step,
    instead of stopping after the first epoch near its peak learning rate."""
    from hyperfcn.data.buckets import steps

    rep, clock, search, plans = _fitted_recipe(monkeypatch, tiny_data, [80.0, 40.0], 130.0, 10)
    n = steps(tiny_data.train[16], 4)
    tail = int(48.0 / (80.0 * 1.05) * n)  # the share of an epoch that fits, in steps
    assert 0 < tail < n
    assert plans[-1] == {"at": n, "phase": pytest.approx(0.1), "total": n + tail}
    assert [h["planned_epochs"] for h in rep.history] == [2, 2]
    assert rep.history[-1]["lr"] == pytest.approx(0.0, abs=1e-7)


@pytest.mark.parametrize("done,train_s,val_s,left,want", [
    (1, 40.0, 0.0, 43.0, (2, 0)),  # one whole epoch (42 s with the margin), 1 s left over
    (1, 80.0, 0.0, 48.0, (2, 5)),  # none whole; 57% of one: 5 of 10 steps
    (1, 80.0, 8.0, 48.0, (2, 4)),  # its validation comes first: 4 steps
    (1, 80.0, 0.0, 18.0, (1, 0)),  # a fifth of an epoch is not worth its validation
    (1, 10.0, 0.0, 1e6, (30, 0)),  # --max-epochs (or the cap) bounds it, no tail after
])
def test_the_epochs_and_partial_last_epoch_that_fit(done, train_s, val_s, left, want):
    from hyperfcn.budget import epochs_and_tail

    assert epochs_and_tail(done, train_s, val_s, left, 10, 30) == want


def test_an_epoch_running_past_the_search_end_stops_early_and_still_reports(tiny_data,
                                                                            monkeypatch):
    """Scripted: the recipe's first epoch took 45 s of a 130 s search; then each training
    step takes 30 s, far slower than planned. Before each step the run checks the time: once
    only the slack and a validation are left it ends the epoch there, validates and reports
    it before the search's end (the search would drop a later report, and the epoch)."""
    import hyperfcn.trial
    from hyperfcn.budget import SEARCH_END_SLACK_S, SearchClock

    clock = _scripted_epochs(monkeypatch, [45.0, 0.0])
    real = hyperfcn.trial._Trial.should_stop_now

    def slow_steps(self):
        if self.history:  # after the first epoch, each step takes 30 s
            clock[0] += 30.0
        return real(self)

    monkeypatch.setattr(hyperfcn.trial._Trial, "should_stop_now", slow_steps)
    rep = LocalReporter()
    search = SearchClock(until=clock[0] + 130.0, search_s=130.0, max_epochs=10)
    run_trial({**CFG, "lr_schedule": "cosine"}, tiny_data,
              TrialSettings(max_epochs=10, clock=search), rep)
    assert [h["epoch"] for h in rep.history] == [1, 2]
    assert clock[0] <= search.until - SEARCH_END_SLACK_S


def test_configs_drawn_from_the_default_space_train(tiny_data):
    """What TPE may propose builds and trains (the integration tier trains the recipe and
    a smaller space's draws): 5 blocks on 16 px, both heads, every augmentation."""
    import random

    from hyperfcn.config import ModelConfig
    from hyperfcn.space import load_space

    space = load_space(known_keys=ModelConfig.keys())
    rng = random.Random(3)
    draws = [space.sample(rng) for _ in range(40)]
    picked = [max(draws, key=lambda c: (c["blocks"], c["filters"])),
              next(c for c in draws if c["head"] == "dense"),
              next(c for c in draws if c["head"] == "conv" and c["blocks"] == 2)]
    for cfg in picked:
        out = run_trial({**cfg, "image_size": 16}, tiny_data, TrialSettings(max_epochs=1),
                        LocalReporter())
        assert np.isfinite(out.best["val_loss"]), cfg
