"""BOHB (Falkner et al. 2018): a hyperfcn space as ConfigSpace sees it, and Ray's TuneBOHB
handing back hyperfcn's flat configs, for `--searcher bohb` (with Ray's HyperBandForBOHB,
:func:`hyperfcn.scheduler.make_scheduler`).

Choices, conditional ones included, become categoricals of their options' positions ("0",
"1", ...: ConfigSpace then never compares a bool with an int), each conditional's
sub-parameters active only under their option; constants stay out of the model and come back
in :func:`decode`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .. import space as sp
from ..errors import UserError
from ..extras import message


class _ConfigSpaceParams:
    """Each kind of parameter as ConfigSpace hyperparameters and conditions (a
    space.ParamVisitor); collects them in ``params`` and ``conditions``."""

    def __init__(self, cs_module: Any) -> None:
        self.cs = cs_module
        self.params: list[Any] = []
        self.conditions: list[Any] = []

    def constant(self, p: sp.Constant) -> Any:
        return None

    def choice(self, p: sp.Choice) -> Any:
        return self._add(self.cs.CategoricalHyperparameter(
            p.name, [str(i) for i in range(len(p.values))]))

    def conditional(self, p: sp.Conditional) -> Any:
        parent = self._add(self.cs.CategoricalHyperparameter(
            p.name, [str(i) for i in range(len(p.options))]))
        for i, (_, sub) in enumerate(p.options):
            for q in sub:
                child = q.accept(self)
                if child is not None:
                    self.conditions.append(self.cs.EqualsCondition(child, parent, str(i)))
        return parent

    def uniform(self, p: sp.Uniform) -> Any:
        return self._add(self.cs.UniformFloatHyperparameter(p.name, p.low, p.high))

    def loguniform(self, p: sp.LogUniform) -> Any:
        return self._add(self.cs.UniformFloatHyperparameter(p.name, p.low, p.high, log=True))

    def quniform(self, p: sp.QUniform) -> Any:  # ConfigSpace 1.x has no q: decode rounds
        return self._add(self.cs.UniformFloatHyperparameter(p.name, p.low, p.high))

    def randint(self, p: sp.RandInt) -> Any:
        return self._add(self.cs.UniformIntegerHyperparameter(p.name, p.low, p.high))

    def _add(self, hp: Any) -> Any:
        self.params.append(hp)
        return hp


def config_space(space: sp.SearchSpace, seed: int) -> Any:
    """The space as a ConfigSpace.ConfigurationSpace."""
    try:
        import ConfigSpace as CS  # noqa: N817
    except ImportError:
        raise UserError(message("bohb")) from None
    v = _ConfigSpaceParams(CS)
    for p in space.params:
        p.accept(v)
    cs = CS.ConfigurationSpace(seed=seed)
    cs.add(v.params)
    if v.conditions:
        cs.add(v.conditions)
    return cs


def decode(space: sp.SearchSpace, cfg: Mapping[str, Any]) -> dict[str, Any]:
    """A BOHB config as hyperfcn's flat config: option positions back to values, constants
    added, quantised floats rounded, inactive parameters absent."""
    out: dict[str, Any] = {}

    def walk(params: tuple[sp.Param, ...] | list[sp.Param]) -> None:
        for p in params:
            if isinstance(p, sp.Constant):
                out[p.name] = p.value
            elif isinstance(p, sp.Conditional):
                key, sub = p.options[int(cfg[p.name])]
                out[p.name] = key
                walk(sub)
            elif isinstance(p, sp.Choice):
                out[p.name] = p.values[int(cfg[p.name])]
            elif isinstance(p, sp.QUniform):
                v = round(float(cfg[p.name]) / p.q) * p.q
                out[p.name] = int(v) if p.integer else v
            elif isinstance(p, sp.RandInt):
                out[p.name] = int(cfg[p.name])
            else:
                out[p.name] = float(cfg[p.name])

    walk(space.params)
    return out


def encode(space: sp.SearchSpace, point: Mapping[str, Any]) -> dict[str, Any]:
    """A values-form point (a space's ``defaults``) as BOHB's config: its active,
    non-constant parameters, choices by position."""
    out: dict[str, Any] = {}
    for p in space.active(point):
        if isinstance(p, sp.Constant):
            continue
        if isinstance(p, sp.Conditional):
            out[p.name] = str(list(p.keys).index(point[p.name]))
        elif isinstance(p, sp.Choice):
            out[p.name] = str(list(p.values).index(point[p.name]))
        else:
            out[p.name] = point[p.name]
    return out


def make_bohb(space: sp.SearchSpace, metric: str, mode: str, seed: int,
              points: list[dict[str, Any]] | None) -> Any:
    """Ray's TuneBOHB over ``space``, trying ``points`` first, suggesting flat configs."""
    cls = __getattr__("HyperfcnBOHB")
    searcher = cls(space=config_space(space, seed), metric=metric, mode=mode, seed=seed,
                   points_to_evaluate=[encode(space, pt) for pt in points or []])
    searcher.hyperfcn_space = space
    return searcher


_classes: dict[str, type] = {}


def __getattr__(name: str) -> Any:
    """``HyperfcnBOHB``, made on first use (Ray's TuneBOHB needs hpbandster, an optional
    extra), and found by pickle under this module's name when a search is restored."""
    if name != "HyperfcnBOHB":
        raise AttributeError(name)
    if name not in _classes:
        try:
            import hpbandster  # noqa: F401
            from ray.tune.search.bohb import TuneBOHB
        except ImportError:
            raise UserError(message("bohb")) from None

        class HyperfcnBOHB(TuneBOHB):
            """TuneBOHB handing back hyperfcn's flat configs (:func:`decode`)."""

            hyperfcn_space: sp.SearchSpace

            def suggest(self, trial_id: str) -> dict[str, Any] | None:
                cfg = super().suggest(trial_id)
                return None if cfg is None else decode(self.hyperfcn_space, cfg)

        HyperfcnBOHB.__module__ = __name__
        HyperfcnBOHB.__qualname__ = "HyperfcnBOHB"
        _classes[name] = HyperfcnBOHB
    return _classes[name]
