"""Memory stays flat: driver and worker RSS after trial 5 vs after trial 50 of tiny trials.

    python benchmarks/memory.py [--trials 50] [--architectures]

Runs `hyperfcn tune` with tiny trials (32 px, 2 blocks of 8 filters, 1 epoch) and samples the
driver's RSS as trials finish; every trial reports its worker's RSS. Figure: growth from
trial 5 to trial 50, driver and worker.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import FLOWERS, emit  # noqa: E402

SPACE = """
parameters:
  image_size: 32
  batch_size: 64
  learning_rate: {loguniform: [1.0e-3, 1.0e-2]}
  blocks: 2
  filters: 8
  head: dense
  dense_units: 16
  flip: horizontal
"""
# --architectures: every trial a new program as well (JAX keeps what it compiled)
VARIED = SPACE.replace("  blocks: 2\n  filters: 8\n", "  blocks: {choice: [1, 2, 3]}\n"
                       "  filters: {choice: [4, 8, 12, 16]}\n").replace(
    "  dense_units: 16\n", "  dense_units: {choice: [8, 16, 24, 32]}\n")


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def finished(run: Path) -> list[tuple[float, float]]:
    """(finish timestamp, worker rss) of every trial that reported."""
    out = []
    for p in (run / "tune").glob("trial_*/result.json"):
        lines = [ln for ln in p.read_text().splitlines() if ln.strip()]
        if lines:
            r = json.loads(lines[-1])
            out.append((r["timestamp"], r["worker_rss_mb"]))
    return sorted(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=50)
    ap.add_argument("--architectures", action="store_true",
                    help="search blocks, filters and dense units too (48 architectures)")
    ap.add_argument("--out")
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="hyperfcn-memory-"))
    (work / "space.yaml").write_text(VARIED if a.architectures else SPACE)
    run = work / "run"
    proc = subprocess.Popen([sys.executable, "-m", "hyperfcn.cli", "tune", str(FLOWERS / "train"),
                             "--val-dir", str(FLOWERS / "val"), "--out", str(run), "--space",
                             str(work / "space.yaml"), "--samples", str(a.trials),
                             "--max-epochs", "1", "--quiet"],  # default final: checkpoints kept
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    driver_at: dict[int, float] = {}
    while proc.poll() is None:
        n = len(finished(run)) if (run / "tune").exists() else 0
        driver_at.setdefault(n, rss_mb(proc.pid))
        time.sleep(0.2)
    if proc.returncode:
        raise SystemExit(proc.stderr.read()[-4000:])
    done = finished(run)
    k5, kn = 5, len(done)
    d5 = driver_at.get(k5) or driver_at[min(k for k in driver_at if k >= k5)]
    dn = driver_at.get(kn) or driver_at.get(kn - 1) or max(driver_at.values())
    w5, wn = done[k5 - 1][1], done[-1][1]
    growth_d, growth_w = dn / d5 - 1, wn / w5 - 1
    emit({"benchmark": "memory", "trials": kn,
          "driver_rss_mb": {"after_5": round(d5, 1), f"after_{kn}": round(dn, 1)},
          "worker_rss_mb": {"trial_5": round(w5, 1), f"trial_{kn}": round(wn, 1)},
          "worker_rss_all": [round(w, 1) for _, w in done],
          "figure": f"RSS growth from trial 5 to trial {kn}: driver {growth_d:+.1%}, "
                    f"worker {growth_w:+.1%}"}, a.out)


if __name__ == "__main__":
    main()
