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
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import data_args, emit  # noqa: E402

SIDES = ("none", "balanced")


def start(side: str, core: int, seed: int, run: Path, a: argparse.Namespace):
    shutil.rmtree(run, ignore_errors=True)
    cmd = ["taskset", "-c", str(core), sys.executable, "-m", "hyperfcn.cli", "tune",
           *data_args(a.dataset, a.work), "--budget", a.budget, "--seed", str(seed),
           "--out", str(run), "--cpus-per-trial", "1", "--class-weight", side, "--quiet"]
    env = {**os.environ, "HYPERFCN_CACHE_DIR": f"{run}-cache"}
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def result(proc, run: Path) -> dict:
    _, err = proc.communicate()
    shutil.rmtree(f"{run}-cache", ignore_errors=True)
    if proc.returncode:
        return {"error": err.strip().splitlines()[-1:]}
    m = json.loads((run / "metrics.json").read_text())
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
        procs = [(side, start(side, core, seed, a.work / f"{side}-{seed}", a), seed)
                 for core, side in enumerate(SIDES)]
        for side, proc, seed in procs:
            runs[side].append({"seed": seed, **result(proc, a.work / f"{side}-{seed}")})
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
