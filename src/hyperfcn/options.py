"""Every option of `hyperfcn tune` and `hyperfcn train`, validated where it is made: a bad
value is refused with the option's name, the value and the rule, before any work starts."""

from __future__ import annotations

import os
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import BACKBONES
from .errors import UserError
from .hints import redact
from .records import METRICS

FINAL_CHOICES = ("auto", "train+val", "none")
CLASS_WEIGHTS = ("none", "balanced")


def default_backend() -> str:
    return os.environ.get("KERAS_BACKEND", "tensorflow")


def mlflow_credentials_to_env(uri: str) -> str:
    """``uri`` without the user and password it carries, which go where MLflow reads them
    (MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD): the options are written to
    settings.json, the report and Ray's experiment state, and the URI is printed."""
    parts = urllib.parse.urlsplit(uri)
    if parts.username is None and parts.password is None:
        return uri
    if parts.username:
        os.environ["MLFLOW_TRACKING_USERNAME"] = urllib.parse.unquote(parts.username)
    if parts.password is not None:
        os.environ["MLFLOW_TRACKING_PASSWORD"] = urllib.parse.unquote(parts.password)
    return redact(uri)


@dataclass(frozen=True)
class TuneOptions:
    """Every option of `hyperfcn tune` (and, minus the search ones, `hyperfcn train`)."""

    data: Path
    out: Path | None = None  # None: a new folder under runs/ (guard.default_run_dir)
    val_dir: Path | None = None
    val_split: float = 0.2
    test_dir: Path | None = None  # scored once by the saved model; no decision sees it
    samples: int | None = None
    budget_s: float | None = None
    # a trial's epochs (tune: 10 when None); train: see budget.train_epochs
    max_epochs: int | None = None
    image_size: int | None = None
    searcher: str = "hyperopt"
    scheduler: str | None = None  # asha; hyperband (BOHB's own) with --searcher bohb
    metric: str = "val_loss"
    concurrency: int | None = None
    cpus_per_trial: float | None = None
    gpus_per_trial: float | None = None
    space: Path | None = None
    seed: int = 0
    resume: bool = False
    address: str | None = None
    storage: str | None = None
    backend: str = field(default_factory=default_backend)
    max_buckets: int = 4
    cache_dir: Path | None = None  # the decoded cache's root (cache.cache_root's default)
    max_failures: int = 0  # retries of a failed trial (from its last checkpoint)
    random_starts: int | None = None  # random configs before TPE (None: from concurrency)
    checkpoint_every_s: float = 60.0  # a trial's checkpoints at least this far apart; 0: all
    final: str = "auto"  # auto | train+val | none (search only); see final.plan_final
    quiet: bool = False
    mlflow: str | None = None  # MLflow tracking URI
    wandb: str | None = None  # Weights & Biases project
    backbone: str | None = None  # tune the recipe of a standard network instead of the FCN
    weights: str = "imagenet"  # backbone weights: imagenet | none | PATH.weights.h5
    class_weight: str = "none"  # none | balanced: see trial.TrialSettings.class_weight

    def __post_init__(self) -> None:
        self._normalise()
        rule = _rule
        rule(self.final in FINAL_CHOICES, "--final", self.final,
             "use auto or train+val (--no-final: none)")
        rule(0 < self.val_split < 1, "--val-split", self.val_split, "must be between 0 and 1")
        rule(self.samples is None or self.samples >= 1, "--samples", self.samples,
             "must be >= 1")
        rule(self.budget_s is None or self.budget_s > 0, "--budget", self.budget_s,
             "must be > 0 (e.g. 30m)")
        rule(self.max_epochs is None or 1 <= self.max_epochs <= 10000, "--max-epochs",
             self.max_epochs, "must be in 1..10000")
        rule(self.image_size is None or 8 <= self.image_size <= 1024, "--image-size",
             self.image_size, "must be in 8..1024")
        rule(self.searcher in ("hyperopt", "random", "optuna", "bohb"), "--searcher",
             self.searcher, "use hyperopt, random, optuna or bohb")
        if self.scheduler is None:
            object.__setattr__(self, "scheduler",
                               "hyperband" if self.searcher == "bohb" else "asha")
        rule(self.scheduler in ("asha", "hyperband", "fifo"), "--scheduler", self.scheduler,
             "use asha, hyperband or fifo")
        rule(self.searcher != "bohb" or self.scheduler == "hyperband", "--scheduler",
             self.scheduler, "--searcher bohb runs with its own HyperBand (Ray's "
             "HyperBandForBOHB): leave --scheduler out, or give hyperband")
        rule(self.class_weight in CLASS_WEIGHTS, "--class-weight", self.class_weight,
             f"use {' or '.join(CLASS_WEIGHTS)}")
        rule(self.metric in METRICS, "--metric", self.metric,
             f"use {', '.join(METRICS[:-1])} or {METRICS[-1]}")
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

    def _normalise(self) -> None:
        """Values as a Python user may give them, in the form the rules check: paths as
        str, final as a bool, a tracking URI's credentials (moved to MLflow's environment)."""
        for key in ("data", "out", "val_dir", "test_dir", "space", "cache_dir"):
            value = getattr(self, key)
            if isinstance(value, str | os.PathLike) and not isinstance(value, Path):
                object.__setattr__(self, key, Path(value))
        if self.mlflow:
            object.__setattr__(self, "mlflow", mlflow_credentials_to_env(self.mlflow))
        if isinstance(self.final, bool):  # final=True/False reads as auto/none
            object.__setattr__(self, "final", "auto" if self.final else "none")


def _rule(ok: bool, opt: str, value: Any, text: str) -> None:
    """A refusal that echoes the option, its value and the rule."""
    if not ok:
        raise UserError(f"{opt} {value}: {text}")

