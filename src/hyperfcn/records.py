"""What a search leaves behind, read one way: a trial's status, its record, its history.

One place decides a trial's status (:func:`status_of`), one reads a trial's `result.json`
(:func:`read_history`); the search, trials.csv, the live view and the report all use them.
No Ray here.
"""

from __future__ import annotations

import contextlib
import json
import math
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from . import artifacts as art


class TrialStatus(StrEnum):
    COMPLETED = "completed"  # trained all its epochs
    STOPPED = "stopped"  # stopped early by the scheduler
    OUT_OF_BUDGET = "out_of_budget"  # cut off when --budget ran out
    FAILED = "failed"  # raised, NaN loss, or its worker died
    UNFINISHED = "unfinished"  # still to run or running when the search was interrupted


# What a search can optimise (`--metric`), each measured on the validation images.
METRICS = ("val_loss", "val_calibrated_loss", "val_accuracy", "val_balanced_accuracy")


@dataclass(frozen=True)
class Objective:
    """What a search optimises, and the one rule for which of two scores is better and what
    a trial's best is: a score that is not a finite number (a diverged epoch's NaN) is never
    better than any other, wherever it stands in a history."""

    metric: str = "val_loss"

    @property
    def mode(self) -> str:
        return "min" if self.metric.endswith("loss") else "max"

    def better(self, a: float | None, b: float | None) -> bool:
        if not _finite(a):
            return False
        return not _finite(b) or (a < b if self.mode == "min" else a > b)  # type: ignore

    def best(self, history: list[dict[str, Any]]) -> dict[str, Any] | None:
        """The epoch of a history that scores best (the first, on a tie); None when no
        epoch has a finite score."""
        out = None
        for h in history:
            if self.better(h.get(self.metric), out and out[self.metric]):
                out = h
        return out

    def best_value(self, history: list[dict[str, Any]]) -> float | None:
        """The best epoch's score (see :meth:`best`)."""
        b = self.best(history)
        return None if b is None else float(b[self.metric])


def _finite(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


@dataclass
class TrialRecord:
    trial_id: str
    config: dict[str, Any]
    status: str  # a TrialStatus value
    epochs: int
    best_val_loss: float | None
    best_val_accuracy: float | None
    seconds: float
    error: str = ""
    history: list[dict[str, float]] = field(default_factory=list)
    checkpoint: str = ""  # its best epoch's checkpoint ("" when none was kept)
    search: str = "tune"  # the round (Ray experiment) it ran in: see rounds.py
    race_epochs: int = 0  # it raced the recipe (race.py): the epochs each racer trained


def fitted_epochs(history: list[dict[str, Any]]) -> int:
    """The epochs a trial planned once it fitted its schedule to the search's end (a budget
    too short to search: its last report's ``planned_epochs``), or 0: it ran --max-epochs."""
    return int(history[-1].get("planned_epochs") or 0) if history else 0


def status_of(*, failed: bool, ended: bool, epochs: int, max_epochs: int,
              stopped_by_scheduler: bool, budget_can_cut: bool) -> TrialStatus:
    """A trial's status from what the search saw of it.

    ``max_epochs``: the epochs it was to train (a trial fitted to the search's end: those
    it planned, :func:`fitted_epochs`). ``ended``: the search ended it (Ray marks a trial
    the scheduler stopped and one the budget cut off alike); ``budget_can_cut``: a budget
    was set and the scheduler logs its stops (FIFO stops nothing; ASHA logs; HyperBand does
    not, so its early ends read stopped).
    """
    if failed:
        return TrialStatus.FAILED
    if not ended:
        return TrialStatus.UNFINISHED
    if epochs >= max_epochs:
        return TrialStatus.COMPLETED
    if budget_can_cut and not stopped_by_scheduler:
        return TrialStatus.OUT_OF_BUDGET
    return TrialStatus.STOPPED


def read_history(trial_dir: str | Path | None) -> list[dict[str, float]]:
    """Every reported epoch of a trial, from its result.json (the one reader of it).

    A resumed trial reports again the epochs after its last checkpoint: the later report of
    an epoch replaces the earlier one. Remote storage (s3://, ...) is not read: [].
    """
    if not trial_dir or str(trial_dir).startswith(("s3://", "gs://", "abfs://", "hdfs://")):
        return []
    path = Path(trial_dir) / "result.json"
    if not path.is_file():
        return []
    out: list[dict[str, Any]] = []
    for line in path.read_text().splitlines():
        with contextlib.suppress(ValueError):
            r = json.loads(line)
            out.append({k: r[k] for k in (*art.HISTORY_KEYS, "trial_id", "config") if k in r})
    return list({h.get("epoch"): h for h in out}.values())


def record(trial_id: str, config: dict[str, Any], status: TrialStatus,
           history: list[dict[str, Any]], error: str = "", checkpoint: str = "",
           search: str = "tune", race_epochs: int = 0) -> TrialRecord:
    hist = [{k: v for k, v in h.items() if k in art.HISTORY_KEYS} for h in history]
    return TrialRecord(
        trial_id=trial_id, config=dict(config), status=str(status),
        epochs=max((int(h.get("epoch", 0)) for h in hist), default=0),
        best_val_loss=Objective("val_loss").best_value(hist),
        best_val_accuracy=Objective("val_accuracy").best_value(hist),
        seconds=float(hist[-1].get("time_total_s", 0.0)) if hist else 0.0, error=error,
        history=hist, checkpoint=checkpoint, search=search, race_epochs=race_epochs)
