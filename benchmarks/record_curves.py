"""Record full learning curves of many configurations, for replaying searches offline.

    python benchmarks/record_curves.py [--dataset cifar10-small] [--size 32] [--budget 50m]
                                       [--seeds 100,101] [--max-epochs 10] [--out TABLE.json]

Each seed runs `hyperfcn tune --searcher random --scheduler fifo --no-final` on one core of
its own (two seeds at once on two cores), so every configuration trains all its epochs and
the default space's recipe (`defaults`) is the first one the first seed tries. The table
keeps, per trial, its configuration and per-epoch val loss, val accuracy and seconds, plus
its setup seconds: what `search_replay.py` replays with simulated time.
`--from RUN_DIR ...` rebuilds the table from run directories left by an earlier recording.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import pinned  # noqa: E402
from common import DATASETS, emit  # noqa: E402

_KEYS = ("val_loss", "val_accuracy", "time_this_iter_s")


def record(dataset: str, seed: int, budget: str, size: int, epochs: int, core: str,
           work: Path) -> Path:
    run = work / f"{dataset}_{seed}"
    f = pinned.run(pinned.Command(
        ["tune", str(DATASETS / dataset / "train"), "--val-dir", str(DATASETS / dataset / "val"),
         "--out", str(run), "--image-size", str(size), "--budget", budget,
         "--max-epochs", str(epochs), "--searcher", "random", "--scheduler", "fifo",
         "--concurrency", "1", "--cpus-per-trial", "1", "--seed", str(seed),
         "--no-final", "--quiet"], run), core)
    if f.error:
        print(f"{run}: exit {f.returncode}\n{f.stderr[-3000:]}", file=sys.stderr)
    return run


def curves_of(run: Path, epochs: int) -> list[dict]:
    """Every trial of one run that trained all its epochs, in the order they started."""
    rows = []
    for trial in (run / "tune").glob("trial_*"):
        res, par = trial / "result.json", trial / "params.json"
        if not (res.exists() and par.exists()):
            continue
        rs = [json.loads(ln) for ln in res.read_text().splitlines() if ln.strip()]
        if len(rs) < epochs:
            continue  # cut by the budget: not a full curve
        config = {k: v for k, v in json.loads(par.read_text()).items()
                  if not k.startswith("_")}
        rows.append({"run": run.name, "start": rs[0]["timestamp"] - rs[0]["time_total_s"],
                     "setup_s": round(rs[0].get("setup_seconds", 0.0), 2),
                     "config": config,
                     **{k: [round(x[k], 4) for x in rs[:epochs]] for k in _KEYS}})
    return sorted(rows, key=lambda r: r["start"])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", default="cifar10-small")
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--budget", default="50m")
    ap.add_argument("--seeds", default="100,101")
    ap.add_argument("--max-epochs", type=int, default=10)
    ap.add_argument("--from", dest="runs", nargs="*", help="existing run directories")
    ap.add_argument("--work", help="where the runs go (default: a temporary folder)")
    ap.add_argument("--out")
    a = ap.parse_args()
    if a.runs:
        runs = [Path(p) for p in a.runs]
    else:
        work = Path(a.work or tempfile.mkdtemp(prefix="hyperfcn-curves-"))
        work.mkdir(parents=True, exist_ok=True)
        seeds = [int(s) for s in a.seeds.split(",")]
        runs = list(pinned.pooled(seeds, lambda seed, core: record(
            a.dataset, seed, a.budget, a.size, a.max_epochs, core, work)))
    table = [row for run in runs for row in curves_of(run, a.max_epochs)]
    best = max((max(r["val_accuracy"]) for r in table), default=float("nan"))
    emit({"benchmark": "record_curves", "dataset": a.dataset, "size": a.size,
          "max_epochs": a.max_epochs, "trials": table,
          "figure": f"{len(table)} full curves of {a.max_epochs} epochs on {a.dataset} at "
                    f"{a.size} px; best val accuracy {best:.3f}"}, a.out)


if __name__ == "__main__":
    main()
