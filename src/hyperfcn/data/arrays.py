"""The arrays a trial trains and validates on: decoded, bucketed uint8 arrays for every image
size the search can pick (:class:`TrialData`, mapped from the decoded cache), their labels and
the class weights drawn from them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .buckets import Packed


@dataclass
class TrialData:
    """Decoded, bucketed arrays for every image size the search can pick."""

    classes: list[str]
    train: dict[int, Packed]
    val: dict[int, Packed]


def labels_of(packed: Packed, rows: Sequence[np.ndarray] | None = None) -> np.ndarray:
    if rows is not None:
        return np.concatenate([b.y[r] for b, r in zip(packed.buckets, rows, strict=True)])
    return np.concatenate([b.y for b in packed.buckets])


def class_weights(labels: np.ndarray, num_classes: int) -> dict[int, float]:
    """Loss weights that give every class the same total weight: n / (k n_c), so the mean
    weight of a training image stays 1 (the learning rate keeps its meaning)."""
    counts = np.bincount(np.asarray(labels, dtype=int), minlength=num_classes)
    present = counts > 0
    k, n = int(present.sum()), int(counts.sum())
    return {c: (n / (k * int(counts[c])) if present[c] else 0.0) for c in range(num_classes)}
