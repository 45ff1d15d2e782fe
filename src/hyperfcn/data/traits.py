"""What the data says about the choices a recipe made on photos of objects can get wrong,
read from the decoded training images before any training.

Whether a mirror image keeps its class. A flip is a safe augmentation for a photo of a
flower and a wrong one for the letter b, whose mirror image is a d. The rule lets each
training image, mirrored, vote for the class whose mean image it is nearest: where a
class's mirrored images vote for another class significantly more than for their own (while
as they are they vote for their own), and that class's mirrored images come back to it
(b -> d and d -> b), a flip along that axis turns one class into another. Photos of objects
seen from either side have near-symmetric class means and never pass; a dataset too small to
tell never passes either, and keeps the recipe.

Whether a rotation by the recipe's largest angle keeps the class, the same way: each image
rotated one way votes, and where a class's rotated images go to another class whose images,
rotated back the other way, come to it (stripes at 0 and 45 degrees under a 36 degree
rotation), the rotation turns one class into the other. Orientation often lives in
textures whose class means are flat (the stripes' phase varies), so the images also vote
by their power spectra, which keep orientation and drop position.

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


class _Swaps:
    """A test's finding: the class pairs a change of the images turns into each other."""

    swaps: tuple[tuple[str, str], ...]

    @property
    def keeps_class(self) -> bool:
        return not self.swaps

    def _said(self, change: str, swapped: str) -> str:
        if self.keeps_class:
            return f"{change} keeps its class"
        return f"{change} {swapped} ({', '.join(f'{a} <-> {b}' for a, b in self.swaps)})"


@dataclass(frozen=True)
class MirrorTest(_Swaps):
    """One axis's mirror test: the class pairs the mirror image swaps."""

    axis: str  # "horizontal" (left-right) or "vertical" (upside down)
    swaps: tuple[tuple[str, str], ...]

    def describe(self) -> str:
        return self._said(f"a {self.axis} mirror image", "is another class")


@dataclass(frozen=True)
class RotationTest(_Swaps):
    """The rotation test at one angle: the class pairs a rotation by it turns into each
    other (none where no angle was tested)."""

    degrees: float
    swaps: tuple[tuple[str, str], ...]

    def describe(self) -> str:
        return self._said(f"a rotation by {self.degrees:g} degrees",
                          "turns one class into another")


@dataclass(frozen=True)
class Traits:
    """What was read from the data: the mirror test of each axis, and the rotation test."""

    horizontal: MirrorTest
    vertical: MirrorTest
    rotation: RotationTest = RotationTest(0.0, ())

    def to_dict(self) -> dict:
        out: dict = {t.axis: [list(p) for p in t.swaps]
                     for t in (self.horizontal, self.vertical)}
        return {**out, "rotation": {"degrees": self.rotation.degrees,
                                    "swaps": [list(p) for p in self.rotation.swaps]}}

    @classmethod
    def from_dict(cls, d: dict) -> Traits:
        rot = d.get("rotation") or {}
        return cls(*(MirrorTest(axis, tuple(tuple(p) for p in d.get(axis, [])))
                     for axis in ("horizontal", "vertical")),
                   RotationTest(float(rot.get("degrees", 0.0)),
                                tuple(tuple(p) for p in rot.get("swaps", []))))


def read_traits(packed: Packed, classes: Sequence[str], seed: int = 0,
                degrees: float = 0.0) -> Traits:
    """The data's traits from its training images (any one image size's arrays); the
    rotation test at ``degrees`` (0: none)."""
    small, labels, larger = _sample(packed, len(classes), seed)
    return Traits(horizontal=mirror_test(small, labels, classes, "horizontal"),
                  vertical=mirror_test(small, labels, classes, "vertical"),
                  rotation=rotation_test(larger, labels, classes, degrees))


def _sample(packed: Packed, k: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """At most SAMPLE_PER_CLASS images a class, each at SIDE x SIDE grey levels,
    standardised (zero mean, unit deviation); their labels; and the same images at twice
    the side, grey, for the rotation test to rotate before it shrinks them."""
    rng = np.random.default_rng(seed)
    labels = np.concatenate([b.y for b in packed.buckets]).astype(np.int64)
    bucket = np.repeat(np.arange(len(packed.buckets)), [len(b.y) for b in packed.buckets])
    row = np.concatenate([np.arange(len(b.y)) for b in packed.buckets])
    keep = np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:SAMPLE_PER_CLASS]
                           for c in range(k)]).astype(np.int64)
    greys = [_grey(packed.buckets[bucket[j]].x[row[j]]) for j in keep]
    small = [_standard(np.asarray(g.resize((SIDE, SIDE), Image.BOX), np.float32))
             for g in greys]
    larger = [np.asarray(g.resize((2 * SIDE, 2 * SIDE), Image.BOX), np.float32)
              for g in greys]
    if not small:
        return (np.zeros((0, SIDE, SIDE), np.float32), labels[keep],
                np.zeros((0, 2 * SIDE, 2 * SIDE), np.float32))
    return np.stack(small), labels[keep], np.stack(larger)


def _grey(image: np.ndarray) -> Image.Image:
    return Image.fromarray(np.asarray(image, np.uint8)).convert("L")


def _standard(a: np.ndarray) -> np.ndarray:
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
    goes = _goes(labels, present, _nearest(small, means), _nearest(flip(small), means))
    pairs = sorted({tuple(sorted((i, o))) for i, o in goes.items() if goes.get(o) == i})
    return MirrorTest(axis, tuple((classes[present[a]], classes[present[b]])
                                  for a, b in pairs))


def rotation_test(larger: np.ndarray, labels: np.ndarray, classes: Sequence[str],
                  degrees: float) -> RotationTest:
    """The class pairs a rotation by ``degrees`` turns into each other: class c's images
    rotated one way vote significantly more for o than for c (by their pixels or by their
    power spectra, each against the class means of the same kind) while as they are they
    vote c over o, and o's images rotated the other way vote for c likewise."""
    present = [c for c in range(len(classes)) if (labels == c).sum() >= MIN_IMAGES]
    if not degrees or len(present) < 2:
        return RotationTest(float(degrees), ())
    pairs: set[tuple[int, int]] = set()
    for features in (_pixels, _spectra):
        plain = features(larger)
        means = np.stack([plain[labels == c].mean(0) for c in present])
        goes = {sign: _goes(labels, present, _nearest(plain, means),
                            _nearest(features(_rotated(larger, sign * degrees)), means))
                for sign in (1, -1)}
        pairs |= {tuple(sorted((i, o))) for i, o in goes[1].items() if goes[-1].get(o) == i}
    return RotationTest(float(degrees), tuple((classes[present[a]], classes[present[b]])
                                              for a, b in sorted(pairs)))


def _goes(labels: np.ndarray, present: Sequence[int], plain: np.ndarray,
          moved: np.ndarray) -> dict[int, int]:
    """Each class (by index into ``present``) whose moved images vote for another class
    significantly more than for their own (a sign test at Z), while as they are they vote
    their own over it: that other class."""
    goes: dict[int, int] = {}
    for i, c in enumerate(present):
        mine = labels == c
        votes = np.bincount(moved[mine], minlength=len(present))
        as_is = np.bincount(plain[mine], minlength=len(present))
        o = int(np.argmax(np.where(np.arange(len(present)) == i, -1, votes)))
        n_o, n_c = int(votes[o]), int(votes[i])
        if as_is[i] > as_is[o] and n_o - n_c > Z * np.sqrt(max(n_o + n_c, 1)):
            goes[i] = o
    return goes


def _rotated(larger: np.ndarray, degrees: float) -> np.ndarray:
    """The images rotated about their centre, the corners filled with each one's mean."""
    return np.stack([np.asarray(Image.fromarray(a).rotate(
        degrees, resample=Image.BILINEAR, fillcolor=float(a.mean())), np.float32)
        for a in larger]) if len(larger) else larger


def _pixels(larger: np.ndarray) -> np.ndarray:
    """SIDE x SIDE grey levels, standardised."""
    k = larger.shape[-1] // SIDE
    small = larger.reshape(len(larger), SIDE, k, SIDE, k).mean((2, 4))
    return np.stack([_standard(a) for a in small]) if len(small) else small


def _spectra(larger: np.ndarray) -> np.ndarray:
    """The centred log power spectrum of each image's inner disc (the rotation moves no
    corner in): orientation kept, position dropped; standardised."""
    n = larger.shape[-1]
    yy, xx = np.mgrid[0:n, 0:n] - (n - 1) / 2
    disc = (xx ** 2 + yy ** 2) <= (n / 2) ** 2
    centred = (larger - larger.mean((1, 2), keepdims=True)) * disc
    power = np.log1p(np.abs(np.fft.fftshift(np.fft.fft2(centred), axes=(1, 2))))
    return np.stack([_standard(a) for a in power]) if len(power) else power


def _nearest(small: np.ndarray, means: np.ndarray) -> np.ndarray:
    """The index of the mean each image is nearest."""
    x, m = small.reshape(len(small), -1), means.reshape(len(means), -1)
    d = (m * m).sum(1)[None, :] - 2.0 * x @ m.T
    return d.argmin(1) if len(x) else np.zeros(0, np.int64)
