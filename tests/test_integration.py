"""The real CLI, small, on the real flowers photos (32 px, 2-3 trials, 1-3 epochs)."""

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def hyperfcn(*args, env=None, timeout=900, check=True):
    e = {**os.environ, **(env or {})}
    r = subprocess.run([sys.executable, "-m", "hyperfcn.cli", *map(str, args)],
                       capture_output=True, text=True, env=e, timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError(f"exit {r.returncode}\nstdout:\n{r.stdout[-3000:]}\n"
                             f"stderr:\n{r.stderr[-5000:]}")
    return r


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    if not (Path(__file__).resolve().parents[2] / "shared/datasets/flowers/train").is_dir():
        pytest.fail("../shared/datasets/flowers is missing")
    flowers = Path(__file__).resolve().parents[2] / "shared/datasets/flowers"
    run = tmp_path_factory.mktemp("runs") / "flowers"
    r = hyperfcn("tune", flowers / "train", "--val-dir", flowers / "val", "--out", run,
                 "--image-size", 32, "--samples", 2, "--max-epochs", 2, "--seed", 1)
    return run, r, flowers


def test_tune_leaves_a_complete_run_dir(tuned):
    run, r, _ = tuned
    for name in ("model.keras", "classes.json", "best_config.json", "metrics.json",
                 "trials.csv", "settings.json", "data.json"):
        assert (run / name).is_file(), name
    assert (run / "tune").is_dir() and (run / "tensorboard").is_dir()
    assert json.loads((run / "classes.json").read_text()) == [
        "daisy", "dandelion", "roses", "sunflowers", "tulips"]
    cfg = json.loads((run / "best_config.json").read_text())
    assert cfg["image_size"] == 32 and isinstance(cfg["rotation"], bool)
    metrics = json.loads((run / "metrics.json").read_text())
    assert 0.2 < metrics["val_accuracy"] <= 1 and metrics["val_loss"] > 0
    rows = list(csv.DictReader(io.StringIO((run / "trials.csv").read_text())))
    assert len(rows) == 2
    for row in rows:
        for col in ("trial_id", "learning_rate", "status", "epochs", "best_val_loss",
                    "best_val_accuracy", "seconds"):
            assert col in row
        assert row["status"] in ("completed", "stopped")
    settings = json.loads((run / "settings.json").read_text())
    assert settings["seed"] == 1 and "ray" in settings["versions"]
    assert "ASHA" in r.stdout and "grace_period" in r.stdout
    assert str(run / "model.keras") in r.stdout


def test_model_loads_with_plain_keras(tuned):
    run, _, _ = tuned
    code = ("import keras, numpy as np, sys; m = keras.saving.load_model(sys.argv[1]); "
            "p = m.predict(np.zeros((1, 40, 50, 3), 'float32'), verbose=0); "
            "print(p.shape)")
    r = subprocess.run([sys.executable, "-c", code, str(run / "model.keras")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "(1, 5)" in r.stdout


def test_predict_csv_and_json(tuned):
    run, _, flowers = tuned
    sample = flowers.parent / "flowers-original-sample"
    r = hyperfcn("predict", sample, "--model", run, "--format", "csv", "--top-k", 2)
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert len(rows) == 20
    assert list(rows[0])[:3] == ["path", "label", "score"]
    for row in rows:
        assert row["label"] in ("daisy", "dandelion", "roses", "sunflowers", "tulips")
        assert 0 <= float(row["score"]) <= 1
    one = next(sample.glob("roses/*.jpg"))
    js = json.loads(hyperfcn("predict", one, "--model", run, "--format", "json").stdout)
    assert js[0]["path"] == str(one) and len(js) == 1


def test_evaluate_json(tuned):
    run, _, flowers = tuned
    sample = flowers.parent / "flowers-original-sample"
    rep = json.loads(hyperfcn("evaluate", sample, "--model", run, "--format", "json").stdout)
    assert rep["count"] == 20 and 0 <= rep["accuracy"] <= 1
    assert len(rep["confusion_matrix"]) == 5
    assert set(rep["per_class"]) == {"daisy", "dandelion", "roses", "sunflowers", "tulips"}
    table = hyperfcn("evaluate", sample, "--model", run).stdout
    assert "confusion matrix" in table and "precision" in table


def test_train_one_config_gives_the_same_artifacts(tuned, tmp_path):
    run, _, flowers = tuned
    out = tmp_path / "trained"
    hyperfcn("train", flowers.parent / "flowers-original-sample", "--val-split", 0.25,
             "--config", run / "best_config.json", "--out", out, "--max-epochs", 1)
    for name in ("model.keras", "classes.json", "best_config.json", "metrics.json"):
        assert (out / name).is_file()


def test_existing_run_needs_resume(tuned):
    run, _, flowers = tuned
    r = hyperfcn("tune", flowers / "train", "--out", run, "--image-size", 32,
                 "--samples", 1, check=False)
    assert r.returncode == 2 and "--resume" in r.stderr


def _epochs(trial_dir: Path) -> list[int]:
    p = trial_dir / "result.json"
    if not p.is_file():
        return []
    return [json.loads(line)["epoch"] for line in p.read_text().splitlines() if line.strip()]


def test_resume_after_kill_9(flowers, tmp_path):
    run = tmp_path / "resumed"
    args = ["tune", flowers / "train", "--val-dir", flowers / "val", "--out", run,
            "--image-size", 32, "--samples", 3, "--max-epochs", 3, "--scheduler", "fifo",
            "--concurrency", 1, "--quiet"]
    proc = subprocess.Popen([sys.executable, "-m", "hyperfcn.cli", *map(str, args)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    # kill the driver once the first trial has finished and the second has checkpointed
    while time.time() < deadline:
        dirs = sorted((run / "tune").glob("trial_*")) if (run / "tune").exists() else []
        if len(dirs) >= 2 and list(dirs[-1].glob("checkpoint_*")) and proc.poll() is None:
            break
        if proc.poll() is not None:
            pytest.fail(f"tune ended (exit {proc.returncode}) before it could be killed")
        time.sleep(0.5)
    time.sleep(1.0)  # let Ray save its experiment state
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = {d.name: _epochs(d) for d in (run / "tune").glob("trial_*")}
    assert any(e == [1, 2, 3] for e in before.values()), before
    assert not (run / "model.keras").exists()
    hyperfcn(*args[:-1], "--resume")
    after = {d.name: _epochs(d) for d in (run / "tune").glob("trial_*")}
    assert len(after) == 3
    for name, epochs in after.items():
        assert epochs == [1, 2, 3], (name, epochs)  # nothing rerun, nothing lost
        assert epochs[:len(before.get(name, []))] == before.get(name, [])
    assert (run / "model.keras").is_file()
    rows = list(csv.DictReader(io.StringIO((run / "trials.csv").read_text())))
    assert sorted(r["status"] for r in rows) == ["completed"] * 3


@pytest.fixture
def flowers():
    p = Path(__file__).resolve().parents[2] / "shared/datasets/flowers"
    if not p.is_dir():
        pytest.fail(f"{p} is missing")
    return p


def test_jax_backend_end_to_end(flowers, tmp_path):
    pytest.importorskip("jax")
    run = tmp_path / "jax"
    env = {"KERAS_BACKEND": "jax"}
    hyperfcn("tune", flowers / "train", "--val-dir", flowers / "val", "--out", run,
             "--image-size", 32, "--samples", 2, "--max-epochs", 1, env=env)
    settings = json.loads((run / "settings.json").read_text())
    assert settings["backend"] == "jax"
    r = hyperfcn("predict", flowers.parent / "flowers-original-sample", "--model", run,
                 "--format", "csv", env=env)
    assert len(r.stdout.strip().splitlines()) == 21
