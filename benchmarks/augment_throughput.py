"""Training throughput with the default augmentation policy vs none (same model, same data).

    python benchmarks/augment_throughput.py [--size 64] [--batch 32] [--steps 40] [--repeats 3]
        [--model small|seed] [--synthetic] [--keras-layers]

The default policy is flip + rotation + contrast (the article's default config). Figure:
median ratio of augmented to plain images/s; --keras-layers also times Keras' own
RandomFlip/RandomRotation/RandomContrast for comparison.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from common import emit, median  # noqa: E402

MODELS = {
    "small": dict(blocks=3, filters=16, filter_growth=2.0, max_filters=64, dense_units=64),
    "seed": dict(blocks=5, filters=32, filter_growth=2.0, max_filters=512, dense_units=128),
}
POLICY = dict(flip="horizontal", rotation=True, rotation_factor=0.1, contrast=True,
              contrast_factor=0.2)
NONE = dict(flip="none", rotation=False, contrast=False)


def batches_of(packed, bs, k, n, seed=0):
    from hyperfcn.data.buckets import batch_plan

    rng = np.random.default_rng(seed)
    plan = batch_plan(packed, bs, rng)
    out = []
    for i in range(n):
        b, idx, _ = plan[i % len(plan)]
        x = packed.buckets[b].x[idx].astype(np.float32)
        y = np.zeros((bs, k), np.float32)
        y[np.arange(bs), packed.buckets[b].y[idx]] = 1
        out.append((x, y))
    return out


def keras_layers_model(cfg, k):
    import keras

    from hyperfcn.model import build_core, build_optimizer

    core = build_core(cfg, k)
    inp = keras.Input((None, None, 3))
    x = keras.layers.RandomFlip("horizontal")(inp)
    x = keras.layers.RandomRotation(0.1)(x)
    x = keras.layers.RandomContrast(0.2, value_range=(0, 255))(x)
    m = keras.Model(inp, core(x))
    m.compile(build_optimizer(cfg), "categorical_crossentropy")
    return m


def throughput(model, batches, steps):
    # compile every shape first, then time
    for x, y in batches[:8]:
        model.train_on_batch(x, y)
    shapes = {}
    for x, y in batches:
        shapes.setdefault(x.shape, (x, y))
    for x, y in shapes.values():
        model.train_on_batch(x, y)
    t = time.perf_counter()
    n = 0
    for i in range(steps):
        x, y = batches[i % len(batches)]
        loss = model.train_on_batch(x, y)
        n += len(x)
    np.asarray(loss)  # wait for the device
    return n / (time.perf_counter() - t)


def training_images(size: int, synthetic: bool):
    """(the packed training set, classes): flowers, or random images in its bucket shapes."""
    from hyperfcn.data.buckets import pack, plan_buckets

    if not synthetic:
        from common import load_flowers

        data, _ = load_flowers([size])
        return data.train[size], len(data.classes)
    rng = np.random.default_rng(0)
    s = size
    shapes = [(s, int(s * 1.33))] * 60 + [(s, int(s * 1.5))] * 25 + [(int(s * 1.33), s)] * 15
    imgs = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in shapes * 10]
    return pack(imgs, [i % 5 for i in range(len(imgs))],
                plan_buckets([im.shape[:2] for im in imgs])), 5


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--model", choices=list(MODELS), default="small")
    ap.add_argument("--synthetic", action="store_true",
                    help="random images in the flowers bucket shapes (no dataset needed)")
    ap.add_argument("--keras-layers", action="store_true")
    ap.add_argument("--out")
    a = ap.parse_args()

    from hyperfcn.config import ModelConfig
    from hyperfcn.model import build_training_model
    from hyperfcn.runtime import configure_runtime

    configure_runtime(os.cpu_count() or 1, 0)
    import keras

    packed, k = training_images(a.size, a.synthetic)
    batches = batches_of(packed, a.batch, k, max(a.steps, 16))
    kinds = ["none", "policy"] + (["keras_layers"] if a.keras_layers else [])
    results: dict[str, list[float]] = {kd: [] for kd in kinds}
    models = {}
    for kd in kinds:
        base = ModelConfig(image_size=a.size, batch_size=a.batch, **MODELS[a.model],
                           **(POLICY if kd == "policy" else NONE))
        if kd == "keras_layers":
            models[kd] = keras_layers_model(base, k)
        else:
            models[kd] = build_training_model(base, k, seed=0)[0]
    for _ in range(a.repeats):  # interleaved, so drift on a shared machine hits both
        for kd in kinds:
            results[kd].append(throughput(models[kd], batches, a.steps))
    med = {kd: median(v) for kd, v in results.items()}
    ratio = med["policy"] / med["none"]
    res = {"benchmark": "augmentation", "backend": keras.backend.backend(), "size": a.size,
           "batch": a.batch, "model": a.model, "synthetic": a.synthetic,
           "images_per_s": {kd: [round(x, 1) for x in v] for kd, v in results.items()},
           "median_images_per_s": {kd: round(v, 1) for kd, v in med.items()},
           "ratio_policy_vs_none": round(ratio, 3)}
    fig = f"augmentation throughput ratio (flip+rotation+contrast / none): {ratio:.3f}"
    if "keras_layers" in med:
        res["ratio_keras_layers_vs_none"] = round(med["keras_layers"] / med["none"], 3)
        fig += f"; Keras' own layers: {med['keras_layers'] / med['none']:.3f}"
    res["figure"] = fig
    emit(res, a.out)


if __name__ == "__main__":
    main()
