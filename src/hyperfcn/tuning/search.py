"""One round of the search on Ray Tune: the Tuner, the trainable, the callbacks, resume.

Only public Ray Tune APIs (``Tuner``, ``Tuner.restore``, ``TuneConfig``, ``RunConfig``,
``tune.report``/``get_checkpoint``, ``Callback`` hooks, ``ResultGrid``); what has no public
way is in :mod:`hyperfcn.compat`. Callbacks are pickled with the experiment and come back
on ``Tuner.restore``: they reach this process's live view and TensorBoard writer through
:data:`LIVE`, which the driver fills before each run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ray
from ray import tune
from ray.tune.experiment import Trial
from ray.tune.logger import JsonLoggerCallback
from ray.tune.search import Searcher
from ray.tune.stopper import Stopper

from .. import artifacts as art
from .. import space as sp
from ..budget import (
    LONGER_SHARE,
    MIN_TRAININGS,
    SearchClock,
    end_search_for_longer,
    search_share,
    timed_epoch_s,
    too_short_to_search,
)
from ..final import is_two_stage
from ..race import Variant
from ..records import (
    Objective,
    TrialRecord,
    fitted_epochs,
    read_history,
    record,
    status_of,
)
from ..tb import HParamsLog
from ..trial import TrialSettings, run_trial
from . import compat
from .racing import Race
from .scheduler import SchedulerPlan, StopLog, cut_by_budget, make_scheduler, plan_scheduler
from .searchers import EndsWhen, make_searcher, random_starts
from .session import short_error

ENDED = (Trial.TERMINATED, Trial.ERROR)


@dataclass
class SearchRequest:
    space: sp.SearchSpace
    run_dir: Path
    data_ref: Any
    settings: TrialSettings
    searcher: str = "hyperopt"
    scheduler: SchedulerPlan | None = None
    samples: int | None = None
    budget_s: float | None = None
    concurrency: int = 1
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    resume: bool = False
    random_starts: int | None = None  # None: random_starts(concurrency, samples)
    storage: str | None = None
    view: Any = None  # a progress.LineView (None: quiet)
    extra_callbacks: list[Any] = field(default_factory=list)  # experiment trackers
    name: str = "tune"
    tb_dir: Path | None = None
    max_failures: int = 0
    # (config, metric value) of trials an earlier round of this search ran: extending a
    # finished search warm-starts the searcher with them
    evaluated: list[tuple[dict[str, Any], float]] = field(default_factory=list)
    # with a budget: end the search early enough for the best trial to train on
    # (final.end_search_for_longer, LongerFinalStopper)
    longer_final: bool = False
    # the variants of the recipe most likely wrong for the data (race.py): run after the
    # recipe, and raced against it where the budget is too short to search
    variants: tuple[Variant, ...] = ()


@dataclass
class Live:
    """What this driver process shows and writes while a round runs (never pickled)."""

    view: Any = None
    tb: HParamsLog | None = None
    out_of_budget: Callable[[str, int], bool] | None = None
    trials: dict[str, Trial] = field(default_factory=dict)  # every trial of the round
    race_epochs: int = 0  # the round races its recipe: each racer's epochs (racing.Race)
    # each trial's status at the last step's end: Ray's clean-up after Ctrl-C marks the
    # trials it interrupts TERMINATED on the same objects, after the state was saved
    status: dict[str, str] = field(default_factory=dict)


LIVE = Live()


# ---------------------------------------------------------------- the trainable

class RayReporter:
    """A trial's reports and checkpoints through Ray Tune (trial.Reporter)."""

    def __init__(self) -> None:
        # Looked up once: it is polled before every training step, and a reused worker
        # gets a new one per trial (before the trial's function starts).
        self._stop_event = compat.trial_stop_event()

    def report(self, metrics: dict[str, float], checkpoint_dir: str | None) -> None:
        ckpt = tune.Checkpoint.from_directory(checkpoint_dir) if checkpoint_dir else None
        # which node ran it: on a cluster, result.json shows where each epoch trained
        metrics = {**metrics, "node_id": ray.get_runtime_context().get_node_id()}
        tune.report(metrics, checkpoint=ckpt)

    def stop_requested(self) -> bool:
        return self._stop_event is not None and self._stop_event.is_set()

    @contextlib.contextmanager
    def restore_dir(self) -> Iterator[str | None]:
        ckpt = tune.get_checkpoint()
        if ckpt is None:
            yield None
            return
        with ckpt.as_directory() as d:
            yield d


def trainable(config: dict[str, Any], data: Any = None,
              settings: TrialSettings | None = None,
              recipes: list[dict[str, Any]] | None = None) -> None:
    """The Ray Tune function trainable: one trial, reporting through Ray. Only the space's
    recipes get the search's clock (TrialSettings.clock)."""
    assert settings is not None
    if settings.clock is not None and not sp.is_recipe(config, recipes or []):
        settings = dataclasses.replace(settings, clock=None)
    data = ray.get(data) if isinstance(data, ray.ObjectRef) else data
    run_trial(config, data, settings, RayReporter())


# ---------------------------------------------------------------- callbacks

class HParamsCallback(tune.Callback):
    """Writes TensorBoard HParams from the driver, so it works on any cluster."""

    def on_trial_start(self, iteration: int, trials: list[Trial], trial: Trial, **info):
        if LIVE.tb:
            LIVE.tb.start(trial.trial_id, trial.config)

    def on_trial_result(self, iteration: int, trials: list[Trial], trial: Trial,
                        result: dict, **info):
        if LIVE.tb:
            step = int(result.get("epoch", result.get("training_iteration", 0)))
            LIVE.tb.scalars(trial.trial_id, step, {k: result[k] for k in (
                "loss", "accuracy", "val_loss", "val_calibrated_loss", "val_accuracy",
                "val_balanced_accuracy", "lr")
                if k in result})

    def on_trial_complete(self, iteration: int, trials: list[Trial], trial: Trial, **info):
        if LIVE.tb:
            LIVE.tb.end(trial.trial_id, "ok")

    def on_trial_error(self, iteration: int, trials: list[Trial], trial: Trial, **info):
        if LIVE.tb:
            LIVE.tb.end(trial.trial_id, "failed")


class ProgressCallback(tune.Callback):
    """Feeds the live view (progress.py) from Ray Tune's events, and keeps every trial as
    last seen at a step's end (before Ctrl-C's clean-up marks running trials ended).

    Every step also looks for trials that ended without an event (a trial stopped while
    its result was in flight), so each trial's end is shown once.
    """

    def __init__(self) -> None:
        self._last_tick = 0.0

    @staticmethod
    def _open(trial: Trial) -> bool:
        return LIVE.view is not None and LIVE.view.board.is_open(trial.trial_id)

    def _ended(self, trial: Trial) -> None:
        epoch = int((trial.last_result or {}).get("epoch", 0))
        cut = bool(LIVE.out_of_budget and LIVE.out_of_budget(trial.trial_id, epoch))
        LIVE.view.ended(trial.trial_id, epoch, out_of_budget=cut, raced=LIVE.race_epochs)

    def on_trial_start(self, iteration: int, trials: list[Trial], trial: Trial, **info):
        if LIVE.view is not None:
            LIVE.view.started(trial.trial_id, trial.config)

    def on_trial_result(self, iteration: int, trials: list[Trial], trial: Trial,
                        result: dict, **info):
        if LIVE.view is not None:
            LIVE.view.result(trial.trial_id, result)

    def on_trial_complete(self, iteration: int, trials: list[Trial], trial: Trial, **info):
        if self._open(trial):
            self._ended(trial)

    def on_trial_error(self, iteration: int, trials: list[Trial], trial: Trial, **info):
        if self._open(trial):
            LIVE.view.ended(trial.trial_id, int((trial.last_result or {}).get("epoch", 0)),
                            error=short_error(_error_text(trial)) or "failed")

    def on_step_end(self, iteration: int, trials: list[Trial], **info):
        LIVE.trials = {t.trial_id: t for t in trials}
        LIVE.status = {t.trial_id: t.status for t in trials}
        for t in trials:
            if t.status == Trial.TERMINATED and self._open(t):
                self._ended(t)
        if LIVE.view is not None and time.time() - self._last_tick > 1.0:
            self._last_tick = time.time()
            LIVE.view.tick()

    def on_experiment_end(self, trials: list[Trial], **info):
        if LIVE.view is not None:
            LIVE.view.close()


class LongerFinalStopper(Stopper):
    """Ends a budgeted search once its time left is better spent training the best trial
    on (:func:`final.end_search_for_longer` decides; this keeps the scores).

    It ends the search between epochs, never all at once: from then on each running trial
    stops at its next epoch's end (after that epoch's checkpoint is saved, as a scheduler's
    stop is) and the searcher it wraps (:meth:`wrap`) suggests no more. ``stop_all`` would
    cancel a checkpoint being saved, and with it the best trial's weights.
    """

    def __init__(self, metric: str, search_s: float, max_epochs: int, slots: int = 1,
                 race: Race | None = None) -> None:
        self.objective = Objective(metric)
        self.search_s, self.max_epochs, self.slots = search_s, max_epochs, slots
        self.race = race or Race.of(None, [])
        self.t0: float | None = time.time()
        self.ended = False
        self.best: dict[str, float] = {}  # trial id -> its best value of the metric
        self.epoch_s: dict[str, list[float]] = {}
        self.two_stage: dict[str, bool] = {}
        self.why = ""  # the ending's reason, for the progress view

    def __setstate__(self, state: dict[str, Any]) -> None:
        # a resumed round's clock starts afresh, and so does its decision
        self.__dict__.update({"slots": 1, "why": "", "race": Race.of(None, []), **state},
                             t0=None, ended=False)

    def wrap(self, searcher: Searcher) -> Searcher:
        return EndsWhen(searcher, self)

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        self.t0 = self.t0 or time.time() - float(result.get("time_total_s", 0.0))
        value = result.get(self.objective.metric)
        if value is not None and result.get("epoch_seconds"):
            if self.objective.better(float(value), self.best.get(trial_id)):
                self.best[trial_id] = float(value)
            self.epoch_s.setdefault(trial_id, []).append(float(result["epoch_seconds"]))
            self.two_stage[trial_id] = is_two_stage(result.get("config") or {})
        stop = self.race.observe(trial_id, result.get("config") or {}, result)
        LIVE.race_epochs = self.race.epochs
        if stop is not None:
            if self.race.over and not self.ended:
                self._end(self.race.describe())
            return stop
        fitted = int(result.get("planned_epochs") or 0)
        if not self.ended and (fitted or (not self.race.pending and self._time_to_end())):
            self._end(self.why or self._fitted_why(trial_id, fitted))
        # the recipe fitted to the search's end is the model: it runs to its planned end
        return self.ended and not fitted

    def _end(self, why: str) -> None:
        self.ended, self.why = True, why
        if LIVE.view is not None:
            LIVE.view.note(why)

    def may_suggest(self, suggested: int) -> bool:
        return not self.ended and self.race.may_suggest(suggested)

    def _fitted_why(self, trial_id: str, fitted: int) -> str:
        share = search_share(self.search_s)
        return (f"the search ends: the {share:.0f} s it may search ({1 - LONGER_SHARE:.0%} "
                f"of its {self.search_s:.0f} s) hold fewer than {MIN_TRAININGS} trainings "
                f"of the space's recipe ({self.max_epochs} epochs of "
                f"~{self.epoch_s[trial_id][0]:.0f} s, its first epoch timed), too few to "
                f"compare configurations{self.race.unraced()}; trial {trial_id} (the "
                f"recipe) trains for the ~{fitted} epochs that fit, its learning rate "
                f"decaying to 0 at the search's end")

    def _time_to_end(self) -> bool:
        if self.t0 is None or not self.best:
            return False
        pick = min if self.objective.mode == "min" else max
        lead = pick(self.best, key=self.best.__getitem__)
        epoch_s = statistics.median(self.epoch_s[lead])
        # an overestimate while the first epoch (which compiles) decides alone: it errs
        # toward training the leader on, the decision a recipe fitting itself makes too
        timed_s = timed_epoch_s(self.epoch_s[lead])
        short = too_short_to_search(self.search_s, timed_s, self.max_epochs, self.slots)
        elapsed = time.time() - self.t0
        if not end_search_for_longer(elapsed, self.search_s, epoch_s, self.max_epochs,
                                     self.two_stage.get(lead, False), short):
            return False
        share = search_share(self.search_s)
        why = (f"the {share:.0f} s it may search ({1 - LONGER_SHARE:.0%} of its "
               f"{self.search_s:.0f} s) hold fewer than {MIN_TRAININGS} trainings of trial "
               f"{lead} ({self.max_epochs} epochs of ~{timed_s:.0f} s), too few to compare "
               f"configurations" if short else
               "the time left is better spent training the leader on")
        self.why = (f"the search ends, {self.search_s - elapsed:.0f} s before its budget: "
                    f"{why}; the leading trial {lead} trains on for the rest once the "
                    f"running trials finish their epoch")
        return True

    def stop_all(self) -> bool:
        return False


def _error_text(trial: Trial) -> str:
    with contextlib.suppress(OSError, TypeError):
        return Path(trial.error_file).read_text()
    return "trial failed"


# ---------------------------------------------------------------- the round

def _trial_name(trial: Trial) -> str:
    # Ray's default puts every parameter in the folder name: unreadable, and too long for
    # some file systems.
    return f"trial_{trial.trial_id}"


def experiment_path(req: SearchRequest) -> str:
    base = req.storage or str(req.run_dir.resolve())
    return f"{base.rstrip('/')}/{req.name}"


def can_resume(req: SearchRequest) -> bool:
    return tune.Tuner.can_restore(experiment_path(req))


def racing(req: SearchRequest, plan: SchedulerPlan) -> tuple[Variant, ...]:
    """The variants that race the recipe (race.py). An extended search ran them already;
    HyperBand's brackets (and BOHB's) stop every trial at their own epochs, so there none
    races."""
    if req.evaluated or not req.space.points or plan.name in ("hyperband", "bohb"):
        return ()
    return req.variants


def racers(req: SearchRequest, plan: SchedulerPlan) -> list[dict[str, Any]]:
    """The recipe and the variants racing it, as points."""
    variants = racing(req, plan)
    return [dict(req.space.points[0]), *(dict(v.point) for v in variants)] if variants else []


def first_points(req: SearchRequest, plan: SchedulerPlan) -> list[dict[str, Any]]:
    """The points the search runs first: the space's recipes, then the variants racing the
    first. An extended search has run them already."""
    if req.evaluated:
        return []
    return [dict(pt) for pt in req.space.points] + [
        dict(v.point) for v in racing(req, plan)]


def _tuner(req: SearchRequest, trainable_fn: Any, plan: SchedulerPlan,
           stop_log: StopLog, clock: SearchClock | None) -> tune.Tuner:
    """A new round's Tuner: searcher, scheduler, checkpoints, callbacks."""
    obj = Objective(req.settings.metric)
    points = first_points(req, plan) or None
    n_random = req.random_starts or random_starts(req.concurrency, req.samples)
    searcher = make_searcher(req.searcher, req.space, obj.metric, obj.mode,
                             req.settings.seed + len(req.evaluated), points,
                             len(points or ()) + n_random, req.evaluated)
    callbacks = [JsonLoggerCallback(), HParamsCallback(), ProgressCallback(),
                 *req.extra_callbacks]
    stopper = None
    if req.longer_final and req.budget_s:
        race = Race.of(clock, racers(req, plan))
        stopper = LongerFinalStopper(obj.metric, req.budget_s, req.settings.max_epochs,
                                     req.concurrency, race)
        searcher = stopper.wrap(searcher)
    return tune.Tuner(
        trainable_fn,
        tune_config=tune.TuneConfig(
            search_alg=searcher,
            scheduler=make_scheduler(plan, obj.metric, obj.mode, seeded=points,
                                     stop_log=stop_log),
            num_samples=req.samples if req.samples else -1,
            max_concurrent_trials=req.concurrency, time_budget_s=req.budget_s,
            # Reused workers skip the framework import and start, seconds a trial (a
            # process per trial costs more, benchmarks/overhead.py);
            # runtime.forget_compiled keeps them flat.
            reuse_actors=True,
            trial_name_creator=_trial_name, trial_dirname_creator=_trial_name),
        run_config=tune.RunConfig(
            name=req.name, storage_path=req.storage or str(req.run_dir.resolve()),
            callbacks=callbacks, verbose=0,
            stop=stopper,
            # Ray keeps each trial's best-scoring checkpoint (saved at the epochs that
            # improved the metric: the weights the final model can be) and its latest (to
            # resume from).
            checkpoint_config=tune.CheckpointConfig(
                num_to_keep=1, checkpoint_score_attribute=obj.metric,
                checkpoint_score_order=obj.mode),
            failure_config=tune.FailureConfig(max_failures=req.max_failures)))


def search_clock(req: SearchRequest, plan: SchedulerPlan) -> SearchClock | None:
    """The clock the space's recipe gets, from now: a budgeted search whose best trial
    trains on (``longer_final``) fits the recipe to its end when it is too short to
    search. HyperBand (BOHB's too) stops every trial at max_t, so there it gets no more
    epochs."""
    if not (req.budget_s and req.longer_final and req.space.points):
        return None
    variants = racing(req, plan)
    return SearchClock(until=time.time() + req.budget_s, search_s=req.budget_s,
                       max_epochs=req.settings.max_epochs, slots=req.concurrency,
                       max_fitted=plan.max_t if plan.name in ("hyperband", "bohb") else 0,
                       racers=tuple(v.cost for v in variants))


def run_search(req: SearchRequest) -> tuple[list[TrialRecord], bool]:
    """Run (or resume) a round; return one record per trial and whether it was cut short."""
    plan = req.scheduler or plan_scheduler("asha", req.settings.max_epochs)
    settings = dataclasses.replace(req.settings, clock=search_clock(req, plan))
    trainable_fn = tune.with_resources(
        tune.with_parameters(trainable, data=req.data_ref, settings=settings,
                             recipes=[dict(p) for p in req.space.points]),
        {"cpu": req.cpus_per_trial, "gpu": req.gpus_per_trial})
    stops_path = req.run_dir / art.SCHEDULER_STOPS
    if not (req.resume or req.evaluated):  # a new search: no stops of an earlier one
        stops_path.unlink(missing_ok=True)
    stop_log = StopLog(stops_path)
    LIVE.view, LIVE.trials, LIVE.status, LIVE.race_epochs = req.view, {}, {}, 0
    LIVE.tb = HParamsLog(req.tb_dir or req.run_dir / art.TENSORBOARD)
    LIVE.out_of_budget = functools.partial(cut_by_budget, plan, req.budget_s, stop_log)
    if req.resume:
        # callbacks come back with the experiment; they find this process's view in LIVE
        tuner = tune.Tuner.restore(experiment_path(req), trainable=trainable_fn,
                                   resume_unfinished=True, resume_errored=False,
                                   restart_errored=False)
    else:
        tuner = _tuner(req, trainable_fn, plan, stop_log, settings.clock)
    try:
        grid = tuner.fit()
    finally:
        LIVE.tb.close()
        if req.view is not None:
            req.view.close()
        LIVE.view = None
    seen, status = dict(LIVE.trials), dict(LIVE.status)
    # a trial still to run or running when the round returned: Ctrl-C (Ray ends the round
    # cleanly and saves it); no trial seen at all: interrupted before the first step
    interrupted = not seen or any(st not in ENDED for st in status.values())
    return _records(req, grid, seen, status, plan, stop_log), interrupted


def _records(req: SearchRequest, grid: Any, seen: dict[str, Trial], status: dict[str, str],
             plan: SchedulerPlan, stop_log: StopLog) -> list[TrialRecord]:
    obj = Objective(req.settings.metric)
    results = {Path(r.path).name.removeprefix("trial_"): r for r in grid}
    raced = racers(req, plan)
    out = []
    for tid, t in seen.items():
        race_epochs = LIVE.race_epochs if sp.is_recipe(t.config, raced) else 0
        result = results.get(tid)
        error = getattr(result, "error", None)
        st = status.get(tid, t.status)
        if error is None and st == Trial.ERROR:
            error = _error_text(t)
        hist = read_history(getattr(result, "path", None)) or (
            [dict(t.last_result)] if t.last_result else [])
        epochs = max((int(h.get("epoch", 0)) for h in hist), default=0)
        decided = status_of(failed=st == Trial.ERROR or error is not None,
                           ended=st in ENDED, epochs=epochs,
                           max_epochs=(fitted_epochs(hist) or race_epochs
                                       or req.settings.max_epochs),
                           stopped_by_scheduler=tid in stop_log,
                           budget_can_cut=cut_by_budget(plan, req.budget_s, stop_log, tid, 0))
        out.append(record(tid, t.config, decided, hist,
                          error=short_error(error) if error is not None else "",
                          checkpoint=_best_checkpoint(result, obj, hist), search=req.name,
                          race_epochs=race_epochs))
    return out


def _best_checkpoint(result: Any, obj: Objective, hist: list[dict[str, Any]]) -> str:
    """The trial's checkpoint of its best epoch ("" where that epoch saved none: a search
    begun before checkpoints were kept by score)."""
    scored = [(c, m) for c, m in (getattr(result, "best_checkpoints", None) or [])
              if obj.metric in m]
    if not scored:
        return ""
    ckpt, m = min(scored, key=lambda cm: (1 if obj.mode == "min" else -1) * cm[1][obj.metric])
    best = obj.best(hist) or m
    return ckpt.path if int(m.get("epoch", -1)) == int(best.get("epoch", -2)) else ""
