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
def tuned(tmp_path_factory, small_space):
    """The main run, on the small space: these tests check what a run leaves and what
    reads it back, which needs its trials to train, not to train well (the default space's
    own draws train in `test_trial.py`, its recipe in the too-short budget test below)."""
    if not (Path(__file__).resolve().parents[2] / "shared/datasets/flowers/train").is_dir():
        pytest.fail("../shared/datasets/flowers is missing")
    flowers = Path(__file__).resolve().parents[2] / "shared/datasets/flowers"
    run = tmp_path_factory.mktemp("runs") / "flowers"
    trackers = []
    if _has("mlflow") and _has("wandb"):
        trackers = ["--mlflow", (run.parent / "mlruns").as_uri(), "--wandb", "hyperfcn-ci"]
    # The sample's photos are validation photos at their original sizes: not an honest test
    # set, but enough to show that the run's test score is `evaluate`'s to the last image.
    r = hyperfcn("tune", flowers / "train", "--val-dir", flowers / "val", "--out", run,
                 "--image-size", 32, "--samples", 2, "--max-epochs", 2, "--seed", 1,
                 "--test-dir", flowers.parent / "flowers-original-sample",
                 "--space", small_space,
                 *trackers, env={"WANDB_MODE": "offline"})
    return run, r, flowers


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def test_report_written_at_the_end(tuned):
    from PIL import Image

    run, r, _ = tuned
    assert (run / "report.html").is_file() and str(run / "report.html") in r.stdout
    for name in ("learning_curves", "best_so_far", "parallel_coordinates",
                 "confusion_matrix"):
        with Image.open(run / "report" / f"{name}.png") as im:
            assert im.width > 100
    with Image.open(run / "augmentation_preview.png") as im:
        assert im.height > 100
    preds = list(csv.DictReader(io.StringIO((run / "val_predictions.csv").read_text())))
    assert len(preds) == 736 and all(Path(p["path"]).is_file() for p in preds[:20])
    wrong = sum(p["label"] != p["predicted"] for p in preds)
    acc = json.loads((run / "metrics.json").read_text())["val_accuracy"]
    assert abs(1 - wrong / 736 - acc) < 1e-6  # the gallery's rows are the model's answers
    again = hyperfcn("report", run)
    assert again.stdout.strip() == str(run / "report.html")


def test_report_in_a_real_browser(tuned):
    from conftest import open_in_chromium

    run, _, _ = tuned
    got = open_in_chromium(run / "report.html", "report-flowers.png")
    assert got["errors"] == [] and got["external"] == []
    assert len(got["images"]) >= 6 and all(i["ok"] for i in got["images"]), got["images"]
    assert "Most confident mistakes" in got["text"] and "tulips" in got["text"]


def test_trials_and_final_model_in_mlflow(tuned):
    pytest.importorskip("mlflow")
    import mlflow

    run, r, _ = tuned
    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
    client = mlflow.MlflowClient(tracking_uri=(run.parent / "mlruns").as_uri())
    exp = client.get_experiment_by_name(run.name)
    runs = client.search_runs([exp.experiment_id])
    final = [x for x in runs if x.data.tags.get("hyperfcn.role") == "final"]
    trials = [x for x in runs if x.data.tags.get("hyperfcn.role") != "final"]
    assert len(final) == 1 and len(trials) == 2
    assert "val_loss" in trials[0].data.metrics and "learning_rate" in trials[0].data.params
    hist = client.get_metric_history(trials[0].info.run_id, "val_loss")
    assert len(hist) >= 1
    arts = {a.path for a in client.list_artifacts(final[0].info.run_id, "model")}
    assert "model/model.keras" in arts and "model/report.html" in arts
    assert "logged to MLflow" in r.stdout


def test_trials_and_final_model_in_wandb_offline(tuned):
    pytest.importorskip("wandb")
    run, r, _ = tuned
    offline = list((run / "wandb").glob("offline-run-*"))
    assert len(offline) == 3, offline  # 2 trials and the final model
    assert len(list((run / "wandb").rglob("*.wandb"))) == 3
    assert "logged to W&B" in r.stdout


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
    for t in json.loads((run / "trials.json").read_text()):
        for h in t["history"]:  # where each trial's time went, epoch by epoch
            assert h["setup_seconds"] > 0 and 0 < h["val_seconds"] < h["epoch_seconds"]
    settings = json.loads((run / "settings.json").read_text())
    assert settings["seed"] == 1 and "ray" in settings["versions"]
    assert "ASHA" in r.stdout and "grace_period" in r.stdout
    assert str(run / "model.keras") in r.stdout


def test_the_saved_model_is_never_worse_than_the_best_trial(tuned):
    """The model file, loaded back and scored, matches the search's best epoch; no retrain
    repeats a trial that trained all its epochs."""
    import hashlib

    run, r, _ = tuned
    metrics = json.loads((run / "metrics.json").read_text())
    final = metrics["final"]
    trials = json.loads((run / "trials.json").read_text())
    best = min((t for t in trials if t["best_val_loss"] is not None),
               key=lambda t: t["best_val_loss"])
    assert final["best_trial"]["trial_id"] == best["trial_id"]
    assert final["best_trial"]["val_loss"] == pytest.approx(best["best_val_loss"])
    assert metrics["val_loss"] <= best["best_val_loss"] + 1e-4  # never worse
    assert final["checked"]["val_loss"] == pytest.approx(metrics["val_loss"])
    assert final["sha256"] == hashlib.sha256((run / "model.keras").read_bytes()).hexdigest()
    if best["epochs"] >= 2:  # trained all --max-epochs: its weights are the model
        assert final["source"] == "best_trial" and metrics["history"] == []
        assert "final model: epoch" not in r.stdout  # nothing was trained again
    assert final["warning"] is None and "saved model: val_accuracy" in r.stdout
    assert "Source: <b>" in (run / "report.html").read_text()


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


def test_evaluate_json_is_the_runs_test_score_on_the_test_folder(tuned):
    run, r, flowers = tuned
    sample = flowers.parent / "flowers-original-sample"
    rep = json.loads(hyperfcn("evaluate", sample, "--model", run, "--format", "json").stdout)
    assert rep["count"] == 20 and 0 <= rep["accuracy"] <= 1
    assert len(rep["confusion_matrix"]) == 5
    assert set(rep["per_class"]) == {"daisy", "dandelion", "roses", "sunflowers", "tulips"}
    # the tuned run's --test-dir was this folder: its test score is evaluate's
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test_accuracy"] == rep["accuracy"]
    assert metrics["test_loss"] == pytest.approx(rep["loss"], rel=1e-6)
    assert metrics["test"]["confusion_matrix"] == rep["confusion_matrix"]
    assert f"test_accuracy {rep['accuracy']:.4f}" in r.stdout
    assert "test images no decision of the run saw" in (run / "report.html").read_text()


def test_train_one_config_gives_the_same_artifacts(tuned, tmp_path):
    run, _, flowers = tuned
    out = tmp_path / "trained"
    hyperfcn("train", flowers.parent / "flowers-original-sample", "--val-split", 0.25,
             "--config", run / "best_config.json", "--out", out, "--max-epochs", 1)
    for name in ("model.keras", "classes.json", "best_config.json", "metrics.json"):
        assert (out / name).is_file()


def test_train_with_a_budget_trains_the_epochs_that_fit(tuned, tmp_path):
    """`train --budget`: two timed epochs, then as many as fit (here --max-epochs, as the
    20 photos train in well under the budget), early stopping waiting for them all."""
    run, _, flowers = tuned
    sample = flowers.parent / "flowers-original-sample"
    args = ["train", sample, "--val-split", 0.25, "--config", run / "best_config.json"]
    r = hyperfcn(*args, "--out", tmp_path / "short", "--budget", "30s", check=False)
    assert r.returncode == 2 and "--budget 30s: too short" in r.stderr
    assert not (tmp_path / "short").exists()  # refused before Ray started
    out = tmp_path / "budgeted"
    r = hyperfcn(*args, "--out", out, "--budget", "90s", "--max-epochs", 6)
    assert "as many epochs as fit in the budget" in r.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["history"]) == 6 and "final model: epoch 6:" in r.stdout


def test_a_budget_ends_the_search_early_to_train_the_best_trial_on(flowers, small_space,
                                                                   tmp_path):
    """With 1-epoch trials, three quarters of the search's time buy the best trial several more
    epochs: the search ends early, between epochs (the best trial's weights are kept), and
    the final step trains them on; never worse than the best trial. (The quarter it may search
    must hold 3 of the recipe's first epochs, or the budget is too short to search, and the
    final step needs time for its epochs once the running trials have finished theirs.)"""
    run = tmp_path / "longer"
    r = hyperfcn("tune", flowers / "train", "--val-dir", flowers / "val", "--out", run,
                 "--space", small_space, "--image-size", 32, "--max-epochs", 1, "--budget",
                 "150s", "--seed", 2)
    assert "the search ends early" in r.stdout
    metrics = json.loads((run / "metrics.json").read_text())
    final = metrics["final"]
    reason = final["reason"]
    assert "were not kept" not in reason, reason
    assert "as many epochs as fit in the time the budget kept" in reason, reason
    assert "at most 100)" in reason  # MAX_LONGER x the trials' 1 epoch
    if final["source"] == "retrain":
        # it times its own epochs; the budget's deadline may end it first
        assert 1 <= len(metrics["history"]) <= 100  # MAX_LONGER x 1 epoch
        assert "final model: epoch 1:" in r.stdout
    else:
        assert "retrain scored worse" in reason
    assert metrics["val_loss"] <= final["best_trial"]["val_loss"] + 1e-4


def test_a_budget_too_short_to_search_trains_the_recipe_fitted_to_it(flowers, tmp_path):
    """90 s cannot hold 3 of the recipe's 10-epoch trainings in the half it may search: the
    recipe's first epoch says so, the search runs no other trial, and the recipe trains for
    the epochs that fit, its learning rate reaching 0 at the search's end; the final step
    promotes it, and the model is saved within the budget."""
    import time

    run = tmp_path / "short"
    t0 = time.time()
    r = hyperfcn("tune", flowers / "train", "--val-dir", flowers / "val", "--out", run,
                 "--image-size", 32, "--budget", "90s", "--seed", 1)
    assert (run / "model.keras").stat().st_mtime - t0 <= 90
    assert "too few to compare configurations" in r.stdout
    trials = json.loads((run / "trials.json").read_text())
    assert len(trials) == 1 and trials[0]["status"] == "completed", trials
    hist = trials[0]["history"]
    assert hist[-1]["planned_epochs"] == len(hist) >= 2
    assert hist[-1]["lr"] < 0.5 * hist[0]["lr"]  # it decayed (to 0 at its last step)
    final = json.loads((run / "metrics.json").read_text())["final"]
    assert final["source"] == "best_trial" and "too short to compare" in final["reason"]
    assert final["warning"] is None  # 5 flower classes: well above guessing


def test_a_budget_too_short_to_search_races_the_recipe_and_its_variant(flowers, tmp_path):
    """40 flowers a class (20 to validate), a space of 16 and 32 px whose recipe is 16 px:
    an epoch takes a fraction of a second after a first of seconds that compiles, so 150 s
    are too short to search 10-epoch trials while a quarter of the search holds a race of
    the recipe and its one variant (the photos have the pixels for 32). Both train their 10
    epochs,
    no other trial runs, the race's verdict is said and kept, and the winner's weights
    train on in the final step, saved within the budget. (A machine whose epochs leave no
    room for the race skips, saying its epoch times.)"""
    import shutil
    import time

    from hyperfcn.space import default_space_text

    data = tmp_path / "few"
    for part, n in (("train", 40), ("val", 20)):
        for d in sorted((flowers / part).iterdir()):
            (data / part / d.name).mkdir(parents=True)
            for f in sorted(d.iterdir())[:n]:
                shutil.copy(f, data / part / d.name / f.name)
    space = tmp_path / "space.yaml"
    space.write_text(default_space_text().replace(
        "image_size: {choice: [64, 96, 128]}", "image_size: {choice: [16, 32]}").replace(
        "  image_size: 64\n", "  image_size: 16\n"))
    run = tmp_path / "race"
    t0 = time.time()
    r = hyperfcn("tune", data / "train", "--val-dir", data / "val", "--out", run,
                 "--space", space, "--budget", "150s", "--seed", 1)
    assert (run / "model.keras").stat().st_mtime - t0 <= 150
    if "race over" not in r.stdout:
        first = json.loads((run / "trials.json").read_text())[0]["history"]
        pytest.skip(f"no race on this machine: the recipe's epochs took "
                    f"{[round(h['epoch_seconds'], 1) for h in first[:2]]} s")
    assert "race: the recipe's variants most likely wrong" in r.stdout
    trials = json.loads((run / "trials.json").read_text())
    assert len(trials) == 2, [(t["config"].get("rotation"), t["epochs"]) for t in trials]
    n = trials[0]["race_epochs"]
    assert n == 10 and [t["race_epochs"] for t in trials] == [n, n]
    assert [t["epochs"] for t in trials] == [n, n]
    assert [t["config"]["image_size"] for t in trials] == [16, 32]
    race = json.loads((run / "search.json").read_text())["race"]
    assert race["epochs"] == n and race["winner"] in {t["trial_id"] for t in trials}
    assert f"race over {n} epochs each" in r.stdout
    final = json.loads((run / "metrics.json").read_text())["final"]
    assert "trained on" in final["reason"] or "no time left" in final["reason"], final
    assert "The recipe and its variants" in (run / "report.html").read_text()


def test_existing_run_needs_resume(tuned):
    run, _, flowers = tuned
    r = hyperfcn("tune", flowers / "train", "--out", run, "--image-size", 32,
                 "--samples", 1, check=False)
    assert r.returncode == 2 and "--resume" in r.stderr
    assert "holds a finished search; use a new --out, or --resume with a larger" in r.stderr


def test_a_finished_search_is_extended_by_resume_with_more_samples(tuned, small_space,
                                                                  tmp_path):
    import shutil

    src, _, flowers = tuned
    run = tmp_path / "extended"
    shutil.copytree(src, run)
    args = ["tune", flowers / "train", "--val-dir", flowers / "val", "--out", run,
            "--space", small_space, "--image-size", 32, "--max-epochs", 2, "--seed", 1,
            "--resume"]
    model = (run / "model.keras").read_bytes()
    r = hyperfcn(*args, "--samples", 2, check=False)  # what it has already: nothing to do
    assert r.returncode == 2 and "finished with 2 trials" in r.stderr and "--samples" in r.stderr
    assert (run / "model.keras").read_bytes() == model  # a refusal rewrites nothing
    r = hyperfcn(*args, "--samples", 3)
    assert "round 2" in r.stdout
    rows = list(csv.DictReader(io.StringIO((run / "trials.csv").read_text())))
    assert len(rows) == 3
    assert json.loads((run / "search.json").read_text())["rounds"] == ["tune", "tune-2"]
    trials = json.loads((run / "trials.json").read_text())
    assert [t["search"] for t in trials] == ["tune", "tune", "tune-2"]
    best = min(trials, key=lambda t: t["best_val_loss"])
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["final"]["best_trial"]["trial_id"] == best["trial_id"]


def test_predict_takes_model_keras_prints_no_tensorflow_noise_files_are_shared(tuned):
    run, _, flowers = tuned
    sample = flowers.parent / "flowers-original-sample"
    r = hyperfcn("predict", sample, "--model", run / "model.keras", "--format", "csv")
    assert len(r.stdout.strip().splitlines()) == 21
    assert r.stderr.strip() == "", r.stderr
    r = hyperfcn("evaluate", flowers / "train", "--model", run)
    assert "were used to train this model" in r.stderr
    assert "oneDNN" not in r.stderr and "tensorflow" not in r.stderr.lower()
    mask = os.umask(0)
    os.umask(mask)
    for name in ("model.keras", "report.html", "metrics.json", "trials.csv"):
        assert (run / name).stat().st_mode & 0o777 == 0o666 & ~mask, name


def _epochs(trial_dir: Path) -> list[int]:
    p = trial_dir / "result.json"
    if not p.is_file():
        return []
    return [json.loads(line)["epoch"] for line in p.read_text().splitlines() if line.strip()]


def test_a_search_interrupted_twice_resumes_losing_nothing(flowers, small_space, tmp_path):
    """Ctrl-C leaves its trials unfinished and prints a resume hint; that hint, killed -9
    once a later trial has checkpointed, then run again as printed, finishes the search:
    no finished epoch is rerun or lost, and the searcher goes on from where it was."""
    import shlex

    run = tmp_path / "interrupted"
    args = ["tune", flowers / "train", "--val-dir", flowers / "val", "--out", run,
            "--space", small_space, "--image-size", 32, "--samples", 3, "--max-epochs", 3,
            "--scheduler", "fifo", "--concurrency", 1, "--checkpoint-every", 0]
    proc = subprocess.Popen([sys.executable, "-m", "hyperfcn", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for(proc, lambda dirs: any(_epochs(d) for d in dirs))
    os.kill(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err[-3000:]
    assert "Traceback" not in err
    assert "Tuner.restore" not in out + err  # only our hint
    hint = [ln.strip() for ln in err.splitlines() if ln.strip().endswith("--resume")][-1]
    assert hint.startswith(f"{shlex.quote(sys.executable)} -m hyperfcn tune")
    assert str(run) in hint
    statuses = [r["status"] for r in _rows(run)]
    assert "unfinished" in statuses and "stopped" not in statuses
    assert not (run / "model.keras").exists()

    # kill the resumed driver once a trial has finished and the next has checkpointed
    proc = subprocess.Popen(shlex.split(hint), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    _wait_for(proc, lambda dirs: len(dirs) >= 2 and any(dirs[-1].glob("checkpoint_*")))
    time.sleep(1.0)  # let Ray save its experiment state
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = {d.name: _epochs(d) for d in (run / "tune").glob("trial_*")}
    assert any(e == [1, 2, 3] for e in before.values()), before
    assert not (run / "model.keras").exists()

    r = subprocess.run(shlex.split(hint), capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]  # the hint runs as printed
    after = {d.name: _epochs(d) for d in (run / "tune").glob("trial_*")}
    assert len(after) == 3
    for name, epochs in after.items():
        assert epochs == [1, 2, 3], (name, epochs)  # nothing rerun, nothing lost
        assert epochs[:len(before.get(name, []))] == before.get(name, [])
    assert (run / "model.keras").is_file()
    rows = _rows(run)
    assert sorted(r["status"] for r in rows) == ["completed"] * 3
    # the searcher was restored, not restarted: it did not propose its first points again
    assert len({r["learning_rate"] for r in rows}) == 3
    from hyperfcn.config import ModelConfig
    from hyperfcn.space import load_space

    first = load_space(small_space, known_keys=ModelConfig.keys()).defaults["learning_rate"]
    assert sum(float(r["learning_rate"]) == first for r in rows) == 1  # the defaults point


def _wait_for(proc: subprocess.Popen, ready, seconds: float = 600) -> None:
    """Until `ready(the run's trial folders, sorted)` holds while `proc` still runs."""
    run = Path(proc.args[proc.args.index("--out") + 1])
    deadline = time.time() + seconds
    while time.time() < deadline:
        dirs = sorted((run / "tune").glob("trial_*")) if (run / "tune").exists() else []
        if ready(dirs) and proc.poll() is None:
            return
        if proc.poll() is not None:
            pytest.fail(f"tune ended (exit {proc.returncode}) before it could be stopped")
        time.sleep(0.5)
    pytest.fail(f"not ready after {seconds} s")


def _rows(run: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO((run / "trials.csv").read_text())))


@pytest.fixture
def flowers():
    p = Path(__file__).resolve().parents[2] / "shared/datasets/flowers"
    if not p.is_dir():
        pytest.fail(f"{p} is missing")
    return p


def test_jax_backend_end_to_end(flowers, small_space, tmp_path):
    pytest.importorskip("jax")
    run = tmp_path / "jax"
    env = {"KERAS_BACKEND": "jax"}
    # one batch shape: XLA compiles every shape on a CPU for seconds, and the shapes are
    # tested under TensorFlow
    r = hyperfcn("tune", flowers / "train", "--val-dir", flowers / "val", "--out", run,
                 "--space", small_space, "--image-size", 32, "--max-buckets", 1,
                 "--samples", 2, "--max-epochs", 1, "--concurrency", 1, "--json", env=env)
    summary = json.loads(r.stdout)  # --json: nothing but one JSON object on stdout
    assert summary["status"] == "done" and summary["model"] == str(run / "model.keras")
    assert 0 < summary["val_accuracy"] <= 1 and sum(summary["trials"].values()) == 2
    # one after the other, the trials ran in one reused worker
    trials = json.loads((run / "trials.json").read_text())
    assert len({t["history"][0]["worker_pid"] for t in trials}) == 1
    settings = json.loads((run / "settings.json").read_text())
    assert settings["backend"] == "jax"
    r = hyperfcn("predict", flowers.parent / "flowers-original-sample", "--model", run,
                 "--format", "csv", env=env)
    assert len(r.stdout.strip().splitlines()) == 21


def test_bohb_searches_with_its_own_hyperband_to_a_saved_model(flowers, small_space,
                                                              tmp_path):
    pytest.importorskip("hpbandster")
    run = tmp_path / "bohb"
    r = hyperfcn("tune", flowers / "train", "--val-dir", flowers / "val", "--out", run,
                 "--space", small_space, "--image-size", 32, "--max-buckets", 1,
                 "--searcher", "bohb", "--samples", 4,
                 "--max-epochs", 2, "--json")
    summary = json.loads(r.stdout)
    assert summary["status"] == "done" and (run / "model.keras").is_file()
    assert sum(summary["trials"].values()) == 4
    settings = json.loads((run / "settings.json").read_text())
    assert settings["searcher"] == "bohb" and settings["scheduler_plan"]["name"] == "bohb"
    trials = json.loads((run / "trials.json").read_text())
    recipe = load_space_points(small_space)[0]
    assert any(all(t["config"].get(k) == v for k, v in recipe.items() if k != "image_size")
               for t in trials)  # the space's recipe was tried


def load_space_points(path):
    from hyperfcn.space import load_space

    return load_space(path).points


def test_a_final_refit_killed_9_resumes_to_a_model_without_rerunning_trials(
        flowers, small_space, tmp_path):
    """kill -9 during the --final train+val refit, then the same command with --resume:
    exit 0 and a model.keras, no trial run again. While the first runs, a second driver on
    the same folder is refused: two never write one folder."""
    run = tmp_path / "refit"
    args = ["tune", flowers / "train", "--val-dir", flowers / "val", "--out", run,
            "--space", small_space, "--image-size", 32, "--samples", 2, "--max-epochs", 3,
            "--scheduler", "fifo", "--final", "train+val"]
    proc = subprocess.Popen([sys.executable, "-m", "hyperfcn", *map(str, args)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _wait_for(proc, lambda dirs: len(dirs) >= 1)
    second = hyperfcn(*args, "--resume", check=False)
    assert second.returncode == 2, second.stderr[-2000:]
    assert "in use by another hyperfcn command (pid" in second.stderr
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None:
        search = run / "search.json"
        if search.is_file() and json.loads(search.read_text())["final_step"] == "pending":
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before its final step could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (run / "model.keras").exists()
    trials = {d.name: (d / "result.json").read_text() for d in (run / "tune").glob("trial_*")}

    r = hyperfcn(*args, "--resume")
    assert "no trial runs again" in r.stdout
    assert (run / "model.keras").is_file()
    assert {d.name: (d / "result.json").read_text()
            for d in (run / "tune").glob("trial_*")} == trials
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["final"]["source"] == "train+val"
    assert json.loads((run / "search.json").read_text())["final_step"] == "done"
