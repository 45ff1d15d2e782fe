"""The batches Keras trains and predicts on, made from the decoded, bucketed uint8 arrays.

Fixed-shape training batches (TensorFlow ops, or a PyDataset for other backends) and fixed-
shape prediction batches. Shared by the trial, the final model and `predict`; the only part of
the data's path that imports Keras or TensorFlow.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .data.buckets import Packed, batch_plan


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
