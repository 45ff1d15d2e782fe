"""What one epoch is: the unit a trial trains, validates, reports and checkpoints by.

On small data an epoch is one pass over the training images, scored on every validation
image. On large data a pass is the wrong unit: on a 2-core CPU one pass over a million
photos at 64 px takes hours, so a budget of an hour would end before the first report (and
ship nothing), ASHA would have nothing to compare, and an interrupted run would lose hours.
So an epoch is at most EPOCH_IMAGES training images (the first of that epoch's shuffled
batches: a fresh random subset each epoch), and a trial's epochs are scored on the same
seeded sample of at most VAL_IMAGES validation images. The final model is scored on all of
them.

The two caps follow from two rules: a validation accuracy read on VAL_IMAGES images has a
standard error of at most half a point, small beside the differences between configurations
a search is for; and scoring them takes VAL_SHARE of an epoch's time, which sets
EPOCH_IMAGES (an image's forward pass costs FORWARD_COST of its training step: validation
against training per image, median 0.25 and 0.19-0.33 over 87 trials of many networks on
four datasets on a CPU, benchmarks/epoch_cost.py).
"""

from __future__ import annotations

import math

import numpy as np

from . import buckets
from .buckets import Packed

VAL_IMAGES = 10_000
VAL_SHARE = 0.05  # of an epoch's time, its validation's
FORWARD_COST = 0.25  # an image's forward pass against its training step
EPOCH_IMAGES = round(VAL_IMAGES * FORWARD_COST / VAL_SHARE)  # 50,000
SAMPLE_SEED = 0  # one validation sample for every trial and the final model's comparisons


def epoch_steps(packed: Packed, batch_size: int) -> int:
    """Batches in one epoch: a pass, or EPOCH_IMAGES' worth where a pass is longer."""
    full = buckets.steps(packed, batch_size)
    return full if packed.size <= EPOCH_IMAGES else min(full, math.ceil(EPOCH_IMAGES /
                                                                      batch_size))


def sample_positions(packed: Packed) -> np.ndarray | None:
    """Where the images an epoch is scored on lie among all of ``packed``'s, in bucket
    order: None (all of them) up to VAL_IMAGES images, else a seeded sorted sample of
    VAL_IMAGES."""
    if packed.size <= VAL_IMAGES:
        return None
    rng = np.random.default_rng(SAMPLE_SEED)
    return np.sort(rng.choice(packed.size, VAL_IMAGES, replace=False))


def scoring_rows(packed: Packed) -> list[np.ndarray] | None:
    """:func:`sample_positions` per bucket, as rows of each (spread over the buckets as the
    images are). Sorted, so a mapped cache is read forwards."""
    picked = sample_positions(packed)
    if picked is None:
        return None
    starts = np.cumsum([0] + [len(b.y) for b in packed.buckets])
    return [picked[(picked >= lo) & (picked < hi)] - lo
            for lo, hi in zip(starts[:-1], starts[1:], strict=True)]


def describe(n_train: int, n_val: int) -> str | None:
    """The startup line that says what an epoch is, where it is not one plain pass."""
    parts = []
    if n_train > EPOCH_IMAGES:
        parts.append(f"an epoch is {EPOCH_IMAGES:,} of the {n_train:,} training images (a "
                     f"new random subset each epoch)")
    if n_val > VAL_IMAGES:
        parts.append(f"epochs are scored on the same {VAL_IMAGES:,} of the {n_val:,} "
                     f"validation images, the final model on all of them")
    return "; ".join(parts) or None
