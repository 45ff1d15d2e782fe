"""BOHB beside the default searcher, live: `hyperfcn tune DATA --samples N` with TPE+ASHA and
with `--searcher bohb` (its own HyperBand), side by side, one core each, no budget (a budget
on one core is too short to search at all; see docs/budgets.md).

    python benchmarks/bohb_live.py [--dataset cifar10-small] [--samples 10] [--max-epochs 4]
                                   [--seed 0] [--work DIR]

Figure: each arm's saved model's val accuracy, trials and wall time.
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import pinned  # noqa: E402
from common import data_args, emit  # noqa: E402

ARMS = {"default": [], "bohb": ["--searcher", "bohb"]}


def run(arm: str, core: str, a: argparse.Namespace, work: Path) -> dict:
    out = work / f"{a.dataset}_{arm}_{a.seed}"
    f = pinned.run(pinned.Command(
        ["tune", *data_args(a.dataset, work), "--samples", str(a.samples), "--max-epochs",
         str(a.max_epochs), "--seed", str(a.seed), "--cpus-per-trial", "1",
         "--concurrency", "1", "--out", str(out), "--quiet", *ARMS[arm]], out), core)
    row = {"arm": arm, "seconds": f.exit_s}
    if f.error:
        return {**row, "error": f.stderr[-2000:]}
    m, trials = f.json("metrics.json"), f.json("trials.json")
    return {**row, "val_accuracy": m["val_accuracy"], "val_loss": m["val_loss"],
            "trials": dict(collections.Counter(t["status"] for t in trials)),
            "trial_epochs": sum(t["epochs"] for t in trials),
            "best_trial_val_accuracy": max((t["best_val_accuracy"] or 0) for t in trials)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", default="cifar10-small")
    ap.add_argument("--samples", type=int, default=10)
    ap.add_argument("--max-epochs", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work")
    ap.add_argument("--out", default=str(HERE / "results" / "bohb_live_cpu.json"))
    a = ap.parse_args()
    work = Path(a.work or tempfile.mkdtemp(prefix="bohb_live_"))
    rows = list(pinned.pooled(ARMS, lambda arm, core: run(arm, core, a, work)))
    text = "; ".join(f"{r['arm']} {r.get('val_accuracy', float('nan')):.3f} "
                     f"({sum(r.get('trials', {}).values())} trials, {r['seconds']:.0f} s)"
                     for r in rows)
    emit({"benchmark": "bohb_live", "dataset": a.dataset, "samples": a.samples,
          "max_epochs": a.max_epochs, "seed": a.seed, "rows": rows,
          "figure": f"{a.dataset}, --samples {a.samples}, one core each: {text}"}, a.out)


if __name__ == "__main__":
    main()
