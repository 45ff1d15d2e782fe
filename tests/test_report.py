"""report.html from a made-up run folder: content, escaping, plots, and a real browser."""

import csv
import json
import random
from pathlib import Path

import numpy as np
import pytest
from conftest import open_in_chromium
from PIL import Image

from hyperfcn import artifacts as art
from hyperfcn.progress import Board, LineView, LiveView
from hyperfcn.reporting import best_so_far, importance, write_report

EVIL = '<script>alert("x")</script>&'
EVIL_FILE = "<img src=x onerror=alert(1)> été &q"  # no slash: it names a file


def _trials(n_trials: int) -> list[dict]:
    rng = random.Random(0)
    trials = []
    t0 = 1_800_000_000.0
    for i in range(n_trials):
        lr = 10 ** rng.uniform(-4, -1)
        batch = rng.choice([16, 32])
        # the metric depends on the learning rate only: importance must rank it first
        final = 0.5 + abs(np.log10(lr) + 2.5) * 0.4
        epochs = 6 if i % 3 == 0 else 2
        hist = [{"epoch": e, "val_loss": final + 0.3 / e, "val_accuracy": 0.5,
                 "time_total_s": 5.0 * e, "timestamp": t0 + 20 * i + 5 * e}
                for e in range(1, epochs + 1)]
        trials.append({"trial_id": f"t{i:02d}", "config": {"learning_rate": lr,
                                                           "batch_size": batch, "flip": "none"},
                       "status": "completed" if epochs == 6 else "stopped",
                       "epochs": epochs, "history": hist, "error": ""})
    trials.append({"trial_id": "tbad", "config": {"learning_rate": 0.5, "batch_size": 16,
                                                  "flip": "none"},
                   "status": "failed", "epochs": 0, "history": [],
                   "error": f"TrialError: loss became nan {EVIL}"})
    return trials


def _run_dir(tmp: Path, n_trials: int = 12) -> Path:
    run = tmp / "run"
    run.mkdir()
    classes = ["daisy", EVIL, "roses"]
    art.write_json(run / art.TRIALS_JSON, _trials(n_trials))
    art.write_json(run / art.SETTINGS, {
        "metric": "val_loss", "max_epochs": 6, "searcher": "hyperopt", "seed": 0,
        "budget_s": 600, "command": f"hyperfcn tune {EVIL}", "backend": "tensorflow",
        "precision": "mixed bfloat16 (this CPU computes it natively)",
        "scheduler_plan": {"name": "asha", "max_t": 6, "grace_period": 1,
                           "reduction_factor": 2},
        "resources": {"cpus": 2, "gpus": 0, "cpus_per_trial": 1, "gpus_per_trial": 0,
                      "concurrency": 2}, "versions": {"hyperfcn": "0"}})
    art.write_json(run / art.DATA_SUMMARY, {
        "classes": classes, "train_counts": {c: 10 for c in classes},
        "val_counts": {c: 4 for c in classes}, "bucket_shapes": {"32": [[32, 32], [32, 48]]},
        "padded_fraction": {"32": 0.07}})
    cm = [[3, 1, 0], [0, 4, 0], [1, 1, 2]]
    art.write_json(run / art.METRICS, {
        "val_accuracy": 0.75, "val_loss": 0.6, "search_wall_seconds": 300,
        "history": [{"epoch": e, "val_loss": 0.9 - 0.05 * e} for e in range(1, 7)],
        "validation": {"accuracy": 0.75, "loss": 0.6, "count": 12, "classes": classes,
                       "confusion_matrix": cm,
                       "per_class": {c: {"precision": 0.7, "recall": 0.7, "support": 4}
                                     for c in classes}}})
    art.write_json(run / art.BEST_CONFIG, {"learning_rate": 0.003, "batch_size": 16})
    imgs = tmp / "imgs"
    imgs.mkdir()
    rows = []
    for i in range(12):
        p = imgs / (f"{EVIL_FILE} {i}.jpg" if i % 2 else f"photo {i}.jpg")
        Image.new("RGB", (60, 40), (20 * i, 100, 50)).save(p)
        label, pred = classes[i % 3], classes[(i + (i % 4 < 2)) % 3]
        rows.append({"path": str(p), "label": label, "predicted": pred,
                     "confidence": 0.5 + i / 30, "p_label": 0.3})
    with open(run / art.VAL_PREDICTIONS, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    Image.new("RGB", (120, 40), (200, 10, 10)).save(run / art.AUGMENT_PREVIEW)
    (run / art.SKIPPED).write_text(f"{imgs}/{EVIL}.png\tcannot identify image file\n")
    return run


def test_report_is_self_contained_and_escapes_user_strings(tmp_path):
    run = _run_dir(tmp_path)
    page = write_report(run).read_text()
    assert EVIL not in page and "<script" not in page.lower()
    assert EVIL_FILE not in page and "&lt;img src=x onerror=alert(1)&gt; été &amp;q" in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;" in page
    assert "http://" not in page and "https://" not in page  # nothing to fetch
    for name in ("learning_curves", "best_so_far", "parallel_coordinates",
                 "parameter_importance", "confusion_matrix"):
        png = run / art.REPORT_DIR / f"{name}.png"
        with Image.open(png) as im:
            assert im.width > 100, name
    assert page.count("data:image/png;base64,") == 6  # 5 plots + augmentation preview
    assert page.count("data:image/jpeg;base64,") == 6  # the mistakes, as thumbnails
    assert "12 trials" not in page and "13 trials" in page
    assert "loss became nan" in page  # the failed trial's reason
    assert "<td>precision</td><td>mixed bfloat16 (this CPU computes it natively)</td>" in page


def test_importance_ranks_the_parameter_that_drives_the_metric(tmp_path):
    trials = json.loads((_run_dir(tmp_path) / art.TRIALS_JSON).read_text())
    ranked = importance(trials, "val_loss", "min")
    assert ranked[0][0] == "learning_rate" and ranked[0][1] > 0.5
    assert dict(ranked)["batch_size"] < 0.3
    assert importance(trials[:5], "val_loss", "min") == []  # too few to say


def test_best_so_far_only_improves(tmp_path):
    trials = json.loads((_run_dir(tmp_path) / art.TRIALS_JSON).read_text())
    pts = best_so_far(trials, "val_loss", "min")
    assert pts[0][0] >= 0 and all(b[1] < a[1] for a, b in zip(pts, pts[1:]))
    assert all(b[0] >= a[0] for a, b in zip(pts, pts[1:]))


@pytest.mark.integration
def test_report_loads_in_chromium_without_errors(tmp_path):
    run = _run_dir(tmp_path)
    got = open_in_chromium(write_report(run), "report-unit.png")
    assert got["errors"] == []
    assert got["external"] == []
    assert len(got["images"]) == 12 and all(i["ok"] for i in got["images"]), got["images"]
    assert EVIL in got["text"] and EVIL_FILE in got["text"]  # shown as text, not run


def test_report_refuses_a_folder_that_is_not_a_run(tmp_path):
    from hyperfcn.errors import UserError

    with pytest.raises(UserError, match="not a hyperfcn run folder"):
        write_report(tmp_path)


# ---------------------------------------------------------------- progress views

def _drive(view):
    view.started("a", {"learning_rate": 0.01, "batch_size": 32})
    view.started("b", {"learning_rate": 0.1, "batch_size": 16})
    for e in (1, 2):
        view.result("a", {"epoch": e, "val_loss": 1.0 / e, "val_accuracy": 0.5,
                          "time_total_s": 10.0 * e})
    view.result("b", {"epoch": 1, "val_loss": 2.0, "val_accuracy": 0.2, "time_total_s": 9})
    view.ended("b", 1)
    view.ended("a", 9)
    view.started("c", {"learning_rate": 0.5})
    view.ended("c", 0, error="TrialError: loss became nan")
    view.started("d", {"learning_rate": 0.02})
    view.result("d", {"epoch": 2, "val_loss": 0.9, "val_accuracy": 0.4, "time_total_s": 20})
    view.ended("d", 2, out_of_budget=True)


def test_line_view_says_how_each_trial_ended():
    lines: list[str] = []
    board = Board("val_loss", "min", max_epochs=9, budget_s=600, rungs=(1, 3, 9))
    _drive(LineView(board, lines.append))
    text = "\n".join(lines)
    assert "trial b stopped at rung 1 (epoch 1)" in text
    assert "trial a done" in text
    assert "trial c failed: TrialError: loss became nan" in text
    assert "trial d out of budget at epoch 2" in text
    assert "best val_loss so far 0.5000" in text
    assert board.best_trial == "a"
    eta = board.eta()
    # the budget is the time until the model is saved, final step included
    assert "left of 10:00" in eta and "model saved by" in eta and "retrain" not in eta


def test_live_view_draws_a_table():
    from rich.console import Console

    console = Console(file=__import__("io").StringIO(), force_terminal=True, width=140)
    board = Board("val_loss", "min", max_epochs=9, budget_s=600, rungs=(1, 3, 9))
    view = LiveView(board, console=console)
    _drive(view)
    view.close()
    out = console.file.getvalue()
    for s in ("stopped at rung 1", "done", "failed", "learning_rate=0.01", "left of 10:00",
              "out of budget at epoch 2"):
        assert s in out, s


def test_report_reads_rays_results_when_trials_json_is_missing(tmp_path):
    run = _run_dir(tmp_path)
    trials = json.loads((run / art.TRIALS_JSON).read_text())
    (run / art.TRIALS_JSON).unlink()
    for t in trials[:9]:
        d = run / art.RAY_DIR / f"trial_{t['trial_id']}"
        d.mkdir(parents=True)
        (d / "result.json").write_text("".join(
            json.dumps({**h, "config": t["config"]}) + "\n" for h in t["history"]))
    # ASHA logged two stops; the other short trials were still running when the run ended
    (run / art.SCHEDULER_STOPS).write_text("t01 2\nt02 2\n")
    page = write_report(run).read_text()
    assert "9 trials" in page and "Best trials" in page
    assert "3 completed" in page and "2 stopped" in page and "4 unfinished" in page
    assert (run / art.REPORT_DIR / "learning_curves.png").is_file()


def test_a_warning_about_the_saved_model_comes_first(tmp_path):
    run = _run_dir(tmp_path)
    metrics = json.loads((run / art.METRICS).read_text())
    metrics["final"] = {"source": "best_trial", "reason": "r",
                        "warning": "the saved model is no better than guessing"}
    art.write_json(run / art.METRICS, metrics)
    page = write_report(run).read_text()
    top = page.index("<b>Warning:</b> the saved model is no better than guessing")
    assert top < page.index("<h2>Data</h2>")


def test_a_recipe_fitted_to_the_search_end_shows_its_planned_epochs():
    said: list[str] = []
    view = LineView(Board("val_loss", "min", max_epochs=10), said.append)
    view.started("r", {"learning_rate": 0.003})
    for e in (1, 2, 3):
        view.result("r", {"epoch": e, "val_loss": 1.0 / e, "val_accuracy": 0.5,
                          "time_total_s": 40.0 * e, "planned_epochs": 3})
    view.ended("r", 3)
    assert "trial r epoch 3/3:" in said[-2] and view.board.rows["r"].status == "done"


def test_a_class_without_validation_images_is_flagged_in_the_data_section(tmp_path):
    run = _run_dir(tmp_path)
    data = json.loads((run / art.DATA_SUMMARY).read_text())
    data["val_counts"]["roses"] = 0
    art.write_json(run / art.DATA_SUMMARY, data)
    page = write_report(run).read_text()
    assert "No validation image for roses" in page
    assert page.index("No validation image") > page.index("<h2>Data</h2>")


def test_the_data_section_says_what_an_epoch_is_on_large_data(tmp_path, monkeypatch):
    import hyperfcn.data.epoch

    run = _run_dir(tmp_path)
    assert "an epoch is" not in write_report(run).read_text()
    monkeypatch.setattr(hyperfcn.data.epoch, "EPOCH_IMAGES", 20)  # 30 training images here
    monkeypatch.setattr(hyperfcn.data.epoch, "VAL_IMAGES", 10)  # 12 validation images
    page = write_report(run).read_text()
    assert "An epoch is 20 of the 30 training images" in page
    assert "scored on the same 10 of the 12 validation images" in page


def test_the_data_section_says_what_was_read_from_the_images_and_what_it_changed(tmp_path):
    from hyperfcn.data.traits import Traits
    from hyperfcn.space_setup import DataFit

    run = _run_dir(tmp_path)
    settings = json.loads((run / art.SETTINGS).read_text())
    kept = DataFit(traits=Traits.from_dict({}))
    art.write_json(run / art.SETTINGS, {**settings, **kept.to_settings()})
    page = write_report(run).read_text()
    assert "Read from the training images: a horizontal mirror image keeps its class" in page
    swapped = DataFit(traits=Traits.from_dict({"horizontal": [["b", "d"]]}),
                      said=("data: b and d swap, so flip is searched among none only",))
    art.write_json(run / art.SETTINGS, {**settings, **swapped.to_settings()})
    page = write_report(run).read_text()
    assert "Data: b and d swap, so flip is searched among none only" in page
    assert "Read from the training images" not in page  # said once, not twice


def test_the_report_shows_what_raced_the_recipe_and_why_the_winner_won(tmp_path):
    from hyperfcn.race import Variant
    from hyperfcn.space_setup import DataFit

    run = _run_dir(tmp_path)
    settings = json.loads((run / art.SETTINGS).read_text())
    size = Variant("image_size", 96, why="the images are 384 px", point={}, cost=2.25)
    art.write_json(run / art.SETTINGS, {**settings, **DataFit(variants=(size,)).to_settings()})
    page = write_report(run).read_text()
    assert "The recipe and its variants" in page and "image_size=96" in page
    assert "The budget ran no race" in page
    race = {"epochs": 5, "metric": "val_loss", "winner": "b", "why": "trial b beat the recipe",
            "racers": [{"racer": "recipe", "trial_id": "a", "val_loss": 0.5, "se": 0.02,
                        "val_accuracy": 0.8},
                       {"racer": "image_size=96", "trial_id": "b", "val_loss": 0.4,
                        "se": 0.02, "val_accuracy": 0.85}]}
    art.write_json(run / art.SEARCH, {**art.read_json(run / art.SEARCH), "race": race}
                   if (run / art.SEARCH).is_file() else {"race": race})
    page = write_report(run).read_text()
    assert "each racer trained 5 epochs" in page and "Winner: trial b" in page
    assert "0.4000" in page and "0.0200" in page and "trial b beat the recipe" in page


def test_a_class_name_with_dollar_signs_is_drawn_as_written(tmp_path):
    """matplotlib reads $...$ as a formula: a class named like one must not break a plot."""
    run = _run_dir(tmp_path)
    metrics = json.loads((run / art.METRICS).read_text())
    classes = ["daisy", "$5 note", r"$\frac{x_$"]
    metrics["validation"]["classes"] = classes
    metrics["validation"]["per_class"] = {c: {"precision": 0.7, "recall": 0.7, "support": 4}
                                          for c in classes}
    art.write_json(run / art.METRICS, metrics)
    write_report(run)
    with Image.open(run / art.REPORT_DIR / "confusion_matrix.png") as im:
        assert im.width > 100


def test_a_train_runs_report_is_true_in_every_line_and_shows_its_learning_curve(tmp_path):
    """`train` trained one configuration: no trials, no searcher, no 'no model' line."""
    run = _run_dir(tmp_path)
    (run / art.TRIALS_JSON).unlink()
    art.write_bytes(run / art.MODEL, b"a model")
    settings = json.loads((run / art.SETTINGS).read_text())
    settings.update(kind="train", command="hyperfcn train data --config c.json",
                    config={"learning_rate": 0.003})
    del settings["scheduler_plan"]
    art.write_json(run / art.SETTINGS, settings)
    metrics = json.loads((run / art.METRICS).read_text())
    metrics.update(epochs_run=6, best_epoch=6, train_seconds=42.0,
                   final={"source": "retrain", "reason": "no search: the config trained once",
                          "held_out": True, "checked": {"val_accuracy": 0.75,
                                                        "val_loss": 0.6}})
    art.write_json(run / art.METRICS, metrics)
    page = write_report(run).read_text()
    for wrong in ("no trial finished", "searcher", "scheduler", "at once",
                  "Image sizes searched", "<h2>Search</h2>"):
        assert wrong not in page, wrong
    assert "one configuration trained, no search: 6 epochs in 0.7 min" in page
    assert "<h2>Training</h2>" in page and "Learning curve" in page
    assert "<b>trained</b>" in page and "<b>retrain</b>" not in page
    with Image.open(run / art.REPORT_DIR / "learning_curves.png") as im:
        assert im.width > 100
