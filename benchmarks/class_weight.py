"""Class weights on unbalanced data: `tune DATA --budget B` as users run it, without and with
`--class-weight balanced`, one core each, side by side, per seed.

    python benchmarks/class_weight.py [--dataset clothing] [--budget 5m] [--seeds 0,1]
        [--out FILE]

Each side gets its own cold decoded cache. Figure: the medians over the seeds of the saved
model's val accuracy and balanced accuracy (the mean of each class's recall) on each side:
what decides whether `balanced` becomes the default.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import data_args, emit  # noqa: E402
from pinned import Command, Finished, side_by_side  # noqa: E402

SIDES = ("none", "balanced")


def command(side: str, seed: int, a: argparse.Namespace) -> Command:
    return Command(["tune", *data_args(a.dataset, a.work), "--budget", a.budget, "--seed",
                    str(seed), "--cpus-per-trial", "1", "--class-weight", side, "--quiet",
                    "--out", str(a.work / f"{side}-{seed}")], a.work / f"{side}-{seed}")


def result(f: Finished) -> dict:
    if f.error:
        return {"error": f.error}
    m = f.json("metrics.json")
    rep = m["validation"]
    recalls = {c: round(v["recall"], 3) for c, v in rep["per_class"].items()}
    return {"val_accuracy": m["val_accuracy"], "balanced_accuracy": rep["balanced_accuracy"],
            "recall": recalls, "epochs": len(m.get("history") or []) or
            (m["final"].get("best_trial") or {}).get("epochs")}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", default="clothing")
    ap.add_argument("--budget", default="5m")
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--out")
    a = ap.parse_args()
    a.work = Path(tempfile.mkdtemp(prefix="hyperfcn-classweight-"))
    runs: dict[str, list[dict]] = {s: [] for s in SIDES}
    for seed in map(int, a.seeds.split(",")):
        done = side_by_side([command(side, seed, a) for side in SIDES])
        for side, f in zip(SIDES, done, strict=True):
            runs[side].append({"seed": seed, **result(f)})
    shutil.rmtree(a.work, ignore_errors=True)

    def med(side: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[side] if key in r)

    figure = "; ".join(
        f"{side}: val accuracy {med(side, 'val_accuracy'):.3f}, balanced accuracy "
        f"{med(side, 'balanced_accuracy'):.3f}" for side in SIDES)
    emit({"benchmark": "class_weight", "dataset": a.dataset, "budget": a.budget,
          "command": " ".join(["python", "benchmarks/class_weight.py", *sys.argv[1:]]),
          "runs": runs,
          "figure": f"class weights on {a.dataset}, tune --budget {a.budget}, medians of "
                    f"{len(runs['none'])} seeds: {figure}"}, a.out)


if __name__ == "__main__":
    main()
