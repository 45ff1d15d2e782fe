"""The Python API: tune, train, predict, evaluate. The CLI is a thin layer over these."""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import importlib.metadata
import importlib.util
import os
import platform
import shlex
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import artifacts as art
from . import hints
from .budget import CONTINUE, LONGER_SHARE, MAX_LONGER, MIN_TRAININGS
from .config import BACKBONES, ModelConfig, load_config
from .errors import SearchFailed, SpaceError, UserError
from .space import Constant, SearchSpace, load_space, parse_space

Say = Callable[[str], None]
FINAL_CHOICES = ("auto", "train+val", "none")
# Seconds kept back from --budget for the final step (a worker's start, loading the best
# weights, saving, loading back and scoring): measured 8-15 s on 2 cores
# (benchmarks/budget.py), plus time to score the validation images twice.
FINAL_RESERVE_S = 30.0
FINAL_RESERVE_PER_VAL_IMAGE_S = 0.004
# --final train+val refits after the search: it keeps this share of what the budget leaves.
TRAIN_VAL_SHARE = 0.3
# CPU threads of a trial on CPU machines: the recipe's network runs 1.6-1.9x faster on two
# threads than on one beside another trial, so two 1-thread trials bought at most 1.25x the
# epochs per second at half each trial's speed, and a budgeted search waits on its leader
# (BENCHMARKS.md rows 1b, 16 and 17).
CPU_THREADS_PER_TRIAL = 2.0
# `train --budget`: less than this left for training is refused (its first two epochs
# always run, to time the rest)
TRAIN_MIN_S = 10.0


def _default_backend() -> str:
    return os.environ.get("KERAS_BACKEND", "tensorflow")


@dataclass(frozen=True)
class TuneOptions:
    """Every option of `hyperfcn tune` (and, minus the search ones, `hyperfcn train`)."""

    data: Path
    out: Path = Path("runs/hyperfcn")
    val_dir: Path | None = None
    val_split: float = 0.2
    samples: int | None = None
    budget_s: float | None = None
    max_epochs: int = 10
    image_size: int | None = None
    searcher: str = "hyperopt"
    scheduler: str = "asha"
    metric: str = "val_loss"
    concurrency: int | None = None
    cpus_per_trial: float | None = None
    gpus_per_trial: float | None = None
    space: Path | None = None
    seed: int = 0
    resume: bool = False
    address: str | None = None
    storage: str | None = None
    backend: str = field(default_factory=_default_backend)
    max_buckets: int = 4
    max_failures: int = 0  # retries of a failed trial (from its last checkpoint)
    random_starts: int | None = None  # random configs before TPE (None: from concurrency)
    checkpoint_every_s: float = 60.0  # a trial's checkpoints at least this far apart; 0: all
    final: str = "auto"  # auto | train+val | none (search only); see final.plan_final
    quiet: bool = False
    mlflow: str | None = None  # MLflow tracking URI
    wandb: str | None = None  # Weights & Biases project
    backbone: str | None = None  # tune the recipe of a standard network instead of the FCN
    weights: str = "imagenet"  # backbone weights: imagenet | none | PATH.weights.h5

    def __post_init__(self) -> None:
        def rule(ok: bool, opt: str, value: Any, text: str) -> None:
            if not ok:
                raise UserError(f"{opt} {value}: {text}")

        if isinstance(self.final, bool):  # the API's earlier form: final=True/False
            object.__setattr__(self, "final", "auto" if self.final else "none")
        rule(self.final in FINAL_CHOICES, "--final", self.final,
             "use auto or train+val (--no-final: none)")

        rule(0 < self.val_split < 1, "--val-split", self.val_split, "must be between 0 and 1")
        rule(self.samples is None or self.samples >= 1, "--samples", self.samples,
             "must be >= 1")
        rule(self.budget_s is None or self.budget_s > 0, "--budget", self.budget_s,
             "must be > 0 (e.g. 30m)")
        rule(1 <= self.max_epochs <= 10000, "--max-epochs", self.max_epochs,
             "must be >= 1")
        rule(self.image_size is None or 8 <= self.image_size <= 1024, "--image-size",
             self.image_size, "must be in 8..1024")
        rule(self.searcher in ("hyperopt", "random", "optuna"), "--searcher", self.searcher,
             "use hyperopt, random or optuna")
        rule(self.scheduler in ("asha", "hyperband", "fifo"), "--scheduler", self.scheduler,
             "use asha, hyperband or fifo")
        rule(self.metric in ("val_loss", "val_accuracy"), "--metric", self.metric,
             "use val_loss or val_accuracy")
        rule(self.concurrency is None or self.concurrency >= 1, "--concurrency",
             self.concurrency, "must be >= 1")
        rule(self.cpus_per_trial is None or self.cpus_per_trial > 0, "--cpus-per-trial",
             self.cpus_per_trial, "must be > 0")
        rule(self.gpus_per_trial is None or self.gpus_per_trial >= 0, "--gpus-per-trial",
             self.gpus_per_trial, "must be >= 0 (fractions like 0.25 share a GPU)")
        rule(1 <= self.max_buckets <= 16, "--max-buckets", self.max_buckets,
             "must be in 1..16")
        rule(self.max_failures >= 0, "--max-failures", self.max_failures, "must be >= 0")
        rule(self.checkpoint_every_s >= 0, "--checkpoint-every", self.checkpoint_every_s,
             "must be >= 0 (0: every epoch)")
        rule(self.random_starts is None or self.random_starts >= 1, "--random-starts",
             self.random_starts, "must be >= 1")
        rule(self.backend in ("tensorflow", "jax", "torch"), "KERAS_BACKEND", self.backend,
             "use tensorflow or jax")
        rule(self.backbone is None or self.backbone in BACKBONES, "--backbone", self.backbone,
             f"use one of {', '.join(BACKBONES)}")
        if self.weights not in ("imagenet", "none"):
            p = Path(self.weights)
            rule(p.is_file(), "--weights", self.weights,
                 "no such file; give imagenet, none, or a .weights.h5 file saved from the "
                 "backbone without its top")
            object.__setattr__(self, "weights", str(p.resolve()))


@dataclass
class RunResult:
    run_dir: Path
    best_config: dict[str, Any]
    metrics: dict[str, Any]
    trials: list[Any] = field(default_factory=list)
    interrupted: bool = False


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("hyperfcn", "keras", "ray", "hyperopt", "tensorflow", "tensorflow-cpu", "jax",
                "numpy", "pillow", "optuna"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            out[pkg] = importlib.metadata.version(pkg)
    return out


def _check_backend(backend: str, address: str | None) -> None:
    # On a cluster the workers need the backend, not necessarily the driver.
    if address:
        return
    if importlib.util.find_spec(backend) is None:
        how = "tensorflow-cpu" if backend == "tensorflow" else f"'hyperfcn[{backend}]'"
        raise UserError(f"Keras backend {backend!r} is not installed: pip install {how} "
                        f"(or set KERAS_BACKEND to an installed one)")


def _fix(space: SearchSpace, key: str, value: Any) -> SearchSpace:
    """The space with `key` made a constant (in every default point too)."""
    raw = dict(space.raw)
    raw["parameters"] = {**raw["parameters"], key: value}
    d = raw.get("defaults")
    if isinstance(d, list):
        raw["defaults"] = [{**pt, key: value} for pt in d]
    elif d:
        raw["defaults"] = {**d, key: value}
    return parse_space(raw, space.source, ModelConfig.keys())


def space_file(backbone: str | None) -> str:
    return "backbone_space.yaml" if backbone else "default_space.yaml"


def default_space_text(backbone: str | None = None) -> str:
    """The packaged space (FCN, or the recipe space of a backbone) as YAML text."""
    from .space import default_space_text as text

    out = text(space_file(backbone))
    if backbone:
        if backbone not in BACKBONES:
            raise UserError(f"--backbone {backbone}: use one of {', '.join(BACKBONES)}")
        out = out.replace("  backbone: mobilenetv2", f"  backbone: {backbone}")
    return out


def uses_backbone(space: SearchSpace) -> bool:
    if "backbone" not in space.names():
        return False
    return any(v != "none" for v in (space.values_of("backbone") or ["none"]))


def resolve_space(opts: TuneOptions) -> SearchSpace:
    space = load_space(opts.space, known_keys=ModelConfig.keys(),
                       name=space_file(opts.backbone))
    if opts.backbone is not None:
        space = _fix(space, "backbone", opts.backbone)
    if opts.image_size is not None:
        space = _fix(space, "image_size", opts.image_size)
    if "image_size" not in space.names():
        raw = dict(space.raw)
        raw["parameters"] = {**raw["parameters"], "image_size": ModelConfig.image_size}
        space = parse_space(raw, space.source, ModelConfig.keys())
    p = space.get("image_size")
    sizes = space.values_of("image_size")
    if sizes is None or len(sizes) > 8 or not all(isinstance(s, int) for s in sizes):
        raise SpaceError(f"{space.source}: image_size must be a constant or a choice of up "
                         f"to 8 integers (each size is decoded and cached once), got {p}")
    for s in sizes:
        ModelConfig(image_size=s)
    _check_ranges(space)
    for pt in space.points:
        ModelConfig.from_dict(pt, f"{space.source}: defaults")
    return space


def _check_ranges(space: SearchSpace) -> None:
    """Every value a parameter can take must be a valid config value: a range that leaves
    the rules fails here, in a second, not in the trials that happen to sample it."""
    for p in space.walk():
        ends = p.ends()
        for v in ends:
            try:
                ModelConfig.from_dict({p.name: v}, space.source)
            except SpaceError as e:
                raise SpaceError(f"{e} (in the range of {p.name!r}: every value it can take "
                                 f"must be valid)") from None


@dataclass(frozen=True)
class Resources:
    cpus: float
    gpus: float
    cpus_per_trial: float
    gpus_per_trial: float
    concurrency: int
    node_cpus: float = 0.0  # the largest node's (0: unknown, take the cluster's)
    node_gpus: float = 0.0


def plan_resources(opts: TuneOptions, cluster: dict[str, float]) -> Resources:
    """Trials per machine from what Ray sees, not from hard-coded counts."""
    cpus, gpus = cluster["cpus"], cluster["gpus"]
    node_cpus = cluster.get("node_cpus") or cpus  # a trial runs on one node
    gpt = opts.gpus_per_trial
    if gpt is None:
        # Several small trials share a GPU far better than one trial uses it alone.
        gpt = 0.25 if gpus >= 1 else (gpus if gpus > 0 else 0.0)
    if gpt > 0 and gpus <= 0:
        raise UserError(f"--gpus-per-trial {gpt}: Ray sees no GPU on this machine or "
                        f"cluster; use 0")
    cpt = opts.cpus_per_trial
    if cpt is None:
        if gpt > 0:
            slots = max(1, int(gpus / gpt))
            cpt = min(max(1.0, float(int(cpus // slots))), node_cpus)
        else:
            cpt = min(CPU_THREADS_PER_TRIAL, max(1.0, float(node_cpus)))
    if cpt > node_cpus:
        raise UserError(f"--cpus-per-trial {cpt}: more than the {node_cpus:g} CPUs of the "
                        f"largest node Ray sees (a trial runs on one node)")
    fit = int(cpus // cpt)
    if gpt > 0:
        fit = min(fit, int(round(gpus / gpt, 6)))
    conc = opts.concurrency or max(1, fit)
    return Resources(cpus, gpus, cpt, gpt, conc, cluster.get("node_cpus", cpus),
                     cluster.get("node_gpus", gpus))


def _budget_text(s: float | None) -> str:
    if s is None:
        return "none"
    return f"{s / 60:.1f} min" if s >= 60 else f"{s:.0f} s"


class _Printer:
    def __init__(self, quiet: bool, say: Say | None) -> None:
        self.quiet = quiet
        self.say = say or (lambda m: print(m, flush=True))

    def __call__(self, msg: str) -> None:
        if not self.quiet:
            self.say(msg)


def _prepare_data(opts: TuneOptions, sizes: list[int], run_dir: Path, say: _Printer):
    from .prepare import prepare, skipped_message

    say(f"reading {opts.data}" + (f" (validation: {opts.val_dir})" if opts.val_dir else
                                  f" (validation: {opts.val_split:.0%} stratified split)"))
    data, summary = prepare(opts.data, sizes, val_dir=opts.val_dir, val_split=opts.val_split,
                            seed=opts.seed, max_buckets=opts.max_buckets,
                            skipped_log=run_dir / art.SKIPPED)
    n_tr, n_va = sum(summary.train_counts.values()), sum(summary.val_counts.values())
    say(f"{len(summary.classes)} classes, {n_tr} training and {n_va} validation images, "
        f"decoded once in {summary.decode_seconds:.1f} s "
        f"({summary.decoded / max(summary.decode_seconds, 1e-9):.0f} images/s)")
    for s in sizes:
        say(f"  {s} px: {len(summary.shapes[s])} batch shapes "
            f"{', '.join(f'{h}x{w}' for h, w in summary.shapes[s])}; "
            f"padding {summary.padded_fraction[s]:.1%} of pixels")
    msg = skipped_message(summary, run_dir / art.SKIPPED)
    if msg:
        say(msg)
    art.write_json(run_dir / art.DATA_SUMMARY, summary.to_dict())
    return data, summary


def _write_settings(run_dir: Path, opts: TuneOptions, extra: dict[str, Any]) -> None:
    d = {k: (str(v) if isinstance(v, Path) else v)
         for k, v in dataclasses.asdict(opts).items()}
    d.update(extra)
    d["data_abs"] = str(opts.data.resolve())  # what `evaluate` tells training images by
    d["versions"] = _versions()
    d["command"] = hints.command(sys.argv[1:])
    art.write_json(run_dir / art.SETTINGS, d)


def _trial_rows(records: Sequence[Any], space: SearchSpace) -> list[dict[str, Any]]:
    rows = []
    names = space.names()
    for r in records:
        row = {"trial_id": r.trial_id}
        for n in names:
            row[n] = r.config.get(n, "")
        row.update(status=r.status, epochs=r.epochs,
                   best_val_loss=r.best_val_loss if r.best_val_loss is not None else "",
                   best_val_accuracy=(r.best_val_accuracy if r.best_val_accuracy is not None
                                      else ""),
                   seconds=round(r.seconds, 1), error=r.error)
        rows.append(row)
    return rows


def _fetch_weights(space: SearchSpace, opts: TuneOptions, res: Resources, say: _Printer
                   ) -> None:
    """ImageNet weights are downloaded once, before any trial, so that an offline machine
    fails in seconds with the way out, and trials never race to write Keras' cache."""
    if opts.weights != "imagenet" or not uses_backbone(space):
        return
    from . import session

    names = [str(v) for v in space.values_of("backbone") or [] if v != "none"]
    say(f"getting ImageNet weights for {', '.join(names)} (Keras' cache, downloaded once)")
    session.fetch_weights(names, res.cpus_per_trial)


def _final_settings(opts: TuneOptions, res: Resources, weights: str | None = None):
    from .trial import TrialSettings

    # The final retrain is one task: all of one node's CPUs (up to 8) or one GPU; a task
    # asking for more than any single node has would wait forever.
    node_cpus = res.node_cpus or res.cpus
    node_gpus = res.node_gpus or res.gpus
    return TrialSettings(max_epochs=opts.max_epochs, metric=opts.metric, seed=opts.seed,
                         weights=weights,
                         cpus=min(max(res.cpus_per_trial, min(node_cpus, 8.0)), node_cpus)
                         if res.gpus == 0 else res.cpus_per_trial,
                         gpus=1.0 if node_gpus >= 1 else res.gpus_per_trial,
                         patience=max(3, opts.max_epochs // 5),
                         checkpoint_every_s=float("inf"))


def _epoch_printer(p: _Printer, fs, epochs: int | None = None
                   ) -> Callable[[dict], None] | None:
    if p.quiet:
        return None
    total = fs.max_epochs if epochs is None else epochs  # 0: not known yet
    return lambda m: p(f"final model: epoch {m['epoch']}{f'/{total}' if total else ''}: val_loss "
                       f"{m['val_loss']:.4f} val_accuracy {m['val_accuracy']:.4f}")


def _report(run_dir: Path, say: _Printer) -> None:
    from .report import write_report

    try:
        say(f"report: {write_report(run_dir)}")
    except Exception as e:  # the model is saved; a plotting problem must not hide that
        say(f"report: not written ({type(e).__name__}: {e}); retry with "
            f"`{hints.command(['report', str(run_dir)])}`")


def _log_final(opts: TuneOptions, run_dir: Path, config: dict[str, Any],
               metrics: dict[str, Any], say: _Printer) -> None:
    if not (opts.mlflow or opts.wandb):
        return
    from .trackers import log_final

    try:
        for where in log_final(run_dir, run_dir.name, config, metrics, opts.mlflow,
                               opts.wandb):
            say(f"final model logged to {where}")
    except Exception as e:  # the model is on disk already; say what failed
        say(f"could not log the final model to the tracker ({type(e).__name__}: {e}); "
            f"it is in {run_dir}")


def report(run_dir: str | Path) -> Path:
    """Write RUN_DIR/report.html (and its plots as PNG files in RUN_DIR/report/)."""
    from .report import write_report

    return write_report(run_dir)


@contextlib.contextmanager
def _new_run_dir(run_dir: Path) -> Iterator[None]:
    """Create RUN_DIR for a command; a refusal before any work leaves no folder behind."""
    created = not run_dir.exists()
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        yield
    except (UserError, KeyboardInterrupt):
        if created:
            shutil.rmtree(run_dir, ignore_errors=True)
        raise


def _space_infos(space: SearchSpace):
    from .tb import hparam_info

    return [hparam_info(p.name, None if p.interval() else p.choices(), p.interval())
            for p in space.walk() if not isinstance(p, Constant)]


def _final_reserve(summary: Any) -> float:
    return FINAL_RESERVE_S + FINAL_RESERVE_PER_VAL_IMAGE_S * sum(summary.val_counts.values())


def _budget_left(opts: TuneOptions, t0: float, summary: Any, need_s: float,
                 step: str) -> float | None:
    """Seconds of --budget left for ``step`` (the search, or training): the budget is the
    time until the model is saved, so what ran since ``t0`` and the final step's saving and
    scoring come out of it. Less than ``need_s`` left is refused, saying where it went."""
    if opts.budget_s is None:
        return None
    used, reserve = time.time() - t0, _final_reserve(summary)
    left = opts.budget_s - used - reserve
    if left < need_s:
        raise UserError(f"--budget {opts.budget_s:g}s: too short; {used:.0f} s went to "
                        f"reading the data and starting up, the final model needs "
                        f"~{reserve:.0f} s to save and score, and {step} needs "
                        f"{need_s:.0f} s at least; give a longer --budget")
    return left


def _train_until(opts: TuneOptions, t0: float, summary: Any) -> float | None:
    """`train --budget`: the time.time() by which training must end."""
    left = _budget_left(opts, t0, summary, TRAIN_MIN_S, "training")
    return None if left is None else time.time() + left


def _search_budget(opts: TuneOptions, t0: float, summary: Any) -> float | None:
    """What is left of --budget for the search (train+val keeps a share for its refit)."""
    left = _budget_left(opts, t0, summary, 1.0, "the search")
    if left is not None and opts.final == "train+val":
        left *= 1 - TRAIN_VAL_SHARE
    return left


def tune(opts: TuneOptions, say: Say | None = None) -> RunResult:
    """Search, then save the best model found (see final.plan_final) with everything that
    explains it."""
    from . import search, session
    from .rounds import plan_round
    from .scheduler import plan_scheduler
    from .trackers import tracker_callbacks
    from .trial import TrialSettings

    t0 = time.time()  # --budget counts from here to the saved model
    p = _Printer(opts.quiet, say)
    _check_backend(opts.backend, opts.address)
    space = resolve_space(opts)
    run_dir = opts.out.resolve()
    settings = TrialSettings(max_epochs=opts.max_epochs, metric=opts.metric, seed=opts.seed,
                             weights=opts.weights if uses_backbone(space) else None,
                             checkpoint_every_s=opts.checkpoint_every_s,
                             checkpoint_best=opts.final != "none")
    req = search.SearchRequest(space=space, run_dir=run_dir, data_ref=None, settings=settings,
                               storage=opts.storage, tb_dir=run_dir / art.TENSORBOARD,
                               scheduler=plan_scheduler(opts.scheduler, opts.max_epochs))
    with _new_run_dir(run_dir):
        rnd = plan_round(run_dir, opts.resume, opts.samples, opts.budget_s,
                         lambda name: search.can_resume(dataclasses.replace(req, name=name)))
        if rnd.number > 1:
            p(f"extending the finished search in {run_dir} ({len(rnd.earlier)} trials) with "
              f"round {rnd.number}: its searcher starts from their results")
        if opts.samples is None and opts.budget_s is None:
            opts = dataclasses.replace(opts, samples=20)
        trackers = tracker_callbacks(opts.mlflow, opts.wandb, run_dir.name, run_dir)
        # Data first: a bad folder fails in a second, before Ray starts.
        data, summary = _prepare_data(opts, _sizes(space), run_dir, p)
        _search_budget(opts, t0, summary)  # a budget the final step alone would use up
    cluster = session.start(opts.address, opts.backend, quiet=opts.quiet)
    try:
        res = plan_resources(opts, cluster)
        _fetch_weights(space, opts, res, p)
        req = _request(req, opts, res, rnd, session.put(data), summary, t0, trackers, p, say)
        del data
        records, interrupted, search_info = _run_search(req, rnd, opts, summary, t0, p)
        if interrupted:
            return RunResult(run_dir, {}, {}, records, interrupted=True)
        best = _best_usable(records, opts, search_info, summary, run_dir)
        config = ModelConfig.from_dict(best.config).to_dict()
        search_info["best_trial"] = best.trial_id
        art.write_json(run_dir / art.SEARCH, search_info)
        if opts.final == "none":
            art.write_json(run_dir / art.BEST_CONFIG, config)
            p(f"best trial {best.trial_id}: val_loss {best.best_val_loss:.4f}; no final "
              f"model (--no-final)")
            _report(run_dir, p)
            return RunResult(run_dir, config, search_info, records)
        metrics = _final_model(best, config, req, opts, res, summary, search_info, t0, p)
    finally:
        session.shutdown()
    _wrap_up(opts, run_dir, config, metrics, p)
    return RunResult(run_dir, config, metrics, records)


def _sizes(space: SearchSpace) -> list[int]:
    return sorted(space.values_of("image_size"))  # type: ignore[arg-type]


def _request(req: Any, opts: TuneOptions, res: Resources, rnd: Any, data_ref: Any,
             summary: Any, t0: float, trackers: list[Any], p: _Printer, say: Say | None):
    """The search request for this round, once the resources are known; says the plan."""
    from .progress import Board, make_view
    from .rounds import evaluated
    from .searchers import random_starts
    from .tb import HParamsLog

    plan, space = req.scheduler, req.space
    settings = dataclasses.replace(req.settings, cpus=res.cpus_per_trial,
                                   gpus=res.gpus_per_trial)
    n_random = opts.random_starts or random_starts(res.concurrency, opts.samples)
    _announce(opts, res, plan, space, n_random, rnd, p)
    _write_settings(req.run_dir, opts, {
        "scheduler_plan": dataclasses.asdict(plan), "resources": dataclasses.asdict(res),
        "space": dict(space.raw), "image_sizes": _sizes(space)})
    if rnd.number == 1 and not rnd.restore:
        HParamsLog(req.run_dir / art.TENSORBOARD).experiment(_space_infos(space))
    board = Board(metric=opts.metric, mode=settings.mode, max_epochs=opts.max_epochs,
                  budget_s=opts.budget_s, samples=opts.samples, concurrency=res.concurrency,
                  rungs=tuple(plan.rungs()) if plan.name == "asha" else (),
                  final=opts.final != "none", t0=t0)
    return dataclasses.replace(
        req, data_ref=data_ref, settings=settings, searcher=opts.searcher,
        samples=rnd.samples if rnd.number > 1 else opts.samples,
        budget_s=_search_budget(opts, t0, summary), name=rnd.name,
        evaluated=evaluated(rnd.earlier, opts.metric), concurrency=res.concurrency,
        cpus_per_trial=res.cpus_per_trial, gpus_per_trial=res.gpus_per_trial,
        resume=rnd.restore, max_failures=opts.max_failures, extra_callbacks=trackers,
        random_starts=n_random,
        longer_final=opts.final == "auto", view=make_view(board, opts.quiet, say))


def _announce(opts: TuneOptions, res: Resources, plan: Any, space: SearchSpace,
              n_random: int, rnd: Any, p: _Printer) -> None:
    p(f"Ray: {res.cpus:g} CPUs, {res.gpus:g} GPUs; each trial {res.cpus_per_trial:g} CPU"
      f"{', ' + format(res.gpus_per_trial, 'g') + ' GPU' if res.gpus_per_trial else ''}; "
      f"up to {res.concurrency} at once; backend {opts.backend}")
    p(plan.describe())
    starts = ""
    if opts.searcher in ("hyperopt", "optuna") and not rnd.restore and rnd.number == 1:
        starts = f", TPE after {n_random} random configurations"
        if space.points:
            starts += f" and {len(space.points)} from the space's defaults"
    samples = f"{opts.samples or 'unlimited'}"
    if rnd.number > 1 and rnd.samples:
        samples += f" ({rnd.samples} more in round {rnd.number})"
    p(f"searcher {opts.searcher} (seed {opts.seed}{starts}); samples {samples}; budget "
      f"{_budget_text(opts.budget_s)}")
    if opts.budget_s is not None and opts.final == "auto":
        p(f"the search ends early, with up to {LONGER_SHARE:.0%} of its time left, when "
          f"that time lets the best trial train on for {CONTINUE:g}x to {MAX_LONGER}x "
          f"its {opts.max_epochs} epochs; and when {1 - LONGER_SHARE:.0%} of the search's "
          f"time holds fewer than {MIN_TRAININGS} trainings of the space's recipe (timed "
          f"by its first epoch), the budget is too short to compare configurations: the "
          f"recipe trains alone, its schedule fitted to the budget")


def _run_search(req: Any, rnd: Any, opts: TuneOptions, summary: Any, t0: float,
                p: _Printer) -> tuple[list[Any], bool, dict[str, Any]]:
    """Run the round; write every round's trials; return them, whether it was cut short,
    and the search's summary."""
    from . import search
    from .records import TrialRecord
    from .rounds import finished_rounds

    t_search = time.time()
    records, interrupted = search.run_search(req)
    search_wall = time.time() - t_search
    records = [TrialRecord(**r) for r in rnd.earlier] + records
    run_dir = req.run_dir
    art.write_csv(run_dir / art.TRIALS, _trial_rows(records, req.space), ["trial_id"])
    art.write_json(run_dir / art.TRIALS_JSON, [dataclasses.asdict(r) for r in records])
    counts = collections.Counter(r.status for r in records)
    p(f"search: {len(records)} trials ({', '.join(f'{v} {k}' for k, v in counts.items())})"
      f" in {time.time() - t0:.0f} s; table in {run_dir / art.TRIALS}")
    info = {"search_wall_seconds": round(search_wall, 2),
            "trial_epochs": sum(r.epochs for r in records), "trials": len(records),
            "rounds": list(dict.fromkeys([*finished_rounds(run_dir), rnd.name]))}
    return records, interrupted, info


def _best_usable(records: list[Any], opts: TuneOptions, info: dict[str, Any],
                 summary: Any, run_dir: Path) -> Any:
    """The best trial on the search metric, or why there is none."""
    usable = [r for r in records if r.status != "failed" and r.best_val_loss is not None]
    if not usable and opts.budget_s is not None and not any(r.error for r in records):
        raise UserError(
            f"--budget {_budget_text(opts.budget_s)}: too short for one epoch; no trial "
            f"finished its first epoch in the {info['search_wall_seconds']:.0f} s the search "
            f"had (after reading the data, starting Ray and keeping "
            f"~{_final_reserve(summary):.0f} s for the final model); give a longer "
            f"--budget, or a smaller --image-size")
    if not usable:
        reasons = collections.Counter(r.error or "no result" for r in records)
        reason, n = reasons.most_common(1)[0] if reasons else ("no trials ran", 0)
        raise SearchFailed(f"every trial failed ({n} of {len(records)}: {reason}); "
                           f"see {run_dir / art.TRIALS}")
    if opts.metric == "val_loss":
        return min(usable, key=lambda r: r.best_val_loss)
    return max(usable, key=lambda r: r.best_val_accuracy)


def _final_model(best: Any, config: dict[str, Any], req: Any, opts: TuneOptions,
                 res: Resources, summary: Any, info: dict[str, Any], t0: float,
                 p: _Printer) -> dict[str, Any]:
    """Plan the final step, run it on a worker, write its files; return metrics.json."""
    from . import session
    from .final import best_trial_of, plan_final, write_files

    bt = best_trial_of(best, opts.metric, req.settings.mode, opts.max_epochs)
    fplan = plan_final(bt, opts.max_epochs, train_val=opts.final == "train+val",
                       time_left=None if opts.budget_s is None else
                       opts.budget_s - (time.time() - t0) - _final_reserve(summary))
    p(f"best trial {best.trial_id}: val_loss {best.best_val_loss:.4f}, val_accuracy "
      f"{best.best_val_accuracy:.4f}; final model: {fplan.reason}")
    fs = _final_settings(opts, res, req.settings.weights)
    out = session.run_final(config, req.data_ref, fs, fplan,
                            _epoch_printer(p, fs, 0 if fplan.resume else fplan.max_epochs))
    return write_files(req.run_dir, config, out, summary, p, info, bt, opts.metric)


def _wrap_up(opts: TuneOptions, run_dir: Path, config: dict[str, Any],
             metrics: dict[str, Any], p: _Printer) -> None:
    p(f"model: {run_dir / art.MODEL}")
    _report(run_dir, p)
    _log_final(opts, run_dir, config, metrics, p)
    p(f"logs:  {hints.tensorboard()} --logdir {shlex.quote(str(run_dir))}")


def train(data: Path, config: ModelConfig | dict | Path, opts: TuneOptions | None = None,
          say: Say | None = None) -> RunResult:
    """Train one configuration without searching; same artifacts as `tune`."""
    from . import session
    from .final import plan_final, write_files

    opts = opts or TuneOptions(data=Path(data))
    p = _Printer(opts.quiet, say)
    if isinstance(config, Path | str):
        cfg = load_config(config)
    elif isinstance(config, dict):
        cfg = ModelConfig.from_dict(config)
    else:
        cfg = config
    if opts.image_size is not None:
        cfg = dataclasses.replace(cfg, image_size=opts.image_size)
    _check_backend(opts.backend, opts.address)
    t0 = time.time()  # --budget counts from here to the saved model
    run_dir = opts.out.resolve()
    with _new_run_dir(run_dir):
        data_, summary = _prepare_data(opts, [cfg.image_size], run_dir, p)
        until = _train_until(opts, t0, summary)
    cluster = session.start(opts.address, opts.backend, quiet=opts.quiet)
    try:
        res = plan_resources(opts, cluster)
        ref = session.put(data_)
        del data_
        _write_settings(run_dir, opts, {"config": cfg.to_dict(),
                                        "resources": dataclasses.asdict(res)})
        weights = opts.weights if cfg.backbone != "none" else None
        if weights == "imagenet":
            session.fetch_weights([cfg.backbone], res.cpus_per_trial)
        fs = dataclasses.replace(_final_settings(opts, res, weights), fit_until=until)
        if until is None:
            p(f"training for up to {opts.max_epochs} epochs (early stopping patience "
              f"{fs.patience})")
        else:
            p(f"training for as many epochs as fit in the budget (the first 2 time an "
              f"epoch, later ones again as it goes; at most {opts.max_epochs}), the "
              f"learning-rate schedule spanning them")
        # no deadline: the two timed epochs always run, and the rest are planned to fit
        out = session.run_final(cfg.to_dict(), ref, fs, plan_final(None, opts.max_epochs),
                                _epoch_printer(p, fs, 0 if until else None))
        metrics = write_files(run_dir, cfg.to_dict(), out, summary, p, {}, None, opts.metric)
    finally:
        session.shutdown()
    _wrap_up(opts, run_dir, cfg.to_dict(), metrics, p)
    return RunResult(run_dir, cfg.to_dict(), metrics)


def predict(paths: Sequence[str | Path], model: str | Path, top_k: int = 1):
    """Rows of {path, label, score, top_k} and a list of (path, reason) skipped files."""
    from .predict import load_run, predict_paths

    return predict_paths(load_run(model), list(paths), top_k)


def evaluate(data: str | Path, model: str | Path):
    from .predict import evaluate_folder, load_run

    return evaluate_folder(load_run(model), data)
