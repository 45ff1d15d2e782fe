"""Frozen, validated configs: one trial's model and training recipe.

A config dict (what a searcher suggests, or best_config.json) becomes a ``ModelConfig``;
every rule failure names the key, echoes the value and states the rule.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from . import yamlio
from .errors import SpaceError

FLIP_MODES = ("none", "horizontal", "vertical", "horizontal_and_vertical")
OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
LR_SCHEDULES = ("constant", "cosine")
INITS = ("default", "airbench")  # see weights_init
BACKBONES = ("mobilenetv2", "efficientnetb0", "resnet50")
FINE_TUNE = ("frozen", "top", "all", "two_stage")


@dataclass(frozen=True)
class ModelConfig:
    # data and optimisation
    image_size: int = 64
    batch_size: int = 32
    learning_rate: float = 1e-3
    optimizer: str = "adam"
    weight_decay: float = 0.0
    label_smoothing: float = 0.0
    # architecture
    blocks: int = 3
    filters: int = 32
    filter_growth: float = 2.0
    max_filters: int = 256
    convs_per_block: int = 1
    downsample: str = "maxpool"  # maxpool | stride
    batchnorm: bool = True
    head: str = "dense"  # dense | conv
    dense_units: int = 128
    conv_head_filters: int = 128
    pooling: str = "avg"  # avg | max
    dropout: float = 0.2
    init: str = "default"  # default (Keras') | airbench (from the data; weights_init)
    # augmentation: active only in training
    flip: str = "horizontal"
    rotation: bool = False
    rotation_factor: float = 0.1
    zoom: bool = False
    zoom_factor: float = 0.1
    translation: bool = False
    translation_factor: float = 0.1
    contrast: bool = False
    contrast_factor: float = 0.2
    brightness: bool = False
    brightness_factor: float = 0.2
    # learning-rate schedule over the trial's epochs
    lr_schedule: str = "constant"  # constant | cosine
    # backbone mode: a standard network instead of the searched FCN ("none")
    backbone: str = "none"
    fine_tune: str = "frozen"  # frozen | top | all | two_stage
    fine_tune_fraction: float = 0.3  # share of the backbone's layers "top"/"two_stage" train
    head_epochs: int = 2  # two_stage: epochs of head-only training first
    finetune_lr_factor: float = 0.1  # two_stage: learning rate x this for the fine-tuning

    def __post_init__(self) -> None:
        def rule(ok: bool, key: str, text: str) -> None:
            if not ok:
                raise SpaceError(f"config: {key}={getattr(self, key)!r}, but {text}")

        rule(8 <= self.image_size <= 1024, "image_size", "must be in 8..1024")
        rule(1 <= self.batch_size <= 4096, "batch_size", "must be in 1..4096")
        rule(0 < self.learning_rate <= 10, "learning_rate", "must be in (0, 10]")
        rule(self.optimizer in OPTIMIZERS, "optimizer", f"must be one of {OPTIMIZERS}")
        rule(0 <= self.weight_decay < 1, "weight_decay", "must be in [0, 1)")
        rule(0 <= self.label_smoothing < 1, "label_smoothing", "must be in [0, 1)")
        rule(1 <= self.blocks <= 8, "blocks", "must be in 1..8")
        rule(1 <= self.filters <= 2048, "filters", "must be in 1..2048")
        rule(1.0 <= self.filter_growth <= 4.0, "filter_growth", "must be in [1, 4]")
        rule(1 <= self.max_filters <= 2048, "max_filters", "must be in 1..2048")
        rule(1 <= self.convs_per_block <= 4, "convs_per_block", "must be in 1..4")
        rule(self.downsample in ("maxpool", "stride"), "downsample", "must be maxpool or stride")
        rule(self.head in ("dense", "conv"), "head", "must be dense or conv")
        rule(1 <= self.dense_units <= 8192, "dense_units", "must be in 1..8192")
        rule(1 <= self.conv_head_filters <= 8192, "conv_head_filters",
             "must be in 1..8192")
        rule(self.pooling in ("avg", "max"), "pooling", "must be avg or max")
        rule(0 <= self.dropout < 1, "dropout", "must be in [0, 1)")
        rule(self.init in INITS, "init", f"must be one of {INITS}")
        rule(self.flip in FLIP_MODES, "flip", f"must be one of {FLIP_MODES}")
        rule(0 <= self.rotation_factor <= 0.5, "rotation_factor",
             "must be in [0, 0.5] (a fraction of a full turn)")
        for key in ("zoom_factor", "translation_factor", "contrast_factor", "brightness_factor"):
            rule(0 <= getattr(self, key) <= 1, key, "must be in [0, 1]")
        rule(self.lr_schedule in LR_SCHEDULES, "lr_schedule", f"must be one of {LR_SCHEDULES}")
        rule(self.backbone in ("none", *BACKBONES), "backbone",
             f"must be none (the FCN) or one of {BACKBONES}")
        rule(self.fine_tune in FINE_TUNE, "fine_tune", f"must be one of {FINE_TUNE}")
        rule(0 < self.fine_tune_fraction <= 1, "fine_tune_fraction", "must be in (0, 1]")
        rule(0 <= self.head_epochs <= 1000, "head_epochs", "must be in 0..1000")
        rule(0 < self.finetune_lr_factor <= 1, "finetune_lr_factor", "must be in (0, 1]")

    @property
    def two_stage(self) -> bool:
        """A backbone trained head first, then fine-tuned at a lower learning rate."""
        return self.backbone != "none" and self.fine_tune == "two_stage"

    def unused(self) -> set[str]:
        """Keys whose value this config never reads (dense_units with a conv head, the
        strength of an augmentation that is off, ...): hidden where configs are shown."""
        off = {"dense_units" if self.head == "conv" else "conv_head_filters"}
        off |= {f"{a}_factor" for a in ("rotation", "zoom", "translation", "contrast",
                                        "brightness") if not getattr(self, a)}
        if self.optimizer != "adamw":
            off.add("weight_decay")
        if self.backbone == "none":
            off |= {"fine_tune", "fine_tune_fraction", "head_epochs", "finetune_lr_factor"}
        else:
            off |= {"init", "blocks", "filters", "filter_growth", "max_filters", "convs_per_block",
                    "downsample", "batchnorm", "head", "dense_units", "conv_head_filters",
                    "pooling"}
            if self.fine_tune not in ("top", "two_stage"):
                off.add("fine_tune_fraction")
            if self.fine_tune != "two_stage":
                off |= {"head_epochs", "finetune_lr_factor"}
        return off

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "config") -> ModelConfig:
        if not isinstance(data, Mapping):
            raise SpaceError(f"{source}: expected a mapping of key: value, got {data!r}")
        types = {f.name: f.type for f in fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            if key not in types:
                raise SpaceError(f"{source}: unknown key {key!r}; known keys: "
                                 f"{', '.join(sorted(types))}")
            kwargs[key] = _coerce(source, key, value, types[key])
        try:
            return cls(**kwargs)
        except SpaceError as e:
            raise SpaceError(str(e).replace("config:", f"{source}:", 1)) from None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def keys(cls) -> set[str]:
        return {f.name for f in fields(cls)}


def _coerce(source: str, key: str, value: Any, typ: str) -> Any:
    # Searchers hand back floats for quantised ints (3.0) and numpy scalars; accept those,
    # but never a string standing in for a boolean or a number.
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        value = value.item()
    if typ == "bool":
        if not isinstance(value, bool):
            raise SpaceError(f"{source}: {key}={value!r} must be true or false (a real "
                             f"boolean, not a string or number)")
        return value
    if typ == "int":
        if isinstance(value, bool) or not isinstance(value, int | float) or (
                isinstance(value, float) and not value.is_integer()):
            raise SpaceError(f"{source}: {key}={value!r} must be an integer")
        return int(value)
    if typ == "float":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise SpaceError(f"{source}: {key}={value!r} must be a number")
        return float(value)
    if typ == "str":
        if not isinstance(value, str):
            raise SpaceError(f"{source}: {key}={value!r} must be a string")
        return value
    return value


def load_config(path: str | Path) -> ModelConfig:
    p = Path(path)
    if not p.is_file():
        raise SpaceError(f"{p}: config file not found; start from a run's best_config.json "
                         f"or write one with the keys `hyperfcn space` lists")
    try:
        if p.suffix in (".yaml", ".yml"):

            data = yamlio.load(p.read_text())
        else:
            data = json.loads(p.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise SpaceError(f"{p}: cannot parse ({str(e).splitlines()[0]}); write JSON "
                         f"like best_config.json") from None
    except Exception as e:  # yaml.YAMLError
        raise SpaceError(f"{p}: cannot parse ({str(e).splitlines()[0]})") from None
    return ModelConfig.from_dict(data, str(p))
