"""A new user's first hour, point by point (issue 20): every message true, every hint
runnable, every file usable by the team. Fast tests; the ones that need a real search are
in test_end_to_end.py."""

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from hyperfcn import artifacts as art
from hyperfcn import hints
from hyperfcn.cli import main


def _photos(root: Path, n: int = 6) -> Path:
    for c, shade in (("cats", 40), ("dogs", 200)):
        (root / c).mkdir(parents=True)
        for i in range(n):
            Image.new("RGB", (24, 20), (shade, shade - 10 + i, 30)).save(root / c / f"{i}.png")
    return root


def _cli(*args, env=None, timeout=300):
    e = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "hyperfcn", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, env=e)


# 1. durations need a unit; a budget too short is refused before Ray starts
@pytest.mark.parametrize("value", ["10", "2.5"])
def test_a_duration_without_a_unit_is_refused_with_the_rule(value, capsys):
    with pytest.raises(SystemExit) as e:
        main(["tune", ".", "--budget", value])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert f"{value!r} has no unit" in err and f"{value}m" in err


def test_a_budget_the_final_step_alone_would_use_up_is_refused_before_ray(tmp_path, capsys):
    data = _photos(tmp_path / "photos")
    t = time.time()
    assert main(["tune", str(data), "--out", str(tmp_path / "r"), "--budget", "20s"]) == 2
    err = capsys.readouterr().err
    assert "--budget 20s: too short" in err and "final model needs" in err
    assert time.time() - t < 30  # no Ray started
    assert not (tmp_path / "r").exists()  # and no folder left behind


# 4. hints quote the command as the user ran it
@pytest.mark.parametrize("argv0, want", [
    ("/somewhere/not/on/path/hyperfcn", "/somewhere/not/on/path/hyperfcn"),
    (".venv/bin/hyperfcn", ".venv/bin/hyperfcn"),
    ("/x/site-packages/hyperfcn/__main__.py", f"{sys.executable} -m hyperfcn"),
])
def test_hints_start_with_the_command_the_user_ran(argv0, want):
    assert hints.prog(argv0) == want
    assert hints.command(["tune", "my photos", "--resume"], argv0) == (
        f"{want} tune 'my photos' --resume")


# 5. --model takes a RUN_DIR or its model.keras; a RUN_DIR without a model says what to do
@pytest.mark.integration
def test_a_run_dir_without_a_model_names_the_resume_command(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    art.write_json(run / art.SETTINGS, {"command": ".venv/bin/hyperfcn tune photos --out run"})
    from PIL import Image

    Image.new("RGB", (8, 8)).save(tmp_path / "photo.png")  # the paths are fine: the model is not
    r = _cli("predict", tmp_path, "--model", run)
    assert r.returncode == 2
    assert "holds no model yet" in r.stderr
    assert ".venv/bin/hyperfcn tune photos --out run --resume" in r.stderr
    r = _cli("predict", tmp_path, "--model", run / "model.keras")
    assert r.returncode == 2 and "holds no model yet" in r.stderr


# 6. YAML numbers as users write them
def test_a_space_file_with_1e_4_is_read_as_numbers(tmp_path):
    from hyperfcn.api import TuneOptions, resolve_space

    f = tmp_path / "space.yaml"
    f.write_text("parameters:\n  learning_rate: {loguniform: [1e-4, 3e-3]}\n"
                 "  weight_decay: 5E-4\n  image_size: 32\n"
                 "defaults:\n  learning_rate: 1e-3\n")
    space = resolve_space(TuneOptions(data=tmp_path, space=f))
    lr = space.get("learning_rate")
    assert (lr.low, lr.high) == (1e-4, 3e-3)
    assert space.get("weight_decay").value == 5e-4 and space.points[0]["learning_rate"] == 1e-3


# 7. files honour the umask
@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_artifacts_honour_the_umask(tmp_path, mask, mode):
    old = os.umask(mask)
    try:
        art.write_json(tmp_path / "metrics.json", {"a": 1})
        art.write_bytes(tmp_path / "model.keras", b"x")
    finally:
        os.umask(old)
    for name in ("metrics.json", "model.keras"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == mode


# 9. an ETA that only moves as evidence arrives, and never stalls while time passes
def test_the_eta_counts_down_between_results_and_moves_only_on_evidence(monkeypatch):
    import hyperfcn.progress as progress

    now = [1000.0]
    monkeypatch.setattr(progress.time, "time", lambda: now[0])
    board = progress.Board("val_loss", "min", max_epochs=4, samples=4, concurrency=1)
    board.started("a", {})
    board.result("a", {"epoch": 1, "val_loss": 1.0, "time_total_s": 10.0})
    first = board.eta()
    assert "~02:30 left" in first  # 15 epochs to go at 10 s
    now[0] += 60
    assert "~01:30 left" in board.eta()  # one minute later, one minute less
    now[0] += 600
    assert "~00:00 left" in board.eta()  # never below zero
    board.result("a", {"epoch": 2, "val_loss": 0.9, "time_total_s": 20.0})
    assert "~02:20 left" in board.eta()  # new evidence: 14 epochs to go


def test_with_a_budget_the_eta_is_the_time_until_the_model_is_saved(monkeypatch):
    import hyperfcn.progress as progress

    now = [5000.0]
    monkeypatch.setattr(progress.time, "time", lambda: now[0])
    board = progress.Board("val_loss", "min", max_epochs=4, budget_s=600, t0=4900.0)
    assert board.eta().startswith("08:20 left of 10:00; model saved by ")


# 10. no folder behind a refusal; `hyperfcn` alone helps; typos get a suggestion; grouped help
def test_a_refused_run_leaves_no_folder(tmp_path, capsys):
    assert main(["tune", str(tmp_path / "nope"), "--out", str(tmp_path / "r")]) == 2
    assert not (tmp_path / "r").exists()
    assert main(["train", str(tmp_path / "nope"), "--config", "x.json",
                 "--out", str(tmp_path / "r2")]) == 2
    assert not (tmp_path / "r2").exists()


def test_hyperfcn_alone_prints_help(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert "COMMAND" in out and "tune" in out and "example:" in out


@pytest.mark.parametrize("argv, hint", [
    (["tune", ".", "--samles", "3"], "--samles: did you mean --samples?"),
    (["tuen", "."], "did you mean tune?"),
    (["predict", ".", "--model", "r", "--fromat", "csv"], "did you mean --format?"),
])
def test_typos_get_did_you_mean(argv, hint, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2 and hint in err
    assert len(err.strip().splitlines()) == 1 and "usage:" not in err  # one line
    assert "--help` lists the options" in err


def test_tune_help_is_grouped_with_a_description_and_an_example(capsys):
    with pytest.raises(SystemExit):
        main(["tune", "--help"])
    out = capsys.readouterr().out
    heads = [out.index(f"\n{g}:\n") for g in ("data", "search", "resources", "output",
                                               "tracking")]
    assert heads == sorted(heads)
    search = out[heads[1]:heads[2]]
    assert search.index("--samples") < search.index("--budget") < search.index("--searcher")
    assert "example:\n  hyperfcn tune" in out and "Search the hyperparameters" in out
    import re

    undocumented = re.findall(r"\n  (--[\w-]+)(?: [A-Z_|{},a-z+]+)?\n(?!  {10,})", out)
    assert not undocumented, undocumented


# 11. the report shows what varied and mattered, hides what the config does not use
def test_with_few_trials_the_report_shows_the_parameters_that_varied_and_mattered():
    from hyperfcn.reporting import display_order

    trials = [{"config": {"brightness": False, "contrast": True, "learning_rate": lr,
                          "optimizer": opt},
               "history": [{"val_loss": loss}], "status": "completed"}
              for lr, opt, loss in ((0.1, "sgd", 2.0), (0.001, "adam", 0.6),
                                    (0.003, "adam", 0.7), (0.05, "sgd", 1.8))]
    assert display_order(trials, "val_loss", "min", [])[:2] == ["learning_rate", "optimizer"]


def test_a_config_knows_what_it_does_not_use():
    from hyperfcn.config import ModelConfig

    unused = ModelConfig(head="conv", rotation=False, optimizer="adam").unused()
    assert {"dense_units", "rotation_factor", "weight_decay"} <= unused
    assert "conv_head_filters" not in unused and "learning_rate" not in unused


def test_a_report_with_no_finished_trial_says_so(tmp_path):
    from hyperfcn.reporting import write_report

    run = tmp_path / "run"
    art.write_json(run / art.TRIALS_JSON, [{"trial_id": "a", "config": {}, "history": [],
                                             "status": "out_of_budget", "epochs": 0}])
    art.write_json(run / art.SETTINGS, {"metric": "val_loss", "max_epochs": 2})
    art.write_json(run / art.DATA_SUMMARY, {"classes": ["a", "b"]})
    page = write_report(run).read_text()
    assert "no trial finished an epoch" in page and "<p class='lead'>.</p>" not in page


def test_the_final_config_table_hides_unused_values(tmp_path):
    from hyperfcn.reporting import write_report

    run = tmp_path / "run"
    art.write_json(run / art.TRIALS_JSON, [])
    art.write_json(run / art.SETTINGS, {"metric": "val_loss", "max_epochs": 2})
    art.write_json(run / art.DATA_SUMMARY, {"classes": ["a", "b"]})
    art.write_json(run / art.BEST_CONFIG, {"head": "conv", "dense_units": 128,
                                            "conv_head_filters": 64, "rotation": False,
                                            "rotation_factor": 0.1})
    page = write_report(run).read_text()
    assert "conv_head_filters" in page and "dense_units" not in page
    assert "rotation_factor" not in page


def test_evaluate_warns_on_training_images(tmp_path):
    from hyperfcn.inference import seen_in_training

    data = _photos(tmp_path / "photos")
    run = tmp_path / "run"
    art.write_json(run / art.SETTINGS, {"data_abs": str(data), "val_dir": None})
    held = sorted((data / "cats").glob("*.png"))[:2]
    art.write_csv(run / art.VAL_PREDICTIONS, [{"path": str(p)} for p in held], ["path"])
    files = sorted(data.rglob("*.png"))
    assert seen_in_training(run, files) == len(files) - 2
    assert seen_in_training(run, held) == 0
    assert seen_in_training(None, files) == 0
    assert json.loads((run / art.SETTINGS).read_text())["data_abs"] == str(data)
