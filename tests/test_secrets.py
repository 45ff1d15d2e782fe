"""A password in a tracking URI never reaches what hyperfcn writes or prints: the options
hand it to MLflow's own environment variables, and every command line it records or prints
leaves a URL's credentials out."""

import json
import sys

import pytest

from hyperfcn import artifacts as art
from hyperfcn.cli import _resume_command
from hyperfcn.hints import command, redact
from hyperfcn.options import TuneOptions
from hyperfcn.rundir import write_settings

URI = "http://alice:s3cr%40t@127.0.0.1:5000"


@pytest.fixture
def clean_env(monkeypatch):
    for k in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        monkeypatch.delenv(k, raising=False)
    return monkeypatch


def test_redact_leaves_out_any_urls_credentials():
    assert redact(URI) == "http://127.0.0.1:5000"
    assert redact("--mlflow=https://tok@h/x") == "--mlflow=https://h/x"
    assert redact("file:///tmp/mlruns") == "file:///tmp/mlruns"  # nothing to leave out
    assert redact("a@b.c and ./runs@2") == "a@b.c and ./runs@2"  # not URLs


def test_the_options_hand_the_credentials_to_mlflows_environment(clean_env, tmp_path):
    import os

    opts = TuneOptions(data=tmp_path, mlflow=URI)
    assert opts.mlflow == "http://127.0.0.1:5000"
    assert os.environ["MLFLOW_TRACKING_USERNAME"] == "alice"
    assert os.environ["MLFLOW_TRACKING_PASSWORD"] == "s3cr@t"
    assert TuneOptions(data=tmp_path, mlflow="file:///x").mlflow == "file:///x"


def test_settings_json_and_the_resume_hint_hold_no_password(clean_env, tmp_path):
    argv = ["tune", str(tmp_path), "--mlflow", URI]
    clean_env.setattr(sys, "argv", ["hyperfcn", *argv])
    write_settings(tmp_path, TuneOptions(data=tmp_path, mlflow=URI), {})
    text = (tmp_path / art.SETTINGS).read_text()
    assert "s3cr" not in text and "alice" not in text
    assert json.loads(text)["mlflow"] == "http://127.0.0.1:5000"
    hint = _resume_command(argv)
    assert "s3cr" not in hint and "alice" not in hint
    assert "MLFLOW_TRACKING_PASSWORD" in hint and hint.splitlines()[0].endswith("--resume")
    assert "s3cr" not in command(argv)
