"""Does bfloat16 train the recipe faster on this CPU? Training steps/s of the fixed baseline
recipe's network (benchmarks/baseline_recipe.json) in float32 and in Keras'
``mixed_bfloat16`` policy, on one thread, alternating, same synthetic batches.

    python benchmarks/probes/bf16_probe.py [--size 64] [--batch 32] [--steps 30] [--repeats 3]

oneDNN runs bf16 convolutions natively where the CPU has AVX512-BF16 or AMX and converts
elsewhere; `hyperfcn.precision` turns bf16 on only where it is native. Figure: median bf16 /
float32 steps/s (above 1: faster).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
from common import emit, median  # noqa: E402

HERE = Path(__file__).resolve().parents[1]  # benchmarks/


def cpu_flags() -> list[str]:
    from hyperfcn.precision import NATIVE_BF16_FLAGS
    from hyperfcn.precision import cpu_flags as flags

    return sorted((NATIVE_BF16_FLAGS | {"amx_tile"}) & flags())


def steps_per_s(policy: str, size: int, batch: int, steps: int) -> float:
    import keras
    import numpy as np

    from hyperfcn.config import ModelConfig
    from hyperfcn.model import build_core, build_optimizer

    keras.mixed_precision.set_global_policy(policy)
    cfg = ModelConfig.from_dict(json.loads((HERE / "baseline_recipe.json").read_text()))
    model = build_core(cfg, 10)
    model.compile(build_optimizer(cfg), "categorical_crossentropy")
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (batch, size, size, 3)).astype("float32")
    y = np.eye(10, dtype="float32")[rng.integers(0, 10, batch)]
    for _ in range(3):  # compile and warm up
        model.train_on_batch(x, y)
    t0 = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    keras.mixed_precision.set_global_policy("float32")
    return steps / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=str(HERE / "results" / "bf16_probe_cpu.json"))
    a = ap.parse_args()
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    runs: dict[str, list[float]] = {"float32": [], "mixed_bfloat16": []}
    for _ in range(a.repeats):
        for policy in runs:
            runs[policy].append(steps_per_s(policy, a.size, a.batch, a.steps))
    ratio = median(runs["mixed_bfloat16"]) / median(runs["float32"])
    emit({"cpu_flags": cpu_flags(), "size": a.size, "batch": a.batch,
          "steps_per_s": runs, "ratio_bf16_over_fp32": round(ratio, 3),
          "figure": f"bf16 / float32 training steps/s, {a.size} px, batch {a.batch}, one "
                    f"thread (CPU flags: {', '.join(cpu_flags()) or 'none'}): {ratio:.2f}x"},
         a.out)


if __name__ == "__main__":
    main()
