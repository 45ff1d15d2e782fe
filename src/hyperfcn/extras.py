"""The optional packages each feature needs, checked before any work (by looking them up,
not importing them: a missing one is said in milliseconds), with the command that installs
them into the Python running hyperfcn."""

from __future__ import annotations

import importlib.util

from .errors import UserError
from .hints import install

# extra -> (what asks for it, the modules it provides)
EXTRAS: dict[str, tuple[str, tuple[str, ...]]] = {
    "optuna": ("--searcher optuna", ("optuna",)),
    "bohb": ("--searcher bohb", ("ConfigSpace", "hpbandster")),
    "mlflow": ("--mlflow", ("mlflow",)),
    "wandb": ("--wandb", ("wandb",)),
    "onnx": ("--format onnx", ("tf2onnx", "onnx", "onnxruntime")),
    "jax": ("KERAS_BACKEND=jax", ("jax",)),
}


def missing(extra: str) -> list[str]:
    return [m for m in EXTRAS[extra][1] if importlib.util.find_spec(m) is None]


def message(extra: str, gone: list[str] | None = None) -> str:
    what, modules = EXTRAS[extra]
    return f"{what} needs {', '.join(gone or list(modules))}: {install(extra)}"


def require(extra: str) -> None:
    """Refuse, with the install command, when an extra's packages are not installed."""
    gone = missing(extra)
    if gone:
        raise UserError(message(extra, gone))


def require_for(searcher: str, mlflow: str | None, wandb: str | None) -> None:
    """The extras `tune`'s options need."""
    for extra, wanted in (("optuna", searcher == "optuna"), ("bohb", searcher == "bohb"),
                          ("mlflow", bool(mlflow)), ("wandb", bool(wandb))):
        if wanted:
            require(extra)
