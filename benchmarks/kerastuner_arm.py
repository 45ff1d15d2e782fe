"""KerasTuner's Hyperband on hyperfcn's kind of space, for `search_arms.py` (live runs).

    python benchmarks/kerastuner_arm.py DATA [--val-dir DIR] --size PX --budget-s S
                                        --seed N --out DIR

The peer users pick instead of hyperfcn: the same model family (hyperfcn's own builder,
augmentation inside the model), the same decoded images and split (`hyperfcn.data.prepare`
with the same seed), Hyperband with max_epochs 10 and factor 3 judged on val loss, as a
KerasTuner user would set it up. KerasTuner has no time budget, so an oracle that stops
creating trials and a callback that ends the running fit close the search at the budget
less the final step's reserve (Hyperband's brackets repeat until then); the best trial's
best epoch (KerasTuner keeps its weights) is then loaded, scored on the validation set and
saved. Images are centre-cropped to squares
(one input shape, as `image_dataset_from_directory` users get); cifar10-small and the
digits are square already. Writes `result.json` (score, seconds, every epoch's
(seconds, val accuracy)) in --out. A benchmark extra: `pip install keras-tuner`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

RESERVE_S = 30.0  # + 4 ms per validation image, as `hyperfcn tune` keeps back


def squares(packed, size: int) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for b in packed.buckets:
        h, w = b.x.shape[1:3]
        top, left = (h - size) // 2, (w - size) // 2
        xs.append(b.x[:, top:top + size, left:left + size])
        ys.append(b.y)
    return np.concatenate(xs), np.concatenate(ys)


def config_of(hp) -> dict:
    """The default space's parameters as KerasTuner hyperparameters (lr schedule constant:
    Hyperband's trials do not know how many epochs they will get)."""
    c = {"learning_rate": hp.Float("learning_rate", 1e-4, 1e-1, sampling="log"),
         "lr_schedule": "constant",
         "optimizer": hp.Choice("optimizer", ["adam", "adamw", "sgd"]),
         "label_smoothing": hp.Choice("label_smoothing", [0.0, 0.1]),
         "blocks": hp.Int("blocks", 2, 5), "filters": hp.Choice("filters", [16, 32, 64]),
         "filter_growth": hp.Choice("filter_growth", [1.5, 2.0]),
         "convs_per_block": hp.Choice("convs_per_block", [1, 2]),
         "downsample": hp.Choice("downsample", ["maxpool", "stride"]),
         "head": hp.Choice("head", ["dense", "conv"]),
         "pooling": hp.Choice("pooling", ["avg", "max"]),
         "dropout": hp.Float("dropout", 0.0, 0.5),
         "flip": hp.Choice("flip", ["none", "horizontal", "horizontal_and_vertical"])}
    if c["optimizer"] == "adamw":
        c["weight_decay"] = hp.Float("weight_decay", 1e-5, 1e-2, sampling="log")
    units = hp.Choice("head_units", [64, 128, 256])
    c["dense_units" if c["head"] == "dense" else "conv_head_filters"] = units
    for aug, (lo, hi) in {"rotation": (0.02, 0.25), "zoom": (0.05, 0.3),
                          "translation": (0.05, 0.2), "contrast": (0.05, 0.4),
                          "brightness": (0.05, 0.3)}.items():
        c[aug] = hp.Boolean(aug)
        if c[aug]:
            c[f"{aug}_factor"] = hp.Float(f"{aug}_factor", lo, hi)
    return c


def _args() -> argparse.Namespace:
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("--val-dir")
    ap.add_argument("--size", type=int, required=True)
    ap.add_argument("--budget-s", type=float, required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True)
    return ap.parse_args()


def main() -> None:
    a = _args()
    t0 = time.time()
    import keras
    import keras_tuner as kt

    from hyperfcn.config import ModelConfig
    from hyperfcn.data.prepare import prepare
    from hyperfcn.model import build_training_model

    data, _ = prepare(a.data, [a.size], val_dir=a.val_dir, seed=a.seed)
    x, y = squares(data.train[a.size], a.size)
    vx, vy = squares(data.val[a.size], a.size)
    k = len(data.classes)
    y1, vy1 = np.eye(k, dtype="float32")[y], np.eye(k, dtype="float32")[vy]
    deadline = t0 + a.budget_s - RESERVE_S - 0.004 * len(vy)
    epochs_log: list[tuple[float, float]] = []

    class Deadline(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            epochs_log.append((round(time.time() - t0, 1), float(logs["val_accuracy"])))
            if time.time() > deadline:
                self.model.stop_training = True

    class Oracle(kt.oracles.HyperbandOracle):
        def populate_space(self, trial_id):
            if time.time() > deadline:
                return {"status": kt.engine.trial.TrialStatus.STOPPED, "values": None}
            return super().populate_space(trial_id)

    class Model(kt.HyperModel):
        def build(self, hp):
            cfg = ModelConfig.from_dict({**config_of(hp), "image_size": a.size,
                                         "batch_size": 32})
            return build_training_model(cfg, k, seed=a.seed)[0]

        def fit(self, hp, model, *args, **kw):
            return model.fit(*args, batch_size=hp.Choice("batch_size", [8, 16, 32, 64]),
                             **kw)

    keras.utils.set_random_seed(a.seed)
    # Hyperband runs its brackets again until the budget ends (one pass, KerasTuner's
    # default, ended cifar10-small's 10-minute search at 291 s)
    tuner = kt.Tuner(oracle=Oracle(objective="val_loss", max_epochs=10, factor=3,
                                   hyperband_iterations=10**6, seed=a.seed),
                     hypermodel=Model(), directory=a.out, project_name="kt", overwrite=True)
    tuner.search(x, y1, validation_data=(vx, vy1), callbacks=[Deadline()], verbose=0)
    search_s = time.time() - t0
    best = tuner.get_best_models(1)[0]
    loss, acc = best.evaluate(vx, vy1, verbose=0)
    best.save(Path(a.out, "model.keras"))
    trials = tuner.oracle.get_best_trials(10**6)
    result = {"val_accuracy": float(acc), "val_loss": float(loss),
              "seconds_to_model": round(time.time() - t0, 1), "search_s": round(search_s, 1),
              "trials": len(trials), "epochs": epochs_log}
    Path(a.out, "result.json").write_text(json.dumps(result))
    print(json.dumps({k: v for k, v in result.items() if k != "epochs"}))


if __name__ == "__main__":
    main()
