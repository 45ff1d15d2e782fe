"""Replay the random runs of a search-quality benchmark through ASHA rules, offline.

    python benchmarks/asha_replay.py RESULTS.json | RUN_DIR ... [--budget 15m] [--slots 2]

Takes a `search_quality.py` result (which keeps every trial's curve) or the run directories
it left (`random_fifo_<seed>`). Each random run's trials start in the order they did, two at
a time, each epoch taking as long as it took; every result goes through the real scheduler
(`scheduler.make_scheduler`), once as plain ASHA (a rung judges from its first result on) and
once as the default (a rung judges once it holds as many results as the reduction factor).
Reported per seed: the best val accuracy the budget reaches under each rule, how many of the
recorded trials it got through, and how much of the budget it frees for new trials (which
a searcher would spend on configurations the run never tried: the replay cannot score
those). Random search without early stopping is the recorded run itself.
"""

from __future__ import annotations

import argparse
import heapq
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))


def curves_of_dir(run: Path) -> list[dict]:
    out = []
    for p in (run / "tune").glob("trial_*/result.json"):
        rs = [json.loads(ln) for ln in p.read_text().splitlines() if ln.strip()]
        if rs:
            out.append({"start": rs[0]["timestamp"] - rs[0]["time_total_s"],
                        **{k: [x[k] for x in rs]
                           for k in ("val_loss", "val_accuracy", "time_this_iter_s")}})
    return sorted(out, key=lambda c: c["start"])


def runs_from(paths: list[str]) -> dict[int, list[dict]]:
    runs = {}
    for p in map(Path, paths):
        if p.is_dir():
            runs[int(p.name.rsplit("_", 1)[1])] = curves_of_dir(p)
            continue
        for row in json.loads(p.read_text())["rows"]:
            if row["strategy"] == "random_fifo":
                if "curves" not in row:
                    raise SystemExit(f"{p}: no curves (made before search_quality.py kept "
                                     "them); pass the run directories instead")
                runs[row["seed"]] = sorted(row["curves"].values(), key=lambda c: c["start"])
    return runs


class _Trial:
    def __init__(self, tid: str) -> None:
        self.trial_id, self.config = tid, {}

    def __hash__(self) -> int:
        return hash(self.trial_id)


def replay(trials: list[dict], min_records: int, budget_s: float, slots: int,
           max_t: int) -> dict:
    from ray.tune.schedulers import TrialScheduler

    from hyperfcn.tuning.scheduler import RungScheduler, plan_scheduler

    plan = plan_scheduler("asha", max_t)
    sched = RungScheduler("val_loss", "min", max_t=max_t, grace_period=plan.grace_period,
                          reduction_factor=plan.reduction_factor, min_records=min_records)
    events: list[tuple[float, int, int]] = []
    state = {"next": 0, "busy": 0.0, "best": 0.0, "idle_from": None}

    def start(now: float) -> None:
        i = state["next"]
        if i >= len(trials):
            state["idle_from"] = state["idle_from"] or now  # out of recorded trials
            return
        state["next"] += 1
        sched.on_trial_add(None, _Trial(str(i)))
        heapq.heappush(events, (now + trials[i]["time_this_iter_s"][0], i, 1))

    for _ in range(slots):
        start(0.0)
    freed = 0.0
    while events:
        now, i, epoch = heapq.heappop(events)
        if now > budget_s:
            break
        c = trials[i]
        state["best"] = max(state["best"], c["val_accuracy"][epoch - 1])
        action = sched.on_trial_result(None, _Trial(str(i)), {
            "epoch": epoch, "val_loss": c["val_loss"][epoch - 1], "training_iteration": epoch})
        recorded = len(c["val_loss"])
        if action == TrialScheduler.STOP or epoch >= recorded:
            if action == TrialScheduler.STOP and epoch < recorded:
                freed += sum(c["time_this_iter_s"][epoch:])
            start(now)
        else:
            heapq.heappush(events, (now + c["time_this_iter_s"][epoch], i, epoch + 1))
    return {"best_val_accuracy": round(state["best"], 4), "trials": state["next"],
            "of": len(trials), "freed_s": round(freed)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("sources", nargs="+")
    ap.add_argument("--budget", default="15m")
    ap.add_argument("--slots", type=int, default=2)
    ap.add_argument("--max-epochs", type=int, default=12)
    a = ap.parse_args()
    from hyperfcn.cli import parse_duration

    budget = parse_duration(a.budget)
    runs = runs_from(a.sources)
    rows = []
    for seed, trials in sorted(runs.items()):
        recorded = [c for c in trials if c["start"] - trials[0]["start"] < budget]
        row = {"seed": seed, "random_fifo": round(max(max(c["val_accuracy"])
                                                     for c in recorded), 4)}
        for name, k in (("plain_asha", 1), ("asha_min_records", 3)):
            row[name] = replay(trials, k, budget, a.slots, a.max_epochs)
        rows.append(row)
        print(json.dumps(row), flush=True)
    kept = {name: sum(r[name]["best_val_accuracy"] >= r["random_fifo"] for r in rows)
            for name in ("plain_asha", "asha_min_records")}
    print(f"seeds where replayed ASHA keeps random search's best ({len(rows)} seeds): "
          f"plain {kept['plain_asha']}, waiting for 3 results {kept['asha_min_records']}")


if __name__ == "__main__":
    main()
