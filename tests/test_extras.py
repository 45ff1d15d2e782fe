"""An optional package a command needs is said before any work, with the command that
installs it into the Python running hyperfcn, spelled as hyperfcn declares the extra."""

import importlib.util
import shlex
import sys

import pytest

from hyperfcn import extras, hints
from hyperfcn.cli import main


def test_the_install_command_is_the_extras_own_requirements_for_this_python():
    cmd = hints.install("onnx")
    assert cmd.startswith(f"{shlex.quote(sys.executable)} -m pip install ")
    assert "'tf2onnx>=" in cmd and "'onnxruntime>=" in cmd and "hyperfcn[" not in cmd
    assert hints.install("no-such-extra") == ("pip install '.[no-such-extra]' (in "
                                              "hyperfcn's checkout)")


@pytest.mark.parametrize("argv, extra, gone", [
    (["--searcher", "optuna"], "optuna", "optuna"),
    (["--searcher", "bohb"], "bohb", "hpbandster"),
    (["--mlflow", "file:///tmp/m"], "mlflow", "mlflow"),
    (["--wandb", "p"], "wandb", "wandb"),
])
def test_tune_without_an_extra_is_refused_before_any_work(argv, extra, gone, tmp_path,
                                                          capsys, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == gone else real(name, *a))
    for c in ("a", "b"):
        (tmp_path / "data" / c).mkdir(parents=True)
    code = main(["tune", str(tmp_path / "data"), "--out", str(tmp_path / "run"), *argv])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert f"needs {gone}: {hints.install(extra)}" in err
    assert not (tmp_path / "run").exists()  # nothing was started


def test_export_onnx_without_its_extra_is_refused_before_tensorflow_loads(tmp_path, capsys,
                                                                          monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "tf2onnx" else real(name, *a))
    code = main(["export", str(tmp_path), "--format", "onnx"])
    err = capsys.readouterr().err
    assert code == 2 and f"--format onnx needs tf2onnx: {hints.install('onnx')}" in err
    assert extras.missing("onnx") == ["tf2onnx"]
