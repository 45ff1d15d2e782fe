"""A ModelConfig builds the FCN (conv blocks, a dense or 1x1-conv head, any input size) and
its optimizer, whose cosine schedule keeps its numbers as optimizer state."""

from __future__ import annotations

import math
from typing import Any

import keras
from keras import layers, ops

from . import augment
from .config import ModelConfig


def build_core(cfg: ModelConfig, num_classes: int) -> keras.Model:
    """The inference model: images in [0, 255] of any size -> class probabilities.

    Only built-in Keras layers, so the saved model loads with plain load_model.
    """
    inp = keras.Input((None, None, 3), name="image")
    x = layers.Rescaling(1.0 / 255.0, name="rescale")(inp)
    f = cfg.filters
    for b in range(cfg.blocks):
        for c in range(cfg.convs_per_block):
            last = c == cfg.convs_per_block - 1
            stride = 2 if cfg.downsample == "stride" and last else 1
            x = layers.Conv2D(f, 3, strides=stride, padding="same", use_bias=not cfg.batchnorm,
                              name=f"block{b + 1}_conv{c + 1}")(x)
            if cfg.batchnorm:
                # momentum 0.9, not Keras' 0.99: with 0.99 the moving statistics lag so far
                # behind that validation sits at chance for the first epochs, exactly when
                # ASHA decides which trials to stop.
                x = layers.BatchNormalization(momentum=0.9, name=f"block{b + 1}_bn{c + 1}")(x)
            x = layers.ReLU(name=f"block{b + 1}_relu{c + 1}")(x)
        if cfg.downsample == "maxpool":
            x = layers.MaxPooling2D(2, padding="same", name=f"block{b + 1}_pool")(x)
        f = min(int(round(f * cfg.filter_growth)), cfg.max_filters)
    pool = layers.GlobalAveragePooling2D if cfg.pooling == "avg" else layers.GlobalMaxPooling2D
    if cfg.head == "dense":
        x = pool(name="global_pool")(x)
        x = layers.Dense(cfg.dense_units, activation="relu", name="head_dense")(x)
        if cfg.dropout > 0:
            x = layers.Dropout(cfg.dropout, name="head_dropout")(x)
        out = layers.Dense(num_classes, activation="softmax", dtype="float32",
                           name="probabilities")(x)
    else:
        x = layers.Conv2D(cfg.conv_head_filters, 1, use_bias=not cfg.batchnorm,
                          name="head_conv")(x)
        if cfg.batchnorm:
            x = layers.BatchNormalization(momentum=0.9, name="head_bn")(x)
        x = layers.ReLU(name="head_relu")(x)
        if cfg.dropout > 0:
            x = layers.Dropout(cfg.dropout, name="head_dropout")(x)
        x = layers.Conv2D(num_classes, 1, name="head_logits")(x)
        x = pool(name="global_pool")(x)
        out = layers.Softmax(dtype="float32", name="probabilities")(x)
    return keras.Model(inp, out, name="hyperfcn")


@keras.saving.register_keras_serializable("hyperfcn")
class Cosine(keras.optimizers.schedules.LearningRateSchedule):
    """A cosine decay to 0 from ``peak`` whose numbers are optimizer state, not constants
    of the compiled training step: at step ``at`` it is ``phase`` of the way through, and
    it ends at step ``total`` (``total`` at or below ``at``: it holds where it is).

    Because the numbers are state, a run re-planned part way (:meth:`plan`) goes on without
    recompiling, and under JAX trials that differ only in their learning rate, or a best
    trial trained on over a new cycle, run the same XLA program, which the persistent
    compilation cache then loads instead of compiling. With ``at`` and ``phase`` 0 it is
    Keras' ``CosineDecay(peak, total)``.
    """

    FIELDS = ("peak", "at", "phase", "total")

    def __init__(self, peak: float, at: float = 0, phase: float = 0.0,
                 total: float = 0) -> None:
        self._start = {"peak": float(peak), "at": float(at), "phase": float(phase),
                       "total": float(total)}
        self._vars: dict[str, keras.Variable] | None = None

    def attach(self, optimizer: keras.optimizers.Optimizer) -> None:
        """Keep the numbers in ``optimizer``'s variables (saved and restored with it)."""
        self._vars = {k: optimizer.add_variable((), keras.initializers.Constant(v),
                                                "float32", name=f"cosine_{k}")
                      for k, v in self._start.items()}

    def numbers(self) -> dict[str, float]:
        if self._vars is None:
            return dict(self._start)
        return {k: float(ops.convert_to_numpy(v)) for k, v in self._vars.items()}

    def phase_at(self, step: float) -> float:
        """How far through its cosine the schedule is at ``step`` (0: its peak, 1: 0)."""
        n = self.numbers()
        span = n["total"] - n["at"]
        frac = min(max((step - n["at"]) / span, 0.0), 1.0) if span > 0 else 0.0
        return n["phase"] + (1.0 - n["phase"]) * frac

    def plan(self, **numbers: float) -> None:
        """Set some of the numbers; the next training step uses them."""
        unknown = set(numbers) - set(self.FIELDS)
        if unknown or self._vars is None:
            raise ValueError(f"Cosine.plan({numbers}): needs an optimizer's schedule "
                             f"(attach) and only {self.FIELDS}")
        for k, v in numbers.items():
            self._vars[k].assign(float(v))

    def __call__(self, step):
        n = self._vars or self._start
        peak, at, phase, total = (ops.cast(n[k], "float32") for k in self.FIELDS)
        span = total - at
        frac = ops.where(span > 0, ops.clip((ops.cast(step, "float32") - at)
                                            / ops.maximum(span, 1.0), 0.0, 1.0), 0.0)
        return peak * 0.5 * (1.0 + ops.cos(math.pi * (phase + (1.0 - phase) * frac)))

    def get_config(self) -> dict:
        return self.numbers()


@keras.saving.register_keras_serializable("hyperfcn")
class CosineRest(keras.optimizers.schedules.LearningRateSchedule):
    """What :class:`Cosine` replaced (its numbers were constants of the program): kept so
    that checkpoints written by hyperfcn 0.1 before it still load and resume."""

    def __init__(self, initial: float, at: int, phase: float, total: int) -> None:
        self.initial, self.at, self.phase, self.total = float(initial), int(at), float(
            phase), int(total)

    def __call__(self, step):
        done = ops.cast(step, "float32") - self.at
        frac = ops.clip(done / max(1, self.total - self.at), 0.0, 1.0)
        return self.initial * 0.5 * (1.0 + ops.cos(math.pi * (
            self.phase + (1.0 - self.phase) * frac)))

    def get_config(self) -> dict:
        return {"initial": self.initial, "at": self.at, "phase": self.phase,
                "total": self.total}


def _with_schedule_state(base: type) -> type:
    """``base`` whose :class:`Cosine` schedule keeps its numbers in this optimizer's
    variables. They are made in ``__init__``, so an optimizer rebuilt from a checkpoint has
    them before its saved variables are loaded, in the same order."""

    class Scheduled(base):
        def __init__(self, learning_rate: Any = 0.001, **kwargs: Any) -> None:
            super().__init__(learning_rate=learning_rate, **kwargs)
            self.cosine = learning_rate if isinstance(learning_rate, Cosine) else None
            if self.cosine is not None:
                self.cosine.attach(self)

    Scheduled.__name__ = Scheduled.__qualname__ = f"Scheduled{base.__name__}"
    return keras.saving.register_keras_serializable("hyperfcn")(Scheduled)


OPTIMIZERS = {name: _with_schedule_state(cls) for name, cls in (
    ("adam", keras.optimizers.Adam), ("adamw", keras.optimizers.AdamW),
    ("rmsprop", keras.optimizers.RMSprop), ("sgd", keras.optimizers.SGD))}


def schedule_of(model: keras.Model) -> Cosine | None:
    """The compiled model's cosine schedule, or None (a constant rate, or a checkpoint
    written before schedules were state)."""
    return getattr(model.optimizer, "cosine", None)


def build_optimizer(cfg: ModelConfig, learning_rate: float | None = None,
                    decay_steps: int | None = None) -> keras.optimizers.Optimizer:
    """``decay_steps`` None under a cosine schedule: it holds at the starting rate until
    :meth:`Cosine.plan` gives it a length (a run fitted to a deadline times epochs first)."""
    lr: float | Cosine = learning_rate if learning_rate is not None else cfg.learning_rate
    if cfg.lr_schedule == "cosine":
        lr = Cosine(lr, total=max(1, decay_steps) if decay_steps else 0)
    opt = OPTIMIZERS[cfg.optimizer]
    if cfg.optimizer == "adamw":
        return opt(lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "sgd":
        return opt(lr, momentum=0.9, nesterov=True)
    return opt(lr)


def compile_model(model: keras.Model, cfg: ModelConfig, learning_rate: float | None = None,
                  decay_steps: int | None = None) -> None:
    model.compile(
        optimizer=build_optimizer(cfg, learning_rate, decay_steps),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=cfg.label_smoothing),
        metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
    )
    # Built here, eagerly: left to the first training step, the optimizer makes its slot
    # variables inside TensorFlow's trace, which then traces the whole step a second time
    # (1.5 s of every trial's first epoch on the CPU, benchmarks/trial_cost.py).
    model.optimizer.build(model.trainable_variables)


def build_training_model(cfg: ModelConfig, num_classes: int, seed: int | None = None,
                         weights: str | None = None, decay_steps: int | None = None
                         ) -> tuple[keras.Model, keras.Model]:
    """(training model with augmentation in front, the core it wraps), compiled."""
    if cfg.backbone != "none":
        from .backbone import build_backbone_core  # Keras: loaded only where a model is needed

        core = build_backbone_core(cfg, num_classes, weights)
    else:
        core = build_core(cfg, num_classes)
    inp = keras.Input((None, None, 3), name="image")
    aug = augment.from_config(cfg, seed)
    out = core(aug(inp) if aug.active else inp)
    model = keras.Model(inp, out, name="hyperfcn_train")
    compile_model(model, cfg, decay_steps=decay_steps)
    return model, core
