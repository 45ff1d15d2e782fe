"""One trial: build -> fit one epoch at a time -> report. The final retrain runs this too.

Nothing here imports Ray: a trial talks to whoever runs it through a ``Reporter``
(:mod:`hyperfcn.tuning` adapts Ray Tune; the final retrain keeps results locally). Keras is
imported lazily, after the trial's thread and GPU-memory limits are in place.
"""

from __future__ import annotations

import contextlib
import gc
import json
import math
import os
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .buckets import Packed, batch_plan
from .config import ModelConfig
from .data import DECODES
from .errors import TrialError

CHECKPOINT_MODEL = "model.keras"
CHECKPOINT_STATE = "state.json"


@dataclass
class TrialData:
    """Decoded, bucketed arrays for every image size the search can pick."""

    classes: list[str]
    train: dict[int, Packed]
    val: dict[int, Packed]


@dataclass(frozen=True)
class TrialSettings:
    max_epochs: int
    metric: str = "val_loss"
    seed: int = 0
    cpus: float = 1.0
    gpus: float = 0.0
    patience: int | None = None  # early stopping (final retrain); None: run every epoch
    weights: str | None = None  # backbone mode: imagenet | none | a .weights.h5 path
    # A searched trial saves a checkpoint (to resume it) at an epoch's end once this long has
    # passed since its last one; 0: every epoch. Saving a model takes ~0.1-0.2 s however
    # small it is: every epoch, that is a few % of a CPU trial and far more of a GPU epoch.
    checkpoint_every_s: float = 60.0
    # A searched trial also saves a checkpoint at every epoch that improves its metric, so
    # that its best epoch's weights can become the final model (Ray keeps the best-scoring
    # checkpoint and the latest). At such an epoch the model being trained *is* the best
    # one, so one save serves both resume and promotion.
    checkpoint_best: bool = False
    min_epochs: int = 0  # early stopping (patience) never ends a run before this epoch
    stop_after: int | None = None  # end after this epoch; the schedule still spans max_epochs

    @property
    def mode(self) -> str:
        return "min" if self.metric.endswith("loss") else "max"


class Reporter(Protocol):
    def report(self, metrics: dict[str, float], checkpoint_dir: str | None) -> None: ...

    def restore_dir(self) -> contextlib.AbstractContextManager[str | None]: ...

    # Optional: ``stop_requested() -> bool``, true once the scheduler has stopped the trial;
    # the trial then ends within a step instead of finishing its epoch (see run_trial).


class LocalReporter:
    """Keeps every epoch's metrics; no checkpoints (the final retrain runs in one go).

    With a ``deadline`` (a ``time.time()`` value) the run ends within a step once it passes.
    """

    def __init__(self, on_epoch=None, deadline: float | None = None) -> None:
        self.history: list[dict[str, float]] = []
        self.on_epoch = on_epoch
        self.deadline = deadline

    def stop_requested(self) -> bool:
        return self.deadline is not None and time.time() >= self.deadline

    def report(self, metrics: dict[str, float], checkpoint_dir: str | None) -> None:
        self.history.append(dict(metrics))
        if self.on_epoch is not None:
            self.on_epoch(dict(metrics))

    @contextlib.contextmanager
    def restore_dir(self) -> Iterator[str | None]:
        yield None


@dataclass
class TrialOutcome:
    history: list[dict[str, float]]
    best: dict[str, float]
    model: Any = None  # the core (inference) keras model, best weights
    seconds: float = 0.0


_configured: dict[str, Any] = {}
_clock = time.monotonic  # times the checkpoint interval (a test steps it)


def configure_runtime(cpus: float, gpus: float) -> None:
    """Limit threads to the trial's CPU share and GPU memory to its GPU share.

    Must run before the backend starts in this process; a second call is a no-op because
    TensorFlow cannot change its thread pools once it has run an op.
    """
    if _configured:
        return
    n = max(1, int(cpus))
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    os.environ["OMP_NUM_THREADS"] = str(n)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if backend == "jax":
        if 0 < gpus < 1:
            os.environ.setdefault("XLA_PYTHON_CLIENT_MEM_FRACTION", f"{0.9 * gpus:.3f}")
        if n == 1 and "intra_op_parallelism_threads" not in os.environ.get("XLA_FLAGS", ""):
            os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                                       + " --xla_cpu_multi_thread_eigen=false"
                                       " intra_op_parallelism_threads=1").strip()
    elif backend == "tensorflow":
        import tensorflow as tf

        with contextlib.suppress(RuntimeError):
            tf.config.threading.set_intra_op_parallelism_threads(n)
            tf.config.threading.set_inter_op_parallelism_threads(min(n, 2))
        for gpu in tf.config.list_physical_devices("GPU"):
            with contextlib.suppress(RuntimeError):
                tf.config.experimental.set_memory_growth(gpu, True)
    _configured.update(cpus=n, gpus=gpus, backend=backend)


def forget_compiled() -> None:
    """Free what earlier trials in this process compiled, so a reused worker stays flat.

    Keras' optimizer sums gradients through a graph-mode ``custom_gradient`` under
    TensorFlow, which registers a gradient function under a fresh name in TensorFlow's
    global registry and never removes it; the function's closure holds the whole traced
    training step (~10 MB per trial, and the only thing left once the model is gone).
    Call it only when no earlier model is in use. (JAX workers are not reused: they grew
    even with jax.clear_caches().)
    """
    if _configured.get("backend") == "tensorflow":
        try:
            from tensorflow.python.framework import ops as tf_ops

            registry = tf_ops._gradient_registry._registry  # noqa: SLF001
        except (ImportError, AttributeError):  # a TensorFlow that has moved it: just leak
            registry = {}
        for name in [k for k in registry if str(k).startswith("CustomGradient-")]:
            del registry[name]
    gc.collect()


def _process_age_at(t: float) -> float:
    """Seconds this process had been running at time t (0 where /proc is missing)."""
    try:
        start_ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0.0
    started = time.time() - uptime + start_ticks / os.sysconf("SC_CLK_TCK")
    return max(0.0, t - started)


def _rss_mb() -> float:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError):
        return 0.0


def _one_hot(y: np.ndarray, k: int) -> np.ndarray:
    out = np.zeros((len(y), k), dtype=np.float32)
    out[np.arange(len(y)), y] = 1.0
    return out


def _no_autotune():
    import tensorflow as tf

    options = tf.data.Options()
    # No autotuning: its model thread can be mid-optimisation when the fit ends, and the
    # iterator's destructor waits for it, holding the GIL (3-35 s per fit on a loaded
    # machine; under 5 ms without). Prefetching two batches needs no tuning.
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


def _train_input(packed: Packed, batch_size: int, num_classes: int, seed: int,
                 first_epoch: int, last_epoch: int):
    """Shuffled fixed-size batches for epochs [first_epoch, last_epoch) drawn from the cached
    uint8 arrays; nothing is decoded. Epoch e's order depends only on (seed, e), so a resumed
    trial sees the batches it would have seen.

    TensorFlow gets a tf.data pipeline of TensorFlow ops: one dataset per bucket (its own
    batch shape) gathering from a TensorFlow copy of the bucket's arrays, and the epochs'
    bucket order choosing among them (0.65 ms of CPU a batch, against 2.2 ms for a Python
    generator). The copy is made once per worker and kept for the trials after (a copy per
    trial made reused workers grow ~2 MB a trial, benchmarks/memory.py); past
    TF_COPY_LIMIT_BYTES per worker, batches come from a generator over the shared arrays
    instead. Other backends get a PyDataset (JAX compiles once per bucket shape).
    """
    import keras

    def plan(epoch: int) -> list[tuple[int, np.ndarray, int]]:
        return batch_plan(packed, batch_size, np.random.default_rng([seed, epoch]))

    def gather(b: int, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        bucket = packed.buckets[b]
        return bucket.x[idx].astype(np.float32), _one_hot(bucket.y[idx], num_classes)

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tensors = _tf_arrays(packed)
        if tensors is not None:
            order = [item for e in range(first_epoch, last_epoch) for item in plan(e)]
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


def predict_packed(model, packed: Packed, batch_size: int) -> np.ndarray:
    """Probabilities for every image of `packed`, in bucket order, fixed batch shapes."""
    out = []
    for b, idx, n_real in batch_plan(packed, batch_size, None):
        x = packed.buckets[b].x[idx].astype(np.float32)
        p = np.asarray(model.predict_on_batch(x))
        out.append(p[:n_real])
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def labels_of(packed: Packed) -> np.ndarray:
    return np.concatenate([b.y for b in packed.buckets])


def score(probs: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Plain cross-entropy (no label smoothing) and accuracy: comparable across trials."""
    p = np.clip(probs[np.arange(len(labels)), labels], 1e-7, 1.0)
    return {"val_loss": float(-np.log(p).mean()),
            "val_accuracy": float((probs.argmax(1) == labels).mean())}


def _better(a: float, b: float | None, mode: str) -> bool:
    return b is None or (a < b if mode == "min" else a > b)


def run_trial(config: Mapping[str, Any], data: TrialData, settings: TrialSettings,
              reporter: Reporter) -> TrialOutcome:
    entered = time.time()
    first_in_process = not _configured.get("ran")
    # A trial's setup counts from its process's start when it is the process's first trial
    # (worker start and imports), else from here.
    started = entered - _process_age_at(entered) if first_in_process else entered
    configure_runtime(settings.cpus, settings.gpus)
    import keras

    from . import augment  # noqa: F401  (registers Augment for checkpoint loading)
    from .model import build_training_model

    if first_in_process:
        # The ~500k objects the imports made live as long as the worker: leave them out of
        # every later collection (a full one took 0.22 s with them, 0.03 s without).
        gc.freeze()
        _configured["ran"] = True

    cfg = ModelConfig.from_dict(config, "trial config")
    t0 = time.time()
    keras.backend.clear_session(free_memory=False)
    forget_compiled()
    keras.utils.set_random_seed(settings.seed)
    if cfg.image_size not in data.train:
        raise TrialError(f"image_size {cfg.image_size} was not prepared; prepared: "
                         f"{sorted(data.train)}")
    train, val = data.train[cfg.image_size], data.val[cfg.image_size]
    k = len(data.classes)
    val_labels = labels_of(val)

    start_epoch = 0
    history: list[dict[str, float]] = []
    model = None
    with reporter.restore_dir() as ckpt:
        if ckpt:
            state = json.loads(Path(ckpt, CHECKPOINT_STATE).read_text())
            model = keras.saving.load_model(Path(ckpt, CHECKPOINT_MODEL))
            start_epoch = int(state["epoch"])
            history = state["history"]
    from .buckets import steps

    n_steps = steps(train, cfg.batch_size)
    two_stage = cfg.backbone != "none" and cfg.fine_tune == "two_stage"
    switch = min(cfg.head_epochs, settings.max_epochs) if two_stage else 0
    if model is None:
        model, core = build_training_model(cfg, k, seed=settings.seed,
                                           weights=settings.weights,
                                           decay_steps=n_steps * (switch or settings.max_epochs))
    else:
        core = model.get_layer("hyperfcn")

    best: dict[str, float] = {}
    best_weights = None
    for h in history:
        if _better(h[settings.metric], best.get(settings.metric), settings.mode):
            best = dict(h)
    mode = settings.mode

    stop_requested = getattr(reporter, "stop_requested", None)
    asked_to_stop = [False]

    class StopWhenAsked(keras.callbacks.Callback):
        """A reused worker can start its next trial only once this one has returned, and
        Ray waits for that only briefly: when ASHA stops the trial mid-epoch, end within a
        step. (A batch-begin hook keeps Keras' asynchronous batch-end dispatch.)"""

        def on_train_batch_begin(self, batch, logs=None):
            if stop_requested is not None and stop_requested():
                asked_to_stop[0] = stopped[0] = True
                self.model.stop_training = True

    class EpochEnd(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            nonlocal best, best_weights, epoch_began, last_checkpoint
            if asked_to_stop[0]:
                return
            logs = logs or {}
            loss = float(logs.get("loss", float("nan")))
            if not math.isfinite(loss):
                raise TrialError(f"loss became {loss} in epoch {epoch + 1} "
                                 f"(learning_rate={cfg.learning_rate:g}); the trial stops")
            metrics = {"epoch": epoch + 1, "loss": loss,
                       "accuracy": float(logs.get("accuracy", float("nan")))}
            tv = time.time()
            metrics.update(score(predict_packed(core, val, cfg.batch_size), val_labels))
            now = time.time()
            metrics["seconds"] = now - t0
            # Where a trial's time goes (benchmarks/gpu_packing.py): before the first fit
            # (process start, imports, model build), and validation within each epoch.
            metrics["setup_seconds"] = setup_seconds
            metrics["epoch_seconds"] = now - epoch_began
            metrics["val_seconds"] = now - tv
            epoch_began = now
            # Diagnostics the benchmarks read: memory must stay flat across trials, and a
            # trial never decodes an image itself.
            metrics["worker_rss_mb"] = _rss_mb()
            metrics["worker_decodes"] = DECODES[0]
            history.append(metrics)
            improved = _better(metrics[settings.metric], best.get(settings.metric), mode)
            if improved:
                best = dict(metrics)
                if settings.patience is not None:
                    best_weights = core.get_weights()
            # Resume checkpoints once the interval has passed (a run's last epoch needs
            # none), and every improving epoch when the best weights are wanted.
            due = ((improved and settings.checkpoint_best)
                   or (epoch + 1 < end_epoch
                       and _clock() - last_checkpoint >= settings.checkpoint_every_s))
            with (tempfile.TemporaryDirectory(prefix="hyperfcn-ckpt-") if due
                  else contextlib.nullcontext()) as ckpt_dir:
                if ckpt_dir:
                    self.model.save(Path(ckpt_dir, CHECKPOINT_MODEL))
                    Path(ckpt_dir, CHECKPOINT_STATE).write_text(
                        json.dumps({"epoch": epoch + 1, "history": history}))
                    last_checkpoint = _clock()
                reporter.report(metrics, ckpt_dir)
            if (settings.patience is not None and epoch + 1 >= settings.min_epochs
                    and epoch + 1 - int(best.get("epoch", 0)) >= settings.patience):
                self.model.stop_training = True
                stopped[0] = True

    stopped = [False]
    end_epoch = min(settings.stop_after or settings.max_epochs, settings.max_epochs)

    setup_seconds = 0.0  # to the first fit
    epoch_began = 0.0
    last_checkpoint = _clock()

    def fit(first: int, last: int) -> None:
        nonlocal setup_seconds, epoch_began
        epoch_began = time.time()
        setup_seconds = setup_seconds or epoch_began - started
        inputs = _train_input(train, cfg.batch_size, k, settings.seed, first, last)
        model.fit(inputs, epochs=last, initial_epoch=first, steps_per_epoch=n_steps,
                  callbacks=[StopWhenAsked(), EpochEnd()], shuffle=False, verbose=0)

    if start_epoch < min(switch, end_epoch):  # two_stage, first stage: the head alone
        fit(start_epoch, min(switch, end_epoch))
        start_epoch = switch
    if two_stage and start_epoch == switch and not stopped[0] and switch < end_epoch:
        # Second stage: unfreeze the top of the backbone, lower learning rate. (A checkpoint
        # from after the switch already holds both.)
        from .backbone import second_stage
        from .model import compile_model

        second_stage(core, cfg)
        compile_model(model, cfg, cfg.learning_rate * cfg.finetune_lr_factor,
                      decay_steps=n_steps * (settings.max_epochs - switch))
    if start_epoch < end_epoch and not stopped[0]:
        fit(start_epoch, end_epoch)
    if best_weights is not None:
        core.set_weights(best_weights)
    return TrialOutcome(history=history, best=best, model=core, seconds=time.time() - t0)
