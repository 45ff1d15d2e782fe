"""The search space as plain data: parsed from YAML, validated, with an initial point.

Parameters come out of a sample *flat*: a conditional choice such as ``head`` yields
``{"head": "dense", "dense_units": 128}``, so configs, trials.csv and TensorBoard all see one
level of keys. Translating to a searcher's own format lives in
:mod:`hyperfcn.tuning.searchers`.
"""

from __future__ import annotations

import contextlib
import math
import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

import yaml

from . import yamlio
from .errors import SpaceError
from .hints import command

Scalar = int | float | str | bool
DISTRIBUTIONS = ("choice", "uniform", "loguniform", "quniform", "randint")


class ParamVisitor(Protocol):
    """What a searcher adapter implements to translate each kind of parameter (the
    parameter picks the method: no type switches in the adapters)."""

    def constant(self, p: Constant) -> Any: ...
    def choice(self, p: Choice) -> Any: ...
    def conditional(self, p: Conditional) -> Any: ...
    def uniform(self, p: Uniform) -> Any: ...
    def loguniform(self, p: LogUniform) -> Any: ...
    def quniform(self, p: QUniform) -> Any: ...
    def randint(self, p: RandInt) -> Any: ...


@dataclass(frozen=True)
class Param:
    """A parameter: it describes, bounds and checks itself."""

    name: str

    def describe(self) -> str:
        raise NotImplementedError

    def contains(self, value: Any) -> bool:
        """Whether a value lies in this parameter's domain."""
        raise NotImplementedError

    def choices(self) -> list[Scalar] | None:
        """The finite set of values it can take, or None for a continuous range."""
        return None

    def ends(self) -> list[Scalar]:
        """The values every rule on it must accept: a range's two ends, every choice."""
        return self.choices() or []

    def interval(self) -> tuple[float, float] | None:
        """(low, high) of a numeric range; None for a constant or a choice."""
        return None

    def integral(self) -> bool:
        """Whether every value it can take is a whole number (what an integer key needs)."""
        return all(_is_number(v) and float(v).is_integer() for v in self.choices() or [])

    def draw(self, rng: random.Random) -> Scalar:
        raise NotImplementedError

    def accept(self, visitor: ParamVisitor) -> Any:
        raise NotImplementedError


@dataclass(frozen=True)
class Constant(Param):
    value: Scalar

    def describe(self) -> str:
        return f"the constant {self.value!r}"

    def contains(self, value: Any) -> bool:
        return _same(value, self.value)

    def choices(self) -> list[Scalar]:
        return [self.value]

    def draw(self, rng: random.Random) -> Scalar:
        return self.value

    def accept(self, visitor: ParamVisitor) -> Any:
        return visitor.constant(self)


@dataclass(frozen=True)
class Choice(Param):
    values: tuple[Scalar, ...]

    def describe(self) -> str:
        return f"choice {list(self.values)!r}"

    def contains(self, value: Any) -> bool:
        return any(_same(value, v) for v in self.values)

    def index(self, value: Any) -> int:
        return next(i for i, v in enumerate(self.values) if _same(value, v))

    def choices(self) -> list[Scalar]:
        return list(self.values)

    def draw(self, rng: random.Random) -> Scalar:
        return rng.choice(self.values)

    def accept(self, visitor: ParamVisitor) -> Any:
        return visitor.choice(self)


@dataclass(frozen=True)
class Conditional(Param):
    """A choice whose options each switch on their own sub-parameters."""

    options: tuple[tuple[Scalar, tuple[Param, ...]], ...]

    @property
    def keys(self) -> tuple[Scalar, ...]:
        return tuple(k for k, _ in self.options)

    def sub(self, key: Scalar) -> tuple[Param, ...]:
        for k, params in self.options:
            if _same(k, key):
                return params
        raise KeyError(key)

    def describe(self) -> str:
        return f"choice {list(self.keys)!r}"

    def contains(self, value: Any) -> bool:
        return any(_same(value, k) for k in self.keys)

    def index(self, value: Any) -> int:
        return next(i for i, k in enumerate(self.keys) if _same(value, k))

    def choices(self) -> list[Scalar]:
        return list(self.keys)

    def draw(self, rng: random.Random) -> Scalar:
        return rng.choice(self.keys)

    def accept(self, visitor: ParamVisitor) -> Any:
        return visitor.conditional(self)


@dataclass(frozen=True)
class _Range(Param):
    low: float
    high: float

    def contains(self, value: Any) -> bool:
        return _is_number(value) and self.low <= value <= self.high

    def ends(self) -> list[Scalar]:
        return [self.low, self.high]

    def interval(self) -> tuple[float, float]:
        return (self.low, self.high)

    def integral(self) -> bool:
        return False  # uniform and loguniform draw fractions


@dataclass(frozen=True)
class Uniform(_Range):
    def describe(self) -> str:
        return f"uniform [{self.low}, {self.high}]"

    def draw(self, rng: random.Random) -> Scalar:
        return rng.uniform(self.low, self.high)

    def accept(self, visitor: ParamVisitor) -> Any:
        return visitor.uniform(self)


@dataclass(frozen=True)
class LogUniform(_Range):
    def describe(self) -> str:
        return f"loguniform [{self.low}, {self.high}]"

    def draw(self, rng: random.Random) -> Scalar:
        return math.exp(rng.uniform(math.log(self.low), math.log(self.high)))

    def accept(self, visitor: ParamVisitor) -> Any:
        return visitor.loguniform(self)


@dataclass(frozen=True)
class QUniform(_Range):
    q: float = 1.0

    @property
    def integer(self) -> bool:
        return all(float(t).is_integer() for t in (self.low, self.high, self.q))

    def describe(self) -> str:
        return f"quniform [{self.low}, {self.high}] step {self.q}"

    def integral(self) -> bool:
        return self.integer

    def draw(self, rng: random.Random) -> Scalar:
        v = min(max(round(rng.uniform(self.low, self.high) / self.q) * self.q, self.low),
                self.high)
        return int(round(v)) if self.integer else v

    def accept(self, visitor: ParamVisitor) -> Any:
        return visitor.quniform(self)


@dataclass(frozen=True)
class RandInt(_Range):
    """Integers from low to high, both included."""

    low: int
    high: int

    def describe(self) -> str:
        return f"randint [{self.low}, {self.high}] (both included)"

    def contains(self, value: Any) -> bool:
        return super().contains(value) and float(value).is_integer()

    def choices(self) -> list[Scalar]:
        return list(range(self.low, self.high + 1))

    def ends(self) -> list[Scalar]:
        return [self.low, self.high]

    def integral(self) -> bool:
        return True

    def draw(self, rng: random.Random) -> Scalar:
        return rng.randint(self.low, self.high)

    def accept(self, visitor: ParamVisitor) -> Any:
        return visitor.randint(self)


@dataclass(frozen=True)
class SearchSpace:
    params: tuple[Param, ...]
    points: tuple[Mapping[str, Any], ...] = ()  # evaluated first, in order
    source: str = "<space>"
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def defaults(self) -> Mapping[str, Any] | None:
        """The initial best guess: the first point evaluated."""
        return self.points[0] if self.points else None

    def walk(self) -> Iterator[Param]:
        """Every parameter, nested ones included."""
        yield from _walk(self.params)

    def names(self) -> list[str]:
        return [p.name for p in self.walk()]

    def get(self, name: str) -> Param:
        for p in self.walk():
            if p.name == name:
                return p
        raise KeyError(name)

    def active(self, config: Mapping[str, Any]) -> list[Param]:
        """The parameters a config switches on (conditional children of chosen options)."""
        out: list[Param] = []

        def visit(params: tuple[Param, ...]) -> None:
            for p in params:
                out.append(p)
                if isinstance(p, Conditional) and p.name in config:
                    with contextlib.suppress(KeyError):
                        visit(p.sub(config[p.name]))

        visit(self.params)
        return out

    def validate_point(self, point: Mapping[str, Any], what: str = "point") -> dict[str, Any]:
        """Check a values-form point against the space; return it with constants filled in."""
        if not isinstance(point, Mapping):
            raise SpaceError(f"{self.source}: {what} must be a mapping of parameter: value, "
                             f"got {point!r}")
        known = set(self.names())
        for key in point:
            if key not in known:
                raise SpaceError(f"{self.source}: {what}.{key}: unknown parameter; "
                                 f"known: {', '.join(sorted(known))}")
        out: dict[str, Any] = {}
        for p in self.active(point):
            if isinstance(p, Constant):
                if p.name in point and not _same(point[p.name], p.value):
                    raise SpaceError(f"{self.source}: {what}.{p.name}={point[p.name]!r} but the "
                                     f"space fixes it to {p.value!r}")
                out[p.name] = p.value
                continue
            if p.name not in point:
                raise SpaceError(f"{self.source}: {what} lacks {p.name!r}; give it a value "
                                 f"from {p.describe()}")
            value = point[p.name]
            if not p.contains(value):
                raise SpaceError(f"{self.source}: {what}.{p.name}={value!r} is outside "
                                 f"{p.describe()}")
            out[p.name] = value
        extra = set(point) - set(out)
        if extra:
            raise SpaceError(f"{self.source}: {what} sets {', '.join(sorted(extra))}, which the "
                             f"chosen options switch off; remove them")
        return out

    def sample(self, rng: random.Random) -> dict[str, Any]:
        """A random flat config (used by tests and as a reference sampler)."""
        out: dict[str, Any] = {}

        def visit(params: tuple[Param, ...]) -> None:
            for p in params:
                out[p.name] = p.draw(rng)
                if isinstance(p, Conditional):
                    visit(p.sub(out[p.name]))

        visit(self.params)
        return out

    def values_of(self, name: str) -> list[Scalar] | None:
        """The finite set of values a parameter can take, or None for a continuous one."""
        return self.get(name).choices()


def is_recipe(config: Mapping[str, Any], points: Sequence[Mapping[str, Any]]) -> bool:
    """Is this trial config one of the space's recipes (its ``defaults`` points)?"""
    return any(p and all(config.get(k) == v for k, v in p.items()) for p in points)


def _walk(params: tuple[Param, ...]) -> Iterator[Param]:
    for p in params:
        yield p
        if isinstance(p, Conditional):
            for _, sub in p.options:
                yield from _walk(sub)


def _same(a: Any, b: Any) -> bool:
    # True == 1 in Python; a space must not accept 1 for a boolean or True for 1.
    return type(a) is type(b) and a == b or (
        not isinstance(a, bool) and not isinstance(b, bool)
        and isinstance(a, int | float) and isinstance(b, int | float) and a == b)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


# ---------------------------------------------------------------- parsing

def _parse_param(name: str, spec: Any, where: str) -> Param:
    loc = f"{where}.{name}"
    if not isinstance(name, str) or not name.isidentifier():
        raise SpaceError(f"{loc}: parameter names must be identifiers, got {name!r}")
    if spec is None:
        raise SpaceError(f"{loc}: empty value; give a constant or one of "
                         f"{', '.join(DISTRIBUTIONS)}")
    if isinstance(spec, int | float | str | bool):
        return Constant(name, spec)
    if not isinstance(spec, Mapping) or len(spec) != 1:
        raise SpaceError(f"{loc}: expected a constant or a mapping with exactly one of "
                         f"{', '.join(DISTRIBUTIONS)}, got {spec!r}")
    (kind, args), = spec.items()
    if kind not in DISTRIBUTIONS:
        raise SpaceError(f"{loc}: unknown distribution {kind!r}; use one of "
                         f"{', '.join(DISTRIBUTIONS)}")
    if kind == "choice":
        return _parse_choice(name, args, loc)
    return _parse_range(name, kind, args, loc)


def _parse_choice(name: str, args: Any, loc: str) -> Param:
    """``choice: [a, b]`` (Choice) or ``choice: {opt: {sub: ...}}`` (Conditional)."""
    if isinstance(args, Mapping):
        if not args:
            raise SpaceError(f"{loc}.choice: empty choice; list at least one option")
        options = []
        for key, sub in args.items():
            if not isinstance(key, int | float | str | bool):
                raise SpaceError(f"{loc}.choice: option {key!r} must be a scalar")
            if sub is None:
                sub = {}
            if not isinstance(sub, Mapping):
                raise SpaceError(f"{loc}.choice.{key}: the parameters an option switches "
                                 f"on must be a mapping (or {{}}), got {sub!r}")
            sub_params = tuple(_parse_param(n, s, f"{loc}.choice.{key}")
                               for n, s in sub.items())
            options.append((key, sub_params))
        return Conditional(name, tuple(options))
    if not isinstance(args, list | tuple) or not args:
        raise SpaceError(f"{loc}.choice: empty choice or not a list ({args!r}); "
                         f"list at least one value")
    for v in args:
        if not isinstance(v, int | float | str | bool):
            raise SpaceError(f"{loc}.choice: value {v!r} must be a scalar; for options "
                             f"with their own parameters write choice as a mapping")
    if len(set(map(repr, args))) != len(args):
        raise SpaceError(f"{loc}.choice: duplicate values in {args!r}")
    return Choice(name, tuple(args))


def _parse_range(name: str, kind: str, args: Any, loc: str) -> Param:
    """``uniform``, ``loguniform``, ``quniform`` or ``randint`` over [low, high]."""
    n = 3 if kind == "quniform" else 2
    form = "[low, high, q]" if kind == "quniform" else "[low, high]"
    if not isinstance(args, list | tuple) or len(args) != n or not all(map(_is_number, args)):
        raise SpaceError(f"{loc}.{kind}: expected {form} numbers, got {args!r}")
    low, high = args[0], args[1]
    if low > high:
        raise SpaceError(f"{loc}.{kind}: low {low} > high {high}; swap them")
    if kind == "uniform":
        return Uniform(name, float(low), float(high))
    if kind == "loguniform":
        if low <= 0:
            raise SpaceError(f"{loc}.loguniform: low is {low}, but a log range needs "
                             f"0 < low <= high")
        return LogUniform(name, float(low), float(high))
    if kind == "quniform":
        if args[2] <= 0:
            raise SpaceError(f"{loc}.quniform: q is {args[2]}, but must be > 0")
        return QUniform(name, low, high, args[2])
    if not all(float(v).is_integer() for v in args):
        raise SpaceError(f"{loc}.randint: bounds must be integers, got {args!r}")
    return RandInt(name, int(low), int(high))


def parse_space(data: Any, source: str = "<space>",
                known_keys: set[str] | None = None) -> SearchSpace:
    if not isinstance(data, Mapping):
        raise SpaceError(f"{source}: expected a mapping with 'parameters' (and optional "
                         f"'defaults'), got {type(data).__name__}")
    unknown = set(data) - {"parameters", "defaults"}
    if unknown:
        names = ", ".join(sorted(map(str, unknown)))
        raise SpaceError(f"{source}: unknown top-level key(s) {names}; allowed: parameters, "
                         f"defaults")
    params_spec = data.get("parameters")
    if not isinstance(params_spec, Mapping) or not params_spec:
        raise SpaceError(f"{source}: 'parameters' must be a non-empty mapping")
    params = tuple(_parse_param(n, s, f"{source}: parameters") for n, s in params_spec.items())
    seen: set[str] = set()
    for p in _walk(params):
        if p.name in seen:
            raise SpaceError(f"{source}: parameter {p.name!r} is defined twice; names must be "
                             f"unique, nested ones included")
        seen.add(p.name)
        if known_keys is not None and p.name not in known_keys:
            raise SpaceError(f"{source}: parameters.{p.name}: unknown key; known keys: "
                             f"{', '.join(sorted(known_keys))}")
    space = SearchSpace(params=params, source=source, raw=data)
    defaults = data.get("defaults")
    # `defaults` is one point, or a list of points to evaluate first in that order.
    listed = defaults if isinstance(defaults, list) else [] if defaults is None else [defaults]
    points = tuple(space.validate_point(d, "defaults" if len(listed) == 1 else f"defaults[{i}]")
                   for i, d in enumerate(listed))
    return SearchSpace(params=params, points=points, source=source, raw=data)


def load_space(path: str | Path | None = None, known_keys: set[str] | None = None,
               name: str = "default_space.yaml") -> SearchSpace:
    """Read a space file (safe YAML), or the packaged default when path is None."""
    if path is None:
        text = resources.files("hyperfcn").joinpath(name).read_text()
        source = name
    else:
        p = Path(path)
        if not p.is_file():

            raise SpaceError(f"{p}: space file not found; write one with "
                             f"`{command(['space'])} > {p.name}` and edit it")
        text = p.read_text()
        source = str(p)
    try:
        data = yamlio.load(text)
    except yaml.YAMLError as e:
        raise SpaceError(f"{source}: not valid YAML ({str(e).splitlines()[0]})") from None
    return parse_space(data, source, known_keys)


def default_space_text(name: str = "default_space.yaml") -> str:
    return resources.files("hyperfcn").joinpath(name).read_text()
