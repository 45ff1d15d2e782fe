"""Best flowers val accuracy reached by `hyperfcn tune` from scratch.

    python benchmarks/accuracy.py [--budget 60m] [--max-epochs 30]

Runs the default search (TPE + ASHA, default space) with the budget, retrains the best, and
prints the final model's val accuracy and the winning config.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import FLOWERS, emit  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--budget", default="60m")
    ap.add_argument("--max-epochs", type=int, default=30)
    ap.add_argument("--extra", nargs=argparse.REMAINDER, default=[])
    ap.add_argument("--out")
    a = ap.parse_args()
    run = Path(tempfile.mkdtemp(prefix="hyperfcn-accuracy-")) / "run"
    cmd = [sys.executable, "-m", "hyperfcn.cli", "tune", str(FLOWERS / "train"), "--val-dir",
           str(FLOWERS / "val"), "--out", str(run), "--budget", a.budget, "--max-epochs",
           str(a.max_epochs), "--quiet", *a.extra]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(r.stderr[-4000:])
    m = json.loads((run / "metrics.json").read_text())
    cfg = json.loads((run / "best_config.json").read_text())
    emit({"benchmark": "accuracy", "budget": a.budget, "max_epochs": a.max_epochs,
          "val_accuracy": m["val_accuracy"], "val_loss": m["val_loss"],
          "trials": m.get("trials"), "best_config": cfg, "run_dir": str(run),
          "figure": f"flowers val accuracy after `hyperfcn tune --budget {a.budget}`: "
                    f"{m['val_accuracy']:.3f}"}, a.out)


if __name__ == "__main__":
    main()
