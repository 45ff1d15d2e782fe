import argparse
import subprocess
import sys

import pytest
import yaml

from hyperfcn.cli import main, parse_duration


@pytest.mark.parametrize("text, seconds", [("90s", 90), ("20m", 1200), ("1.5h", 5400),
                                           ("1h30m", 5400), ("0", 0)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


def test_bad_duration():
    with pytest.raises(argparse.ArgumentTypeError, match="20x"):
        parse_duration("20x")
    with pytest.raises(argparse.ArgumentTypeError, match="'45' has no unit; write 45s"):
        parse_duration("45")


def test_space_prints_the_yaml_that_space_reads(capsys):
    assert main(["space"]) == 0
    data = yaml.safe_load(capsys.readouterr().out)
    assert "parameters" in data and "defaults" in data


@pytest.mark.parametrize("argv, words", [
    (["tune", "/no/such/dir", "--samples", "1"], ["/no/such/dir", "does not exist"]),
    (["tune", ".", "--val-split", "1.5"], ["--val-split 1.5", "between 0 and 1"]),
    (["tune", ".", "--space", "/no/space.yaml"], ["/no/space.yaml", "hyperfcn space"]),
    (["train", ".", "--config", "/no/cfg.json"], ["/no/cfg.json", "not found"]),
    (["predict", "x.jpg", "--model", "/no/run"], ["--model /no/run", "no such folder"]),
])
def test_bad_input_exits_2_with_one_line(argv, words, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # "." holds class folders and x.jpg: only argv's fault shows
    for c in ("a", "b"):
        (tmp_path / c).mkdir()
    (tmp_path / "x.jpg").write_bytes(b"")
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    for w in words:
        assert w in err


def test_json_mode_answers_in_json_even_on_bad_input(capsys, tmp_path):
    import json

    assert main(["tune", str(tmp_path / "nope"), "--json"]) == 2
    out = json.loads(capsys.readouterr().out)
    assert out["status"] == "error" and out["exit_code"] == 2 and "nope" in out["error"]


@pytest.mark.parametrize("argv, words", [
    (["--mlflow", "postgresql://nobody@127.0.0.1:1/x"], ["--mlflow", "tracking URI"]),
])
@pytest.mark.integration
def test_bad_tracker_is_refused_before_any_work(argv, words, capsys, flowers, tmp_path):
    pytest.importorskip("mlflow")
    assert main(["tune", str(flowers / "train"), "--out", str(tmp_path / "r"), *argv]) == 2
    err = capsys.readouterr().err
    assert all(w in err for w in words) and "Traceback" not in err
    assert not (tmp_path / "r" / "data.json").exists()  # refused before the data was read


def test_report_of_a_folder_that_is_not_a_run(capsys, tmp_path):
    assert main(["report", str(tmp_path)]) == 2
    assert "not a hyperfcn run folder" in capsys.readouterr().err


@pytest.mark.integration
def test_usage_error_exits_2():
    r = subprocess.run([sys.executable, "-m", "hyperfcn.cli", "tune"], capture_output=True,
                       text=True)
    assert r.returncode == 2 and "required" in r.stderr


@pytest.mark.integration
def test_driver_never_imports_tensorflow_or_keras():
    """TensorFlow costs the driver ~560 MB and seconds; only workers import it."""
    code = ("import sys; import hyperfcn.api, hyperfcn.tuning.search, hyperfcn.tuning.session, "
            "hyperfcn.data.prepare; "
            "from hyperfcn.tb import HParamsLog; import tempfile; "
            "HParamsLog(tempfile.mkdtemp()).start('t', {'a': 1}); "
            "print('tensorflow' in sys.modules, 'keras' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.stdout.split() == ["False", "False"], r.stderr


@pytest.mark.parametrize("flag, module", [("--mlflow", "mlflow"), ("--wandb", "wandb")])
def test_missing_tracker_extra_says_what_to_install(flag, module, capsys, tmp_path,
                                                    monkeypatch):
    from hyperfcn.hints import install

    words = f"{flag} needs {module}: {install(module)}"
    monkeypatch.setitem(sys.modules, module, None)  # as if it were not installed
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    assert main(["tune", str(tmp_path), "--out", str(tmp_path / "r"), flag, "x"]) == 2
    err = capsys.readouterr().err
    assert words in err and len(err.strip().splitlines()) == 1


def test_python_api_checks_the_metric_and_random_starts_too():
    from pathlib import Path

    from hyperfcn.api import TuneOptions
    from hyperfcn.errors import UserError

    with pytest.raises(UserError, match="use val_loss, val_calibrated_loss, val_accuracy or "
                                        "val_balanced_accuracy"):
        TuneOptions(data=Path("."), metric="loss")
    assert TuneOptions(data=Path("."), metric="val_calibrated_loss").metric
    with pytest.raises(UserError, match="--random-starts 0: must be >= 1"):
        TuneOptions(data=Path("."), random_starts=0)
