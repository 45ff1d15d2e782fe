"""What a command writes in its RUN_DIR and prints: the data read and described, the
settings and the trial tables written, and at the end the report, the trackers and the
hints. Who may write the folder is :mod:`hyperfcn.guard`'s."""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.metadata
import platform
import shlex
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import artifacts as art
from . import hints
from .data.epoch import describe as describe_epoch
from .data.prepare import prepare, skipped_message, unmeasured_message
from .guard import check_same_classes
from .progress import counted_bar
from .reporting import write_report

if TYPE_CHECKING:
    from .options import TuneOptions
    from .space import SearchSpace

Say = Callable[[str], None]


@dataclass
class RunResult:
    """What `tune` or `train` hands back: the run folder, the config and metrics of its
    model, its trials, and whether it was interrupted."""

    run_dir: Path
    best_config: dict[str, Any]
    metrics: dict[str, Any]
    trials: list[Any] = field(default_factory=list)
    interrupted: bool = False


def budget_text(s: float | None) -> str:
    if s is None:
        return "none"
    return f"{s / 60:.1f} min" if s >= 60 else f"{s:.0f} s"


class Printer:
    def __init__(self, quiet: bool, say: Say | None) -> None:
        self.quiet = quiet
        self.say = say or (lambda m: print(m, flush=True))

    def __call__(self, msg: str) -> None:
        if not self.quiet:
            self.say(msg)


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("hyperfcn", "keras", "ray", "hyperopt", "tensorflow", "tensorflow-cpu", "jax",
                "numpy", "pillow", "optuna"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            out[pkg] = importlib.metadata.version(pkg)
    return out


def prepare_data(opts: TuneOptions, sizes: list[int], run_dir: Path, say: Printer,
                 resuming: bool = False):

    say(f"reading {opts.data}" + (f" (validation: {opts.val_dir})" if opts.val_dir else
                                  f" (validation: {opts.val_split:.0%} stratified split)"))
    with counted_bar("decoding", opts.quiet) as progress:
        data, summary = prepare(opts.data, sizes, val_dir=opts.val_dir,
                                val_split=opts.val_split, seed=opts.seed,
                                max_buckets=opts.max_buckets, skipped_log=run_dir / art.SKIPPED,
                                test_dir=opts.test_dir, cache_dir=opts.cache_dir, say=say,
                                progress=progress)
    n_tr, n_va = sum(summary.train_counts.values()), sum(summary.val_counts.values())
    how = (f"decoded before, found in {summary.decode_seconds:.1f} s" if summary.cache_hit
           else f"decoded once in {summary.decode_seconds:.1f} s "
                f"({summary.decoded / max(summary.decode_seconds, 1e-9):.0f} images/s)")
    say(f"{len(summary.classes)} classes, {n_tr} training and {n_va} validation images, "
        f"{how}; cache {summary.cache}")
    for s in sizes:
        say(f"  {s} px: {len(summary.shapes[s])} batch shapes "
            f"{', '.join(f'{h}x{w}' for h, w in summary.shapes[s])}; "
            f"padding {summary.padded_fraction[s]:.1%} of pixels")
    for msg in (describe_epoch(n_tr, n_va), skipped_message(summary, run_dir / art.SKIPPED),
                unmeasured_message(summary, opts.val_dir)):
        if msg:
            say(msg)
    if resuming:
        check_same_classes(run_dir, summary.classes)
    art.write_json(run_dir / art.DATA_SUMMARY, summary.to_dict())
    return data, summary


def data_identity(opts: TuneOptions) -> dict[str, Any]:
    """The data and split a run reads, as settings.json records them."""
    return {"data_abs": str(opts.data.resolve()),
            "val_dir_abs": str(opts.val_dir.resolve()) if opts.val_dir else None,
            "val_split": opts.val_split, "seed": opts.seed}


def write_settings(run_dir: Path, opts: TuneOptions, extra: dict[str, Any]) -> None:
    d = {k: (str(v) if isinstance(v, Path) else v)
         for k, v in dataclasses.asdict(opts).items()}
    d.update(extra)
    d.update(data_identity(opts))  # what `evaluate` tells training images by, and
    # what a resume must read again (guard.check_same_data)
    d["versions"] = versions()
    d["command"] = hints.command(sys.argv[1:])
    art.write_json(run_dir / art.SETTINGS, d)


def trial_rows(records: Sequence[Any], space: SearchSpace) -> list[dict[str, Any]]:
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


def epoch_printer(p: Printer, fs, epochs: int | None = None
                   ) -> Callable[[dict], None] | None:
    if p.quiet:
        return None
    total = fs.max_epochs if epochs is None else epochs  # 0: not known yet
    return lambda m: p(f"final model: epoch {m['epoch']}{f'/{total}' if total else ''}: val_loss "
                       f"{m['val_loss']:.4f} val_accuracy {m['val_accuracy']:.4f}")


def write_report_or_say(run_dir: Path, say: Printer) -> None:
    try:
        say(f"report: {write_report(run_dir)}")
    except Exception as e:  # the model is saved; a plotting problem must not hide that
        say(f"report: not written ({type(e).__name__}: {e}); retry with "
            f"`{hints.command(['report', str(run_dir)])}`")


def log_final(opts: TuneOptions, run_dir: Path, config: dict[str, Any],
               metrics: dict[str, Any], say: Printer) -> None:
    if not (opts.mlflow or opts.wandb):
        return
    from .tuning.trackers import log_final  # Ray, once the run's checks have passed

    try:
        for where in log_final(run_dir, run_dir.name, config, metrics, opts.mlflow,
                               opts.wandb):
            say(f"final model logged to {where}")
    except Exception as e:  # the model is on disk already; say what failed
        say(f"could not log the final model to the tracker ({type(e).__name__}: {e}); "
            f"it is in {run_dir}")


def wrap_up(opts: TuneOptions, run_dir: Path, config: dict[str, Any],
             metrics: dict[str, Any], p: Printer) -> None:
    p(f"model: {run_dir / art.MODEL}")
    write_report_or_say(run_dir, p)
    log_final(opts, run_dir, config, metrics, p)
    p(f"logs:  {hints.tensorboard()} --logdir {shlex.quote(str(run_dir))}")

