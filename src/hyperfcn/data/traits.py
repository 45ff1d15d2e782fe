"""What the data says about the choices a recipe made on photos of objects can get wrong,
read from the decoded training images before any training.

Today: whether a mirror image keeps its class. A flip is a safe augmentation for a photo of
a flower and a wrong one for the letter b, whose mirror image is a d. The rule lets
each training image, mirrored, vote for the class whose mean image it is nearest: where a
class's mirrored images vote for another class significantly more than for their own (while
as they are they vote for their own), and that class's mirrored images come back to it
(b -> d and d -> b), a flip along that axis turns one class into another. Photos of objects
seen from either side have near-symmetric class means and never pass; a dataset too small to
tell never passes either, and keeps the recipe.

Pure NumPy on a seeded sample of at most SAMPLE_PER_CLASS images a class, at SIDE x SIDE
grey levels: well under a second on any data size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from .buckets import Packed

# Images of a class averaged: past a few hundred the class mean changes less than the
# differences the rule looks for.
SAMPLE_PER_CLASS = 200
# The side the class means are compared at: coarse enough that the images' jitter in
# position averages out, fine enough to keep a glyph's or an arrow's shape.
SIDE = 16
# A mirror image is another class when significantly more of a class's mirrored images
# look like that class than like their own: a sign test at this many standard errors (3: a
# chance of about 1 in 700 a class pair, and both classes of a pair must pass).
Z = 3.0
# Classes with fewer training images are left out of the test: too few votes to tell.
MIN_IMAGES = 8


@dataclass(frozen=True)
class MirrorTest:
    """One axis's mirror test: the class pairs the mirror image swaps."""

    axis: str  # "horizontal" (left-right) or "vertical" (upside down)
    swaps: tuple[tuple[str, str], ...]

    @property
    def keeps_class(self) -> bool:
        return not self.swaps

    def describe(self) -> str:
        if self.keeps_class:
            return f"a {self.axis} mirror image keeps its class"
        pairs = ", ".join(f"{a} <-> {b}" for a, b in self.swaps)
        return f"a {self.axis} mirror image is another class ({pairs})"


@dataclass(frozen=True)
class Traits:
    """What was read from the data: the mirror test of each axis."""

    horizontal: MirrorTest
    vertical: MirrorTest

    def to_dict(self) -> dict:
        return {t.axis: [list(p) for p in t.swaps] for t in (self.horizontal, self.vertical)}

    @classmethod
    def from_dict(cls, d: dict) -> Traits:
        return cls(*(MirrorTest(axis, tuple(tuple(p) for p in d.get(axis, [])))
                     for axis in ("horizontal", "vertical")))


def read_traits(packed: Packed, classes: Sequence[str], seed: int = 0) -> Traits:
    """The data's traits from its training images (any one image size's arrays)."""
    small, labels = _sample(packed, len(classes), seed)
    return Traits(horizontal=mirror_test(small, labels, classes, "horizontal"),
                  vertical=mirror_test(small, labels, classes, "vertical"))


def _sample(packed: Packed, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """At most SAMPLE_PER_CLASS images a class, each at SIDE x SIDE grey levels,
    standardised (zero mean, unit deviation), and their labels."""
    rng = np.random.default_rng(seed)
    labels = np.concatenate([b.y for b in packed.buckets]).astype(np.int64)
    bucket = np.repeat(np.arange(len(packed.buckets)), [len(b.y) for b in packed.buckets])
    row = np.concatenate([np.arange(len(b.y)) for b in packed.buckets])
    keep = np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:SAMPLE_PER_CLASS]
                           for c in range(k)]).astype(np.int64)
    small = [_small(packed.buckets[bucket[j]].x[row[j]]) for j in keep]
    return (np.stack(small) if small else np.zeros((0, SIDE, SIDE), np.float32)), labels[keep]


def _small(image: np.ndarray) -> np.ndarray:
    grey = Image.fromarray(np.asarray(image, np.uint8)).convert("L")
    a = np.asarray(grey.resize((SIDE, SIDE), Image.BOX), np.float32)
    return (a - a.mean()) / (a.std() + 1e-6)


def mirror_test(small: np.ndarray, labels: np.ndarray, classes: Sequence[str],
                axis: str) -> MirrorTest:
    """The class pairs a mirror image along ``axis`` swaps. Each image, mirrored, votes for
    the class whose mean it is nearest; class c's mirror image is class o when, of c's
    mirrored images, significantly more vote o than c (a sign test at Z standard errors)
    while its images as they are vote c over o, and o's mirrored images likewise vote c."""
    flip = (lambda m: m[..., ::-1]) if axis == "horizontal" else (lambda m: m[..., ::-1, :])
    present = [c for c in range(len(classes)) if (labels == c).sum() >= MIN_IMAGES]
    if len(present) < 2:
        return MirrorTest(axis, ())
    means = np.stack([small[labels == c].mean(0) for c in present])
    plain, mirrored = _nearest(small, means), _nearest(flip(small), means)
    goes: dict[int, int] = {}
    for i, c in enumerate(present):
        mine = labels == c
        votes = np.bincount(mirrored[mine], minlength=len(present))
        as_is = np.bincount(plain[mine], minlength=len(present))
        o = int(np.argmax(np.where(np.arange(len(present)) == i, -1, votes)))
        n_o, n_c = int(votes[o]), int(votes[i])
        if as_is[i] > as_is[o] and n_o - n_c > Z * np.sqrt(max(n_o + n_c, 1)):
            goes[i] = o
    pairs = sorted({tuple(sorted((i, o))) for i, o in goes.items() if goes.get(o) == i})
    return MirrorTest(axis, tuple((classes[present[a]], classes[present[b]])
                                  for a, b in pairs))


def _nearest(small: np.ndarray, means: np.ndarray) -> np.ndarray:
    """The index of the mean each image is nearest."""
    x, m = small.reshape(len(small), -1), means.reshape(len(means), -1)
    d = (m * m).sum(1)[None, :] - 2.0 * x @ m.T
    return d.argmin(1) if len(x) else np.zeros(0, np.int64)
