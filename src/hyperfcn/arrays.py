"""The arrays a trial trains and validates on, and the batches made from them.

Decoded, bucketed uint8 arrays (:class:`TrialData`, mapped from the decoded cache) become
fixed-shape training batches (TensorFlow ops, or a PyDataset for other backends) and fixed-
shape prediction batches; :func:`score` is the one validation score every trial, the final
model and `evaluate` report. Shared by the trial, the final model and `predict`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .buckets import Packed, batch_plan


@dataclass
class TrialData:
    """Decoded, bucketed arrays for every image size the search can pick."""

    classes: list[str]
    train: dict[int, Packed]
    val: dict[int, Packed]


def _one_hot(y: np.ndarray, k: int) -> np.ndarray:
    out = np.zeros((len(y), k), dtype=np.float32)
    out[np.arange(len(y)), y] = 1.0
    return out


def _no_autotune():
    import tensorflow as tf

    options = tf.data.Options()
    # No autotuning: its model thread can be mid-optimisation when the fit ends, and the
    # iterator's destructor waits for it, holding the GIL for seconds on a loaded machine.
    # Prefetching two batches needs no tuning.
    options.autotune.enabled = False
    return options


# A worker's TensorFlow copies of the training arrays, kept across its trials. Keyed by the
# shared arrays' addresses; each entry holds the arrays too, so no other array can take an
# address while its entry lives.
TF_COPY_LIMIT_BYTES = 1 << 30
_tf_copies: dict[tuple, tuple[np.ndarray, np.ndarray, Any, Any]] = {}


def _tf_arrays(packed: Packed) -> list[tuple[Any, Any]] | None:
    """TensorFlow copies of packed's (x, y) per bucket, made once per worker; None when
    they would take this worker past TF_COPY_LIMIT_BYTES."""
    import tensorflow as tf

    def key(b) -> tuple:
        if b.path is not None:  # the cache's file: each trial maps it at a new address
            return (b.path, b.x.shape)
        return (b.x.__array_interface__["data"][0], b.x.shape,
                b.y.__array_interface__["data"][0], b.y.shape)

    held = sum(e[0].nbytes + e[1].nbytes for e in _tf_copies.values())
    new = sum(b.x.nbytes + b.y.nbytes for b in packed.buckets if key(b) not in _tf_copies)
    if held + new > TF_COPY_LIMIT_BYTES:
        return None
    out = []
    for b in packed.buckets:
        k = key(b)
        if k not in _tf_copies:
            _tf_copies[k] = (b.x, b.y, tf.constant(b.x), tf.constant(b.y))
        out.append(_tf_copies[k][2:])
    return out


def train_input(packed: Packed, batch_size: int, num_classes: int, seed: int,
                 first_epoch: int, last_epoch: int, epoch_steps: int | None = None):
    """Shuffled fixed-size batches for epochs [first_epoch, last_epoch) drawn from the cached
    uint8 arrays, the first ``epoch_steps`` of each pass (:mod:`hyperfcn.epoch`); nothing is
    decoded. Epoch e's order depends only on (seed, e): a resumed trial sees the same.

    TensorFlow gets a tf.data pipeline of TensorFlow ops: one dataset per bucket (its own
    batch shape) gathering from a TensorFlow copy of the bucket's arrays, and the epochs'
    bucket order choosing among them (a third of a Python generator's CPU a batch). The
    copy is made once per worker and kept for the trials after (a copy per trial made
    reused workers grow trial after trial, benchmarks/memory.py); past
    TF_COPY_LIMIT_BYTES per worker, batches come from a generator over the shared arrays
    instead. Other backends get a PyDataset (JAX compiles once per bucket shape).
    """
    import keras

    def plan(epoch: int) -> list[tuple[int, np.ndarray, int]]:
        return batch_plan(packed, batch_size,
                          np.random.default_rng([seed, epoch]))[:epoch_steps]

    def gather(b: int, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        bucket = packed.buckets[b]
        return bucket.x[idx].astype(np.float32), _one_hot(bucket.y[idx], num_classes)

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tensors = _tf_arrays(packed)
        if tensors is not None:
            order = [item for e in range(first_epoch, last_epoch) for item in plan(e)]
            return _tf_gathering(tensors, order, batch_size, num_classes)

        def batches():
            for e in range(first_epoch, last_epoch):
                for b, idx, _ in plan(e):
                    yield gather(b, idx)

        ds = tf.data.Dataset.from_generator(batches, output_signature=(
            tf.TensorSpec((batch_size, None, None, 3), tf.float32),
            tf.TensorSpec((batch_size, num_classes), tf.float32)))
        return ds.prefetch(2).with_options(_no_autotune())

    class TrainBatches(keras.utils.PyDataset):
        def __init__(self) -> None:
            super().__init__()
            self.epoch = first_epoch
            self.items = plan(self.epoch)

        def __len__(self) -> int:
            return len(self.items)

        def __getitem__(self, i: int):
            b, idx, _ = self.items[i]
            return gather(b, idx)

        def on_epoch_end(self) -> None:
            self.epoch += 1
            self.items = plan(self.epoch)

    return TrainBatches()


def _tf_gathering(tensors: list, order: list[tuple[int, np.ndarray, int]],
                  batch_size: int, num_classes: int):
    """A tf.data pipeline of TensorFlow ops over the buckets' TensorFlow copies: one
    dataset per bucket gathering its batches, chosen among in the epochs' bucket order."""
    import tensorflow as tf

    per_bucket = []
    for b, (x, y) in enumerate(tensors):
        rows = [idx for bb, idx, _ in order if bb == b]
        idx = np.stack(rows) if rows else np.zeros((0, batch_size), np.int64)

        def take(i, x=x, y=y):
            return (tf.cast(tf.gather(x, i), tf.float32),
                    tf.one_hot(tf.gather(y, i), num_classes))

        per_bucket.append(tf.data.Dataset.from_tensor_slices(idx).map(take))
    choice = tf.data.Dataset.from_tensor_slices(
        np.asarray([b for b, _, _ in order], dtype=np.int64))
    ds = tf.data.Dataset.choose_from_datasets(per_bucket, choice,
                                              stop_on_empty_dataset=False)
    return ds.prefetch(2).with_options(_no_autotune())


def predict_packed(model, packed: Packed, batch_size: int,
                   rows: Sequence[np.ndarray] | None = None) -> np.ndarray:
    """Probabilities for every image of `packed` (or its ``rows``, per bucket), in bucket
    order, fixed batch shapes."""
    out = []
    for b, idx, n_real in batch_plan(packed, batch_size, None, rows):
        x = packed.buckets[b].x[idx].astype(np.float32)
        p = np.asarray(model.predict_on_batch(x))
        out.append(p[:n_real])
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def labels_of(packed: Packed, rows: Sequence[np.ndarray] | None = None) -> np.ndarray:
    if rows is not None:
        return np.concatenate([b.y[r] for b, r in zip(packed.buckets, rows, strict=True)])
    return np.concatenate([b.y for b in packed.buckets])


def score(probs: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Plain cross-entropy (no label smoothing), the same after one fitted temperature, and
    accuracy: comparable across trials."""
    p = np.clip(probs[np.arange(len(labels)), labels], 1e-7, 1.0)
    return {"val_loss": float(-np.log(p).mean()),
            "val_calibrated_loss": calibrated_loss(probs, labels),
            "val_accuracy": float((probs.argmax(1) == labels).mean()),
            "val_balanced_accuracy": balanced_accuracy(probs.argmax(1), labels)}


def balanced_accuracy(predicted: np.ndarray, labels: np.ndarray) -> float:
    """The mean over the classes present of each one's recall: what accuracy would be if
    every class had as many images, so a model that ignores a rare class scores low."""
    labels = np.asarray(labels)
    if not len(labels):
        return float("nan")
    present = np.unique(labels)
    return float(np.mean([(predicted[labels == c] == c).mean() for c in present]))


def class_weights(labels: np.ndarray, num_classes: int) -> dict[int, float]:
    """Loss weights that give every class the same total weight: n / (k n_c), so the mean
    weight of a training image stays 1 (the learning rate keeps its meaning)."""
    counts = np.bincount(np.asarray(labels, dtype=int), minlength=num_classes)
    present = counts > 0
    k, n = int(present.sum()), int(counts.sum())
    return {c: (n / (k * int(counts[c])) if present[c] else 0.0) for c in range(num_classes)}


CALIBRATION_ROWS = 20_000  # the temperature is fitted on at most this many images


def calibrated_loss(probs: np.ndarray, labels: np.ndarray) -> float:
    """Cross-entropy after the one temperature that minimises it on these images (Guo et
    al. 2017; Ashukha et al. 2020's calibrated log-likelihood). Plain cross-entropy also
    scores confidence: a trial trained with label smoothing cannot be confident, so on data
    it classifies almost perfectly its loss sits above an overconfident trial's that makes
    more mistakes. Fitting the temperature takes the confidence level out of the score.
    Newton's method on the inverse temperature, in which the loss is convex."""
    if len(labels) == 0:
        return float("nan")
    step = max(1, len(labels) // CALIBRATION_ROWS)
    beta = _inverse_temperature(_logits(probs[::step]).astype(np.float64), labels[::step])
    # in slices: a large validation set's (images x classes) temporaries stay small
    total = sum(_cross_entropy(beta * _logits(probs[i:i + CALIBRATION_ROWS]),
                               labels[i:i + CALIBRATION_ROWS]) * len(labels[i:i + CALIBRATION_ROWS])
                for i in range(0, len(labels), CALIBRATION_ROWS))
    return float(total / len(labels))


def _logits(probs: np.ndarray) -> np.ndarray:
    return np.log(np.clip(probs, 1e-12, 1.0))


def _inverse_temperature(z: np.ndarray, labels: np.ndarray) -> float:
    rows, beta = np.arange(len(labels)), 1.0
    for _ in range(50):
        s = beta * z
        p = np.exp(s - s.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        mean_z = (p * z).sum(1)
        grad = float((mean_z - z[rows, labels]).mean())
        hess = float(((p * z * z).sum(1) - mean_z ** 2).mean())
        if hess <= 1e-12 or abs(grad) < 1e-9:
            break  # separable data: the loss falls towards 0 as beta grows
        beta = min(max(beta - grad / hess, 1e-3), 1e3)
    return beta


def _cross_entropy(logits: np.ndarray, labels: np.ndarray) -> float:
    s = logits - logits.max(1, keepdims=True)
    return float((np.log(np.exp(s).sum(1)) - s[np.arange(len(labels)), labels]).mean())
