"""The cosine schedule's numbers are optimizer state: read at run time, saved and restored
with a checkpoint, on TensorFlow and on JAX."""

import json
import os
import subprocess
import sys

import pytest

# Runs as it is under TensorFlow (in this process) and JAX (a fresh process); prints one
# JSON line. A schedule baked into the compiled step would keep training at its first
# rate after plan(phase=1) set it to 0, and would change the weights.
PROBE = """
import json, sys, tempfile, warnings
import numpy as np
import keras
from hyperfcn.config import ModelConfig
from hyperfcn.model import build_training_model, schedule_of

cfg = ModelConfig.from_dict({"image_size": 16, "batch_size": 4, "blocks": 1, "filters": 4,
                             "dense_units": 8, "learning_rate": 0.01, "lr_schedule": "cosine",
                             "optimizer": sys.argv[1]})
model, core = build_training_model(cfg, 2, seed=0, decay_steps=100)
x = np.random.default_rng(0).uniform(0, 255, (4, 16, 16, 3)).astype("float32")
y = np.eye(2, dtype="float32")[[0, 1, 0, 1]]
model.fit(x, y, epochs=1, verbose=0)
fn = model.train_function
schedule_of(model).plan(phase=1.0)  # the rest of the cycle: rate 0
def trained():  # BatchNorm's moving statistics move at any rate
    return [keras.ops.convert_to_numpy(v).copy() for v in core.trainable_weights]
before = trained()
model.fit(x, y, epochs=1, verbose=0)
frozen = all(np.array_equal(a, b) for a, b in zip(before, trained()))
schedule_of(model).plan(phase=0.0, at=0, total=1000)
model.fit(x, y, epochs=1, verbose=0)
moved = not all(np.array_equal(a, b) for a, b in zip(before, trained()))
path = tempfile.mkdtemp() + "/m.keras"
model.save(path)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    loaded = keras.saving.load_model(path)
print(json.dumps({
    "frozen": frozen, "moved": moved, "same_function": model.train_function is fn,
    "numbers": schedule_of(loaded).numbers(),
    "iterations": int(keras.ops.convert_to_numpy(loaded.optimizer.iterations)),
    "class": type(loaded.optimizer).__name__,
    "skipped": [str(w.message) for w in caught if "Skipping" in str(w.message)]}))
"""


def _check(got: dict) -> None:
    assert got["frozen"], "the planned rate 0 was not used: the schedule was baked in"
    assert got["moved"], "the planned rate 0.01 was not used"
    assert got["same_function"], "a new plan must not rebuild the training step"
    assert got["numbers"] == pytest.approx({"peak": 0.01, "at": 0.0, "phase": 0.0,
                                            "total": 1000.0})
    assert got["iterations"] == 3 and not got["skipped"]


@pytest.mark.parametrize("optimizer", ["adamw", "rmsprop"])
def test_schedule_numbers_are_read_at_run_time_and_saved_under_tensorflow(optimizer, capsys,
                                                                         monkeypatch):
    monkeypatch.setattr(sys, "argv", ["probe", optimizer])
    exec(compile(PROBE, "probe", "exec"), {})
    got = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert got["class"] == {"adamw": "ScheduledAdamW", "rmsprop": "ScheduledRMSprop"}[optimizer]
    _check(got)


@pytest.mark.integration
def test_schedule_numbers_are_read_at_run_time_and_saved_under_jax(tmp_path):
    pytest.importorskip("jax")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("JAX_")}
    out = subprocess.run([sys.executable, "-c", PROBE, "adamw"], capture_output=True,
                         text=True, env={**clean, "KERAS_BACKEND": "jax",
                                         "XDG_CACHE_HOME": str(tmp_path)})
    assert out.returncode == 0, out.stderr[-3000:]
    _check(json.loads(out.stdout.strip().splitlines()[-1]))


def test_a_plan_names_only_the_schedules_numbers():
    from hyperfcn.model import Cosine

    with pytest.raises(ValueError, match="total"):
        Cosine(0.1).plan(total=10)  # not attached to an optimizer
