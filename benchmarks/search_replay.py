"""Replay searches against recorded learning curves, in simulated time, over many seeds.

    python benchmarks/search_replay.py benchmarks/results/curves_cifar10_small_32px.json
                                       [--budget 15m] [--slots 2] [--seeds 30] [--out F]

The table (`record_curves.py`) holds full curves of configurations of the default space.
Each arm runs the real searcher and scheduler (`hyperfcn.tuning.searchers`,
`hyperfcn.tuning.scheduler`) with `slots` trials at once: a suggested configuration is
replaced by the nearest recorded one not yet used (parameters scaled to [0, 1], log scale
for rates; a differing choice counts 1), and its epochs then take the seconds they took
when recorded. The search stops where `hyperfcn tune --budget` would (the budget less the
final step's reserve); the model is the best trial's best epoch by val loss, as the final
step picks it, and its val accuracy is the arm's score. Reported per arm: median score
over seeds, and the median simulated seconds until a trial first reached the recipe's own
accuracy.

What the replay cannot do: score configurations nobody recorded (a searcher's suggestion is
only as good as its nearest neighbour in the table), or train anything longer than the
recorded epochs. Its rankings are checked against live runs (`search_arms.py`).
"""

from __future__ import annotations

import argparse
import heapq
import json
import math
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))
from common import emit  # noqa: E402

FINAL_RESERVE_S = 30.0  # + 4 ms per validation image: what tune keeps back for the final


class _Trial:
    def __init__(self, tid: str, config: dict) -> None:
        self.trial_id, self.config = tid, config

    def __hash__(self) -> int:
        return hash(self.trial_id)


class Table:
    """The recorded curves and a nearest-neighbour lookup over their configurations."""

    def __init__(self, rows: list[dict]) -> None:
        self.rows = rows
        keys = sorted({k for r in rows for k in r["config"]})
        self.scale: dict[str, tuple[float, float, bool]] = {}
        for k in keys:
            vals = [r["config"][k] for r in rows if k in r["config"]]
            if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals):
                lo, hi = min(vals), max(vals)
                log = lo > 0 and hi / lo > 10
                self.scale[k] = (math.log(lo) if log else lo, math.log(hi) if log else hi, log)

    def _num(self, k: str, v: float) -> float:
        lo, hi, log = self.scale[k]
        x = math.log(v) if log and v > 0 else v
        return 0.0 if hi == lo else (x - lo) / (hi - lo)

    def distance(self, a: dict, b: dict) -> float:
        d = 0.0
        for k in set(a) | set(b):
            if k not in a or k not in b:
                d += 1.0
            elif k in self.scale and not isinstance(a[k], (str, bool)):
                d += (self._num(k, a[k]) - self._num(k, b[k])) ** 2
            else:
                d += float(a[k] != b[k])
        return d

    def nearest(self, config: dict, used: set[int]) -> int | None:
        free = [i for i in range(len(self.rows)) if i not in used]
        return min(free, key=lambda i: self.distance(config, self.rows[i]["config"]),
                   default=None)


def search_deadline(budget_s: float, val_images: int) -> float:
    return budget_s - FINAL_RESERVE_S - 0.004 * val_images


def simulate(table: Table, searcher: Any, scheduler: Any, slots: int, deadline: float,
             on_config: Callable[[dict], dict] = lambda c: c) -> list[dict]:
    """One search in simulated time; every reported epoch, with its time and trial."""
    from ray.tune.schedulers import TrialScheduler

    used: set[int] = set()
    events: list[tuple[float, int, str, int]] = []  # (time, seq, trial id, epoch)
    live: dict[str, tuple[int, _Trial]] = {}
    log: list[dict] = []
    seq = 0

    def start(now: float) -> bool:
        nonlocal seq
        tid = f"t{seq}"
        config = searcher.suggest(tid)
        row = None if config is None else table.nearest(on_config(config), used)
        if row is None:
            return False
        used.add(row)
        trial = _Trial(tid, table.rows[row]["config"])
        live[tid] = (row, trial)
        scheduler.on_trial_add(None, trial)
        seq += 1
        heapq.heappush(events, (now + table.rows[row]["time_this_iter_s"][0], seq, tid, 1))
        return True

    for _ in range(slots):
        if not start(0.0):
            break
    while events:
        now, _, tid, epoch = heapq.heappop(events)
        if now > deadline:
            break
        row, trial = live[tid]
        r = table.rows[row]
        result = {"epoch": epoch, "training_iteration": epoch,
                  "val_loss": r["val_loss"][epoch - 1],
                  "val_accuracy": r["val_accuracy"][epoch - 1]}
        log.append({"t": now, "trial": tid, "row": row, **result})
        last = epoch == len(r["val_loss"])
        if not last and scheduler.on_trial_result(None, trial, result) == \
                TrialScheduler.CONTINUE:
            seq += 1
            heapq.heappush(events, (now + r["time_this_iter_s"][epoch], seq, tid, epoch + 1))
            continue
        scheduler.on_trial_complete(None, trial, result)
        searcher.on_trial_complete(tid, result)
        del live[tid]
        start(now)
    return log


def final_accuracy(log: list[dict]) -> float:
    """The val accuracy of the best epoch (by val loss) of all reported: the final model."""
    if not log:
        return float("nan")
    return min(log, key=lambda x: x["val_loss"])["val_accuracy"]


def seconds_to(log: list[dict], accuracy: float) -> float | None:
    return next((x["t"] for x in sorted(log, key=lambda x: x["t"])
                 if x["val_accuracy"] >= accuracy), None)


# ---------------------------------------------------------------- the arms

def _space(size: int, recipe: bool) -> Any:
    """The default space at one image size, as `tune --image-size` makes it."""
    import yaml

    from hyperfcn.space import default_space_text, parse_space

    raw = yaml.safe_load(default_space_text())
    raw["parameters"]["image_size"] = size
    if recipe:
        raw["defaults"] = {**raw["defaults"], "image_size": size}
    else:
        raw.pop("defaults", None)
    return parse_space(raw, "default_space.yaml")


def arm(name: str, searcher: str, scheduler: str, recipe: bool) -> Callable[..., tuple]:
    """A (searcher, scheduler) pair as `hyperfcn tune` builds them for one seed."""
    def make(seed: int, size: int, slots: int, max_epochs: int) -> tuple:
        from hyperfcn.tuning.scheduler import make_scheduler, plan_scheduler
        from hyperfcn.tuning.searchers import make_searcher, random_starts

        space = _space(size, recipe)
        points = [dict(p) for p in space.points] or None
        s = make_searcher(searcher, space, "val_loss", "min", seed, points,
                          len(points or ()) + random_starts(slots))
        plan = plan_scheduler(scheduler, max_epochs)
        return s, make_scheduler(plan, "val_loss", "min", seeded=points)
    make.__name__ = name
    return make


ARMS = {
    "default": arm("default", "hyperopt", "asha", recipe=True),
    "tpe_asha_no_recipe": arm("tpe_asha_no_recipe", "hyperopt", "asha", recipe=False),
    "random_fifo": arm("random_fifo", "random", "fifo", recipe=False),
    "random_asha": arm("random_asha", "random", "asha", recipe=False),
}


def recipe_rows(table: Table, size: int) -> list[int]:
    recipe = dict(_space(size, True).points[0])
    return [i for i, r in enumerate(table.rows) if table.distance(recipe, r["config"]) == 0]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("table")
    ap.add_argument("--budget", default="15m")
    ap.add_argument("--slots", type=int, default=2)
    ap.add_argument("--seeds", type=int, default=30)
    ap.add_argument("--val-images", type=int, default=1000)
    ap.add_argument("--arms", default=",".join(ARMS))
    ap.add_argument("--search-share", type=float, default=1.0,
                    help="the share of the search's time the arms search for (the rest "
                    "trains the best config longer, which the replay cannot score)")
    ap.add_argument("--out")
    a = ap.parse_args()
    from hyperfcn.cli import parse_duration

    data = json.loads(Path(a.table).read_text())
    table, size, max_epochs = Table(data["trials"]), data["size"], data["max_epochs"]
    budget = float(parse_duration(a.budget))
    deadline = search_deadline(budget, a.val_images) * a.search_share
    recipes = recipe_rows(table, size)
    if not recipes:
        raise SystemExit(f"{a.table}: the recipe's curve is not in the table")
    recipe_acc = statistics.median(final_accuracy(
        [{"val_loss": ls, "val_accuracy": ac} for ls, ac in
         zip(table.rows[i]["val_loss"], table.rows[i]["val_accuracy"], strict=True)])
        for i in recipes)
    summary: dict[str, dict] = {"recipe_alone": {"median_accuracy": recipe_acc, "note": (
        f"the recipe's {max_epochs}-epoch curve{'s' if len(recipes) > 1 else ''} "
        f"(median of {len(recipes)}): the replay cannot train it longer")}}
    rows = []
    for name in a.arms.split(","):
        accs, hits, trials = [], [], []
        for seed in range(a.seeds):
            searcher, scheduler = ARMS[name](seed, size, a.slots, max_epochs)
            log = simulate(table, searcher, scheduler, a.slots, deadline)
            accs.append(final_accuracy(log))
            hits.append(seconds_to(log, recipe_acc))
            trials.append(len({x["trial"] for x in log}))
            rows.append({"arm": name, "seed": seed, "accuracy": accs[-1],
                         "seconds_to_recipe": hits[-1], "trials": trials[-1]})
        reached = sorted(h for h in hits if h is not None)
        summary[name] = {
            "median_accuracy": round(statistics.median(accs), 4),
            "reached_recipe": f"{len(reached)}/{len(hits)}",
            "median_seconds_to_recipe": (round(statistics.median(reached), 1)
                                         if reached else None),
            "median_trials": statistics.median(trials)}
        print(name, json.dumps(summary[name]), flush=True)
    text = "; ".join(f"{k} {v['median_accuracy']:.3f}" for k, v in summary.items())
    emit({"benchmark": "search_replay", "table": a.table, "budget": a.budget,
          "search_share": a.search_share,
          "slots": a.slots, "seeds": a.seeds, "table_rows": len(table.rows),
          "summary": summary, "rows": rows,
          "figure": f"replayed {a.budget} on {a.slots} slots, median final val accuracy over "
                    f"{a.seeds} seeds: {text}"}, a.out)


if __name__ == "__main__":
    main()
