"""What a training command (`tune`, `train`) checks before any work, in milliseconds and
before TensorFlow or Ray is imported: its folders, the optional packages its options need,
the GPUs, the Keras backend, and the RUN_DIR it writes (--out, or a new one)."""

from __future__ import annotations

import dataclasses
import importlib.util
import sys

from . import extras, guard, hints
from .data.folder import class_names
from .errors import UserError
from .gpu import check_gpu_option, gpu_note
from .hints import install
from .options import TuneOptions
from .precision import chosen
from .rundir import Printer, Say


def preflight(opts: TuneOptions, say: Say | None, searcher: str) -> None:
    """Every check a training command makes before it imports or reads anything heavy."""
    check_folders(opts)
    extras.require_for(searcher, opts.mlflow, opts.wandb)
    check_gpus(opts, say)
    check_backend(opts.backend, opts.address)


def check_backend(backend: str, address: str | None) -> None:
    chosen(backend=backend)  # a bad HYPERFCN_PRECISION fails here, before any work
    # On a cluster the workers need the backend, not necessarily the driver.
    if address:
        return
    if importlib.util.find_spec(backend) is None:
        how = install(backend) if backend == "jax" else "pip install tensorflow-cpu"
        raise UserError(f"Keras backend {backend!r} is not installed: {how} (or set "
                        f"KERAS_BACKEND to an installed one)")


def with_out(opts: TuneOptions, p: Printer) -> TuneOptions:
    """The options with their RUN_DIR: --out, or a new numbered folder under runs/."""
    if opts.out is not None:
        return opts
    out = guard.default_run_dir(opts.data, opts.resume)
    p(f"run folder {out} (--out picks another)")
    return dataclasses.replace(opts, out=out)


def check_folders(opts: TuneOptions) -> None:
    class_names(opts.data, "DATA")
    for flag, folder in (("--val-dir", opts.val_dir), ("--test-dir", opts.test_dir)):
        if folder is not None:
            class_names(folder, flag)


def check_gpus(opts: TuneOptions, say: Say | None) -> None:
    """A GPU option this machine cannot honour is refused; a GPU the installed backend
    cannot use is said."""
    check_gpu_option(opts.gpus_per_trial, opts.address, opts.backend)
    note = None if opts.address else gpu_note(opts.backend)
    if note:
        Printer(opts.quiet, say)(note)


def command_line() -> str:
    """The command line that holds a RUN_DIR, as its lock file records it."""
    return hints.command(sys.argv[1:])

