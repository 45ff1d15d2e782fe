"""`train --budget` where the budget holds under two epochs: this checkout against an
earlier one, the same configuration and seed, one core each, side by side.

    python benchmarks/train_deadline.py --baseline-src OLD/src [--dataset cifar10-small]
        [--config benchmarks/baseline_recipe.json] [--budget 5m] [--seed 1] [--out FILE]

Each side runs `hyperfcn train DATA --config CONFIG --budget B --cpus-per-trial 1` with its
own cold decoded cache. Figure, per side: when model.keras was saved against the budget,
the epochs run and the learning rate each ended at, and the val accuracy.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))
from common import data_args, emit  # noqa: E402
from pinned import Command, Finished, side_by_side  # noqa: E402

from hyperfcn.cli import parse_duration  # noqa: E402


def command(src: Path, run: Path, a: argparse.Namespace) -> Command:
    return Command(["train", *data_args(a.dataset, a.work), "--config", str(a.config),
                    "--budget", a.budget, "--seed", str(a.seed), "--out", str(run),
                    "--cpus-per-trial", "1", "--quiet"], run, src=src)


def result(f: Finished) -> dict:
    if f.error:
        return {"error": f.error}
    m = f.json("metrics.json")
    return {"saved_s": f.saved_s(), "val_accuracy": m["val_accuracy"],
            "epochs": [(h["epoch"], round(h["seconds"], 1), round(h["lr"], 5))
                       for h in m["history"]]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--baseline-src", type=Path, required=True)
    ap.add_argument("--dataset", default="cifar10-small")
    ap.add_argument("--config", type=Path, default=HERE / "baseline_recipe.json")
    ap.add_argument("--budget", default="5m")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--work", type=Path, default=Path("/tmp/hyperfcn-train-deadline"))
    ap.add_argument("--out")
    a = ap.parse_args()
    a.work.mkdir(parents=True, exist_ok=True)
    sides = {"new": HERE.parent / "src", "baseline": a.baseline_src.resolve()}
    done = side_by_side([command(src, a.work / f"run-{k}", a) for k, src in sides.items()])
    rows = {k: result(f) for k, f in zip(sides, done, strict=True)}
    budget_s = parse_duration(a.budget)

    def said(r: dict) -> str:
        if "error" in r:
            return f"failed ({' '.join(r['error'])[:160]})"
        return (f"saved at {r['saved_s']:.0f} s of {budget_s:.0f}, {len(r['epochs'])} epochs "
                f"ending at learning rate {r['epochs'][-1][2]:g}, val accuracy "
                f"{r['val_accuracy']:.3f}")
    figure = (f"train --budget {a.budget}, {a.dataset}, seed {a.seed}, one core each: new: "
              f"{said(rows['new'])}; baseline: {said(rows['baseline'])}")
    emit({"benchmark": "train_deadline", "dataset": a.dataset, "budget": a.budget,
          "seed": a.seed, "config": str(a.config), "rows": rows, "figure": figure}, a.out)


if __name__ == "__main__":
    main()
