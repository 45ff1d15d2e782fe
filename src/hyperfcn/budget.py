"""The budget's arithmetic: how a `--budget` is shared between the search and the model it
ships, when a budget is too short to search, and how many epochs fit in the time left.

Pure numbers, no Keras and no Ray: the command, the trial, the search's stopper and the
final step all ask these rules, so that they decide alike.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from .errors import UserError

if TYPE_CHECKING:
    from .data.prepare import DataSummary
    from .options import TuneOptions

# A trial's epochs when --max-epochs is not given; and `train --budget` without it trains as
# many as fit in the budget, up to TRAIN_BUDGET_MAX_EPOCHS.
DEFAULT_EPOCHS = 10
TRAIN_BUDGET_MAX_EPOCHS = 1000


def tune_epochs(max_epochs: int | None) -> int:
    """A search's trial epochs: --max-epochs, else DEFAULT_EPOCHS."""
    return max_epochs or DEFAULT_EPOCHS


def train_epochs(max_epochs: int | None, budget_s: float | None) -> int:
    """`train`'s most epochs: --max-epochs, else DEFAULT_EPOCHS, or with a budget as many as
    fit (at most TRAIN_BUDGET_MAX_EPOCHS): the CLI and the Python API plan alike."""
    if max_epochs:
        return max_epochs
    return DEFAULT_EPOCHS if budget_s is None else TRAIN_BUDGET_MAX_EPOCHS


# The share of the search's time a race (race.py) may take: the rest trains its winner on,
# so where the recipe was right it loses at most the last quarter of its training, the
# part of a budget of minutes that adds the least.
RACE_SHARE = 0.25
# With a budget, the search ends early enough to leave the best config this share of the
# search's time to train on: what the race leaves its winner, so that where the recipe was
# right a search costs it no more than a race would (trained for a whole budget, the
# recipe alone beat a search whose model had trained 10 epochs). Half, with the train-on
# capped at 10x the trials' epochs, left the winner ~100 epochs on a small photo set
# where the recipe alone trained ~240 and scored higher (benchmarks/LOG.md).
LONGER_SHARE = 1.0 - RACE_SHARE
# A train-on (or a recipe fitted to the search's end) trains at most MAX_LONGER x the
# trials' epochs: as many as `train --budget` would.
MAX_LONGER = TRAIN_BUDGET_MAX_EPOCHS // DEFAULT_EPOCHS
# A retrain for longer than the search's trials is worth its time from this many times their
# epochs on: the learning-rate schedule then spans the longer run.
LONGER = 1.5
# Training the best trial's weights on, over a new learning-rate cycle (a warm restart), is
# worth its time from this many times the trials' epochs on: it adds to the epochs the
# trial trained, where a retrain starts again from none.
CONTINUE = 0.5
# A search whose share of its time (the part not kept for training on) holds fewer
# trainings of its leader than this, counting the trials it runs at once, cannot compare
# configurations at their length: ASHA stops no trial until a rung holds reduction_factor
# (3) results, so it takes the leader and two more full trainings before any other trial
# can be judged at full length. Such a budget trains the space's recipe instead.
MIN_TRAININGS = 3
# Epochs planned to fit a deadline are taken this much longer than they were timed.
FIT_MARGIN = 1.05
# A run fitted to the search's end ends on a partial epoch when what is left after its
# whole epochs holds at least this share of one: at a budget of two or three epochs, the
# time left after the last whole one is a large part of the training.
MIN_TAIL = 0.25


@dataclass(frozen=True)
class SearchClock:
    """What a trial of a budgeted search knows of the search's time: enough to tell, from
    its own first epoch, that the budget is too short to search (:func:`too_short_to_search`)
    and to fit its schedule to the search's end instead.

    ``until`` is a ``time.time()`` value: the search's end, after which the final step has
    the time it keeps for saving and scoring.
    """

    until: float
    search_s: float
    max_epochs: int  # the trials' --max-epochs
    slots: int = 1  # trials at once
    max_fitted: int = 0  # most epochs of a run fitted to the search's end (0: MAX_LONGER x)
    # the variants racing the recipe (race.py): each one's epoch time relative to the
    # recipe's; none, no race
    racers: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if self.search_s <= 0 or self.max_epochs < 1 or self.slots < 1:
            raise ValueError(f"SearchClock(search_s={self.search_s}, max_epochs="
                             f"{self.max_epochs}, slots={self.slots}): each must be > 0")

    @property
    def epoch_cap(self) -> int:
        return self.max_fitted or MAX_LONGER * self.max_epochs

    def too_short(self, epoch_s: float) -> bool:
        return too_short_to_search(self.search_s, epoch_s, self.max_epochs, self.slots)

    def race_epochs(self, first_s: float, epoch_s: float) -> int:
        """Epochs each racer trains where the budget is too short to search (0: no race):
        the recipe and the search's stopper both ask, with the recipe's first two epochs'
        times (the first's excess is what each variant's first epoch spends compiling)."""
        return race_epochs(self.search_s, epoch_s, self.racers, self.max_epochs, self.slots,
                           startup_s=max(0.0, first_s - epoch_s))


def race_epochs(search_s: float, epoch_s: float, costs: Sequence[float], max_epochs: int,
                slots: int = 1, startup_s: float = 0.0) -> int:
    """Epochs each racer trains: the trials' ``max_epochs``, when RACE_SHARE of the
    search's time holds that many of the recipe (an epoch of ``epoch_s``) and of its
    variants (``costs``: each one's epoch relative to the recipe's; each starts with
    ``startup_s`` more, compiling), ``slots`` at once; else 0 (no race). A shorter race
    judges at a length the search never trusts (the configurations that start fastest win
    it), and where it cannot tell, what it cost is lost: on held-out data that sat at
    chance for its first epochs, a 5-epoch race left the recipe far below the recipe
    trained alone (benchmarks/LOG.md)."""
    if not costs or epoch_s <= 0:
        return 0
    left = RACE_SHARE * search_s - len(costs) * startup_s / max(1, slots)
    per_epoch = epoch_s * (1.0 + sum(costs)) / max(1, slots)
    return max_epochs if left >= max_epochs * per_epoch else 0


class Regime(StrEnum):
    """What the space's recipe does in a budgeted search, from its first epochs' times."""

    SEARCH = "search"  # the budget holds a search: the recipe trains its epochs
    WAIT = "wait"  # too short to search; the race is decided on the next epoch's time
    RACE = "race"  # too short to search: the recipe and its variants race (race.py)
    FIT = "fit"  # too short for either: the recipe trains alone, fitted to the end


def regime(clock: SearchClock, epoch_seconds: Sequence[float]) -> tuple[Regime, int]:
    """(the regime, each racer's epochs) after the recipe's epochs timed so far. Too short
    to search is told by the first epoch (which compiles: an overestimate, erring toward
    the recipe); the race's length by the second, a steady epoch, when there are variants
    to race (a compile-inflated epoch would cut the race to nothing at a budget of
    minutes). The recipe's trial and the search's stopper both ask, with the same times."""
    if not epoch_seconds or not clock.too_short(epoch_seconds[0]):
        return Regime.SEARCH, 0
    if not clock.racers:
        return Regime.FIT, 0
    if len(epoch_seconds) < 2:
        return Regime.WAIT, 0
    n = clock.race_epochs(epoch_seconds[0], epoch_seconds[1])
    return (Regime.RACE, n) if n else (Regime.FIT, 0)


def search_share(search_s: float) -> float:
    """The part of a budgeted search's time it may search: all but LONGER_SHARE, which is
    kept for training the leader on."""
    return (1.0 - LONGER_SHARE) * search_s


def too_short_to_search(search_s: float, epoch_s: float, max_epochs: int,
                        slots: int = 1) -> bool:
    """Does the search's share of its time (:func:`search_share`) hold fewer than
    MIN_TRAININGS trainings (``max_epochs`` epochs of ``epoch_s``, ``slots`` at once) of
    its leader? Asked on the first epoch's time, which also compiles: an overestimate, so a
    budget near the line trains the recipe, the choice whose cost is known (what `train
    --budget` gives), where a search squeezed into too little time can ship a model that
    trained at its peak learning rate."""
    return search_share(search_s) * max(1, slots) < MIN_TRAININGS * max_epochs * epoch_s


def epochs_that_fit(done: int, epoch_s: float, left_s: float, max_epochs: int) -> int:
    """A run's epochs in all: those done, and as many more as fit in ``left_s`` at
    ``epoch_s`` each (taken FIT_MARGIN longer), at most ``max_epochs``."""
    more = int(left_s // (epoch_s * FIT_MARGIN)) if epoch_s > 0 and left_s > 0 else 0
    return max(done, min(max_epochs, done + more))


def epochs_and_tail(done: int, train_s: float, val_s: float, left_s: float, n_steps: int,
                    max_epochs: int) -> tuple[int, int]:
    """A run's epochs in all, the last of them possibly partial, and that partial epoch's
    steps (0: none): those done, as many whole epochs (``train_s`` of training and
    ``val_s`` of validation each, taken FIT_MARGIN longer) as fit in ``left_s``, and a last
    epoch of as many of its ``n_steps`` steps as fit in the rest after its validation,
    when that is at least MIN_TAIL of an epoch; at most ``max_epochs``."""
    epoch_s = (train_s + val_s) * FIT_MARGIN
    end = epochs_that_fit(done, train_s + val_s, left_s, max_epochs)
    if end >= max_epochs or train_s <= 0 or left_s <= 0:
        return end, 0
    rest = left_s - (end - done) * epoch_s - val_s * FIT_MARGIN
    share = rest / (train_s * FIT_MARGIN)
    tail = min(n_steps - 1, int(share * n_steps)) if share >= MIN_TAIL else 0
    return (end + 1, tail) if tail > 0 else (end, 0)


# A run fitted to a deadline times its plan by its first PROBE_EPOCHS (the second is the
# first without compilation), and re-plans each time half of what its plan has left has
# run, while that half is at least REPLAN_AFTER epochs: down to the plan's last epoch, since
# a plan of a few epochs timed on one busy epoch is short by as much as that epoch was
# slow (a 51 s second epoch among 21 s ones planned 5 epochs in 300 s and left 110 s
# unused), and only a re-plan gives that time back.
PROBE_EPOCHS = 2
REPLAN_AFTER = 1
# A run fitted to the search's end plans to finish this long before it: its last report,
# checkpoint and the search's own clean-up come after the last epoch. An epoch still
# training when only this and a validation are left ends there and reports (the search
# would drop a report that came after its end, and the epoch with it).
SEARCH_END_SLACK_S = 3.0


@dataclass(frozen=True)
class Timing:
    """A run's epochs as timed: the median seconds of a whole epoch, and of its validation."""

    epoch_s: float
    val_s: float

    @classmethod
    def of(cls, history: Sequence[Mapping[str, float]]) -> Timing:
        """From epochs' records (``epoch_seconds``, ``val_seconds``); medians, so that one
        epoch timed while the machine was busy does not move the plan."""
        if not history:
            raise ValueError("Timing.of: no epochs to time")
        epoch_s = statistics.median(h["epoch_seconds"] for h in history)
        val_s = statistics.median(h.get("val_seconds", 0.0) for h in history)
        return cls(epoch_s=epoch_s, val_s=min(val_s, epoch_s))


def timed_epoch_s(epoch_seconds: Sequence[float]) -> float:
    """One epoch's time from a run's epochs so far: the first also compiles, so once there
    are others it is left out; until then it decides alone (an overestimate)."""
    return statistics.median(epoch_seconds[1:] or epoch_seconds[:1])


@dataclass(frozen=True)
class Deadline:
    """A run fitted to end by ``until`` (a ``time.time()`` value): `train --budget`, the
    final step's train-on, and the recipe fitted to the search's end all plan by it."""

    until: float
    max_epochs: int
    n_steps: int  # steps of one whole epoch

    @classmethod
    def search_end(cls, clock: SearchClock, n_steps: int) -> Deadline:
        """The recipe fitted to a search's end: SEARCH_END_SLACK_S before it, at most
        ``clock.epoch_cap`` epochs."""
        return cls(until=clock.until - SEARCH_END_SLACK_S, max_epochs=clock.epoch_cap,
                   n_steps=n_steps)

    def plan(self, done: int, timing: Timing, now: float) -> tuple[int, int]:
        """(epochs in all, steps of a last partial epoch) that fit by ``until``, ``done``
        epochs in (:func:`epochs_and_tail`)."""
        return epochs_and_tail(done, timing.epoch_s - timing.val_s, timing.val_s,
                               self.until - now, self.n_steps, self.max_epochs)

    def steps_stop_at(self, timing: Timing) -> float:
        """When training steps stop: ``until`` less the time a validation takes (taken
        FIT_MARGIN longer), so the last epoch is still validated and reported in time."""
        return self.until - FIT_MARGIN * timing.val_s


def next_replan(at: int, end: int) -> int | None:
    """The epoch at which a run planned to ``end``, now at ``at``, re-plans: half of what
    is left, or None once that half is shorter than REPLAN_AFTER (only the last epoch is
    left)."""
    half = at + (end - at) // 2
    return half if half - at >= REPLAN_AFTER else None


def fitting_epochs(per_epoch: float, time_left: float | None, max_epochs: int) -> int:
    """Epochs a new run (the final step's) fits in the time left: one epoch's worth is kept
    back for its start (a worker, loading weights, compiling); at most MAX_LONGER x the
    trials' epochs."""
    if time_left is None or per_epoch <= 0:
        return 0
    return max(0, min(int(time_left // per_epoch) - 1, MAX_LONGER * max_epochs))


def longer_epochs(per_epoch: float, time_left: float | None, max_epochs: int) -> int:
    """Epochs of a longer retrain from scratch, or 0 when fewer than LONGER x the trials'
    epochs fit."""
    n = fitting_epochs(per_epoch, time_left, max_epochs)
    return n if n >= LONGER * max_epochs else 0


def continue_epochs(per_epoch: float, time_left: float | None, max_epochs: int,
                    two_stage: bool = False, too_short: bool = False) -> int:
    """Epochs to train the best trial's weights on, or 0 when fewer than CONTINUE x the
    trials' epochs fit (or the config is a two-stage backbone, retrained instead). A budget
    too short to search trains its leader on for any number of epochs: the alternative is
    weights that stopped at their peak learning rate."""
    n = 0 if two_stage else fitting_epochs(per_epoch, time_left, max_epochs)
    return n if n >= (1 if too_short else max(1.0, CONTINUE * max_epochs)) else 0


def end_search_for_longer(elapsed: float, search_s: float, epoch_s: float | None,
                          max_epochs: int, two_stage: bool = False,
                          too_short: bool = False) -> bool:
    """Should a budgeted search end now, so that its best trial (whose epochs take
    ``epoch_s``) trains on in the time left? Only once the time left is within
    LONGER_SHARE of the search's (or what MAX_LONGER x the epochs need), or at once when
    the budget is ``too_short`` to search (:func:`too_short_to_search`), and only when
    that time buys the final model more epochs at all: otherwise the search keeps it."""
    if not epoch_s or epoch_s <= 0:
        return False
    left = search_s - elapsed
    keep = min(LONGER_SHARE * search_s, (MAX_LONGER * max_epochs + 1) * epoch_s)
    more = (longer_epochs(epoch_s, left, max_epochs) if two_stage else
            continue_epochs(epoch_s, left, max_epochs, too_short=too_short))
    return (too_short or left <= keep) and more > 0


# Seconds kept back from --budget for the final step (a worker's start, loading the best
# weights, saving, loading back and scoring, benchmarks/final_model.py times it), plus time
# to score the validation images twice.
FINAL_RESERVE_S = 30.0
FINAL_RESERVE_PER_VAL_IMAGE_S = 0.004
# --final train+val refits after the search: it keeps this share of what the budget leaves.
TRAIN_VAL_SHARE = 0.3
# `train --budget`: less than this left for training is refused (its first two epochs
# always run, to time the rest)
TRAIN_MIN_S = 10.0


def final_reserve(summary: DataSummary) -> float:
    """Seconds the final step keeps back, for a data summary's validation images."""
    return FINAL_RESERVE_S + FINAL_RESERVE_PER_VAL_IMAGE_S * sum(summary.val_counts.values())


def budget_left(opts: TuneOptions, t0: float, summary: DataSummary, need_s: float,
                step: str) -> float | None:
    """Seconds of --budget left for ``step`` (the search, or training): the budget is the
    time until the model is saved, so what ran since ``t0`` and the final step's saving and
    scoring come out of it. Less than ``need_s`` left is refused, saying where it went."""
    if opts.budget_s is None:
        return None
    used, reserve = time.time() - t0, final_reserve(summary)
    left = opts.budget_s - used - reserve
    if left < need_s:
        raise UserError(f"--budget {opts.budget_s:g}s: too short; {used:.0f} s went to "
                        f"reading the data and starting up, the final model needs "
                        f"~{reserve:.0f} s to save and score, and {step} needs "
                        f"{need_s:.0f} s at least; give a longer --budget")
    return left


def train_until(opts: TuneOptions, t0: float, summary: DataSummary) -> float | None:
    """`train --budget`: the time.time() by which training must end."""
    left = budget_left(opts, t0, summary, TRAIN_MIN_S, "training")
    return None if left is None else time.time() + left


def search_budget(opts: TuneOptions, t0: float, summary: DataSummary) -> float | None:
    """What is left of --budget for the search (train+val keeps a share for its refit)."""
    left = budget_left(opts, t0, summary, 1.0, "the search")
    if left is not None and opts.final == "train+val":
        left *= 1 - TRAIN_VAL_SHARE
    return left
