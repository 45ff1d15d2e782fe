"""When to stop a trial: the scheduler's plan, and ASHA with hyperfcn's rung rules on Ray
Tune's public scheduler hooks.

:class:`Rungs` is the bookkeeping (no Ray): each rung (an epoch count) records the score of
every trial that reached it; a trial reaching a rung is stopped when its score falls below
the rung's top 1/reduction_factor, as in Ray's ASHA. Two rules are added:

- a rung stops nobody until it holds ``min_records`` results: on 2 cores the first trials to
  reach a rung are the fastest, not the best, and judging the second against the first
  alone stopped eventual winners;
- the space's first recipes (``defaults``, the user's best guess) run all their epochs;
  their results still count at every rung.

:class:`RungScheduler` adapts it to Ray Tune's ``TrialScheduler`` hooks
(``on_trial_result`` decides, ``on_trial_complete`` records) and logs each stop in a
:class:`StopLog`, which is how a trial the budget cut off is told from one it stopped.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from ray.tune.schedulers import FIFOScheduler, HyperBandScheduler, TrialScheduler

from .. import artifacts as art
from ..errors import UserError
from ..space import is_recipe


@dataclass
class Rungs:
    """ASHA's rungs for scores where higher is better (pass -loss)."""

    milestones: tuple[int, ...]  # ascending epochs at which trials are compared
    reduction_factor: float
    min_records: int = 1
    recorded: dict[int, dict[str, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for m in self.milestones:
            self.recorded.setdefault(m, {})

    def cutoff(self, milestone: int) -> float | None:
        """The score a trial reaching this rung must reach, from the others recorded."""
        rec = self.recorded[milestone]
        if not rec or len(rec) < self.min_records:
            return None
        return float(np.nanpercentile(list(rec.values()), (1 - 1 / self.reduction_factor)
                                      * 100))

    def judge(self, trial_id: str, epoch: int, score: float) -> bool:
        """Record the score at the highest rung reached and not yet recorded; True when it
        falls below that rung's cutoff."""
        for m in reversed(self.milestones):
            if epoch < m or trial_id in self.recorded[m]:
                continue
            cut = self.cutoff(m)
            self.recorded[m][trial_id] = score
            return cut is not None and score < cut
        return False


def milestones(max_t: int, grace_period: int, reduction_factor: float) -> tuple[int, ...]:
    """grace_period x reduction_factor^k below max_t, as Ray's ASHA places them."""
    n = int(np.log(max_t / grace_period) / np.log(reduction_factor) + 1)
    return tuple(int(grace_period * reduction_factor ** k) for k in range(n))


class StopLog:
    """Which trials the scheduler stopped, and at which epoch, in a file of the run.

    Ray marks a trial the scheduler stopped and one the time budget cut off the same way;
    the report, trials.csv and the live view tell them apart from this log. A file, because
    a resumed search gets the scheduler as pickled when the search began.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._seen: dict[str, int] = {}

    def add(self, trial_id: str, epoch: int) -> None:
        self._seen[trial_id] = epoch
        if self.path is not None:
            with contextlib.suppress(OSError), self.path.open("a") as f:
                f.write(f"{trial_id} {epoch}\n")

    def stops(self) -> dict[str, int]:
        return {**(art.read_stops(self.path) if self.path else {}), **self._seen}

    def __contains__(self, trial_id: str) -> bool:
        return trial_id in self.stops()


class RungScheduler(FIFOScheduler):
    """ASHA (one bracket) with the rung rules above, on the public scheduler hooks."""

    def __init__(self, metric: str, mode: str, max_t: int, grace_period: int = 1,
                 reduction_factor: float = 3, min_records: int = 1,
                 seeded: list[dict[str, Any]] | None = None,
                 stop_log: StopLog | None = None, time_attr: str = "epoch") -> None:
        super().__init__()
        self.set_search_properties(metric, mode)  # Ray's `metric` property reads it
        self.objective, self.sign = metric, (1.0 if mode == "max" else -1.0)
        self.max_t, self.time_attr = max_t, time_attr
        self.rungs = Rungs(milestones(max_t, grace_period, reduction_factor),
                           reduction_factor, min_records)
        self.seeded = [dict(p) for p in seeded or []]
        self.stop_log = stop_log or StopLog(None)

    def is_seeded(self, config: Mapping[str, Any]) -> bool:
        return is_recipe(config, self.seeded)

    def _epoch_score(self, result: Mapping[str, Any]) -> tuple[int, float] | None:
        if self.time_attr not in result or self.objective not in result:
            return None
        return int(result[self.time_attr]), self.sign * float(result[self.objective])

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        es = self._epoch_score(result)
        if es is None:
            return TrialScheduler.CONTINUE
        epoch, score = es
        # a recipe fitted to the search's end (trial.py) ends itself, maybe past max_t
        if epoch >= max(self.max_t, int(result.get("planned_epochs") or 0)):
            return TrialScheduler.STOP
        if not self.rungs.judge(trial.trial_id, epoch, score) or self.is_seeded(trial.config):
            return TrialScheduler.CONTINUE
        self.stop_log.add(trial.trial_id, epoch)
        return TrialScheduler.STOP

    def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict) -> None:
        es = self._epoch_score(result or {})
        if es is not None:  # its last result counts at its rung, as in Ray's ASHA
            self.rungs.judge(trial.trial_id, *es)

    def debug_string(self) -> str:
        return "RungScheduler: " + ", ".join(
            f"epoch {m}: {len(r)} results" for m, r in self.rungs.recorded.items())


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
        if self.name in ("hyperband", "bohb"):
            return (f"HyperBand{' for BOHB' if self.name == 'bohb' else ''}: max_t="
                    f"{self.max_t} epochs, reduction_factor={self.reduction_factor}")
        return (f"ASHA: max_t={self.max_t} epochs, grace_period={self.grace_period}, "
                f"reduction_factor={self.reduction_factor}; trials are compared at epochs "
                f"{', '.join(map(str, self.rungs()))}, once a rung holds "
                f"{self.min_records} results")


def plan_scheduler(name: str, max_epochs: int, searcher: str = "hyperopt") -> SchedulerPlan:
    """ASHA rungs sized to the budget: about three decisions before max_t. The bohb
    searcher's HyperBand is BOHB's own (plan ``bohb``: Ray's HyperBandForBOHB)."""
    if searcher == "bohb" and name == "hyperband":
        name = "bohb"
    if name not in ("asha", "hyperband", "fifo", "bohb"):
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
    if plan.name == "bohb":
        from ray.tune.schedulers import HyperBandForBOHB

        return HyperBandForBOHB(time_attr="epoch", metric=metric, mode=mode,
                                max_t=plan.max_t, reduction_factor=plan.reduction_factor)
    return FIFOScheduler()
