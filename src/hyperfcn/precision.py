"""The float type trials train in, and the float32 model that ships whatever they used.

Keras' ``mixed_bfloat16`` (bfloat16 compute, float32 weights, a float32 output layer) trains
the recipe's network faster on a CPU whose oneDNN has native bfloat16 (AVX512-BF16, or AMX),
and many times slower on one without (emulated): ``benchmarks/probes/bf16_probe.py``. So it is
chosen per machine, from the CPU's flags, on the TensorFlow backend on a CPU only (on a GPU
and under JAX it is unmeasured, so float32).
``HYPERFCN_PRECISION=float32|bfloat16`` overrides the choice; Ray's workers inherit it.

The saved model is always float32 (:func:`as_float32`): it loads, predicts and exports the
same on any machine, and the score a run reports is that file's.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .errors import UserError

PRECISION_ENV = "HYPERFCN_PRECISION"
PRECISIONS = ("auto", "float32", "bfloat16")
# oneDNN's native bfloat16 paths: AVX512-BF16 (Cooper Lake, Zen 4 and later) and AMX
# (Sapphire Rapids and later).
NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


def cpu_flags(cpuinfo: str | None = None) -> frozenset[str]:
    """The CPU's feature flags (Linux /proc/cpuinfo; empty where it cannot be read)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return frozenset()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def chosen(env: str | None = None, backend: str | None = None, gpu: bool = False,
           flags: frozenset[str] | None = None) -> str:
    """``float32`` or ``bfloat16`` for this process: the environment's choice, else
    bfloat16 where TensorFlow trains on a CPU with native bfloat16."""
    value = (os.environ.get(PRECISION_ENV, "") if env is None else env).strip() or "auto"
    if value not in PRECISIONS:

        raise UserError(f"{PRECISION_ENV}={value!r}: must be one of {', '.join(PRECISIONS)}")
    if value != "auto":
        return value
    if backend is None:
        import keras

        backend = keras.backend.backend()
    native = NATIVE_BF16_FLAGS & (cpu_flags() if flags is None else flags)
    return "bfloat16" if backend == "tensorflow" and not gpu and native else "float32"


def describe(backend: str, gpu: bool) -> str:
    """The precision trials on this machine train in, and why, for the startup line."""
    name = chosen(backend=backend, gpu=gpu)
    if os.environ.get(PRECISION_ENV, "auto").strip() not in ("", "auto"):
        return f"{name} ({PRECISION_ENV})"
    if name == "bfloat16":
        return (f"mixed bfloat16 (this CPU computes it natively; {PRECISION_ENV}=float32 "
                f"turns it off; the saved model is float32)")
    return "float32"


def set_precision(gpu: bool = False) -> str:
    """Set Keras' global dtype policy for the models built next; returns the precision."""
    import keras

    name = chosen(gpu=gpu)
    keras.mixed_precision.set_global_policy("mixed_bfloat16" if name == "bfloat16"
                                            else "float32")
    return name


def as_float32(model: Any) -> Any:
    """``model`` with every layer computing in float32 (the same weights), or ``model``
    itself when it already does."""
    import keras

    if all(layer.dtype_policy.name == "float32" for layer in model.layers):
        return model
    clone = keras.models.clone_model(model, clone_function=lambda layer: layer.__class__
                                     .from_config({**layer.get_config(), "dtype": "float32"}))
    clone.set_weights(model.get_weights())
    return clone
