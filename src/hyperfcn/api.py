"""The Python API: tune, train, load, predict, evaluate, export, report, the decoded cache.
The CLI is a thin layer over these.

Each command is an orchestration of modules that own its parts: the checks before any work
(:mod:`hyperfcn.preflight`), the options (:mod:`hyperfcn.options`), the space
(:mod:`hyperfcn.space_setup`), the machine (:mod:`hyperfcn.resources`), the budget
(:mod:`hyperfcn.budget`), the run folder (:mod:`hyperfcn.guard`, :mod:`hyperfcn.rundir`),
the search (:mod:`hyperfcn.tune_run`, :mod:`hyperfcn.tuning.search`) and the final model
(:mod:`hyperfcn.final`).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from . import guard
from .budget import train_epochs, train_until
from .config import ModelConfig, load_config
from .data.arrays import TrialData
from .data.cache import cache_root, release
from .data.cache_admin import clear, entries
from .data.folder import class_names
from .data.prepare import DataSummary
from .data.traits import read_traits
from .exporting import export as export_model
from .final import plan_final, write_files
from .inference import evaluate_folder, image_files, iter_predictions, load_run
from .options import TuneOptions
from .precision import describe
from .preflight import command_line, preflight, with_out
from .reporting import write_report
from .resources import CPU_THREADS_PER_TRIAL, final_settings, plan_resources
from .rundir import (
    Printer,
    RunResult,
    Say,
    epoch_printer,
    prepare_data,
    wrap_up,
    write_settings,
)
from .space_setup import (
    DataFit,
    default_space_text,
    flip_conflict,
    resolve_space,
    rotation_degrees,
    uses_backbone,
)
from .tune_run import shareable, tune

__all__ = ["CPU_THREADS_PER_TRIAL", "RunResult", "TuneOptions", "default_space_text",
           "evaluate", "export", "load", "plan_resources", "predict", "report",
           "resolve_space", "train", "tune", "uses_backbone"]


def report(run_dir: str | Path) -> Path:
    """Write RUN_DIR/report.html (and its plots as PNG files in RUN_DIR/report/)."""

    return write_report(run_dir)


def train(data: Path, config: ModelConfig | dict | Path, opts: TuneOptions | None = None,
          say: Say | None = None) -> RunResult:
    """Train one configuration without searching; same artifacts as `tune`."""

    opts = opts or TuneOptions(data=Path(data))
    preflight(opts, say, "hyperopt")
    opts = dataclasses.replace(opts, max_epochs=train_epochs(opts.max_epochs, opts.budget_s))
    p = Printer(opts.quiet, say)
    if isinstance(config, Path | str):
        cfg = load_config(config)
    elif isinstance(config, dict):
        cfg = ModelConfig.from_dict(config)
    else:
        cfg = config
    if opts.image_size is not None:
        cfg = dataclasses.replace(cfg, image_size=opts.image_size)
    t0 = time.time()  # --budget counts from here to the saved model
    opts = with_out(opts, p)
    run_dir = opts.out.resolve()
    with guard.claimed(run_dir, guard.RunKind.TRAIN, command_line()) as claim:
        data_, summary = prepare_data(opts, [cfg.image_size], run_dir, p)
        until = train_until(opts, t0, summary)
        fit = _read_data(cfg, data_, opts.seed, p)
        claim.begin_work()
        metrics = _train_on_worker(cfg, data_, summary, until, opts, run_dir, p, fit)
        del data_
        wrap_up(opts, run_dir, cfg.to_dict(), metrics, p)
    return RunResult(run_dir, cfg.to_dict(), metrics)


def _read_data(cfg: ModelConfig, data: TrialData, seed: int, p: Printer) -> DataFit:
    """What the training images say of the config's choices: said where they disagree
    (the config is the user's, and is trained as given)."""
    traits = read_traits(data.train[cfg.image_size], data.classes, seed,
                         degrees=rotation_degrees(cfg.to_dict()))
    said = []
    conflict = flip_conflict(cfg.flip, traits)
    if conflict:
        said.append(f"{conflict}; `flip: none` in the config trains without it")
    if not traits.rotation.keeps_class:
        said.append(f"data: {traits.rotation.describe()}, yet the config rotates by up to "
                    f"that much; `rotation: false` in the config trains without it")
    for line in said:
        p(line)
    return DataFit(traits=traits, said=tuple(said))


def _train_on_worker(cfg: ModelConfig, data: TrialData, summary: DataSummary,
                     until: float | None, opts: TuneOptions, run_dir: Path, p: Printer,
                     fit: DataFit) -> dict[str, Any]:
    """`train`'s one configuration, trained on a Ray worker; its files written."""
    from .tuning import session  # Ray, once the run's checks have passed

    cluster = session.start(opts.address, opts.backend, quiet=opts.quiet)
    try:
        res = plan_resources(opts, cluster)
        ref = session.put(shareable(data, opts))
        write_settings(run_dir, opts, {"kind": "train", "config": cfg.to_dict(),
                                        "resources": dataclasses.asdict(res),
                                        "precision": describe(opts.backend,
                                                              res.gpus_per_trial > 0),
                                        **fit.to_settings()})
        weights = opts.weights if cfg.backbone != "none" else None
        if weights == "imagenet":
            session.fetch_weights([cfg.backbone], res.cpus_per_trial)
        fs = dataclasses.replace(final_settings(opts, res, weights), fit_until=until)
        p(f"training in {describe(opts.backend, res.gpus_per_trial > 0)}")
        if until is None:
            p(f"training for up to {opts.max_epochs} epochs (early stopping patience "
              f"{fs.patience})")
        else:
            p(f"training for as many epochs as fit in the budget (the first 2 time an "
              f"epoch, later ones again as it goes; at most {opts.max_epochs}), the "
              f"learning-rate schedule spanning them")
        # no deadline: the two timed epochs always run, and the rest are planned to fit
        out = session.run_final(cfg.to_dict(), ref, fs, plan_final(None, opts.max_epochs),
                                epoch_printer(p, fs, 0 if until else None))
        return write_files(run_dir, cfg.to_dict(), out, summary, p, {}, None, opts.metric,
                           opts.test_dir)
    finally:
        session.shutdown()
        release(Path(summary.cache))


def load(run_dir: str | Path):
    """A saved run's model, whose ``predict(images)`` and ``predict_proba(images)`` take
    PIL images or arrays and prepare them as the run did (a
    :class:`hyperfcn.inference.LoadedRun`)."""

    return load_run(run_dir)


def predict(paths: Sequence[str | Path], model: str | Path, top_k: int = 1):
    """Rows of {path, label, score, top_k} and a list of (path, reason) skipped files."""

    files = image_files(paths)  # a missing file is said before the model loads
    skipped: list[tuple[str, str]] = []
    return list(iter_predictions(load_run(model), files, top_k, skipped)), skipped


def predict_stream(paths: Sequence[str | Path], model: str | Path, top_k: int = 1,
                   skipped: list[tuple[str, str]] | None = None,
                   done: Callable[[int], None] | None = None):
    """(the image files found, an iterator of their rows in that order), decoding a chunk
    at a time: memory stays bounded however many files there are. Unreadable files are
    appended to ``skipped`` as they are met; ``done`` hears the files each chunk did."""

    files = image_files(paths)  # a missing file is said before the model loads
    return files, iter_predictions(load_run(model), files, top_k, skipped, done)


def export(run_dir: str | Path, fmt: str, out: str | Path | None = None):
    """RUN_DIR's model as ``fmt`` (onnx, saved_model, litert), checked against Keras; an
    :class:`hyperfcn.exporting.Exported`."""

    return export_model(run_dir, fmt, out)


def evaluate(data: str | Path, model: str | Path,
             done: Callable[[int, int], None] | None = None):
    """The model's classification report on a labelled folder, and the skipped files."""

    class_names(data, "DATA")  # a missing folder is said before the model loads
    return evaluate_folder(load_run(model), data, done)


def cache_entries(cache_dir: str | Path | None = None):
    """The decoded cache's entries (:class:`hyperfcn.data.cache_admin.Entry`), most recently
    used first, and the cache's folder."""

    root = cache_root(cache_dir)
    return (entries(root) if root.is_dir() else []), root


def clear_cache(cache_dir: str | Path | None = None, older_than_s: float = 0.0):
    """Remove the decoded cache's entries last used over ``older_than_s`` ago, except those
    a running run uses; returns (removed, left because in use)."""

    root = cache_root(cache_dir)
    return clear(root, older_than_s) if root.is_dir() else ([], [])
