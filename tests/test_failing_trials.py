"""Failing trials: a trial killed by the OS, a trial that raises (Ctrl-C during a search is
tested with its resume hint in test_end_to_end.py)."""

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
FLOWERS = Path(__file__).resolve().parents[2] / "shared/datasets/flowers"


def _cmd(run: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "hyperfcn.cli", "tune", str(FLOWERS / "train"), "--val-dir",
            str(FLOWERS / "val"), "--out", str(run), "--image-size", "32", "--scheduler",
            "fifo", "--concurrency", "1", *extra]


def _first_result(run: Path, timeout: float = 300) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        for p in (run / "tune").glob("trial_*/result.json") if (run / "tune").exists() else []:
            lines = [ln for ln in p.read_text().splitlines() if ln.strip()]
            if lines:
                return json.loads(lines[0])
        time.sleep(0.3)
    raise AssertionError("no trial reported in time")


def test_trial_killed_by_the_os_fails_and_the_search_goes_on(tmp_path, small_space):
    run = tmp_path / "run"
    proc = subprocess.Popen(_cmd(run, "--space", str(small_space), "--samples", "3",
                                 "--max-epochs", "2"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = _first_result(run)
    os.kill(first["pid"], signal.SIGKILL)  # the trial's worker, mid-trial
    out, err = proc.communicate(timeout=900)
    assert proc.returncode == 0, err[-3000:]
    rows = {r["trial_id"]: r for r in csv.DictReader(io.StringIO((run / "trials.csv")
                                                                 .read_text()))}
    killed = rows[first["trial_id"]]
    assert killed["status"] == "failed" and killed["error"], killed
    assert sorted(r["status"] for r in rows.values()) == ["completed", "completed", "failed"]
    assert (run / "model.keras").is_file()
    assert f"trial {first['trial_id']} failed" in out


def test_a_trial_that_raises_fails_with_its_reason_and_the_search_goes_on(tmp_path,
                                                                           deadline):
    """A real exception inside a real trial on a Ray worker: here, a config whose image size
    the data was not prepared for (any exception takes the same path)."""
    from conftest import make_packed

    from hyperfcn.config import ModelConfig
    from hyperfcn.space import parse_space
    from hyperfcn.trial import TrialData, TrialSettings
    from hyperfcn.tuning import scheduler, search, session

    deadline(300)
    data = TrialData(classes=["dark", "light"], train={16: make_packed(8)},
                     val={16: make_packed(4, seed=1)})
    space = parse_space({"parameters": {"image_size": {"choice": [16, 24]}, "batch_size": 4,
                                        "blocks": 2, "filters": 8},
                         "defaults": [{"image_size": 24}, {"image_size": 16}]}, "test",
                        ModelConfig.keys())
    session.start(num_cpus=2)
    try:
        req = search.SearchRequest(space=space, run_dir=tmp_path, data_ref=session.put(data),
                                   settings=TrialSettings(max_epochs=1), samples=2,
                                   scheduler=scheduler.plan_scheduler("fifo", 1), concurrency=1)
        records, interrupted = search.run_search(req)
    finally:
        session.shutdown()
    assert not interrupted
    by_size = {r.config["image_size"]: r for r in records}
    assert by_size[24].status == "failed"
    assert "image_size 24 was not prepared" in by_size[24].error
    assert by_size[16].status == "completed" and by_size[16].best_val_loss is not None
