"""The run-folder guard: what a command may write, refused before anything in the folder
changes; the lock a command holds; a resume on the data it searched."""

import fcntl
import json
import os

import numpy as np
import pytest
from PIL import Image

from hyperfcn import artifacts as art
from hyperfcn import guard
from hyperfcn.cli import main
from hyperfcn.errors import UserError
from hyperfcn.options import TuneOptions
from hyperfcn.rundir import data_identity


def _data(root, classes=("a", "b")):
    for c in classes:
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(4):
            Image.fromarray(np.full((20, 20, 3), 30 * i, np.uint8)).save(root / c / f"{i}.png")
    return root


def _config(tmp):
    art.write_json(tmp / "cfg.json", {"image_size": 16, "blocks": 2, "filters": 8})
    return str(tmp / "cfg.json")


def _tree(d):
    """Every file under d with its bytes and mtime: what 'nothing changed' compares."""
    return sorted((str(p.relative_to(d)), p.read_bytes(), p.stat().st_mtime_ns)
                  for p in d.rglob("*") if p.is_file())


def _tune_run(d):
    (d / art.RAY_DIR).mkdir(parents=True)
    art.write_json(d / art.SETTINGS, {"command": "hyperfcn tune x"})
    art.write_bytes(d / art.MODEL, b"a model")
    return d


def _train_run(d):
    d.mkdir(parents=True)
    art.write_json(d / art.SETTINGS, {"command": "hyperfcn train x"})
    art.write_json(d / art.METRICS, {"val_accuracy": 0.9})
    art.write_bytes(d / art.MODEL, b"a model")
    return d


def _refused(argv, capsys, *words):
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for w in words:
        assert w in err, err


@pytest.mark.parametrize("make", [_tune_run, _train_run])
def test_train_onto_any_run_exits_2_and_changes_nothing(tmp_path, capsys, make):
    run = make(tmp_path / "run")
    before = _tree(run)
    _refused(["train", str(_data(tmp_path / "data")), "--config", _config(tmp_path),
              "--out", str(run)], capsys,
             str(run), "never overwrites", "new --out")
    assert _tree(run) == before


def test_tune_onto_a_train_run_exits_2_and_changes_nothing(tmp_path, capsys):
    run = _train_run(tmp_path / "run")
    before = _tree(run)
    _refused(["tune", str(_data(tmp_path / "data")), "--out", str(run), "--image-size", "16"],
             capsys, "holds a `train` run", "new --out")
    assert _tree(run) == before


def test_an_out_that_is_a_file_or_cannot_be_made_exits_2_in_one_line(tmp_path, capsys):
    data = _data(tmp_path / "data")
    (tmp_path / "afile").write_text("mine")
    _refused(["train", str(data), "--config", _config(tmp_path), "--out",
              str(tmp_path / "afile")], capsys,
             "is a file, not a folder")
    assert (tmp_path / "afile").read_text() == "mine"
    _refused(["tune", str(data), "--out", str(tmp_path / "afile" / "run")], capsys,
             "cannot create the folder")


def test_a_cache_dir_that_cannot_be_made_exits_2_and_leaves_no_run_folder(tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    _refused(["tune", str(_data(tmp_path / "data")), "--out", str(tmp_path / "run"),
              "--image-size", "16", "--cache-dir", str(tmp_path / "afile" / "cache")],
             capsys, "--cache-dir", "cannot use it")
    assert not (tmp_path / "run").exists()


def test_a_folder_held_by_another_command_is_refused_with_who_holds_it(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    with guard.holding(run, "hyperfcn tune data --out run", guard.RunKind.TUNE):
        # the same process may go on writing (tune writes its report inside the lock)
        with guard.holding(run, "hyperfcn report run"):
            pass
        # another command opens the lock file anew: flock refuses it as it would another
        # process
        with open(run / guard.LOCK) as other, pytest.raises(BlockingIOError):
            fcntl.flock(other.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(UserError, match=rf"in use by another hyperfcn command \(pid "
                                            rf"{os.getpid()}: hyperfcn tune data --out run\)"):
            guard._acquire(run)
    f = guard._acquire(run)  # released when the command ends
    f.close()
    assert json.loads((run / guard.LOCK).read_text())["kind"] == "tune"
    assert guard.kind_of(run) == guard.RunKind.TUNE


def test_the_kind_of_a_folder_from_before_kinds_were_recorded(tmp_path):
    assert guard.kind_of(tmp_path / "nothing") is None
    (tmp_path / "empty").mkdir()
    assert guard.kind_of(tmp_path / "empty") is None
    assert guard.kind_of(_tune_run(tmp_path / "t")) == guard.RunKind.TUNE
    assert guard.kind_of(_train_run(tmp_path / "r")) == guard.RunKind.TRAIN


def test_a_resume_on_other_data_or_split_is_refused(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    a, b = _data(tmp_path / "a"), _data(tmp_path / "b")
    art.write_json(run / art.SETTINGS, data_identity(TuneOptions(data=a)))
    guard.check_same_data(run, data_identity(TuneOptions(data=a)))  # the same: fine
    with pytest.raises(UserError, match=r"searched with data_abs .* \(now .*b'\);.*same DATA"):
        guard.check_same_data(run, data_identity(TuneOptions(data=b)))
    with pytest.raises(UserError, match=r"val_split 0.2 \(now 0.3\)"):
        guard.check_same_data(run, data_identity(TuneOptions(data=a, val_split=0.3)))
    with pytest.raises(UserError, match=r"seed 0 \(now 1\)"):
        guard.check_same_data(run, data_identity(TuneOptions(data=a, seed=1)))


def test_a_resume_whose_classes_changed_is_refused(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    art.write_json(run / art.DATA_SUMMARY, {"classes": ["a", "b"]})
    guard.check_same_classes(run, ["a", "b"])
    with pytest.raises(UserError, match="new classes c; classes gone b"):
        guard.check_same_classes(run, ["a", "c"])


def test_without_out_each_run_gets_a_new_numbered_folder_and_resume_takes_the_last(tmp_path):
    data = _data(tmp_path / "photos")
    runs = tmp_path / "runs"
    assert guard.default_run_dir(data, resume=False, parent=runs) == runs / "photos"
    assert guard.default_run_dir(data, resume=True, parent=runs) == runs / "photos"
    _tune_run(runs / "photos")
    assert guard.default_run_dir(data, resume=False, parent=runs) == runs / "photos-2"
    assert guard.default_run_dir(data, resume=True, parent=runs) == runs / "photos"
    _train_run(runs / "photos-2")
    (runs / "photos-3").mkdir()  # made and left empty: free
    assert guard.default_run_dir(data, resume=False, parent=runs) == runs / "photos-3"
    assert guard.default_run_dir(data, resume=True, parent=runs) == runs / "photos-2"


def test_a_second_tune_without_out_does_not_collide_with_the_first(tmp_path, capsys,
                                                                  monkeypatch):
    """It picks runs/photos-2 (here refused later, by a budget too short to train in, which
    leaves no folder behind)."""
    data = _data(tmp_path / "photos")
    monkeypatch.chdir(tmp_path)
    _tune_run(tmp_path / "runs" / "photos")
    code = main(["tune", str(data), "--image-size", "16", "--budget", "1s",
                 "--cache-dir", str(tmp_path / "c")])
    out, err = capsys.readouterr()
    assert "run folder runs/photos-2 (--out picks another)" in out
    assert code == 2 and "holds a finished search" not in err and "--budget" in err
    assert not (tmp_path / "runs" / "photos-2").exists()


@pytest.mark.parametrize("began, wrote, existed, kept", [
    (False, True, False, False),  # refused or crashed in its checks: nothing to keep
    (True, True, False, True),  # its work began and wrote a run's files: kept
    (True, False, False, False),  # its work began but wrote nothing: no folder left
    (False, False, True, True),  # a folder the user made is never removed
])
def test_a_failed_command_leaves_its_folder_only_where_it_holds_work(tmp_path, began, wrote,
                                                                      existed, kept):
    run = tmp_path / "run"
    if existed:
        run.mkdir()
    with pytest.raises(RuntimeError), guard.claimed(run, guard.RunKind.TUNE, "t") as claim:
        if began:
            claim.begin_work()
        if wrote:
            (run / "settings.json").write_text("{}")
        raise RuntimeError("boom")
    assert run.is_dir() == kept
