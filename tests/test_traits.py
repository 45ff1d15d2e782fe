"""What the data says before training: whether a mirror image or a rotation keeps its
class, on tiny made-up images (arrows, whose left and right are each other's mirror image;
symmetric blobs, whose mirror image is themselves; stripes whose angle is the class)."""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from hyperfcn.data.buckets import pack, plan_buckets
from hyperfcn.data.traits import Traits, read_traits
from hyperfcn.trial import TrialSettings


def _arrow(rng: np.random.Generator, pointing: str, side: int = 24) -> np.ndarray:
    """A bright arrow on a noisy background, pointing right then turned: a shaft, and a
    triangular head at its tip."""
    im = rng.normal(100, 25, (side, side)).clip(0, 255)
    mid = side // 2 + int(rng.integers(-2, 3))
    im[mid - 1:mid + 2, 3:side - 8] = 230
    for k in range(8):  # the head widens from the tip back
        im[max(0, mid - k):mid + k + 1, side - 3 - k] = 230
    out = np.repeat(im[..., None], 3, axis=2).astype(np.uint8)
    turns = {"right": 0, "up": 1, "left": 2, "down": 3}[pointing]
    return np.rot90(out, turns).copy()


def _blob(rng: np.random.Generator, c: int, side: int = 24) -> np.ndarray:
    yy, xx = np.mgrid[:side, :side] - side / 2
    r = np.hypot(yy, xx)
    ring = np.abs(r - (3 + 4 * c)) < 1.5
    im = rng.normal(100, 25, (side, side)) + 120 * ring
    return np.repeat(im.clip(0, 255)[..., None], 3, axis=2).astype(np.uint8)


def _packed(images: list[np.ndarray], labels: list[int]):
    return pack(images, labels, plan_buckets([im.shape[:2] for im in images], 2))


def test_arrows_left_and_right_swap_under_a_horizontal_mirror_and_up_and_down_vertically():
    rng = np.random.default_rng(0)
    classes = ["down", "left", "right", "up"]
    images = [_arrow(rng, c) for c in classes for _ in range(40)]
    labels = [i for i in range(4) for _ in range(40)]
    t = read_traits(_packed(images, labels), classes)
    assert t.horizontal.swaps == (("left", "right"),)
    assert t.vertical.swaps == (("down", "up"),)
    assert "left <-> right" in t.horizontal.describe()


def test_symmetric_classes_keep_their_class_and_too_few_images_cannot_tell():
    rng = np.random.default_rng(1)
    images = [_blob(rng, c) for c in range(3) for _ in range(30)]
    labels = [c for c in range(3) for _ in range(30)]
    t = read_traits(_packed(images, labels), ["small", "middle", "large"])
    assert t.horizontal.keeps_class and t.vertical.keeps_class
    few = [_arrow(rng, c) for c in ("left", "right") for _ in range(3)]
    t = read_traits(_packed(few, [0, 0, 0, 1, 1, 1]), ["left", "right"])
    assert t.horizontal.keeps_class  # 3 images a class: the recipe stays


def _stripes(rng: np.random.Generator, degrees: float, side: int = 32) -> np.ndarray:
    """Stripes at an angle (jittered a little), of a random period and phase."""
    yy, xx = np.mgrid[:side, :side]
    a = np.radians(degrees + rng.normal(0, 3))
    wave = np.sin((xx * np.cos(a) + yy * np.sin(a)) * 2 * np.pi / rng.uniform(5, 9)
                  + rng.uniform(0, 2 * np.pi))
    im = 128 + 70 * wave + rng.normal(0, 15, (side, side))
    return np.repeat(im.clip(0, 255)[..., None], 3, axis=2).astype(np.uint8)


def test_stripes_45_degrees_apart_turn_into_each_other_under_a_36_degree_rotation():
    """Their class means are flat (the phase varies), so the pixels cannot tell; the power
    spectra can. Arrows 90 degrees apart and rings are not turned into another class by 36
    degrees, and no angle, no test."""
    rng = np.random.default_rng(0)
    angles = ["deg0", "deg45", "deg90", "deg135"]
    images = [_stripes(rng, 45 * i) for i in range(4) for _ in range(40)]
    labels = [i for i in range(4) for _ in range(40)]
    t = read_traits(_packed(images, labels), angles, degrees=36.0)
    assert not t.rotation.keeps_class and t.rotation.degrees == 36.0
    assert all(abs(angles.index(a) - angles.index(b)) in (1, 3) for a, b in t.rotation.swaps)
    assert "36 degrees turns one class into another" in t.rotation.describe()
    assert read_traits(_packed(images, labels), angles).rotation.keeps_class  # not tested
    arrows = ["down", "left", "right", "up"]
    t = read_traits(_packed([_arrow(rng, c) for c in arrows for _ in range(40)], labels),
                    arrows, degrees=36.0)
    assert t.rotation.keeps_class
    rings = read_traits(_packed([_blob(rng, c) for c in range(4) for _ in range(40)],
                                labels), list("abcd"), degrees=36.0)
    assert rings.rotation.keeps_class


def test_a_rotation_that_turns_classes_into_each_other_leaves_the_search(tmp_path):
    """The search draws no rotation, the recipe rotates none (its factor goes with it), and
    the line says so; a space that fixes rotation: true keeps it, and the line warns."""
    from hyperfcn.space_setup import DataFit, adapt_to_data, rotation_degrees

    space = _space(tmp_path)
    assert rotation_degrees(space.defaults) == pytest.approx(36.0)
    stripes = Traits.from_dict({"rotation": {"degrees": 36.0, "swaps": [["deg0", "deg45"]]}})
    adapted, said = adapt_to_data(space, stripes)
    assert adapted.values_of("rotation") == [False]
    assert adapted.defaults["rotation"] is False and "rotation_factor" not in adapted.defaults
    assert adapted.defaults["flip"] == space.defaults["flip"]
    assert len(said) == 1 and "draws no rotation" in said[0] and "deg0 <-> deg45" in said[0]
    assert rotation_degrees(adapted.defaults) == 0.0
    assert "36 degrees turns one class" in DataFit(traits=stripes).read()
    fixed = _space(tmp_path, "parameters:\n  rotation: true\n  rotation_factor: 0.1\n"
                             "  image_size: 32\n")
    kept, said = adapt_to_data(fixed, stripes)
    assert kept is fixed and "fixes rotation: true" in said[0]


@pytest.mark.parametrize("swaps", [{"horizontal": [["b", "d"]], "vertical": []}, {},
                                   {"rotation": {"degrees": 36.0, "swaps": [["a", "b"]]}}])
def test_traits_round_trip_through_the_run_record(swaps):
    t = Traits.from_dict(swaps)
    assert Traits.from_dict(t.to_dict()) == t
    assert t.horizontal.keeps_class == (not swaps.get("horizontal"))


def _space(tmp_path, text: str | None = None):
    from hyperfcn.options import TuneOptions
    from hyperfcn.space_setup import resolve_space

    if text is None:
        return resolve_space(TuneOptions(data=tmp_path))
    (tmp_path / "space.yaml").write_text(text)
    return resolve_space(TuneOptions(data=tmp_path, space=tmp_path / "space.yaml"))


def test_a_mirror_that_swaps_classes_takes_flips_out_of_the_search_and_the_recipe(tmp_path):
    from hyperfcn.space_setup import adapt_to_data

    space = _space(tmp_path)
    assert space.defaults["flip"] == "horizontal"
    letters = Traits.from_dict({"horizontal": [["b", "d"], ["p", "q"]]})
    adapted, said = adapt_to_data(space, letters)
    assert adapted.values_of("flip") == ["none"] and adapted.defaults["flip"] == "none"
    assert len(said) == 1 and "b <-> d, p <-> q" in said[0] and "among none only" in said[0]
    # upside down is another class, left-right is not: the recipe keeps its flip
    arrows = Traits.from_dict({"vertical": [["down", "up"]]})
    adapted, said = adapt_to_data(space, arrows)
    assert adapted.values_of("flip") == ["none", "horizontal"]
    assert adapted.defaults["flip"] == "horizontal"
    assert adapt_to_data(space, Traits.from_dict({})) == (space, [])  # nothing to change


def test_a_flip_the_space_fixes_stays_and_the_data_finding_is_said(tmp_path):
    from hyperfcn.space_setup import adapt_to_data

    space = _space(tmp_path, "parameters:\n  flip: horizontal\n  image_size: 32\n")
    letters = Traits.from_dict({"horizontal": [["b", "d"]]})
    adapted, said = adapt_to_data(space, letters)
    assert adapted is space and "fixes flip: horizontal" in said[0]
    kept = _space(tmp_path, "parameters:\n  flip: none\n  image_size: 32\n")
    assert adapt_to_data(kept, letters) == (kept, [])


@dataclass
class _Request:  # the fields of tuning.search.SearchRequest that the data rules read
    run_dir: Path
    settings: TrialSettings
    space: object
    variants: tuple = ()


@pytest.mark.parametrize("resumed, recorded, flips", [
    (False, None, ["none"]),  # a new run: the letters' flips go
    (True, {"data_rules": {}}, ["none"]),  # a resume of a run that read the rules
    (True, {"kind": "tune"}, ["none", "horizontal", "horizontal_and_vertical"]),  # before
])
def test_a_run_begun_before_the_data_rules_resumes_with_the_space_it_searched(
        tmp_path, resumed, recorded, flips):
    from hyperfcn import artifacts as art
    from hyperfcn.data.arrays import TrialData
    from hyperfcn.rounds import Round
    from hyperfcn.rundir import Printer
    from hyperfcn.space_setup import DataFit
    from hyperfcn.tune_run import _fit_to_data

    rng = np.random.default_rng(0)
    classes = ["left", "right"]
    packed = _packed([_arrow(rng, c) for c in classes for _ in range(40)],
                     [i for i in range(2) for _ in range(40)])
    if recorded is not None:
        art.write_json(tmp_path / art.SETTINGS, recorded)
    req = _Request(tmp_path, TrialSettings(max_epochs=1), _space(tmp_path))
    said: list[str] = []
    req2, fit = _fit_to_data(req, TrialData(classes, {24: packed}, {24: packed}),
                             Round("tune", restore=resumed), DataFit(), Printer(False,
                                                                               said.append))
    assert req2.space.values_of("flip") == flips
    assert (fit.traits is None) == (flips != ["none"]) and bool(said) == (flips == ["none"])


def test_train_says_when_its_configs_rotation_turns_classes_into_each_other():
    """`train --config` trains the config as given, and says what the data showed."""
    from hyperfcn.api import _read_data
    from hyperfcn.config import ModelConfig
    from hyperfcn.data.arrays import TrialData
    from hyperfcn.rundir import Printer

    rng = np.random.default_rng(2)
    angles = ["deg0", "deg45", "deg90", "deg135"]
    packed = _packed([_stripes(rng, 45 * i) for i in range(4) for _ in range(40)],
                     [i for i in range(4) for _ in range(40)])
    lines: list[str] = []
    cfg = ModelConfig(image_size=32, rotation=True, rotation_factor=0.1, flip="none")
    fit = _read_data(cfg, TrialData(angles, {32: packed}, {32: packed}), 0,
                     Printer(False, lines.append))
    assert len(lines) == 1 and "`rotation: false` in the config" in lines[0]
    assert fit.said == tuple(lines)
    still = ModelConfig(image_size=32, rotation=False, flip="none")
    assert _read_data(still, TrialData(angles, {32: packed}, {32: packed}), 0,
                      Printer(False, lines.append)).said == ()
