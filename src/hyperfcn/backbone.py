"""Backbone mode: a standard network (Keras applications) with its own preprocessing inside
the model, a new head, and the part of it that trains (frozen, top, all, two stages).

Only built-in layers: the saved model loads with plain keras.saving.load_model.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
from keras import layers

from .config import ModelConfig
from .errors import TrialError

APPLICATIONS = {
    "mobilenetv2": ("MobileNetV2",
                    "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"),
    "efficientnetb0": ("EfficientNetB0", "efficientnetb0_notop.h5"),
    "resnet50": ("ResNet50", "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"),
}
BASE_NAME = "backbone"


def weights_file(backbone: str) -> str:
    """The file Keras caches the ImageNet weights (no top) in, under ~/.keras/models/."""
    return APPLICATIONS[backbone][1]


def preprocess(backbone: str, x):
    """Each network's own preprocess_input, as layers saved inside the model."""
    if backbone == "mobilenetv2":  # [-1, 1]
        return layers.Rescaling(1.0 / 127.5, offset=-1.0, name="preprocess")(x)
    if backbone == "resnet50":  # "caffe": RGB -> BGR, minus the ImageNet mean
        conv = layers.Conv2D(3, 1, name="preprocess", trainable=False)
        y = conv(x)
        perm = np.zeros((1, 1, 3, 3), np.float32)
        for c in range(3):
            perm[0, 0, 2 - c, c] = 1.0
        conv.set_weights([perm, -np.array([103.939, 116.779, 123.68], np.float32)])
        return y
    return x  # EfficientNet rescales and normalises inside itself (inputs in [0, 255])


def build_base(backbone: str, weights: str | None) -> keras.Model:
    cls = getattr(keras.applications, APPLICATIONS[backbone][0])
    kw = dict(include_top=False, input_shape=(None, None, 3))
    if weights == "imagenet":
        try:
            base = cls(weights="imagenet", **kw)
        except Exception as e:
            cache = Path(keras.config.keras_home() if hasattr(keras.config, "keras_home")
                         else Path.home() / ".keras") / "models" / weights_file(backbone)
            raise TrialError(
                f"--weights imagenet: could not get the ImageNet weights of {backbone} "
                f"({type(e).__name__}: {str(e)[:200]}). Offline? Download "
                f"{weights_file(backbone)} once and place it at {cache}, or pass "
                f"--weights PATH.weights.h5 (or --weights none)") from None
    else:
        base = cls(weights=None, **kw)
        if weights and weights != "none":
            try:
                base.load_weights(weights)
            except Exception as e:
                raise TrialError(f"--weights {weights}: cannot load it into {backbone} "
                                 f"({type(e).__name__}: {str(e)[:200]}); give weights saved "
                                 f"from the same network without its top") from None
    base.name = BASE_NAME  # type: ignore[misc]
    return base


def set_trainable(base: keras.Model, mode: str, fraction: float) -> None:
    """frozen: nothing trains; all: everything; top: the last `fraction` of the layers.
    BatchNorm layers keep their ImageNet statistics either way (the base runs in inference
    mode), the usual recipe for fine-tuning on small data."""
    if mode == "frozen":
        base.trainable = False
        return
    base.trainable = True
    if mode == "all":
        return
    n = max(1, int(round(len(base.layers) * fraction)))
    for layer in base.layers[:-n]:
        layer.trainable = False


def build_backbone_core(cfg: ModelConfig, num_classes: int, weights: str | None
                        ) -> keras.Model:
    inp = keras.Input((None, None, 3), name="image")
    x = preprocess(cfg.backbone, inp)
    base = build_base(cfg.backbone, weights)
    # two_stage starts with the head alone; trial.py unfreezes after head_epochs.
    first = "frozen" if cfg.fine_tune == "two_stage" else cfg.fine_tune
    set_trainable(base, first, cfg.fine_tune_fraction)
    x = base(x, training=False)
    x = layers.GlobalAveragePooling2D(name="global_pool")(x)
    if cfg.dropout > 0:
        x = layers.Dropout(cfg.dropout, name="head_dropout")(x)
    out = layers.Dense(num_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inp, out, name="hyperfcn")


def second_stage(core: keras.Model, cfg: ModelConfig) -> None:
    set_trainable(core.get_layer(BASE_NAME), "top", cfg.fine_tune_fraction)
