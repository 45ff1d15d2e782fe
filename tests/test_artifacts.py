"""The final model is never half-written: an interrupted save leaves the old file or none."""

import os
import signal
import subprocess
import sys
import time

import pytest

from hyperfcn import artifacts as art


def test_a_failed_write_keeps_the_previous_file(tmp_path, monkeypatch):
    target = tmp_path / "model.keras"
    art.write_bytes(target, b"old model")

    def boom(*_):
        raise KeyboardInterrupt  # Ctrl-C between writing and renaming

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(KeyboardInterrupt):
        art.write_bytes(target, b"new model" * 1000)
    assert target.read_bytes() == b"old model"
    assert [p.name for p in tmp_path.iterdir()] == ["model.keras"]  # no temp file left


@pytest.mark.integration
def test_kill_9_during_saves_leaves_a_whole_file(tmp_path):
    target = tmp_path / "model.keras"
    code = (
        "import sys, itertools; from pathlib import Path; from hyperfcn import artifacts as a\n"
        "p = Path(sys.argv[1]); print('go', flush=True)\n"
        "for i in itertools.count():\n"
        "    a.write_bytes(p, bytes([65 + i % 2]) * 20_000_000)\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(target)], stdout=subprocess.PIPE)
    proc.stdout.readline()
    deadline = time.time() + 60
    while not target.exists() and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.7)  # somewhere in the middle of a later write
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    data = target.read_bytes()
    assert len(data) == 20_000_000 and data in (b"A" * 20_000_000, b"B" * 20_000_000)
