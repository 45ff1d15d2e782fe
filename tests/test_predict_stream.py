"""predict and evaluate stream: a chunk of images decoded at a time, rows in input order,
unreadable files skipped and listed, the same numbers however the input is chunked."""

import importlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hyperfcn import artifacts as art
from hyperfcn.inference import evaluate_folder, iter_predictions, load_run, predict_paths

predict_mod = importlib.import_module("hyperfcn.inference")
CFG = {"image_size": 16, "batch_size": 4, "blocks": 2, "filters": 8, "dense_units": 16,
       "learning_rate": 0.01}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A run folder holding an (untrained) model: predictions differ per image."""
    import keras

    from hyperfcn.config import ModelConfig
    from hyperfcn.model import build_core

    keras.utils.set_random_seed(0)
    run = tmp_path_factory.mktemp("run")
    build_core(ModelConfig.from_dict(CFG), 2).save(run / art.MODEL)
    (run / art.CLASSES).write_text(json.dumps(["dark", "light"]))
    (run / art.BEST_CONFIG).write_text(json.dumps(CFG))
    return run


def _images(root: Path, n: int = 7) -> Path:
    rng = np.random.default_rng(1)
    for name in ("dark", "light"):
        (root / name).mkdir(parents=True)
        for i in range(n):
            a = rng.uniform(0, 255, (16, 16, 3)).astype(np.uint8)
            Image.fromarray(a).save(root / name / f"{i}.png")
    (root / "dark" / "broken.png").write_bytes(b"not a png")
    return root


def test_predictions_stream_a_chunk_at_a_time_in_input_order(run_dir, tmp_path,
                                                             monkeypatch):
    data = _images(tmp_path / "data")
    run = load_run(run_dir)
    whole, skipped_whole = predict_paths(run, [data])
    decoded: list[int] = []
    real = predict_mod.decode_all

    def counting(paths, sizes):
        decoded.append(len(paths))
        return real(paths, sizes)

    monkeypatch.setattr(predict_mod, "CHUNK", 3)
    monkeypatch.setattr(predict_mod, "decode_all", counting)
    skipped: list[tuple[str, str]] = []
    files = predict_mod.image_files([data])
    rows = iter_predictions(run, files, top_k=2, skipped=skipped)
    first = next(rows)  # a generator: only the first chunk is decoded so far
    assert decoded == [3]
    rows = [first, *rows]
    assert max(decoded) == 3 and sum(decoded) == len(files) == 15
    assert [r["path"] for r in rows] == [str(f) for f in files if f.name != "broken.png"]
    assert skipped == skipped_whole and skipped[0][0].endswith("broken.png")
    for a, b in zip(rows, whole, strict=True):  # one shape: chunking changes no number
        assert a["label"] == b["label"] and a["score"] == pytest.approx(b["score"], abs=1e-6)
        assert len(a["top_k"]) == 2


def test_evaluate_scores_alike_however_the_folder_is_chunked(run_dir, tmp_path, monkeypatch):
    data = _images(tmp_path / "data")
    run = load_run(run_dir)
    whole, skipped = evaluate_folder(run, data)
    monkeypatch.setattr(predict_mod, "CHUNK", 4)
    chunked, skipped_chunked = evaluate_folder(run, data)
    assert chunked["count"] == whole["count"] == 14
    assert chunked["accuracy"] == pytest.approx(whole["accuracy"])
    assert chunked["confusion_matrix"] == whole["confusion_matrix"]
    assert chunked["loss"] == pytest.approx(whole["loss"], abs=1e-6)
    assert skipped_chunked == skipped and len(skipped) == 1


def test_the_cli_prints_rows_as_they_come_in_each_format(run_dir, tmp_path, capsys):
    from hyperfcn.cli import main

    data = _images(tmp_path / "data")
    rows, _ = predict_paths(load_run(run_dir), [data], top_k=2)
    main(["predict", str(data), "--model", str(run_dir), "--format", "json", "--top-k", "2"])
    out = capsys.readouterr()
    assert out.out == json.dumps(rows, indent=2) + "\n"
    assert "skipped 1 unreadable file" in out.err
    main(["predict", str(data), "--model", str(run_dir), "--format", "csv"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "path,label,score" and len(lines) == 15
    assert lines[1].startswith(rows[0]["path"] + ",")
    main(["predict", str(data), "--model", str(run_dir)])
    table = capsys.readouterr().out.splitlines()
    assert table[0].startswith("path") and len(table) == 15


def test_a_progress_bar_counts_every_file_of_a_long_job_on_a_terminal(monkeypatch, capsys):
    from hyperfcn import progress

    monkeypatch.setattr(progress.sys.stderr, "isatty", lambda: True, raising=False)
    seen = []
    with progress.bar("predicting", 3000) as done:
        for n in (1024, 1024, 952):
            done(n)
            seen.append(n)
    assert sum(seen) == 3000
    with progress.bar("predicting", 10) as done:  # one chunk: no bar
        done(10)
    monkeypatch.setattr(progress.sys.stderr, "isatty", lambda: False, raising=False)
    with progress.bar("predicting", 3000) as done:  # not a terminal: no bar
        done(3000)
    assert capsys.readouterr().out == ""  # never on stdout, where the rows go


def test_a_bar_whose_total_comes_with_the_work_opens_at_its_first_update(monkeypatch):
    from hyperfcn import progress

    monkeypatch.setattr(progress.sys.stderr, "isatty", lambda: True, raising=False)
    with progress.counted_bar("decoding") as update:
        for done in (1024, 2048, 3000):
            update(done, 3000)
    with progress.counted_bar("decoding") as update:
        pass  # nothing decoded (all found in the cache): no bar, no error


def test_the_bar_leaves_stdout_to_the_rows(monkeypatch, capsys):
    """predict writes its rows to stdout (a file, a pipe) while the bar runs on stderr."""
    from hyperfcn import progress

    monkeypatch.setattr(progress.sys.stderr, "isatty", lambda: True, raising=False)
    with progress.bar("predicting", 3000) as done:
        print("path,label,score")
        done(3000)
    assert "path,label,score" in capsys.readouterr().out
