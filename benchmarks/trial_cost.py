"""Where a trial's fixed cost goes: setup and first-epoch excess, trial by trial.

    python benchmarks/trial_cost.py [--trials 10] [--backend tensorflow|jax]

A search of one architecture (the default space's recipe, learning rate searched) on a
300-image subset of the flowers photos at 32 px, FIFO, one trial at a time on both cores,
3 epochs a trial. For the 1st, 2nd and last trial: setup (worker start or reuse, imports,
model build, to the first fit), first epoch, steady epoch (median of the later ones), and
the fixed cost = setup + (first epoch - steady epoch). Then plain Keras on the same model
and arrays (one process, train_on_batch over the same batches, predict_on_batch over the
validation batches each epoch): its steady epoch, against ours.

Under JAX, compiled programs go to the persistent cache in $XDG_CACHE_HOME/hyperfcn/jax: a
first run with an empty XDG_CACHE_HOME measures a search on a fresh machine, a second run
with the same one a search whose programs are all cached (the same search run again).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))
from common import FLOWERS, emit  # noqa: E402

PER_CLASS = {"train": 60, "val": 20}  # 300 training images over 5 classes


def subset(work: Path) -> Path:
    for split, n in PER_CLASS.items():
        for cls in sorted(p for p in (FLOWERS / split).iterdir() if p.is_dir()):
            d = work / "data" / split / cls.name
            d.mkdir(parents=True, exist_ok=True)
            for f in sorted(cls.glob("*.jpg"))[:n]:
                (d / f.name).symlink_to(f)
    return work / "data"


def space_file(work: Path) -> Path:
    from hyperfcn.space import default_space_text

    raw = yaml.safe_load(default_space_text())
    recipe = dict(raw["defaults"])
    params = {k: v for k, v in recipe.items()}
    params["learning_rate"] = {"loguniform": [1e-3, 1e-2]}
    params["image_size"] = 32
    path = work / "space.yaml"
    path.write_text(yaml.safe_dump({"parameters": params}))
    return path


def search(data: Path, space: Path, trials: int, epochs: int, backend: str,
           work: Path) -> list[dict]:
    out = work / f"run_{backend}"
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "hyperfcn", "tune", str(data / "train"), "--val-dir",
           str(data / "val"), "--out", str(out), "--space", str(space), "--samples",
           str(trials), "--max-epochs", str(epochs), "--scheduler", "fifo", "--concurrency",
           "1", "--cpus-per-trial", "2", "--no-final", "--quiet"]
    r = subprocess.run(cmd, capture_output=True, text=True,
                       env={**os.environ, "KERAS_BACKEND": backend})
    if r.returncode:
        raise SystemExit(r.stderr[-4000:])
    rows = []
    trials_json = json.loads((out / "trials.json").read_text())
    for t in sorted(trials_json, key=lambda t: t["history"][0]["timestamp"]):
        h = t["history"]
        steady = statistics.median(x["epoch_seconds"] for x in h[1:])
        rows.append({"setup": round(h[0]["setup_seconds"], 2),
                     "first_epoch": round(h[0]["epoch_seconds"], 2),
                     "steady_epoch": round(steady, 2),
                     "val_seconds": round(statistics.median(x["val_seconds"] for x in h), 3),
                     "fixed": round(h[0]["setup_seconds"] + h[0]["epoch_seconds"] - steady,
                                    2)})
    return rows


def plain_keras(data: Path, epochs: int, backend: str) -> float:
    """Median later epoch of plain Keras on the same model, arrays and batches, with no
    framework around it: train_on_batch over each epoch's batches, then predict_on_batch
    over the validation batches (one process, both cores)."""
    code = f"""
import sys, time, numpy as np, yaml
sys.path.insert(0, {str(HERE.parent / 'src')!r})
from hyperfcn.data.prepare import prepare
from hyperfcn.data.buckets import batch_plan
from hyperfcn.config import ModelConfig
from hyperfcn.runtime import configure_runtime
from hyperfcn.space import default_space_text
data, _ = prepare({str(data / 'train')!r}, [32], val_dir={str(data / 'val')!r})
configure_runtime(2, 0)
import keras
from hyperfcn.model import build_training_model
cfg = ModelConfig.from_dict({{**yaml.safe_load(default_space_text())["defaults"],
                              "image_size": 32}})
model, core = build_training_model(cfg, 5, seed=0)
tr, va, bs = data.train[32], data.val[32], cfg.batch_size
times = []
for e in range({epochs}):
    t = time.perf_counter()
    for b, idx, _ in batch_plan(tr, bs, np.random.default_rng([0, e])):
        x = tr.buckets[b].x[idx].astype("float32")
        y = np.eye(5, dtype="float32")[tr.buckets[b].y[idx]]
        model.train_on_batch(x, y)
    for b, idx, _ in batch_plan(va, bs, None):
        core.predict_on_batch(va.buckets[b].x[idx].astype("float32"))
    times.append(time.perf_counter() - t)
print("EPOCHS", times)
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env={**os.environ, "KERAS_BACKEND": backend})
    if r.returncode:
        raise SystemExit(r.stderr[-4000:])
    times = json.loads(r.stdout.split("EPOCHS")[-1].strip())
    return statistics.median(times[1:])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--backend", default=os.environ.get("KERAS_BACKEND", "tensorflow"))
    ap.add_argument("--out")
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="hyperfcn-trialcost-"))
    data = subset(work)
    rows = search(data, space_file(work), a.trials, a.epochs, a.backend, work)
    plain = plain_keras(data, a.epochs, a.backend)
    picks = {"1st": rows[0], "2nd": rows[1], f"{len(rows)}th": rows[-1]}
    emit({"benchmark": "trial_cost", "backend": a.backend, "epochs": a.epochs,
          "images": sum(PER_CLASS.values()) * 5, "trials": rows, "plain_keras_epoch": plain,
          "figure": f"{a.backend}: fixed cost (setup + first-epoch excess) "
                    + ", ".join(f"{k} trial {v['fixed']:.1f} s (setup {v['setup']:.1f} s, "
                                f"first epoch {v['first_epoch']:.1f} s, steady "
                                f"{v['steady_epoch']:.2f} s)" for k, v in picks.items())
                    + f"; steady epoch {statistics.median(r['steady_epoch'] for r in rows):.2f}"
                      f" s vs plain Keras {plain:.2f} s"}, a.out)


if __name__ == "__main__":
    main()
