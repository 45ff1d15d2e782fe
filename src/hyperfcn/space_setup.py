"""The search space a command runs: the packaged one or the user's file, with the options
that fix a parameter (`--image-size`, `--backbone`) applied, and every value it can take
checked before any work starts."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import BACKBONES, ModelConfig
from .data.folder import scan_folder
from .data.sizing import Sizing, fit_sizes, native_size
from .data.traits import Traits
from .errors import SpaceError, UserError
from .race import Variant
from .space import Conditional, Constant, SearchSpace, load_space, parse_space
from .space import default_space_text as text

if TYPE_CHECKING:
    from .options import TuneOptions

INTEGER_KEYS = frozenset(f.name for f in dataclasses.fields(ModelConfig) if f.type == "int")


def _fix(space: SearchSpace, key: str, value: Any, spec: Any = None) -> SearchSpace:
    """The space with `key` made a constant, or ``spec`` when given, and every default
    point's `key` set to ``value`` (or, when ``value`` is a function, what it returns for
    the point's own value)."""
    def point(pt: dict) -> dict:
        return {**pt, key: value(pt.get(key)) if callable(value) else value}

    raw = dict(space.raw)
    raw["parameters"] = {**raw["parameters"], key: value if spec is None else spec}
    d = raw.get("defaults")
    if isinstance(d, list):
        raw["defaults"] = [point(pt) for pt in d]
    elif d:
        raw["defaults"] = point(d)
    return parse_space(raw, space.source, ModelConfig.keys())


def space_file(backbone: str | None) -> str:
    return "backbone_space.yaml" if backbone else "default_space.yaml"


def default_space_text(backbone: str | None = None) -> str:
    """The packaged space (FCN, or the recipe space of a backbone) as YAML text."""

    out = text(space_file(backbone))
    if backbone:
        if backbone not in BACKBONES:
            raise UserError(f"--backbone {backbone}: use one of {', '.join(BACKBONES)}")
        out = out.replace("  backbone: mobilenetv2", f"  backbone: {backbone}")
    return out


def uses_backbone(space: SearchSpace) -> bool:
    if "backbone" not in space.names():
        return False
    return any(v != "none" for v in (space.values_of("backbone") or ["none"]))


def resolve_space(opts: TuneOptions) -> SearchSpace:
    space = load_space(opts.space, known_keys=ModelConfig.keys(),
                       name=space_file(opts.backbone))
    if opts.backbone is not None:
        space = _fix(space, "backbone", opts.backbone)
    if opts.image_size is not None:
        space = _fix(space, "image_size", opts.image_size)
    if "image_size" not in space.names():
        raw = dict(space.raw)
        raw["parameters"] = {**raw["parameters"], "image_size": ModelConfig.image_size}
        space = parse_space(raw, space.source, ModelConfig.keys())
    p = space.get("image_size")
    sizes = space.values_of("image_size")
    if sizes is None or len(sizes) > 8 or not all(isinstance(s, int) for s in sizes):
        raise SpaceError(f"{space.source}: image_size must be a constant or a choice of up "
                         f"to 8 integers (each size is decoded and cached once), got {p}")
    for s in sizes:
        ModelConfig(image_size=s)
    _check_ranges(space)
    for pt in space.points:
        ModelConfig.from_dict(pt, f"{space.source}: defaults")
    return space


def _check_ranges(space: SearchSpace) -> None:
    """Every value a parameter can take must be a valid config value: a range that leaves
    the rules fails here, in a second, not in the trials that happen to sample it."""
    for p in space.walk():
        if p.name in INTEGER_KEYS and not p.integral():
            raise SpaceError(
                f"{space.source}: parameters.{p.name}: {p.describe()} draws fractions, but "
                f"{p.name} is an integer; use randint [low, high], quniform [low, high, "
                f"step] with whole numbers, or a choice of integers")
        ends = p.ends()
        for v in ends:
            try:
                ModelConfig.from_dict({p.name: v}, space.source)
            except SpaceError as e:
                raise SpaceError(f"{e} (in the range of {p.name!r}: every value it can take "
                                 f"must be valid)") from None


def fit_sizes_to_data(space: SearchSpace, data: Path, seed: int
                      ) -> tuple[SearchSpace, Sizing | None]:
    """The space with the searched image sizes that would upsample the data dropped (see
    :mod:`hyperfcn.data.sizing`), and what was found. A constant size (``--image-size``, or one
    the space file fixes) is the user's choice and stays."""
    asked = sizes(space)
    if isinstance(space.get("image_size"), Constant):
        return space, None
    native, probed = native_size(scan_folder(data, what="DATA").files, seed)
    kept = fit_sizes(asked, native)
    found = Sizing(native=native, probed=probed, asked=tuple(asked), kept=tuple(kept))
    if not found.changed:
        return space, found

    def nearest(v: Any) -> int:  # a recipe's size, or the largest kept one below it
        below = [k for k in kept if v is None or k <= v]
        return max(below) if below else kept[0]

    spec = kept[0] if len(kept) == 1 else {"choice": kept}
    return _fix(space, "image_size", nearest, spec), found


@dataclass(frozen=True)
class DataFit:
    """What the data changed in the space a search runs: the sizes its resolution allows
    and the flips its mirror test allows, with the lines that said so (the startup lines,
    the run's settings, the report)."""

    sizing: Sizing | None = None
    traits: Traits | None = None
    said: tuple[str, ...] = ()
    variants: tuple[Variant, ...] = ()  # of the recipe, run right after it (race.py)

    def to_settings(self) -> dict[str, Any]:
        return {"image_size_rule": self.sizing and {**dataclasses.asdict(self.sizing),
                                                    "text": self.sizing.describe()},
                "data_rules": self.traits and {"traits": self.traits.to_dict(),
                                               "read": self.read(), "said": list(self.said)},
                "race_variants": [v.to_dict() for v in self.variants]}

    def read(self) -> str:
        """What the tests found: the horizontal mirror always (the recipe flips along it),
        the vertical one where it swaps classes, the rotation where one was tested."""
        if self.traits is None:
            return ""
        tests = [self.traits.horizontal] + ([] if self.traits.vertical.keeps_class
                                            else [self.traits.vertical])
        rotation = [self.traits.rotation] if self.traits.rotation.degrees else []
        return "; ".join(t.describe() for t in [*tests, *rotation])


# The axes each flip mode mirrors along.
FLIP_AXES = {"none": (), "horizontal": ("horizontal",), "vertical": ("vertical",),
             "horizontal_and_vertical": ("horizontal", "vertical")}


def adapt_to_data(space: SearchSpace, traits: Traits) -> tuple[SearchSpace, list[str]]:
    """The space without the flips and the rotation the data rules out
    (:mod:`hyperfcn.data.traits`), and the lines that say what was read and done."""
    space, said = _adapt_flips(space, traits)
    space, more = _adapt_rotation(space, traits)
    return space, said + more


def _adapt_rotation(space: SearchSpace, traits: Traits) -> tuple[SearchSpace, list[str]]:
    """Without rotation where a rotation by the recipe's angle turns one class into
    another: the search draws no rotation, and the recipe rotates none. A constant
    `rotation: true` is the user's choice: it stays, and a line says what the data
    showed."""
    found = traits.rotation
    if found.keeps_class or "rotation" not in space.names():
        return space, []
    param = space.get("rotation")
    if isinstance(param, Constant):
        return space, [f"data: {found.describe()}, yet the space fixes rotation: true, "
                       f"which trains on images of one class turned toward another"
                       ] if param.value else []
    if False not in (param.choices() or []):
        return space, []
    off = {p.name for _, sub in param.options for p in sub} if isinstance(
        param, Conditional) else set()  # rotation_factor
    raw = dict(space.raw)
    raw["parameters"] = {**raw["parameters"], "rotation": False}

    def point(pt: dict) -> dict:
        return {**{k: v for k, v in pt.items() if k not in off}, "rotation": False}

    d = raw.get("defaults")
    raw["defaults"] = [point(p) for p in d] if isinstance(d, list) else d and point(d)
    return parse_space(raw, space.source, ModelConfig.keys()), [
        f"data: {found.describe()}, so the search draws no rotation (a space that fixes "
        f"rotation overrides this)"]


def _adapt_flips(space: SearchSpace, traits: Traits) -> tuple[SearchSpace, list[str]]:
    """The space without the flips the data rules out (along an axis whose mirror image is
    another class). A recipe's flip becomes the most it may keep (horizontal_and_vertical
    -> horizontal -> none). A constant `flip` is the user's choice: it stays, and a line
    says what the data showed."""
    wrong = _swapping_axes(traits)
    if not wrong or "flip" not in space.names():
        return space, []
    param = space.get("flip")
    if isinstance(param, Constant):
        conflict = flip_conflict(str(param.value), traits, "the space fixes")
        return space, [conflict] if conflict else []
    choices = [str(v) for v in param.choices() or []]
    allowed = [v for v in choices if not wrong & set(FLIP_AXES.get(v, ()))] or ["none"]
    if allowed == choices:
        return space, []

    def kept(v: Any) -> str:  # the allowed mode that mirrors most, along v's axes only
        axes = set(FLIP_AXES.get(str(v), ()))
        fits = [a for a in allowed if set(FLIP_AXES.get(a, ())) <= axes] or allowed[:1]
        return max(fits, key=lambda a: len(FLIP_AXES.get(a, ())))

    spec = allowed[0] if len(allowed) == 1 else {"choice": allowed}
    return _fix(space, "flip", kept, spec), [
        f"data: {_found(traits)}, so flip is searched among {', '.join(allowed)} only (a "
        f"space that fixes flip overrides this)"]


def _swapping_axes(traits: Traits) -> set[str]:
    return {t.axis for t in (traits.horizontal, traits.vertical) if not t.keeps_class}


def _found(traits: Traits) -> str:
    return "; ".join(t.describe() for t in (traits.horizontal, traits.vertical)
                     if not t.keeps_class)


def flip_conflict(flip: str, traits: Traits, who: str = "the config gives") -> str | None:
    """What to say when a fixed flip mirrors along an axis whose mirror image is another
    class (None when it does not)."""
    if not _swapping_axes(traits) & set(FLIP_AXES.get(flip, ())):
        return None
    return (f"data: {_found(traits)}, yet {who} flip: {flip}, which trains on images of "
            f"one class labelled as another")


def rotation_degrees(choices: Mapping[str, Any]) -> float:
    """The angle the rotation test reads the data at: the largest rotation of a recipe or
    a config (its factor is a share of a full turn), or 0 where it rotates nothing."""
    if not choices.get("rotation"):
        return 0.0
    return 360.0 * float(choices.get("rotation_factor") or 0.0)


def sizes(space: SearchSpace) -> list[int]:
    return sorted(space.values_of("image_size"))  # type: ignore[arg-type]


def space_infos(space: SearchSpace):
    from .tb import hparam_info  # TensorBoard, only when writing HParams

    return [hparam_info(p.name, None if p.interval() else p.choices(), p.interval())
            for p in space.walk() if not isinstance(p, Constant)]

