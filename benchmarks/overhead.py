"""Orchestration overhead: 6 fixed configs x 3 epochs through `hyperfcn tune` vs plain Keras.

    python benchmarks/overhead.py [--size 64] [--epochs 3] [--repeats 3]

Baseline: the same six trainings back to back in one process with plain Keras on the same
cached arrays (fit, then validation predictions each epoch), using both cores. Tune side:
`hyperfcn tune --scheduler fifo --concurrency 1 --cpus-per-trial 2 --no-final` with the six
configs as the space's `defaults` list. Also: concurrency 2 (1 CPU each) on 2 cores, and the
time from the tune command's start to its first reported epoch. Figure: median ratio of the
tune search's wall time to the baseline's.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))
from common import FLOWERS, emit, median  # noqa: E402


def six_configs(size: int) -> list[dict]:
    from hyperfcn.config import ModelConfig
    from hyperfcn.space import load_space

    space = load_space(known_keys=ModelConfig.keys())
    rng = random.Random(42)
    out = []
    while len(out) < 6:
        c = space.sample(rng)
        c["image_size"] = size
        # keep each training within a few seconds an epoch on 2 cores
        c["blocks"] = min(c["blocks"], 4)
        c["filters"] = min(c["filters"], 32)
        c["convs_per_block"] = 1
        out.append(c)
    return out


def baseline(configs, epochs: int) -> tuple[float, list[float]]:
    """Plain Keras, one process, both cores, cached arrays: total and per-config seconds."""
    code = f"""
import json, sys, time, numpy as np
sys.path.insert(0, {str(HERE.parent / 'src')!r})
from hyperfcn.data.prepare import prepare
from hyperfcn.data.arrays import labels_of
from hyperfcn.feed import predict_packed
from hyperfcn.feed import train_input as _train_input
from hyperfcn.runtime import configure_runtime
from hyperfcn.data.buckets import steps
from hyperfcn.config import ModelConfig
configs = json.loads(sys.argv[1])
size = configs[0]["image_size"]
data, _ = prepare({str(FLOWERS / 'train')!r}, [size], val_dir={str(FLOWERS / 'val')!r})
configure_runtime(2, 0)
import keras
from hyperfcn.model import build_training_model
tr, va = data.train[size], data.val[size]
t = time.perf_counter()
per = []
for c in configs:
    tc = time.perf_counter()
    cfg = ModelConfig.from_dict(c)
    keras.backend.clear_session()
    model, core = build_training_model(cfg, 5, seed=0)
    class Val(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            predict_packed(core, va, cfg.batch_size)
    model.fit(_train_input(tr, cfg.batch_size, 5, 0, 0, {epochs}), epochs={epochs},
              steps_per_epoch=steps(tr, cfg.batch_size), callbacks=[Val()], verbose=0,
              shuffle=False)
    per.append(time.perf_counter() - tc)
print("PER", json.dumps(per))
print("SECONDS", time.perf_counter() - t)
"""
    r = subprocess.run([sys.executable, "-c", code, json.dumps(configs)], capture_output=True,
                       text=True, env={**os.environ, "KERAS_BACKEND": "tensorflow"})
    if r.returncode:
        raise SystemExit(r.stderr[-4000:])
    per = json.loads(r.stdout.split("PER")[-1].split("SECONDS")[0])
    return float(r.stdout.split("SECONDS")[-1]), per


def tuned(configs, epochs: int, concurrency: int, work: Path, final: bool = True) -> dict:
    space = yaml.safe_load((HERE.parent / "src/hyperfcn/default_space.yaml").read_text())
    space["defaults"] = configs
    sp = work / "space.yaml"
    sp.write_text(yaml.safe_dump(space))
    out = work / f"run_c{concurrency}"
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "hyperfcn.cli", "tune", str(FLOWERS / "train"), "--val-dir",
           str(FLOWERS / "val"), "--out", str(out), "--space", str(sp), "--image-size",
           str(configs[0]["image_size"]), "--samples", "6", "--max-epochs", str(epochs),
           "--scheduler", "fifo", "--concurrency", str(concurrency), "--cpus-per-trial",
           # with the final step on (the default), trials checkpoint their improving epochs;
           # the search's time is what is measured, the final step comes after it
           str(2 // concurrency), "--quiet", *([] if final else ["--no-final"])]
    t0 = time.time()
    r = subprocess.run(cmd, capture_output=True, text=True)
    total = time.time() - t0
    if r.returncode:
        raise SystemExit(r.stderr[-4000:])
    info = json.loads((out / "search.json").read_text())
    first = min(json.loads(p.read_text().splitlines()[0])["timestamp"]
                for p in (out / "tune").glob("trial_*/result.json"))
    assert info["trial_epochs"] == 6 * epochs, info
    trials = sorted(json.loads((out / "trials.json").read_text()),
                    key=lambda t: t["history"][0]["timestamp"])
    return {"search": info["search_wall_seconds"], "command": total,
            "first_epoch_after_start": first - t0,
            # each trial's own seconds, setup (the first: worker start and imports) to its
            # last report, in the order they ran
            "per_trial": [t["history"][0]["setup_seconds"]
                          + sum(h["epoch_seconds"] for h in t["history"]) for t in trials]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-final", dest="final", action="store_false",
                    help="trials keep no best-epoch checkpoints: what they cost, by difference")
    ap.add_argument("--out")
    a = ap.parse_args()
    configs = six_configs(a.size)
    work = Path(tempfile.mkdtemp(prefix="hyperfcn-overhead-"))
    base, tune1, first, base_per, tune_per = [], [], [], [], []
    for _ in range(a.repeats):  # interleaved: machine noise hits both sides alike
        b, per = baseline(configs, a.epochs)
        base.append(b)
        base_per.append([round(x, 1) for x in per])
        t = tuned(configs, a.epochs, 1, work, a.final)
        tune1.append(t["search"])
        tune_per.append([round(x, 1) for x in t["per_trial"]])
        first.append(t["first_epoch_after_start"])
        print(f"baseline {base[-1]:.1f} s, tune {tune1[-1]:.1f} s", flush=True)
    c2 = tuned(configs, a.epochs, 2, work, a.final)["search"]
    ratios = [t / b for t, b in zip(tune1, base)]
    ratio = median(ratios)
    emit({"benchmark": "overhead", "final": a.final, "size": a.size, "epochs": a.epochs,
          "configs": configs,
          "baseline_seconds": [round(x, 1) for x in base],
          "tune_seconds": [round(x, 1) for x in tune1],
          "baseline_per_config": base_per, "tune_per_trial": tune_per,
          "ratios": [round(x, 3) for x in ratios],
          "concurrency2_seconds": round(c2, 1),
          "concurrency2_vs_baseline": round(c2 / median(base), 3),
          "seconds_to_first_epoch": [round(x, 1) for x in first],
          "figure": f"orchestration overhead (tune / plain Keras, median of {a.repeats}): "
                    f"{ratio:.3f}x; concurrency 2: {c2 / median(base):.3f}x; first epoch "
                    f"{median(first):.1f} s after start"}, a.out)


if __name__ == "__main__":
    main()
