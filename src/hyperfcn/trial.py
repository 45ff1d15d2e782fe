"""One trial: build -> fit one epoch at a time -> report. The final model runs this too.

Nothing here imports Ray: a trial talks to whoever runs it through a ``Reporter``
(:mod:`hyperfcn.tuning.search` adapts Ray Tune; the final model keeps results locally). Keras is
imported lazily, after the trial's thread and GPU-memory limits are in place
(:mod:`hyperfcn.runtime`); the arrays are :mod:`hyperfcn.data.arrays`, the batches
:mod:`hyperfcn.feed`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from . import feed, runtime
from .budget import PROBE_EPOCHS, Deadline, Regime, SearchClock, Timing, next_replan, regime
from .config import ModelConfig
from .data.arrays import TrialData, class_weights, labels_of
from .data.epoch import epoch_steps, scoring_rows
from .data.folder import DECODES
from .errors import TrialError
from .metrics import score
from .records import Objective

CHECKPOINT_MODEL = "model.keras"
CHECKPOINT_STATE = "state.json"
_clock = time.monotonic  # times the checkpoint interval (a test steps it)

__all__ = ["TrialData", "TrialSettings", "LocalReporter", "TrialOutcome", "run_trial"]


@dataclass(frozen=True)
class TrialSettings:
    max_epochs: int
    metric: str = "val_loss"
    seed: int = 0
    cpus: float = 1.0
    gpus: float = 0.0
    patience: int | None = None  # early stopping (final retrain); None: run every epoch
    weights: str | None = None  # backbone mode: imagenet | none | a .weights.h5 path
    # A searched trial saves a checkpoint (to resume it) at an epoch's end once this long has
    # passed since its last one; 0: every epoch. Saving a model takes ~0.1-0.2 s however
    # small it is: every epoch, that is a few % of a CPU trial and far more of a GPU epoch.
    checkpoint_every_s: float = 60.0
    # A searched trial also saves a checkpoint at every epoch that improves its metric, so
    # that its best epoch's weights can become the final model (Ray keeps the best-scoring
    # checkpoint and the latest). At such an epoch the model being trained *is* the best
    # one, so one save serves both resume and promotion.
    checkpoint_best: bool = False
    min_epochs: int = 0  # early stopping (patience) never ends a run before this epoch
    stop_after: int | None = None  # end after this epoch; the schedule still spans max_epochs
    # The final model's continuation: start from this trial checkpoint's weights, with a new
    # optimizer whose schedule spans max_epochs (a warm restart), counting epochs from 1.
    init_from: str | None = None
    # `hyperfcn train --budget`: a time.time() by which training must end. The first
    # PROBE_EPOCHS run at the starting learning rate and time an epoch; the run then has as
    # many epochs as fit (at most max_epochs), the last maybe partial, and its cosine
    # schedule goes on from the peak to 0 at the deadline; each time half of the rest has
    # run, the epochs since the last plan re-plan the rest.
    fit_until: float | None = None
    # The space's recipe in a budgeted search: the search's clock. When its first epoch
    # shows the budget too short to search (SearchClock.too_short), the trial fits its
    # schedule to the search's end as `train --budget` does, from the next epoch on, and
    # says so in each report (``planned_epochs``): the search then ends and this trial is
    # the model, where a trial of --max-epochs cut by the budget would ship weights that
    # stopped at their peak learning rate.
    clock: SearchClock | None = None
    # "balanced": each training image's loss weighted so that every class weighs the same
    # in all (data.arrays.class_weights); "none": every image weighs 1
    class_weight: str = "none"

    @property
    def mode(self) -> str:
        return Objective(self.metric).mode


class Reporter(Protocol):
    def report(self, metrics: dict[str, float], checkpoint_dir: str | None) -> None: ...

    def restore_dir(self) -> contextlib.AbstractContextManager[str | None]: ...

    # Optional: ``stop_requested() -> bool``, true once the scheduler has stopped the trial;
    # the trial then ends within a step instead of finishing its epoch (see run_trial).


class LocalReporter:
    """Keeps every epoch's metrics; no checkpoints (the final retrain runs in one go).

    With a ``deadline`` (a ``time.time()`` value) the run ends within a step once it passes.
    """

    def __init__(self, on_epoch=None, deadline: float | None = None) -> None:
        self.history: list[dict[str, float]] = []
        self.on_epoch = on_epoch
        self.deadline = deadline

    def stop_requested(self) -> bool:
        return self.deadline is not None and time.time() >= self.deadline

    def report(self, metrics: dict[str, float], checkpoint_dir: str | None) -> None:
        self.history.append(dict(metrics))
        if self.on_epoch is not None:
            self.on_epoch(dict(metrics))

    @contextlib.contextmanager
    def restore_dir(self) -> Iterator[str | None]:
        yield None


@dataclass
class TrialOutcome:
    history: list[dict[str, float]]
    best: dict[str, float]
    model: Any = None  # the core (inference) keras model, best weights
    seconds: float = 0.0


def run_trial(config: Mapping[str, Any], data: TrialData, settings: TrialSettings,
              reporter: Reporter) -> TrialOutcome:
    """Build the config's model (or restore it from the reporter's checkpoint), fit it one
    epoch at a time, report each epoch; return the history and the best model."""
    return _Trial(config, data, settings, reporter).run()


class _DeadlineFit:
    """The part of a trial fitted to a deadline (`train --budget`, the final step's train-on,
    a recipe fitted to the search's end or racing its variants): timing its first epochs,
    planning how many fit and re-planning as it goes. Mixed into :class:`_Trial`, whose
    state it reads and sets; the planning itself is budget.py's
    :class:`~hyperfcn.budget.Deadline`."""

    def _fit_timed(self, start: int) -> int:
        """A run fitted to a deadline: the first PROBE_EPOCHS run at the starting learning
        rate, and the last of them (the first without compilation) times the plan; then,
        each time half of what the plan has left has run, the epochs since the last plan
        time it again and re-plan the rest (an epoch timed while the machine is busy can be
        far off either way, and a machine gets busier or quieter during a run). When the
        first epoch leaves time for at most one more, that one is planned at once (as
        :meth:`_fit_within_search` does): a second timing epoch would overrun the deadline
        at the starting learning rate. Returns the epoch the run goes on from."""
        at = min(PROBE_EPOCHS, self.end_epoch)
        if start + 1 < at:
            self._fit(start, start + 1)
            start += 1
            if self.stopped or self._plan_now_if_one_left():
                return start
        self._fit(start, at)
        if self.history and not self.stopped:
            since = len(self.history) - 1
            self._set_deadline(since)
            self._plan_to_end(since=since, first=True)
        return self._replan_halves(at)

    def _plan_now_if_one_left(self) -> bool:
        """After a deadline-fitted run's first epoch: when the time left holds one more
        epoch at most, plan it now (the deadline set, the cosine ending at its last step,
        partial if only part of it fits); True then."""
        done = len(self.history)
        if not done or self._plan(since=done - 1)[0] > done + 1:
            return False
        self._set_deadline(done - 1)
        self._plan_to_end(since=done - 1, first=True)
        return True

    def _set_deadline(self, since: int) -> None:
        """Steps stop at ``fit_until`` less the margin a validation takes (timed by the
        epochs from the ``since``-th on)."""
        self.train_until = self._deadline().steps_stop_at(Timing.of(self.history[since:]))

    def _deadline(self) -> Deadline:
        return Deadline(until=float(self.s.fit_until or 0.0), max_epochs=self.s.max_epochs,
                        n_steps=self.n_steps)

    def _fit_within_search(self, start: int) -> int:
        """The recipe in a budgeted search: its first epoch runs alone, and when the budget
        is too short to search (decided in :meth:`epoch_end`, before that epoch's report)
        the run is fitted to the search's end. The first epoch also compiled, so the next
        one times the plan, its learning rate held (as `train --budget`'s second timing
        epoch is), unless only a partial epoch fits: that one is planned at once. The plan
        is then re-timed as :meth:`_fit_timed` does. With variants to race (budget.regime),
        the second epoch runs alone too: its time decides between racing and fitting, and
        having timed a steady epoch, a fitted run plans at once. Returns the epoch the run
        goes on from."""
        if start == 0:
            self._fit(0, 1)
            start = 1
        if self.regime is Regime.WAIT and start == 1 < self.end_epoch and not self.stopped:
            self._fit(1, 2)  # the race is decided on this epoch's time
            start = 2
        if (not self.fitted_to_search or self.stopped or start >= self.end_epoch
                or self.tail_steps):
            return start
        if len(self.history) < PROBE_EPOCHS:  # only the compiling epoch is timed yet
            self._fit(start, start + 1)
            start += 1
        self._plan_to_end(since=PROBE_EPOCHS - 1, first=True)
        return self._replan_halves(start)

    def _decide_regime(self) -> None:
        """The recipe with the search's clock, after its first epochs (budget.regime): it
        trains its epochs, fits itself to the search's end, or races its variants for the
        race's epochs (the search's stopper ends the race)."""
        clock = self.s.clock
        if (clock is None or self.regime not in (None, Regime.WAIT) or self.fitted_to_search
                or self.two_stage):
            return
        self.regime, n = regime(clock, [h["epoch_seconds"] for h in self.history])
        if self.regime is Regime.SEARCH:
            return
        done = self.n_steps * len(self.history)
        # Until the run's length is known its cosine holds where it is, as `train
        # --budget`'s timing epochs hold at the start: decaying on the search's schedule
        # meanwhile, the fitted recipe trained a 12-epoch budget with ~20% less learning
        # rate than `train --budget` gives the same recipe.
        self._cosine(at=done, total=self.n_steps * n if n else done)
        if self.regime is Regime.FIT:
            self._fit_to_search_end()
        elif self.regime is Regime.RACE:
            self.race_epochs = n

    def _cosine(self, at: int, total: int) -> None:
        """The cosine goes on from where it is at step ``at`` to 0 at step ``total`` (at or
        below ``at``: it holds)."""
        from .model import schedule_of  # Keras: loaded only where a model is needed

        schedule = schedule_of(self.model)
        if schedule is not None:
            schedule.plan(at=at, phase=schedule.phase_at(at), total=total)

    def _fit_to_search_end(self) -> None:
        """From now on this run ends at the search's end (SearchClock.until): as many
        epochs as fit (at most SearchClock.epoch_cap), the last maybe partial, early
        stopping waiting for them. The epochs so far estimate how many; the schedule is
        planned once the next is timed, or now when only a partial epoch fits."""
        clock = self.s.clock
        assert clock is not None
        deadline = Deadline.search_end(clock, self.n_steps)
        self.s = dataclasses.replace(self.s, fit_until=deadline.until,
                                     max_epochs=deadline.max_epochs)
        self.fitting = self.fitted_to_search = True
        self._set_deadline(since=0)
        done = len(self.history)
        end, tail = self._plan(since=0)
        if tail and end == done + 1:
            self._plan_to_end(since=0, first=True)
        else:
            self.end_epoch = self.min_epochs = end - (1 if tail else 0)

    def _plan(self, since: int) -> tuple[int, int]:
        """(epochs in all, steps of a last partial epoch) that fit before ``fit_until``,
        timed by the epochs from the ``since``-th on."""
        return self._deadline().plan(len(self.history), Timing.of(self.history[since:]),
                                     time.time())

    def _plan_to_end(self, since: int, first: bool = False) -> None:
        """(Re-)plan a run fitted to a deadline (:meth:`_plan`): the cosine goes on from
        where it is to 0 at the last step of the new plan, which may end on a partial
        epoch: at a budget of a few epochs, the time after the last whole one is a large
        part of the training."""
        done = len(self.history)
        if self.stopped or (done >= self.end_epoch and not first):
            return
        end, tail = self._plan(since)
        changed = first or (end, tail) != (self.end_epoch, self.tail_steps)
        if end != done and changed:
            self._cosine(at=self.n_steps * done,
                         total=self.n_steps * (end - (1 if tail else 0)) + tail)
        self.end_epoch = self.min_epochs = end
        self.tail_steps = tail

    def _replan_halves(self, at: int) -> int:
        """Each time half of what the plan has left has run, re-plan the rest."""
        while not self.stopped and (half := next_replan(at, self.end_epoch)) is not None:
            self._fit(at, half)
            self._plan_to_end(since=at)
            at = half
        return at


class _Trial(_DeadlineFit):
    """One trial's state, in the order it runs: process, data, model, stages, epochs."""

    def __init__(self, config: Mapping[str, Any], data: TrialData, settings: TrialSettings,
                 reporter: Reporter) -> None:
        self.config, self.data, self.s, self.reporter = config, data, settings, reporter
        self.history: list[dict[str, float]] = []
        self.best: dict[str, float] = {}
        self.best_weights: Any = None
        self.stopped = self.asked_to_stop = False
        self.setup_seconds = self.epoch_began = 0.0
        self.last_checkpoint = _clock()
        self.end_epoch = min(settings.stop_after or settings.max_epochs, settings.max_epochs)
        self.min_epochs = settings.min_epochs
        self.fitted_to_search = False  # see TrialSettings.clock
        self.regime: Regime | None = None  # the recipe with the clock: budget.regime
        self.race_epochs = 0  # racing: the epochs each racer trains
        self.tail_steps = 0  # steps of a last, partial epoch (a run fitted to the search)
        self.train_until: float | None = None  # ... and when its training must stop
        self.step_began = 0.0
        self._stop_requested = getattr(reporter, "stop_requested", None)

    def run(self) -> TrialOutcome:
        self._start()
        with self.reporter.restore_dir() as ckpt:
            start_epoch = self._build(ckpt)
        switch = self.switch
        if start_epoch < min(switch, self.end_epoch):  # two_stage, first stage: the head
            self._fit(start_epoch, min(switch, self.end_epoch))
            start_epoch = switch
        if (self.two_stage and start_epoch == switch and not self.stopped
                and switch < self.end_epoch):
            self._second_stage()
        if (self.fitting and not self.fitted_to_search
                and start_epoch < min(PROBE_EPOCHS, self.end_epoch)):
            start_epoch = self._fit_timed(start_epoch)
        elif self.s.clock is not None and not self.two_stage and not self.stopped:
            start_epoch = self._fit_within_search(start_epoch)
        if start_epoch < self.end_epoch and not self.stopped:
            self._fit(start_epoch, self.end_epoch)
        if self.best_weights is not None:
            self.core.set_weights(self.best_weights)
        return TrialOutcome(history=self.history, best=self.best, model=self.core,
                            seconds=time.time() - self.t0)

    def _start(self) -> None:
        """Process limits, imports, seeds, and this trial's arrays."""
        entered = time.time()
        first = runtime.claim_first_trial()
        # A trial's setup counts from its process's start when it is the process's first
        # trial (worker start and imports), else from here.
        self.started = entered - runtime.process_age_at(entered) if first else entered
        runtime.configure_runtime(self.s.cpus, self.s.gpus)
        import keras

        from . import augment  # noqa: F401  (registers Augment for checkpoint loading)

        if first:
            runtime.freeze_imports()
        self.cfg = ModelConfig.from_dict(self.config, "trial config")
        self.t0 = time.time()
        keras.backend.clear_session(free_memory=False)
        runtime.forget_compiled(program=json.dumps(
            {k: v for k, v in self.cfg.to_dict().items() if k != "learning_rate"},
            sort_keys=True, default=str))
        keras.utils.set_random_seed(self.s.seed)
        if self.cfg.image_size not in self.data.train:
            raise TrialError(f"image_size {self.cfg.image_size} was not prepared; prepared: "
                             f"{sorted(self.data.train)}")
        self.train = self.data.train[self.cfg.image_size]
        self.val = self.data.val[self.cfg.image_size]
        self.k = len(self.data.classes)
        self.val_rows = scoring_rows(self.val)
        self.val_labels = labels_of(self.val, self.val_rows)
        self.n_steps = epoch_steps(self.train, self.cfg.batch_size)
        self.two_stage = self.cfg.two_stage
        self.switch = min(self.cfg.head_epochs, self.s.max_epochs) if self.two_stage else 0
        # a two-stage backbone plans its own schedules; the reporter's deadline still holds
        self.fitting = self.s.fit_until is not None and not self.two_stage
        if self.fitting:  # early stopping waits for the end, once the end is known
            self.min_epochs = self.s.max_epochs

    def _build(self, ckpt: str | None) -> int:
        """The model, from the checkpoint if there is one; the epoch to start from."""
        import keras

        from .model import build_training_model  # Keras: loaded only where a model is needed
        from .precision import set_precision  # Keras: loaded only where a model is needed

        start_epoch = 0
        set_precision(gpu=self.s.gpus > 0)
        # a run fitted to a deadline gets its schedule once its epochs are known
        decay = None if self.fitting else self.n_steps * (self.switch or self.s.max_epochs)
        if self.s.init_from and not ckpt:
            from .model import compile_model  # Keras: loaded only where a model is needed

            self.model = keras.saving.load_model(Path(self.s.init_from, CHECKPOINT_MODEL))
            self.core = self.model.get_layer("hyperfcn")
            compile_model(self.model, self.cfg, decay_steps=decay)
        elif ckpt:
            state = json.loads(Path(ckpt, CHECKPOINT_STATE).read_text())
            self.model = keras.saving.load_model(Path(ckpt, CHECKPOINT_MODEL))
            self.core = self.model.get_layer("hyperfcn")
            start_epoch, self.history = int(state["epoch"]), state["history"]
        else:
            self.model, self.core = build_training_model(
                self.cfg, self.k, seed=self.s.seed, weights=self.s.weights,
                decay_steps=decay)
            if self.cfg.init == "airbench" and self.cfg.backbone == "none":
                from .weights_init import (
                    airbench_init,  # Keras: loaded only where a model is needed
                )

                airbench_init(self.core, [b.x for b in self.train.buckets], self.s.seed or 0)
        for h in self.history:
            if Objective(self.s.metric).better(h[self.s.metric], self.best.get(self.s.metric)):
                self.best = dict(h)
        if self.history and self.history[-1].get("planned_epochs") and self.s.clock:
            self._fit_to_search_end()  # resumed: it had fitted itself; it does again
        return start_epoch

    def _second_stage(self) -> None:
        """Unfreeze the top of the backbone, at a lower learning rate. (A checkpoint from
        after the switch already holds both.)"""
        from .backbone import second_stage  # Keras: loaded only where a model is needed
        from .model import compile_model  # Keras: loaded only where a model is needed

        second_stage(self.core, self.cfg)
        compile_model(self.model, self.cfg, self.cfg.learning_rate * self.cfg.finetune_lr_factor,
                      decay_steps=self.n_steps * (self.s.max_epochs - self.switch))

    def _fit(self, first: int, last: int) -> None:
        """Epochs [first, last); the run's last epoch has only ``tail_steps`` when set."""
        if self.tail_steps and last == self.end_epoch and first < last:
            if first < last - 1:
                self._fit_steps(first, last - 1, self.n_steps)
            if not self.stopped:
                self._fit_steps(last - 1, last, self.tail_steps)
            return
        self._fit_steps(first, last, self.n_steps)

    def _fit_steps(self, first: int, last: int, n_steps: int) -> None:
        self.epoch_began = self.step_began = time.time()
        self.setup_seconds = self.setup_seconds or self.epoch_began - self.started
        inputs = feed.train_input(self.train, self.cfg.batch_size, self.k, self.s.seed,
                                    first, last, epoch_steps=self.n_steps)
        self.model.fit(inputs, epochs=last, initial_epoch=first, steps_per_epoch=n_steps,
                       callbacks=_callbacks(self), shuffle=False, verbose=0,
                       class_weight=self._class_weight())

    def _class_weight(self) -> dict[int, float] | None:
        if self.s.class_weight != "balanced":
            return None
        labels = np.concatenate([b.y for b in self.train.buckets])
        return class_weights(labels, self.k)

    def should_stop_now(self) -> bool:
        """Before each step: the scheduler stopped this trial (a reused worker can start
        its next trial only once this one has returned, and Ray waits for that briefly), or
        a run fitted to the search's end has no time left to train."""
        if self._stop_requested is not None and self._stop_requested():
            self.asked_to_stop = self.stopped = True
        if self.train_until is not None:
            now = time.time()
            step_s, self.step_began = now - self.step_began, now  # the step that just ran
            if now + step_s >= self.train_until:
                self.stopped = True  # out of time: this epoch ends here, and reports
                return True
        return self.asked_to_stop

    def epoch_end(self, epoch: int, logs: Mapping[str, Any] | None) -> bool:
        """Validate, checkpoint if due, report; True when early stopping ends the fit."""
        if self.asked_to_stop:
            return False
        metrics = self._metrics(epoch, logs or {})
        self.history.append(metrics)
        self._decide_regime()
        if self.fitted_to_search:
            metrics["planned_epochs"] = self.end_epoch
        if self.race_epochs:
            metrics["race_epochs"] = self.race_epochs
            self.stopped = self.stopped or epoch + 1 >= self.race_epochs
        improved = Objective(self.s.metric).better(metrics[self.s.metric],
                                                  self.best.get(self.s.metric))
        if improved:
            self.best = dict(metrics)
            if self.s.patience is not None:
                self.best_weights = self.core.get_weights()
        with self._checkpoint(epoch + 1, improved) as ckpt_dir:
            self.reporter.report(metrics, ckpt_dir)
        patience = self.s.patience
        if (patience is not None and epoch + 1 >= self.min_epochs
                and epoch + 1 - int(self.best.get("epoch", 0)) >= patience):
            self.stopped = True
        return self.stopped

    def _metrics(self, epoch: int, logs: Mapping[str, Any]) -> dict[str, float]:
        loss = float(logs.get("loss", float("nan")))
        if not math.isfinite(loss):
            raise TrialError(f"loss became {loss} in epoch {epoch + 1} "
                             f"(learning_rate={self.cfg.learning_rate:g}); the trial stops")
        from keras import ops

        metrics = {"epoch": epoch + 1, "loss": loss,
                   "accuracy": float(logs.get("accuracy", float("nan"))),
                   # where the schedule is at the epoch's end (trials.json, TensorBoard)
                   "lr": float(ops.convert_to_numpy(self.model.optimizer.learning_rate))}
        tv = time.time()
        metrics.update(score(feed.predict_packed(
            self.core, self.val, self.cfg.batch_size, self.val_rows), self.val_labels))
        now = time.time()
        # Where a trial's time goes (benchmarks/gpu_packing.py): before the first fit
        # (process start, imports, model build), and validation within each epoch.
        metrics.update(seconds=now - self.t0, setup_seconds=self.setup_seconds,
                       epoch_seconds=now - self.epoch_began, val_seconds=now - tv)
        self.epoch_began = self.step_began = now
        # Diagnostics the benchmarks read: memory must stay flat across trials, and a
        # trial never decodes an image itself.
        metrics.update(worker_rss_mb=runtime.rss_mb(), worker_decodes=DECODES[0],
                       worker_pid=os.getpid())
        return metrics

    @contextlib.contextmanager
    def _checkpoint(self, epoch: int, improved: bool) -> Iterator[str | None]:
        """A checkpoint folder for this epoch's report, or None: every improving epoch
        when the best weights are wanted, else once the interval has passed (a run's
        last epoch needs none to resume from)."""
        due = ((improved and self.s.checkpoint_best)
               or (epoch < self.end_epoch
                   and _clock() - self.last_checkpoint >= self.s.checkpoint_every_s))
        if not due:
            yield None
            return
        with tempfile.TemporaryDirectory(prefix="hyperfcn-ckpt-") as d:
            self.model.save(Path(d, CHECKPOINT_MODEL))
            Path(d, CHECKPOINT_STATE).write_text(json.dumps({"epoch": epoch,
                                                             "history": self.history}))
            self.last_checkpoint = _clock()
            yield d


def _callbacks(trial: _Trial) -> list[Any]:
    """The two Keras hooks a trial needs: stop within a step when asked (a batch-begin
    hook keeps Keras' asynchronous batch-end dispatch), and the epoch's end."""
    import keras

    class StopWhenAsked(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            if trial.should_stop_now():
                self.model.stop_training = True

    class EpochEnd(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if trial.epoch_end(epoch, logs):
                self.model.stop_training = True

    return [StopWhenAsked(), EpochEnd()]
