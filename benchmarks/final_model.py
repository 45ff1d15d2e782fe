"""Is `--budget T` the time until the model is saved, and is the saved model the best the
search found? `hyperfcn tune --budget T` on each development dataset, two runs at once,
each pinned to its own core (one trial at a time, 1 CPU).

    python benchmarks/final_model.py [--budget 10m] [--datasets flowers,clothing,...]

For each run: seconds from the command's start to `model.keras` written and to its exit,
against T; where the final model came from; and its val accuracy / val loss as scored from
the saved file against the best trial's best epoch (the search metric is val_loss).
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
from common import ROOT, SIZES, data_args, emit  # noqa: E402


def dataset_args(name: str, work: Path) -> list[str]:
    return [*data_args(name, work), "--image-size", str(SIZES.get(name, 64))]


def parse_seconds(text: str) -> float:
    sys.path.insert(0, str(ROOT / "src"))
    from hyperfcn.cli import parse_duration

    return float(parse_duration(text))


def one(job: tuple[str, int], core: str, budget: str, work: Path) -> dict:
    name, seed = job
    run = work / f"{name}_{seed}"
    f = pinned.run(pinned.Command(
        ["tune", *dataset_args(name, work), "--out", str(run), "--budget", budget,
         "--concurrency", "1", "--cpus-per-trial", "1", "--seed", str(seed), "--json"],
        run), core)
    if f.error:
        return {"dataset": name, "seed": seed, "error": f.stderr[-2000:]}
    m = f.json("metrics.json")
    final, best = m["final"], m["final"]["best_trial"]
    return {"dataset": name, "seed": seed, "budget_s": parse_seconds(budget),
            "seconds_to_model": f.saved_s(), "seconds_to_exit": f.exit_s,
            "source": final["source"], "reason": final["reason"],
            "trials": len(f.json("trials.json")),
            "saved_val_accuracy": m["val_accuracy"], "saved_val_loss": m["val_loss"],
            "best_trial_val_accuracy": best["val_accuracy"],
            "best_trial_val_loss": best["val_loss"], "best_trial_epoch": best["epoch"],
            "warning": final["warning"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--budget", default="10m")
    ap.add_argument("--datasets", default="flowers,clothing,cifar10-small,digits")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--out")
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="hyperfcn-final-"))
    jobs = [(d, int(s)) for s in a.seeds.split(",") for d in a.datasets.split(",")]
    rows = []
    for row in pinned.pooled(jobs, lambda job, core: one(job, core, a.budget, work)):
        rows.append(row)
        print(json.dumps(row), flush=True)
    ok = [r for r in rows if "error" not in r]
    over = max((r["seconds_to_model"] - r["budget_s"] for r in ok), default=float("nan"))
    worse = max((r["saved_val_loss"] - r["best_trial_val_loss"] for r in ok),
                default=float("nan"))
    acc = min((r["saved_val_accuracy"] - r["best_trial_val_accuracy"] for r in ok),
              default=float("nan"))
    emit({"benchmark": "final_model", "budget": a.budget, "rows": rows,
          "figure": f"{len(ok)}/{len(rows)} runs; model saved at most {over:+.1f} s from "
                    f"the {a.budget} budget; saved model - best trial's best epoch: val_loss "
                    f"at most {worse:+.4f}, val accuracy at least {acc:+.4f}"}, a.out)


if __name__ == "__main__":
    main()
