"""The race as the search's stopper runs it (race.py says what races and who wins).

The recipe's trial decides the regime from its first epochs (budget.regime) and so does
this, from the same reported times: in a race, every racer (the recipe, then its variants,
which the searcher suggests next as the space's first points) stops at the race's epochs,
any other trial stops at once, and once every racer has run its epochs the race is over
and the search ends; the winner trains on in the final step. No Ray here: the stopper
(tuning/search.py) feeds it each result.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..budget import Regime, SearchClock, regime
from ..space import is_recipe


@dataclass
class Race:
    clock: SearchClock | None
    racers: list[dict[str, Any]]  # the recipe, then its variants (points, values form)
    epochs: int = 0  # > 0: racing, each racer this many epochs
    decided: bool = False  # the recipe's regime is known
    done: set[str] = field(default_factory=set)  # racers that ran the race's epochs
    recipe_s: list[float] = field(default_factory=list)  # the recipe's epochs' seconds

    @classmethod
    def of(cls, clock: SearchClock | None, racers: Sequence[Mapping[str, Any]]) -> Race:
        return cls(clock=clock if clock is not None and clock.racers else None,
                   racers=[dict(p) for p in racers])

    @property
    def pending(self) -> bool:
        """The recipe's regime is still to come: the search must not end for it yet."""
        return self.clock is not None and not self.decided

    @property
    def over(self) -> bool:
        return self.epochs > 0 and len(self.done) >= len(self.racers)

    def may_suggest(self, suggested: int) -> bool:
        """Whether the searcher may suggest another trial, ``suggested`` so far: a race
        runs its racers only."""
        return not self.epochs or suggested < len(self.racers)

    def observe(self, trial_id: str, config: Mapping[str, Any],
                result: Mapping[str, Any]) -> bool | None:
        """Whether to stop this trial now; None where the race has no say (no race)."""
        if self.clock is None:
            return None
        if not self.decided and is_recipe(config, self.racers[:1]) and \
                result.get("epoch_seconds"):
            self.recipe_s.append(float(result["epoch_seconds"]))
            kind, n = regime(self.clock, self.recipe_s)
            self.decided = kind is not Regime.WAIT
            self.epochs = n if kind is Regime.RACE else 0
        if not self.epochs:
            return None
        if not is_recipe(config, self.racers):
            return True  # not a racer: a race leaves no time for it
        if int(result.get("epoch", 0)) >= self.epochs:
            self.done.add(trial_id)
            return True
        return False

    def unraced(self) -> str:
        """Why the recipe trains alone though it had variants ('' where it had none)."""
        if self.clock is None or self.epochs or len(self.recipe_s) < 2:
            return ""
        n = len(self.racers) - 1
        return (f"; a race against its {n} variant{'' if n == 1 else 's'} (whole trainings, "
                f"its second epoch timed at ~{self.recipe_s[1]:.0f} s) does not fit either")

    def describe(self) -> str:
        return (f"the race is over: the recipe and its {len(self.racers) - 1} variant"
                f"{'' if len(self.racers) == 2 else 's'} trained {self.epochs} epochs "
                f"each; the winner trains on for the rest of the budget")
