"""Search quality at equal wall clock: default TPE+ASHA vs random search without early stopping.

    python benchmarks/search_quality.py [--budget 15m] [--seeds 0,1,2] [--size 64]
                                        [--recipe none|tpe|both]

Each (strategy, seed) runs `hyperfcn tune --budget B --no-final` on the flowers photos in the
default space. --recipe says which arm keeps the space's `defaults` (the hand-written first
recipe, run before any draw):
  none  neither: the search alone (the default). On 2 cores the recipe holds one of the two
        slots for the whole budget, so with it both arms would mostly measure the recipe.
  tpe   the product's default against plain random search: `hyperfcn tune` as a user runs
        it (TPE+ASHA from the recipe) vs random search that knows no recipe.
  both  both arms run it first.
Reported per strategy: median best val accuracy over seeds, and the median time (from the
search's start) at which a trial first reached 70% val accuracy. Takes 2 x seeds x budget.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))
from common import FLOWERS, emit, median  # noqa: E402

STRATEGIES = {"tpe_asha": ["--searcher", "hyperopt", "--scheduler", "asha"],
              "random_fifo": ["--searcher", "random", "--scheduler", "fifo"]}


def unseeded_space(work: Path) -> Path:
    """The default space without its first recipe."""
    import yaml

    from hyperfcn.space import default_space_text

    data = yaml.safe_load(default_space_text())
    data.pop("defaults", None)
    path = work / "space_unseeded.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def one(strategy: str, seed: int, budget: str, size: int, epochs: int, work: Path,
        space: Path | None) -> dict:
    """One run; space None is the default space, recipe included."""
    run = work / f"{strategy}_{seed}"
    shutil.rmtree(run, ignore_errors=True)
    cmd = [sys.executable, "-m", "hyperfcn.cli", "tune", str(FLOWERS / "train"), "--val-dir",
           str(FLOWERS / "val"), "--out", str(run), "--image-size", str(size), "--budget",
           budget, "--max-epochs", str(epochs), "--seed", str(seed), "--no-final", "--quiet",
           *(["--space", str(space)] if space else []), *STRATEGIES[strategy]]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(r.stderr[-4000:])
    results, curves = [], {}
    for p in sorted((run / "tune").glob("trial_*/result.json")):
        rs = [json.loads(ln) for ln in p.read_text().splitlines() if ln.strip()]
        results += rs
        if rs:  # each trial's curve, for replaying scheduler rules (asha_replay.py)
            curves[rs[0]["trial_id"]] = {
                "start": rs[0]["timestamp"] - rs[0]["time_total_s"],
                **{k: [round(x[k], 4) for x in rs]
                   for k in ("val_loss", "val_accuracy", "time_this_iter_s")}}
    start = min(x["timestamp"] - x["time_total_s"] for x in results)
    best = max(x["val_accuracy"] for x in results)
    hits = [x["timestamp"] - start for x in results if x["val_accuracy"] >= 0.70]
    trials = json.loads((run / "trials.json").read_text())
    statuses = dict(Counter(t["status"] for t in trials))
    best_trial = max((t["best_val_accuracy"] or 0, t["trial_id"], t["epochs"]) for t in trials)
    return {"strategy": strategy, "seed": seed, "best_val_accuracy": round(best, 4),
            "seconds_to_70": round(min(hits), 1) if hits else None,
            "trials": len(list((run / "tune").glob("trial_*"))), "statuses": statuses,
            "best_trial": {"id": best_trial[1], "epochs": best_trial[2]},
            "curves": {k: {**c, "start": round(c["start"] - start, 1)}
                       for k, c in curves.items()}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--budget", default="15m")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--max-epochs", type=int, default=12)
    ap.add_argument("--recipe", choices=("none", "tpe", "both"), default="none",
                    help="which arm keeps the space's first recipe (see the module doc)")
    ap.add_argument("--out")
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="hyperfcn-quality-"))
    unseeded = unseeded_space(work)
    keeps = {"none": (), "tpe": ("tpe_asha",), "both": tuple(STRATEGIES)}[a.recipe]
    rows = []
    for seed in map(int, a.seeds.split(",")):
        for strategy in STRATEGIES:  # interleaved, so machine drift hits both
            space = None if strategy in keeps else unseeded
            rows.append(one(strategy, seed, a.budget, a.size, a.max_epochs, work, space))
            print(json.dumps({k: v for k, v in rows[-1].items() if k != "curves"}),
                  flush=True)
    summary = {}
    for strategy in STRATEGIES:
        rs = [r for r in rows if r["strategy"] == strategy]
        times = [r["seconds_to_70"] for r in rs if r["seconds_to_70"] is not None]
        summary[strategy] = {"median_best_val_accuracy": median([r["best_val_accuracy"]
                                                                 for r in rs]),
                             "median_seconds_to_70": median(times) if times else None,
                             "reached_70": f"{len(times)}/{len(rs)}"}
    t, r = summary["tpe_asha"], summary["random_fifo"]
    emit({"benchmark": "search_quality", "budget": a.budget, "size": a.size,
          "recipe": a.recipe, "rows": rows,
          "summary": summary,
          "figure": f"median best val accuracy, {a.budget} each: TPE+ASHA "
                    f"{t['median_best_val_accuracy']:.3f} vs random+FIFO "
                    f"{r['median_best_val_accuracy']:.3f}; time to 70%: "
                    f"{t['median_seconds_to_70']} s vs {r['median_seconds_to_70']} s"}, a.out)


if __name__ == "__main__":
    main()
