"""An existing Ray cluster: two nodes on this machine (1 CPU each), --address, --storage and
--cache-dir (the trials map the decoded cache there), and a dataset folder renamed once the
driver has read it."""

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from conftest import FLOWERS_SAMPLE

pytestmark = pytest.mark.integration
RAY = str(Path(sys.executable).with_name("ray"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _kill_session(temp_dir: Path) -> None:
    """Stop this cluster only (`ray stop` would stop every Ray on the machine): every
    process whose command line names its session, and their children."""
    import signal

    session = (temp_dir / "session_latest").resolve().name
    procs: dict[int, tuple[int, str]] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        procs[int(d.name)] = (ppid, cmd)
    victims = {pid for pid, (_, cmd) in procs.items() if session in cmd or str(temp_dir) in cmd}
    grew = True
    while grew:
        more = {pid for pid, (ppid, _) in procs.items() if ppid in victims} - victims
        victims |= more
        grew = bool(more)
    me = os.getpid()
    while me > 1 and me in procs:  # never this process or its parents
        victims.discard(me)
        me = procs[me][0]
    for pid in victims:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def two_nodes():
    temp = Path(tempfile.mkdtemp(prefix="rc", dir="/tmp"))  # short: unix socket paths
    port = _free_port()
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_USAGE_STATS_ENABLED": "0"}
    common = ["--num-cpus", "1", "--num-gpus", "0", "--disable-usage-stats"]
    subprocess.run([RAY, "start", "--head", "--port", str(port), "--node-ip-address",
                    "127.0.0.1", "--include-dashboard", "false", "--temp-dir", str(temp),
                    *common], env=env, check=True, capture_output=True, timeout=120)
    try:
        r = subprocess.run([RAY, "start", "--address", f"127.0.0.1:{port}",
                            "--node-ip-address", "127.0.0.1", *common], env=env,
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr[-2000:]
        yield f"127.0.0.1:{port}", env
    finally:
        _kill_session(temp)
        shutil.rmtree(temp, ignore_errors=True)


def test_search_on_a_two_node_cluster_survives_the_dataset_moving(two_nodes, tmp_path):
    address, env = two_nodes
    data = tmp_path / "photos"
    shutil.copytree(FLOWERS_SAMPLE, data)
    run, storage = tmp_path / "run", tmp_path / "shared-storage"
    proc = subprocess.Popen(
        [sys.executable, "-m", "hyperfcn.cli", "tune", str(data), "--val-split", "0.25",
         "--out", str(run), "--address", address, "--storage", str(storage),
         "--cache-dir", str(tmp_path / "shared-cache"),
         "--image-size", "32", "--samples", "2", "--max-epochs", "2", "--scheduler", "fifo",
         "--concurrency", "2", "--cpus-per-trial", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    lines = []
    for line in proc.stdout:  # the data is in the cache once the decode line is printed
        lines.append(line)
        if "decoded once" in line:
            data.rename(tmp_path / "photos-moved")
            break
    out, err = proc.communicate(timeout=900)
    out = "".join(lines) + out
    assert proc.returncode == 0, err[-4000:]
    assert not data.exists()
    assert "without token authentication" not in err
    results = list((storage / "tune").glob("trial_*/result.json"))
    assert len(results) == 2  # Ray's results went to --storage
    assert list((tmp_path / "shared-cache").rglob("meta.json"))  # decoded into --cache-dir
    nodes = {json.loads(ln)["node_id"] for p in results
             for ln in p.read_text().splitlines() if ln.strip()}
    assert len(nodes) == 2, "the two trials should have run on the two nodes"
    assert (run / "model.keras").is_file() and (run / "report.html").is_file()
