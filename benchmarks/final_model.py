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
import concurrent.futures as cf
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import ROOT, SIZES, data_args, emit  # noqa: E402


def dataset_args(name: str, work: Path) -> list[str]:
    return [*data_args(name, work), "--image-size", str(SIZES.get(name, 64))]


def parse_seconds(text: str) -> float:
    sys.path.insert(0, str(ROOT / "src"))
    from hyperfcn.cli import parse_duration

    return float(parse_duration(text))


def one(name: str, seed: int, budget: str, core: int, work: Path) -> dict:
    run = work / f"{name}_{seed}"
    shutil.rmtree(run, ignore_errors=True)
    cmd = ["taskset", "-c", str(core), sys.executable, "-m", "hyperfcn.cli", "tune",
           *dataset_args(name, work), "--out", str(run), "--budget", budget,
           "--concurrency", "1", "--cpus-per-trial", "1", "--seed", str(seed), "--json"]
    t0 = time.time()
    r = subprocess.run(cmd, capture_output=True, text=True)
    t_exit = time.time() - t0
    if r.returncode:
        return {"dataset": name, "seed": seed, "error": r.stderr[-2000:]}
    m = json.loads((run / "metrics.json").read_text())
    final, best = m["final"], m["final"]["best_trial"]
    trials = json.loads((run / "trials.json").read_text())
    return {"dataset": name, "seed": seed, "budget_s": parse_seconds(budget),
            "seconds_to_model": round((run / "model.keras").stat().st_mtime - t0, 1),
            "seconds_to_exit": round(t_exit, 1), "source": final["source"],
            "reason": final["reason"], "trials": len(trials),
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
    cores = os.cpu_count() or 2
    rows = []
    with cf.ThreadPoolExecutor(max_workers=min(2, cores)) as pool:
        free = list(range(min(2, cores)))
        futures = {}
        for d, s in jobs:  # two at a time, each on its own core
            if len(futures) == len(free):
                done = next(cf.as_completed(futures))
                rows.append(done.result())
                print(json.dumps(rows[-1]), flush=True)
                core = futures.pop(done)
            else:
                core = free[len(futures)]
            futures[pool.submit(one, d, s, a.budget, core, work)] = core
        for f in cf.as_completed(futures):
            rows.append(f.result())
            print(json.dumps(rows[-1]), flush=True)
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
