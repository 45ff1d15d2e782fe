"""Everything that touches Ray Tune, HyperOpt and Optuna lives in this one module.

The rest of hyperfcn sees plain functions: start a session, share the data, run a search
(searcher + scheduler + trials), retrain one config on a worker.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Before Ray is imported: no usage reporting, no Ray logger callbacks (we write our own
# TensorBoard logs with declared HParams domains).
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
# Ray's new console output prints an experiment box even at verbose=0, which breaks --json
# and the live view; the classic reporter is silent at verbose=0 (our views report).
os.environ["RAY_AIR_NEW_OUTPUT"] = "0"



def _secure_auth_mode() -> None:
    """Ray binds its gRPC ports on every interface and its token authentication is what
    protects them: never run with it off. Ray reads the mode when it is imported."""
    mode = os.environ.get("RAY_AUTH_MODE")
    if mode is not None and mode.lower() != "token":
        logging.getLogger("hyperfcn").warning(
            "ignoring RAY_AUTH_MODE=%s: hyperfcn runs Ray with token authentication", mode)
        del os.environ["RAY_AUTH_MODE"]  # Ray's default for a local cluster: token auth
    has_token = (os.environ.get("RAY_AUTH_TOKEN")
                 or Path(os.environ.get("RAY_AUTH_TOKEN_PATH",
                                        Path.home() / ".ray" / "auth_token")).is_file())
    if has_token:
        # Explicit, so Ray does not print its "set RAY_AUTH_MODE=disabled to opt out" hint.
        os.environ["RAY_AUTH_MODE"] = "token"


_secure_auth_mode()

import ray  # noqa: E402
from ray import tune  # noqa: E402
from ray.tune.experiment import Trial  # noqa: E402
from ray.tune.logger import JsonLoggerCallback  # noqa: E402
from ray.tune.schedulers import (  # noqa: E402
    FIFOScheduler,
    HyperBandScheduler,
    TrialScheduler,
)

from . import artifacts as art  # noqa: E402
from . import space as sp  # noqa: E402
from .errors import UserError  # noqa: E402
from .final import FinalModel, FinalPlan  # noqa: E402
from .scheduler import RungScheduler, StopLog  # noqa: E402
from .searchers import make_searcher, random_starts  # noqa: E402
from .tb import HParamsLog  # noqa: E402
from .trial import TrialData, TrialSettings, run_trial  # noqa: E402

log = logging.getLogger("hyperfcn")


# ---------------------------------------------------------------- Ray session

def start(address: str | None = None, backend: str = "tensorflow", num_cpus: int | None = None,
          num_gpus: int | None = None, quiet: bool = False) -> dict[str, float]:
    """Start (or join) Ray and return the cluster's CPU and GPU counts."""
    env = {"KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3", "TF_ENABLE_ONEDNN_OPTS": "1",
           "RAY_USAGE_STATS_ENABLED": "0", "PYTHONWARNINGS": "ignore::DeprecationWarning",
           # A reused worker waits this long for the last trial's thread to return (Ray's
           # default, 2 s, is shorter than a loaded machine needs to tear down a fit; a
           # missed wait fails the next trial).
           "TUNE_FUNCTION_THREAD_TIMEOUT_S": "120"}
    # Workers' stdout stays in Ray's logs (TensorFlow prints banners at import): progress
    # reaches the driver as results, the final retrain's through a queue.
    kwargs: dict[str, Any] = dict(
        runtime_env={"env_vars": env}, logging_level=logging.WARNING,
        log_to_driver=False, configure_logging=True, ignore_reinit_error=True)
    if address:
        ray.init(address=address, **kwargs)
        if not token_auth_enabled():
            log.warning(
                "the Ray cluster at %s runs without token authentication: anyone who reaches "
                "its ports can run code on it (CVE-2023-48022). Start it with "
                "RAY_AUTH_MODE=token (KubeRay: spec.authOptions); see the README.", address)
    else:
        # The dashboard (and with it the Jobs API, which runs code) stays off; token
        # authentication stays on (see _secure_auth_mode).
        # A single-machine cluster lives on loopback: otherwise Ray's runtime-env agent
        # serves HTTP on the machine's public address (tests/test_security.py). Ray maps
        # 127.0.0.1 to the public address unless multi-node clusters are off, which is
        # also how it runs on macOS and Windows; child processes read the variable.
        os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
        from ray._private import ray_constants

        ray_constants.ENABLE_RAY_CLUSTER = False
        # address="local": always a cluster of our own. Without it Ray joins any cluster
        # a `ray start` left on this machine (and fails if it has since died).
        ray.init(address="local", num_cpus=num_cpus, num_gpus=num_gpus,
                 include_dashboard=False, **kwargs)
    logging.getLogger("ray.tune.tune").addFilter(_RESUME_HINT_FILTER)  # once: a set
    res = ray.cluster_resources()
    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    return {"cpus": float(res.get("CPU", 0)), "gpus": float(res.get("GPU", 0)),
            # one task (the final retrain) cannot span nodes
            "node_cpus": max((float(n.get("CPU", 0)) for n in nodes), default=0.0),
            "node_gpus": max((float(n.get("GPU", 0)) for n in nodes), default=0.0),
            "nodes": float(len(nodes))}


class _OurResumeHintOnly(logging.Filter):
    """Ray's "Resume experiment with: Tuner.restore(...)" is Python, not a command; the CLI
    prints the command that resumes instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Resume experiment with" not in record.getMessage()


_RESUME_HINT_FILTER = _OurResumeHintOnly()


def token_auth_enabled() -> bool:
    try:
        from ray._private.authentication.authentication_utils import is_token_auth_enabled

        return bool(is_token_auth_enabled())
    except ImportError:
        return False


def shutdown() -> None:
    with contextlib.suppress(Exception):
        ray.shutdown()


def put(obj: Any) -> Any:
    return ray.put(obj)


# ---------------------------------------------------------------- schedulers

@dataclass(frozen=True)
class SchedulerPlan:
    name: str
    max_t: int
    grace_period: int = 1
    reduction_factor: int = 3

    @property
    def min_records(self) -> int:
        """Results a rung holds before it stops anyone, so that its top 1/reduction_factor
        is more than the one or two fastest trials."""
        return self.reduction_factor

    def rungs(self) -> list[int]:
        out, t = [], self.grace_period
        while t < self.max_t:
            out.append(t)
            t *= self.reduction_factor
        return out + [self.max_t]

    def describe(self) -> str:
        if self.name == "fifo":
            return f"FIFO: every trial runs its {self.max_t} epochs"
        if self.name == "hyperband":
            return (f"HyperBand: max_t={self.max_t} epochs, "
                    f"reduction_factor={self.reduction_factor}")
        return (f"ASHA: max_t={self.max_t} epochs, grace_period={self.grace_period}, "
                f"reduction_factor={self.reduction_factor}; trials are compared at epochs "
                f"{', '.join(map(str, self.rungs()))}, once a rung holds "
                f"{self.min_records} results")


def plan_scheduler(name: str, max_epochs: int) -> SchedulerPlan:
    """ASHA rungs sized to the budget: about three decisions before max_t."""
    if name not in ("asha", "hyperband", "fifo"):
        raise UserError(f"--scheduler {name!r}: use asha, hyperband or fifo")
    rf = 3 if max_epochs >= 9 else 2
    grace = max(1, int(round(max_epochs / rf ** 3)))
    return SchedulerPlan(name, max_epochs, grace, rf)


def cut_by_budget(plan: SchedulerPlan, budget_s: float | None, stop_log: StopLog,
                  trial_id: str, epochs: int) -> bool:
    """Did the time budget end this trial (which Ray marks TERMINATED, like a stop)?

    FIFO stops nothing and ASHA logs its stops, so an early end neither explains was the
    budget running out. HyperBand's stops are not logged: its early ends stay "stopped".
    """
    if budget_s is None or epochs >= plan.max_t:
        return False
    return plan.name == "fifo" or (plan.name == "asha" and trial_id not in stop_log)


def make_scheduler(plan: SchedulerPlan, metric: str, mode: str,
                   seeded: list[dict[str, Any]] | None = None,
                   stop_log: StopLog | None = None) -> TrialScheduler:
    if plan.name == "asha":
        return RungScheduler(metric, mode, max_t=plan.max_t, grace_period=plan.grace_period,
                             reduction_factor=plan.reduction_factor,
                             min_records=plan.min_records, seeded=seeded, stop_log=stop_log)
    if plan.name == "hyperband":
        return HyperBandScheduler(time_attr="epoch", metric=metric, mode=mode,
                                  max_t=plan.max_t, reduction_factor=plan.reduction_factor)
    return FIFOScheduler()


# ---------------------------------------------------------------- the trainable

class RayReporter:
    def report(self, metrics: dict[str, float], checkpoint_dir: str | None) -> None:
        ckpt = tune.Checkpoint.from_directory(checkpoint_dir) if checkpoint_dir else None
        # which node ran it: on a cluster, result.json shows where each epoch trained
        metrics = {**metrics, "node_id": ray.get_runtime_context().get_node_id()}
        tune.report(metrics, checkpoint=ckpt)

    def __init__(self) -> None:
        # Tune sets this session's stop event when the scheduler stops the trial; the
        # function would only notice at its next report, an epoch later. Looked up once:
        # it is polled before every training step, and a reused worker gets a new one per
        # trial (before the trial's function starts).
        try:
            from ray.train._internal.session import get_session

            self._stop_event = getattr(get_session(), "stop_event", None)
        except ImportError:  # a Ray that moved it: stop at the next report, as before
            self._stop_event = None

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


def _get(data: Any) -> Any:
    return ray.get(data) if isinstance(data, ray.ObjectRef) else data


def trainable(config: dict[str, Any], data: Any = None,
              settings: TrialSettings | None = None) -> None:
    """The Ray Tune function trainable: one trial, reporting through Ray."""
    assert settings is not None
    run_trial(config, _get(data), settings, RayReporter())


# ---------------------------------------------------------------- callbacks

class HParamsCallback(tune.Callback):
    """Writes TensorBoard HParams from the driver, so it works on any cluster."""

    def __init__(self, tb: HParamsLog) -> None:
        self.tb = tb

    def on_trial_start(self, iteration: int, trials: list[Trial], trial: Trial, **info):
        self.tb.start(trial.trial_id, trial.config)

    def on_trial_result(self, iteration: int, trials: list[Trial], trial: Trial,
                        result: dict, **info):
        step = int(result.get("epoch", result.get("training_iteration", 0)))
        self.tb.scalars(trial.trial_id, step, {k: result[k] for k in
                                               ("loss", "accuracy", "val_loss",
                                                "val_accuracy") if k in result})

    def on_trial_complete(self, iteration: int, trials: list[Trial], trial: Trial, **info):
        self.tb.end(trial.trial_id, "ok")

    def on_trial_error(self, iteration: int, trials: list[Trial], trial: Trial, **info):
        self.tb.end(trial.trial_id, "failed")


class _NullView:
    class board:  # noqa: N801
        @staticmethod
        def is_open(trial_id: str) -> bool:
            return False

    def __getattr__(self, name: str) -> Callable[..., None]:
        return lambda *a, **k: None


class ProgressCallback(tune.Callback):
    """Feeds a progress view (progress.py) from Ray Tune's events.

    Every step also looks for trials that ended without an event (a trial stopped while
    its result was in flight), so each trial's end is shown once.
    """

    def __init__(self, view: Any,
                 out_of_budget: Callable[[str, int], bool] | None = None) -> None:
        self.view = view
        self.out_of_budget = out_of_budget
        self._last_tick = 0.0

    def __getstate__(self) -> dict:
        # Ray pickles the run config (callbacks included) with the experiment; a live
        # terminal view holds locks and threads. A resumed search gets a fresh view.
        return {"view": _NullView(), "out_of_budget": None, "_last_tick": 0.0}

    def _ended(self, trial: Trial) -> None:
        epoch = int((trial.last_result or {}).get("epoch", 0))
        cut = bool(self.out_of_budget and self.out_of_budget(trial.trial_id, epoch))
        self.view.ended(trial.trial_id, epoch, out_of_budget=cut)

    def on_trial_start(self, iteration: int, trials: list[Trial], trial: Trial, **info):
        self.view.started(trial.trial_id, trial.config)

    def on_trial_result(self, iteration: int, trials: list[Trial], trial: Trial,
                        result: dict, **info):
        self.view.result(trial.trial_id, result)

    def on_trial_complete(self, iteration: int, trials: list[Trial], trial: Trial, **info):
        if self.view.board.is_open(trial.trial_id):
            self._ended(trial)

    def on_trial_error(self, iteration: int, trials: list[Trial], trial: Trial, **info):
        if self.view.board.is_open(trial.trial_id):
            self.view.ended(trial.trial_id, int((trial.last_result or {}).get("epoch", 0)),
                            error=_short_error(_read_error(trial)) or "failed")

    def on_step_end(self, iteration: int, trials: list[Trial], **info):
        for t in trials:
            if t.status == Trial.TERMINATED and self.view.board.is_open(t.trial_id):
                self._ended(t)
        if time.time() - self._last_tick > 1.0:
            self._last_tick = time.time()
            self.view.tick()

    def on_experiment_end(self, trials: list[Trial], **info):
        self.view.close()


# ---------------------------------------------------------------- experiment trackers

def tracker_callbacks(mlflow_uri: str | None, wandb_project: str | None,
                      experiment: str, run_dir: Path) -> list[tune.Callback]:
    """Ray Tune's own MLflow and W&B logger callbacks: one tracker run per trial with its
    parameters and per-epoch metrics."""
    out: list[tune.Callback] = []
    if mlflow_uri:
        try:
            import mlflow  # noqa: F401
            from ray.air.integrations.mlflow import MLflowLoggerCallback
        except ImportError:
            raise UserError("--mlflow needs MLflow: pip install 'hyperfcn[mlflow]'") from None
        _check_mlflow(mlflow_uri)
        out.append(MLflowLoggerCallback(tracking_uri=mlflow_uri, experiment_name=experiment,
                                        tags={"tool": "hyperfcn"}))
    if wandb_project:
        try:
            import wandb  # noqa: F401
            from ray.air.integrations.wandb import WandbLoggerCallback
        except ImportError:
            raise UserError("--wandb needs Weights & Biases: pip install 'hyperfcn[wandb]'"
                            ) from None
        mode = os.environ.get("WANDB_MODE")
        if mode not in ("offline", "disabled") and not os.environ.get("WANDB_API_KEY"):
            logged_in = False
            with contextlib.suppress(Exception):
                import wandb

                logged_in = bool(wandb.api.api_key)
            if not logged_in:
                raise UserError("--wandb: not logged in to Weights & Biases; run "
                                "`wandb login`, set WANDB_API_KEY, or set "
                                "WANDB_MODE=offline to log locally (sync later)")
        kw: dict[str, Any] = {"dir": str(run_dir)}
        if mode:
            kw["mode"] = mode
        out.append(WandbLoggerCallback(project=wandb_project, group=experiment,
                                       log_config=False, **kw))
    return out


def _check_mlflow(uri: str) -> None:
    """Reach the tracking store before any work is done, with a message that says how."""
    import mlflow

    if "://" not in uri or uri.startswith("file:"):
        # MLflow 3 keeps its file store behind a flag ("maintenance mode"); a user who
        # asks for a folder gets one.
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    try:
        mlflow.MlflowClient(tracking_uri=uri).search_experiments(max_results=1)
    except Exception as e:
        raise UserError(f"--mlflow {uri}: cannot use this tracking URI "
                        f"({_short_error(e)}); give a server URL, sqlite:///PATH.db or a "
                        f"folder") from None


# ---------------------------------------------------------------- search

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
    # TensorFlow workers are reused (trial.forget_compiled keeps them flat); JAX workers
    # still grow ~30 MB a trial after jax.clear_caches(), so each JAX trial gets a new one.
    reuse_workers: bool = True


@dataclass
class TrialRecord:
    trial_id: str
    config: dict[str, Any]
    status: str  # completed | stopped | out_of_budget | failed | unfinished
    epochs: int
    best_val_loss: float | None
    best_val_accuracy: float | None
    seconds: float
    error: str = ""
    history: list[dict[str, float]] = field(default_factory=list)
    checkpoint: str = ""  # its best epoch's checkpoint ("" when none was kept)
    search: str = "tune"  # the round (Ray experiment) it ran in: see rounds.py


def _trial_name(trial: Trial) -> str:
    # Ray's default puts every parameter in the folder name: unreadable, and too long for
    # some file systems.
    return f"trial_{trial.trial_id}"


def experiment_path(req: SearchRequest) -> str:
    base = req.storage or str(req.run_dir.resolve())
    return f"{base.rstrip('/')}/{req.name}"


def can_resume(req: SearchRequest) -> bool:
    return tune.Tuner.can_restore(experiment_path(req))


def _short_error(err: Any) -> str:
    text = str(err).strip()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for ln in reversed(lines):
        if "Error" in ln or "error" in ln:
            return ln[:300]
    return (lines[-1] if lines else type(err).__name__)[:300]


def run_search(req: SearchRequest) -> tuple[list[TrialRecord], bool]:
    """Run (or resume) the search; return one record per trial and whether it was cut short."""
    metric, mode = req.settings.metric, req.settings.mode
    trainable_fn = tune.with_resources(
        tune.with_parameters(trainable, data=req.data_ref, settings=req.settings),
        {"cpu": req.cpus_per_trial, "gpu": req.gpus_per_trial})
    tb = HParamsLog(req.tb_dir or req.run_dir / "tensorboard")
    # Auto loggers are off (no duplicate TensorBoard files); keep result.json per trial.
    callbacks: list[tune.Callback] = [JsonLoggerCallback(), HParamsCallback(tb)]
    plan = req.scheduler or plan_scheduler("asha", req.settings.max_epochs)
    stops_path = req.run_dir / art.SCHEDULER_STOPS
    if not (req.resume or req.evaluated):  # a new search: no stops of an earlier one
        stops_path.unlink(missing_ok=True)
    stop_log = StopLog(stops_path)
    out_of_budget = functools.partial(cut_by_budget, plan, req.budget_s, stop_log)

    if req.view is not None:
        callbacks.append(ProgressCallback(req.view, out_of_budget))
    callbacks += req.extra_callbacks
    path = experiment_path(req)
    if req.resume:
        tuner = tune.Tuner.restore(path, trainable=trainable_fn, resume_unfinished=True,
                                   resume_errored=False, restart_errored=False)
        # Callbacks are not saved with the experiment: hand them over again.
        tuner._local_tuner._run_config.callbacks = callbacks  # noqa: SLF001
    else:
        # the space's recipes run first, once: an extended search has run them already
        points = None if req.evaluated else [dict(pt) for pt in req.space.points] or None
        n_random = req.random_starts or random_starts(req.concurrency, req.samples)
        searcher = make_searcher(req.searcher, req.space, metric, mode,
                                 req.settings.seed + len(req.evaluated), points,
                                 len(points or ()) + n_random, req.evaluated)
        tuner = tune.Tuner(
            trainable_fn,
            tune_config=tune.TuneConfig(
                search_alg=searcher,
                scheduler=make_scheduler(plan, metric, mode, seeded=points,
                                         stop_log=stop_log),
                num_samples=req.samples if req.samples else -1,
                max_concurrent_trials=req.concurrency,
                time_budget_s=req.budget_s,
                # Reused workers skip the framework import (~3 s a trial with TensorFlow:
                # overhead 1.19x with a process per trial, benchmarks/overhead.py).
                reuse_actors=req.reuse_workers,
                trial_name_creator=_trial_name, trial_dirname_creator=_trial_name),
            run_config=tune.RunConfig(
                name=req.name, storage_path=req.storage or str(req.run_dir.resolve()),
                callbacks=callbacks, verbose=0,
                # Ray keeps each trial's best-scoring checkpoint (saved at the epochs that
                # improved the metric: the weights the final model can be) and its latest
                # (to resume from).
                checkpoint_config=tune.CheckpointConfig(
                    num_to_keep=1, checkpoint_score_attribute=metric,
                    checkpoint_score_order=mode),
                failure_config=tune.FailureConfig(max_failures=req.max_failures)),
        )
    events: list[Any] = []
    try:
        with _catch_interrupt(events):
            grid = tuner.fit()
    finally:
        tb.close()
        if req.view is not None:
            req.view.close()
    trials = grid._experiment_analysis.trials  # noqa: SLF001 (statuses are not public)
    # Ray turns Ctrl-C into a clean stop and returns normally; its event says it happened.
    interrupted = any(e.is_set() for e in events) or any(
        t.status in (Trial.PENDING, Trial.RUNNING, Trial.PAUSED) for t in trials)
    best_ckpt = _best_checkpoints(grid, metric, mode)
    records = []
    for t in trials:
        hist = _history_of(t) or ([dict(t.last_result)] if t.last_result else [])
        epochs = max((int(h.get("epoch", 0)) for h in hist), default=0)
        vl = [h["val_loss"] for h in hist if "val_loss" in h]
        va = [h["val_accuracy"] for h in hist if "val_accuracy" in h]
        if t.status == Trial.ERROR:
            status = "failed"
        elif t.status == Trial.TERMINATED and epochs >= req.settings.max_epochs:
            status = "completed"
        elif t.status == Trial.TERMINATED and out_of_budget(t.trial_id, epochs):
            status = "out_of_budget"
        elif t.status == Trial.TERMINATED and not (interrupted and t.trial_id not in stop_log):
            status = "stopped"
        else:  # still pending or running, or ended by Ctrl-C: --resume continues it
            status = "unfinished"
        err = ""
        if t.status == Trial.ERROR:
            err = _short_error(_read_error(t))
        records.append(TrialRecord(
            trial_id=t.trial_id, config=dict(t.config), status=status, epochs=epochs,
            best_val_loss=min(vl) if vl else None, best_val_accuracy=max(va) if va else None,
            seconds=float((t.last_result or {}).get("time_total_s", 0.0)), error=err,
            history=hist, checkpoint=best_ckpt.get(t.trial_id, ""), search=req.name))
    return records, interrupted


def _best_checkpoints(grid: Any, metric: str, mode: str) -> dict[str, str]:
    """Each trial's checkpoint of its best epoch, by trial id (none where the best epoch
    saved none: a search begun before checkpoints were kept by score)."""
    out = {}
    sign = 1 if mode == "min" else -1
    for result in grid:
        tid = (result.metrics or {}).get("trial_id")
        if result.error is not None and not result.best_checkpoints:
            continue
        scored = [(c, m) for c, m in result.best_checkpoints or [] if metric in m]
        if not tid or not scored:
            continue
        ckpt, m = min(scored, key=lambda cm: sign * cm[1][metric])
        hist = [h for h in _history_of_path(result.path) if metric in h]
        best = min(hist, key=lambda h: sign * h[metric]) if hist else m
        if int(m.get("epoch", -1)) == int(best.get("epoch", -2)):
            out[tid] = ckpt.path
    return out


@contextlib.contextmanager
def _catch_interrupt(events: list[Any]) -> Iterator[None]:
    """Keep the event Ray's SIGINT handler sets (Tuner.fit does not report it)."""
    from ray.tune import tune as tune_module

    original = tune_module._setup_signal_catching  # noqa: SLF001

    def capture():
        ev = original()
        events.append(ev)
        return ev

    tune_module._setup_signal_catching = capture  # noqa: SLF001
    try:
        yield
    finally:
        tune_module._setup_signal_catching = original  # noqa: SLF001


def _history_of(t: Trial) -> list[dict[str, float]]:
    """Every reported epoch of a trial, read back from its result.json.

    A resumed trial reports again the epochs after its last checkpoint: the later report of
    an epoch replaces the earlier one.
    """
    # t.path is the trial's folder in the experiment storage (RUN_DIR/tune/...); a trial
    # restored after a crash has no local_path of this session.
    return _history_of_path(t.path, t.local_path)


def _history_of_path(*bases: str | None) -> list[dict[str, float]]:
    import json

    out: list[dict[str, float]] = []
    path = None
    for base in bases:
        if base and not str(base).startswith(("s3://", "gs://", "abfs://", "hdfs://")):
            cand = Path(base) / "result.json"
            if cand.is_file():
                path = cand
                break
    if path is not None:
        for line in path.read_text().splitlines():
            with contextlib.suppress(ValueError):
                r = json.loads(line)
                out.append({k: r[k] for k in art.HISTORY_KEYS if k in r})
    return list({h.get("epoch"): h for h in out}.values())


def _read_error(t: Trial) -> str:
    for attr in ("error_msg",):
        with contextlib.suppress(Exception):
            msg = getattr(t, attr)
            if msg:
                return str(msg)
    with contextlib.suppress(Exception):
        p = Path(t.local_path) / "error.txt"
        if p.is_file():
            return p.read_text()
    return "trial failed"


# ---------------------------------------------------------------- backbone weights

def _fetch(names: list[str]) -> None:
    from .backbone import build_base

    for n in names:
        build_base(n, "imagenet")


def fetch_weights(names: list[str], cpus: float) -> None:
    """Download (or find in Keras' cache) the ImageNet weights on a worker."""
    try:
        ray.get(ray.remote(_fetch).options(num_cpus=cpus, max_retries=0).remote(names))
    except ray.exceptions.RayTaskError as e:
        cause = getattr(e, "cause", None) or e
        raise UserError(_short_error(cause) if cause is e else str(cause)) from None


# ---------------------------------------------------------------- final model

def _final_task(config: dict[str, Any], data: TrialData, settings: TrialSettings,
                plan: FinalPlan, progress: Any = None) -> FinalModel:
    from .final import make_final, preview_png

    ckpt = tune.Checkpoint(plan.checkpoint) if plan.checkpoint else None
    with ckpt.as_directory() if ckpt else contextlib.nullcontext() as d:
        out = make_final(config, data, settings, plan, d,
                         on_epoch=progress.put if progress is not None else None)
    out.augment_preview = preview_png(config, data.val[int(config["image_size"])],
                                      settings.seed)
    return out


def run_final(config: dict[str, Any], data_ref: Any, settings: TrialSettings,
              plan: FinalPlan, on_epoch: Callable[[dict], None] | None = None) -> FinalModel:
    """Make the final model on a Ray worker (TensorFlow stays out of the driver)."""
    from ray.util.queue import Empty, Queue

    cpus, gpus = settings.cpus, settings.gpus
    task = ray.remote(_final_task).options(num_cpus=cpus, num_gpus=gpus, max_retries=0)
    queue = Queue() if on_epoch else None
    ref = task.remote(config, data_ref, settings, plan, queue)
    while queue is not None:
        done, _ = ray.wait([ref], timeout=0.5)
        with contextlib.suppress(Empty):
            while True:
                on_epoch(queue.get_nowait())
        if done:
            break
    out = ray.get(ref)
    if queue is not None:
        with contextlib.suppress(Exception):
            ray.kill(queue.actor)
    return out
