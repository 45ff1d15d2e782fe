"""The image sizes worth training for the data's own resolution: a size past the short side
of the data's images only upsamples them, costing compute (a square of the size) for no
information, so the search drops it. Read from a seeded sample of image headers, before any
decode."""

from __future__ import annotations

import random
import statistics
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

# Headers read to estimate the data's short side: the median of this many is within a few
# pixels of the whole set's on the development datasets' spread of sizes, and reading them
# takes well under a second.
PROBE = 256
# A size up to this share above the data's short side is kept: resizing 120 px photos to
# 128 px upsamples little, and sizes are a coarse choice.
UPSAMPLE_SLACK = 0.1
# The size used when every searched size upsamples: the data's own short side, rounded down
# to a multiple of this (a bucket's sides and the strided blocks divide evenly), and never
# below MIN_SIZE (config.ModelConfig's least image_size).
SIZE_STEP = 8
MIN_SIZE = 8


@dataclass(frozen=True)
class Sizing:
    """What the data's resolution did to the searched sizes, for the startup line and the
    run's settings."""

    native: int  # the median short side of the probed images, in pixels
    probed: int
    asked: tuple[int, ...]
    kept: tuple[int, ...]

    @property
    def changed(self) -> bool:
        return self.kept != self.asked

    def describe(self) -> str:
        head = (f"image size: the data's short side is {self.native} px (median of "
                f"{self.probed} images)")
        if not self.changed:
            return f"{head}; searching {', '.join(map(str, self.kept))} px"
        dropped = [s for s in self.asked if s not in self.kept]
        return (f"{head}, so {', '.join(map(str, dropped))} px would only upsample it: "
                f"searching {', '.join(map(str, self.kept))} px (--image-size fixes a size)")


def header_size(path: Path) -> tuple[int, int] | None:
    """(width, height) of an image from its header (no decode), or None if unreadable."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                return im.size
    except Exception:  # unreadable files are skipped and reported by the decode
        return None


def sample_headers(files: Sequence[Path], seed: int = 0,
                   n: int = PROBE) -> list[tuple[int, int]]:
    """(width, height) of a seeded sample of ``files`` (all of them when few), read from
    their headers; unreadable ones left out."""
    sample = list(files) if len(files) <= n else random.Random(seed).sample(list(files), n)
    return [s for s in map(header_size, sample) if s]


def native_size(files: Sequence[Path], seed: int = 0, n: int = PROBE) -> tuple[int, int]:
    """(the median short side of a seeded sample of ``files``, how many were read); (0, 0)
    when none could be."""
    sides = [min(s) for s in sample_headers(files, seed, n) if min(s)]
    return (int(statistics.median(sides)), len(sides)) if sides else (0, 0)


def fit_sizes(sizes: Sequence[int], native: int) -> list[int]:
    """The sizes that do not upsample the data past UPSAMPLE_SLACK; when all of them would,
    the data's own short side (a multiple of SIZE_STEP, at least MIN_SIZE)."""
    if native <= 0:
        return sorted(sizes)
    kept = sorted(s for s in sizes if s <= native * (1 + UPSAMPLE_SLACK))
    return kept or [max(MIN_SIZE, native // SIZE_STEP * SIZE_STEP)]
