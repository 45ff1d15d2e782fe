"""What the data says before training: whether a mirror image keeps its class, on tiny
made-up images (arrows, whose left and right are each other's mirror image, and symmetric
blobs, whose mirror image is themselves)."""

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


@pytest.mark.parametrize("swaps", [{"horizontal": [["b", "d"]], "vertical": []}, {}])
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
