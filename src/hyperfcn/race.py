"""The race: the space's recipe against the few variants of it most likely wrong for the
data at hand, and the rule that lets any other configuration replace the recipe only on
evidence larger than the validation set's noise.

A recipe made on photos of objects is right for data like them. Some of its choices are
likely wrong for data unlike them, and the data cannot always say so before training (the
tests of :mod:`hyperfcn.data.traits` read whether a flip or a rotation keeps the class;
nothing reads whether a detail needs more pixels). So where the budget holds a few short
trainings, the recipe and each variant (one choice changed) train the same epochs on the
same schedule, side by side in the search, and the best goes on to be the model. A variant
replaces the recipe only when it scores better by more than :data:`Z` standard errors of
the two scores: a tie within the noise of a small validation set keeps the recipe, so
racing costs at most its share of the time.

Only choices a short race judges fairly race. Less augmentation always learns faster in
the first epochs, and loses at the length the model trains for: a race of a few epochs
would take the recipe's augmentation out everywhere, so what an augmentation does to the
classes is read from the data instead (traits.py), never raced.

Pure: the search (tuning/search.py) races, the final choice (final.py) judges.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .budget import RACE_SHARE
from .errors import SpaceError
from .records import Objective
from .space import SearchSpace

# A challenger replaces the recipe when better by more than this many standard errors of
# the difference (one-sided, about 1 in 40 by chance alone).
Z = 2.0
# At most this many variants race the recipe: each costs a share of the budget.
MAX_VARIANTS = 2
# The images' short side at least this many times the recipe's size: details the recipe's
# downscaling loses may carry the class.
RESOLUTION_RATIO = 2.0


@dataclass(frozen=True)
class Variant:
    """The recipe with one choice changed, and why it may be the right one for this data."""

    key: str
    value: Any
    why: str
    point: Mapping[str, Any]  # the recipe with the change, in the space's values form
    cost: float = 1.0  # an epoch's time relative to the recipe's

    @property
    def name(self) -> str:
        return f"{self.key}={self.value}"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "key": self.key, "value": self.value, "why": self.why,
                "cost": round(self.cost, 3)}


def changed(space: SearchSpace, recipe: Mapping[str, Any], key: str,
            value: Any) -> dict[str, Any] | None:
    """The recipe with ``key`` set to ``value`` and the sub-parameters the change switches
    off dropped; None when the space cannot take it (a constant, a value outside it, or an
    option whose own sub-parameters the recipe has no values for)."""
    if key not in space.names() or recipe.get(key) == value:
        return None
    point = {**recipe, key: value}
    active = {p.name for p in space.active(point)}
    try:
        return space.validate_point({k: v for k, v in point.items() if k in active})
    except SpaceError:
        return None


def variants(space: SearchSpace, native: int | None) -> tuple[Variant, ...]:
    """The variants of the space's recipe most likely wrong for data whose images have a
    short side of ``native`` px (None: unknown), most likely first, at most MAX_VARIANTS."""
    recipe = space.defaults
    if recipe is None:
        return ()
    out = []
    size = int(recipe.get("image_size", 0) or 0)
    larger = sorted(s for s in space.values_of("image_size") or [] if int(s) > size)
    if size and native and larger and native >= RESOLUTION_RATIO * size:
        bigger = changed(space, recipe, "image_size", larger[0])
        if bigger is not None:
            out.append(Variant("image_size", larger[0], point=bigger,
                               cost=(larger[0] / size) ** 2, why=(
                                   f"the images are {native} px and the recipe sees them at "
                                   f"{size}: a detail that tells the classes apart may need "
                                   f"more pixels")))
    return tuple(out[:MAX_VARIANTS])


def race_text(found: Sequence[Variant]) -> str:
    """The startup line: what races the recipe, why, and how the race is judged."""
    listed = "; ".join(f"{v.name} ({v.why})" for v in found)
    return (f"race: the recipe's variants most likely wrong for this data run right after "
            f"it: {listed}. Where the budget is too short to search they race the recipe "
            f"for up to {RACE_SHARE:.0%} of the search's time, the same epochs each; a "
            f"variant replaces the recipe only when better by more than {Z:g} standard "
            f"errors of the validation score, and the winner trains on")


def standard_error(best: Mapping[str, Any], metric: str) -> float:
    """The standard error of ``metric`` recorded with a scored epoch (0 for epochs scored
    before errors were recorded: a plain comparison, as then)."""
    v = best.get(f"{metric}_se")
    return float(v) if isinstance(v, int | float) and math.isfinite(v) else 0.0


def beats(challenger: Mapping[str, Any], incumbent: Mapping[str, Any], metric: str) -> bool:
    """Does ``challenger`` (a scored epoch) score better than ``incumbent`` by more than Z
    standard errors of the difference? The two are taken as independent, which overstates
    the noise of scores on the same images: the rule errs toward the incumbent."""
    obj = Objective(metric)
    a, b = challenger.get(metric), incumbent.get(metric)
    if not obj.better(a, b):
        return False
    if not isinstance(b, int | float) or not math.isfinite(b):
        return True
    se = math.hypot(standard_error(challenger, metric), standard_error(incumbent, metric))
    return abs(float(a) - float(b)) > Z * se  # type: ignore[arg-type]


def best_within(history: Sequence[Mapping[str, Any]], metric: str,
                epochs: int) -> Mapping[str, Any] | None:
    """The best-scoring of a history's first ``epochs`` epochs."""
    return Objective(metric).best([h for h in history if int(h.get("epoch", 0)) <= epochs])


def judge(recipe: Sequence[Mapping[str, Any]], other: Sequence[Mapping[str, Any]],
          metric: str) -> tuple[bool, str]:
    """(does ``other`` replace the recipe, why), from their histories, at equal epochs: the
    best of each over the epochs both trained."""
    n = min(max((int(h.get("epoch", 0)) for h in hist), default=0)
             for hist in (recipe, other))
    a, b = best_within(other, metric, n), best_within(recipe, metric, n)
    if a is None:
        return False, "it has no score"
    if b is None:
        return True, "the recipe has no score"
    diff = float(a[metric]) - float(b[metric])
    se = math.hypot(standard_error(a, metric), standard_error(b, metric))
    text = (f"over the first {n} epochs each: {metric} {a[metric]:.4f} against the recipe's "
            f"{b[metric]:.4f} (difference {diff:+.4f}, {Z:g} standard errors {Z * se:.4f})")
    return beats(a, b, metric), text
