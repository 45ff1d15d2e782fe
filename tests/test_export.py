"""`hyperfcn export`: each format written by Keras, run by its own runtime, equal to the Keras
model on the run's validation images, with the class names and the preprocessing beside it."""

import json
import types

import numpy as np
import pytest
from PIL import Image

from hyperfcn import artifacts as art
from hyperfcn.cli import main
from hyperfcn.errors import UserError
from hyperfcn.exporting import TOLERANCE, export
from hyperfcn.final import make_final, plan_final, write_files
from hyperfcn.trial import TrialSettings

CFG = {"image_size": 16, "batch_size": 4, "blocks": 2, "filters": 8, "dense_units": 16,
       "learning_rate": 0.01}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run dir with a model trained one epoch, whose val_predictions.csv lists photos of
    two shapes (so the check runs batches of different sides)."""
    from conftest import make_packed

    from hyperfcn.data.arrays import TrialData

    data = TrialData(classes=["dark", "light"], train={16: make_packed(8)},
                     val={16: make_packed(4, seed=1)})
    out = make_final(CFG, data, TrialSettings(max_epochs=1, patience=1), plan_final(None, 1))
    run = tmp_path_factory.mktemp("run")
    photos = run.parent / "photos"
    photos.mkdir(exist_ok=True)
    files = []
    for i in range(6):
        files.append(photos / f"{i}.png")
        Image.fromarray(np.full((20 + 10 * (i % 2), 24, 3), 40 * i, np.uint8)).save(files[-1])
    summary = types.SimpleNamespace(classes=data.classes, val_files=[str(f) for f in files])
    out.val_order = list(range(6))
    out.val_probs, out.val_labels = np.tile([[0.5, 0.5]], (6, 1)), np.array([0, 1] * 3)
    write_files(run, CFG, out, summary, lambda m: None, {}, None, "val_loss")
    return run


@pytest.mark.parametrize("fmt, name", [("onnx", "model.onnx"), ("saved_model", "saved_model"),
                                       ("litert", "model.tflite")])
def test_each_format_runs_in_its_runtime_and_matches_keras(run_dir, fmt, name, capsys):
    assert main(["export", str(run_dir), "--format", fmt]) == 0
    said = capsys.readouterr().out
    path = run_dir / "export" / name
    assert path.exists() and f"{path} ({fmt}): checked against the Keras model on 6" in said
    e = export(run_dir, fmt)  # again: the earlier file is replaced
    assert e.checked_images == 6 and e.max_abs_diff <= TOLERANCE
    side = path if fmt == "saved_model" else path.parent
    assert json.loads((side / art.CLASSES).read_text()) == ["dark", "light"]
    pre = json.loads((side / "preprocessing.json").read_text())
    assert pre["input"]["value_range"] == [0, 255] and pre["input"]["image_size"] == 16


def test_the_readme_lines_run_the_onnx_file(run_dir):
    import onnxruntime as ort

    from hyperfcn.inference import load_run

    path = export(run_dir, "onnx").path
    sess = ort.InferenceSession(str(path))
    x = np.random.default_rng(0).uniform(0, 255, (3, 16, 21, 3)).astype(np.float32)
    probs = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    assert np.abs(probs - load_run(run_dir).model.predict_on_batch(x)).max() <= TOLERANCE


def test_a_folder_of_other_files_is_never_overwritten(run_dir, tmp_path):
    (tmp_path / "mine.txt").write_text("keep")
    with pytest.raises(UserError, match="holds other files"):
        export(run_dir, "saved_model", tmp_path)
    assert export(run_dir, "onnx", tmp_path).path == tmp_path / "model.onnx"  # inside it
    assert (tmp_path / "mine.txt").read_text() == "keep"
    with pytest.raises(UserError, match="must end in .tflite"):
        export(run_dir, "litert", tmp_path / "model.bin")


@pytest.mark.parametrize("fmt, name", [("onnx", "model.onnx"), ("saved_model", "saved_model")])
def test_an_export_that_fails_its_check_leaves_the_earlier_one_as_it_was(run_dir, fmt, name,
                                                                        monkeypatch):
    import hyperfcn.exporting as ex

    path = export(run_dir, fmt).path
    before = sorted((p.relative_to(path.parent), p.read_bytes()) for p in
                    [path, *path.rglob("*")] if p.is_file())
    monkeypatch.setattr(ex, "_compare", lambda runner, batches, want: (1.0, 6))
    with pytest.raises(UserError, match="it was not written .an earlier export there is "
                                        "unchanged"):
        export(run_dir, fmt)
    after = sorted((p.relative_to(path.parent), p.read_bytes()) for p in
                   [path, *path.rglob("*")] if p.is_file())
    assert after == before
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # nothing staged
