"""An honest score: --test-dir is checked before any work, scored once by the saved file with
`hyperfcn evaluate`'s own code, and without it the run says its validation score is
optimistic."""

import hashlib
import json
import types
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hyperfcn import artifacts as art
from hyperfcn.data import folder as data_mod
from hyperfcn.data.prepare import check_test_dir, prepare
from hyperfcn.errors import DataError
from hyperfcn.final import BestTrial, FinalModel, FinalSource, make_final, plan_final, write_files
from hyperfcn.inference import evaluate_folder, load_run
from hyperfcn.reporting import write_report
from hyperfcn.testscore import add_test_score
from hyperfcn.trial import TrialSettings

CFG = {"image_size": 16, "batch_size": 4, "blocks": 2, "filters": 8, "dense_units": 16,
       "learning_rate": 0.01}


def _folder(root: Path, classes=("dark", "light"), n=4, seed=0) -> Path:
    """Class folders of tiny photos whose classes differ in brightness, like `tiny_data`."""
    rng = np.random.default_rng(seed)
    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(n):
            a = np.clip(rng.normal(40 + 170 * (c % 2), 20, (16, 16 + 8 * (i % 2), 3)), 0, 255)
            Image.fromarray(a.astype(np.uint8)).save(root / name / f"{i}.png")
    return root


def test_a_test_folder_with_other_classes_is_refused_before_any_decode(tmp_path):
    data = _folder(tmp_path / "data")
    test = _folder(tmp_path / "test", classes=("dark", "medium"))
    before = data_mod.DECODES[0]
    with pytest.raises(DataError) as e:
        prepare(data, [16], test_dir=test)
    assert str(test) in str(e.value) and "--test-dir" in str(e.value)
    assert "has classes the training data lacks: medium" in str(e.value)
    assert "lacks training classes: light" in str(e.value)
    assert data_mod.DECODES[0] == before


def test_a_test_folder_that_shares_images_with_the_run_is_refused(tmp_path):
    data = _folder(tmp_path / "data")
    scan = data_mod.scan_folder(data)
    with pytest.raises(DataError, match=r"shares 8 of its 8 images with DATA or --val-dir"):
        check_test_dir(data, scan.classes, [scan])
    empty = tmp_path / "empty"
    for c in scan.classes:
        (empty / c).mkdir(parents=True)
    with pytest.raises(DataError, match="--test-dir has no image files"):
        check_test_dir(empty, scan.classes, [scan])
    assert check_test_dir(_folder(tmp_path / "test"), scan.classes, [scan]) == 8


def _saved_run(tmp_path: Path, tiny_data, test_dir: Path | None) -> tuple[Path, dict, list]:
    """A run dir written by write_files from a model trained one epoch on `tiny_data`."""
    out = make_final(CFG, tiny_data, TrialSettings(max_epochs=1, patience=1),
                     plan_final(None, 1))
    run = tmp_path / "run"
    run.mkdir()
    summary = types.SimpleNamespace(classes=tiny_data.classes, val_files=[])
    said: list[str] = []
    metrics = write_files(run, CFG, out, summary, said.append, {}, None, "val_loss", test_dir)
    return run, metrics, said


def test_the_test_score_is_evaluates_number_in_metrics_and_the_summary(tmp_path, tiny_data,
                                                                        capsys):
    from hyperfcn.cli import main

    test = _folder(tmp_path / "test", n=5, seed=3)
    run, metrics, said = _saved_run(tmp_path, tiny_data, test)
    rep, _ = evaluate_folder(load_run(run), test)
    saved = json.loads((run / art.METRICS).read_text())
    for m in (metrics, saved):
        assert m["test_accuracy"] == rep["accuracy"] and m["test_loss"] == rep["loss"]
        assert m["test"]["count"] == 10 and m["test"]["confusion_matrix"] == \
            rep["confusion_matrix"]
        assert m["final"]["note"] is None  # the test score is the unbiased one
    summary_line = next(s for s in said if s.startswith("saved model:"))
    assert f"test_accuracy {rep['accuracy']:.4f}" in summary_line
    assert f"on 10 images in {test}" in summary_line
    capsys.readouterr()
    assert main(["evaluate", str(test), "--model", str(run)]) == 0  # the table
    table = capsys.readouterr().out
    assert f"accuracy {rep['accuracy']:.4f}" in table and "confusion matrix" in table


def test_without_a_test_folder_the_run_says_its_score_is_optimistic(tmp_path, tiny_data):
    run, metrics, said = _saved_run(tmp_path, tiny_data, None)
    assert metrics["test_accuracy"] is None
    note = metrics["final"]["note"]
    assert "optimistic" in note and "--test-dir" in note and f"--model {run}" in note
    assert f"note: {note}" in said
    art.write_json(run / art.DATA_SUMMARY, {"classes": tiny_data.classes})
    art.write_json(run / art.SETTINGS, {"metric": "val_loss", "max_epochs": 1})
    assert f"Note: {note}" in write_report(run).read_text().replace("&#x27;", "'")


def test_a_test_score_that_fails_is_said_and_the_saved_model_kept(tmp_path):
    """A driver that cannot load the model (a cluster driver without Keras, say) still ends
    with the model saved, and the command that scores it."""
    model = b"model bytes"
    out = FinalModel(model=model, source=FinalSource.BEST_TRIAL, reason="r",
                     checked={"val_accuracy": 0.9, "val_loss": 0.3},
                     sha256=hashlib.sha256(model).hexdigest(),
                     val_probs=np.tile([[0.9, 0.1]], (4, 1)), val_labels=np.array([0, 0, 0, 1]),
                     val_order=list(range(4)))
    summary = types.SimpleNamespace(classes=["a", "b"], val_files=[])
    best = BestTrial("t1", 3, {"epoch": 2, "val_loss": 0.3, "val_accuracy": 0.9}, "ck")
    test = _folder(tmp_path / "test", classes=("a", "b"))
    said: list[str] = []
    metrics = write_files(tmp_path, {"image_size": 16}, out, summary, said.append, {}, best,
                          "val_loss", test)
    assert (tmp_path / art.MODEL).read_bytes() == model
    assert metrics["test_accuracy"] is None
    assert "test score not computed" in said[-1] and f"evaluate {test} --model" in said[-1]


def test_no_test_folder_writes_empty_test_fields():
    metrics: dict = {}
    assert add_test_score(Path("/nonexistent"), None, metrics) is None
    assert metrics == {"test_accuracy": None, "test_loss": None, "test": None}


def test_the_cli_refuses_a_test_folder_with_other_classes_and_leaves_no_run_dir(tmp_path,
                                                                                capsys):
    from hyperfcn.cli import main

    data = _folder(tmp_path / "data")
    test = _folder(tmp_path / "test", classes=("dark", "light", "grey"))
    for cmd in (["tune", str(data)], ["train", str(data), "--config", str(tmp_path / "c")]):
        (tmp_path / "c").write_text(json.dumps(CFG))
        assert main([*cmd, "--test-dir", str(test), "--out", str(tmp_path / "r")]) == 2
        err = capsys.readouterr().err
        assert f"{test}: --test-dir has classes the training data lacks: grey" in err
        assert not (tmp_path / "r").exists()
