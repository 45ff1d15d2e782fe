"""Does the search earn its place? Live runs of four arms at equal wall clock to a finished
model, equal cores and the same split, on the development datasets.

    python benchmarks/search_arms.py [--budget 15m] [--datasets cifar10-small,digits,...]
                                     [--seeds 0,1,2] [--arms default,recipe,random,kerastuner]
                                     [--as-user] [--paired]

Arms (each run pinned to one core, two runs at once; with `--cores 2`, one run at a time on
both cores, each hyperfcn command choosing its own trials per core as a user's would):
  default     `hyperfcn tune DATA --budget T` as a user runs it (TPE+ASHA from the recipe)
  recipe      the space's `defaults` alone: `hyperfcn train --config recipe --budget T`
              (as many epochs as fit, timed by its own first two)
  random      random search without early stopping, no recipe (`--searcher random
              --scheduler fifo` on the space without `defaults`), same final step
  kerastuner  KerasTuner Hyperband on the same kind of space (`kerastuner_arm.py`)
  bohb        (not run unless asked) `tune --searcher bohb`: BOHB with its HyperBand
  default-acc (not run unless asked) the default judging trials by val_accuracy
  default-cal (not run unless asked) the default judging trials by val_calibrated_loss
  default-seq (not run unless asked) the default with one trial at a time on all the run's
              cores (`--cpus-per-trial` = cores a run); on 2 cores the default itself
              now does so, so this arm is the older comparison
  default:K=V:K=V (not run unless asked) the default with these values changed in the
              space's recipe
  default+:K=V:K=V (not run unless asked) the default with a portfolio of two recipes as
              the space's `defaults`: the recipe, then the recipe with these values changed
  baseline    (not run unless asked) the frozen baseline recipe (benchmarks/baseline_recipe.json)
              trained as `recipe` is: the fixed "today's recipe" the recipe's targets
              compare with; with `--as-user`, at its own 64 px
  recipe:K=V:K=V  (not run unless asked) the recipe with these values changed, trained as
              `recipe` is: what one other fixed configuration reaches in the same time
  ...:env.NAME=V  in any arm: its command runs with the environment variable NAME set to V
              (e.g. recipe:env.HYPERFCN_PRECISION=bfloat16)
Reported per dataset and arm: median final val accuracy (the saved model, loaded back and
scored) and median seconds until a trial first reached the recipe arm's accuracy. Runs go
two at a time, each on its own core: every dataset's `default` and `random` first, then
`recipe` and `kerastuner`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))
import pinned  # noqa: E402
from common import SIZES, data_args, emit  # noqa: E402

START_S = 25.0  # command start to the first epoch's start, and the final save, roughly


def space_files(work: Path) -> tuple[Path, Path]:
    """(the default space without its recipe, the recipe as a config file)."""
    import yaml

    from hyperfcn.space import default_space_text

    raw = yaml.safe_load(default_space_text())
    recipe = work / "recipe.json"
    recipe.write_text(json.dumps(raw.pop("defaults")))
    bare = work / "space_no_recipe.yaml"
    bare.write_text(yaml.safe_dump(raw, sort_keys=False))
    return bare, recipe


def overridden(config: dict, arm: str) -> dict:
    """A config with an arm's `K=V` overrides (values parsed as YAML; `K=` removes K)."""
    import yaml

    out = dict(config)
    for kv in arm.split(":")[1:]:
        key, eq, value = kv.partition("=")
        if key.startswith("env."):  # see arm_env
            continue
        if not eq:
            raise SystemExit(f"arm {arm!r}: {kv!r} is not KEY=VALUE (KEY= removes KEY)")
        if value:
            out[key] = yaml.safe_load(value)
        else:  # a sub-parameter the changed choice no longer has (weight_decay without adamw)
            out.pop(key, None)
    return out


def arm_env(arm: str) -> dict[str, str]:
    """The environment of an arm's command: its `env.NAME=VALUE` parts set NAME."""
    out: dict[str, str] = {}
    for kv in arm.split(":")[1:]:
        key, _, value = kv.partition("=")
        if key.startswith("env."):
            out[key[4:]] = value
    return out


def slug(arm: str) -> str:
    """A file name for an arm; a long one is cut and told apart by a hash."""
    import hashlib

    s = arm.replace(":", "_").replace("=", "-")
    return s if len(s) <= 80 else f"{s[:60]}_{hashlib.sha1(arm.encode()).hexdigest()[:10]}"


def variant(recipe: Path, arm: str, work: Path) -> Path:
    """The recipe with an arm's overrides, as a config file."""
    out = work / f"{slug(arm)}.json"
    out.write_text(json.dumps(overridden(json.loads(recipe.read_text()), arm)))
    return out


def space_variant(arm: str, work: Path) -> Path:
    """The default space whose recipe has an arm's overrides, as a space file."""
    import yaml

    from hyperfcn.space import default_space_text

    raw = yaml.safe_load(default_space_text())
    other = overridden(raw["defaults"], arm)
    raw["defaults"] = [raw["defaults"], other] if arm.startswith("default+:") else other
    out = work / f"{slug(arm)}.yaml"
    out.write_text(yaml.safe_dump(raw, sort_keys=False))
    return out


def trial_epochs(run: Path, t0: float) -> list[tuple[float, float]]:
    """(seconds since the command started, val accuracy) of every epoch of every trial."""
    out = []
    for p in (run / "tune").glob("trial_*/result.json"):
        for ln in p.read_text().splitlines():
            if ln.strip():
                r = json.loads(ln)
                out.append((round(r["timestamp"] - t0, 1), r["val_accuracy"]))
    return sorted(out)


def recipe_epoch_s(run: Path) -> tuple[float, float]:
    """(first epoch, steady epoch) seconds of the recipe's trial: the default's first to
    start."""
    curves = []
    for p in (run / "tune").glob("trial_*/result.json"):
        rs = [json.loads(ln) for ln in p.read_text().splitlines() if ln.strip()]
        if rs:
            curves.append((rs[0]["timestamp"] - rs[0]["time_total_s"], rs))
    secs = [r["time_this_iter_s"] for r in min(curves, key=lambda c: c[0])[1]]
    return secs[0], statistics.median(secs[1:] or secs)


def one(arm: str, name: str, seed: int, budget_s: float, core: str, work: Path,
        as_user: bool = False) -> dict:
    run = work / (f"{name.replace('/', '-')}_{slug(arm)}_{seed}{'_2cores' if ',' in core else ''}"
                  f"{'_user' if as_user else ''}")
    done = run / "bench_row.json"
    if done.is_file():  # finished in an earlier, interrupted run of this benchmark
        return json.loads(done.read_text())
    shutil.rmtree(run, ignore_errors=True)
    row = _run(arm, name, seed, budget_s, core, work, run, as_user)
    if "error" not in row:
        done.write_text(json.dumps(row))
    return row


def _run(arm: str, name: str, seed: int, budget_s: float, core: str, work: Path,
         run: Path, as_user: bool = False) -> dict:
    # as a user runs it: no --image-size (tune searches the space's sizes, train takes the
    # recipe's)
    size = [] if as_user else ["--image-size", str(SIZES.get(name, 64))]
    bare, recipe = space_files(work)
    one_core = "," not in core  # else hyperfcn plans its own trials per core, as for a user
    base = [*data_args(name, work), *size, "--seed", str(seed), "--out",
            str(run), *(["--cpus-per-trial", "1"] if one_core else []), "--quiet"]
    if arm == "kerastuner":
        d = data_args(name, work)
        script = HERE / "kerastuner_arm.py"
        args = [d[0], *d[1:], "--size", str(SIZES.get(name, 64)), "--budget-s",
                str(budget_s), "--seed", str(seed), "--out", str(run)]
    elif arm in ("recipe", "baseline") or arm.startswith(("recipe:", "baseline:")):
        fixed = HERE / "baseline_recipe.json" if arm.startswith("baseline") else recipe
        config = variant(fixed, arm, work) if ":" in arm else fixed
        script, args = None, ["train", *base, "--config", str(config), "--budget",
                              f"{budget_s:.0f}s"]
    else:
        extra = {"random": ["--searcher", "random", "--scheduler", "fifo", "--space",
                            str(bare)],
                 "default-acc": ["--metric", "val_accuracy"],
                 "default-cal": ["--metric", "val_calibrated_loss"],
                 "default-seq": ["--cpus-per-trial", str(len(core.split(",")))],
                 "bohb": ["--searcher", "bohb"],
                 }.get(arm, [])
        if arm.startswith(("default:", "default+:")):
            extra = ["--space", str(space_variant(arm, work))]
        script, args = None, ["tune", *base, "--budget", f"{budget_s:.0f}s",
                              *(["--concurrency", "1"] if one_core else []), *extra]
    # each arm decodes its data cold, as a user's first run does
    f = pinned.run(pinned.Command(args, run, env=arm_env(arm), script=script), core)
    row = {"dataset": name, "arm": arm, "seed": seed, "exit_s": f.exit_s}
    if f.error:
        return {**row, "error": f.stderr[-3000:]}
    return parse(row, run, f.t0)


def parse(row: dict, run: Path, t0: float) -> dict:
    """A finished run's scores and its epochs' (seconds since t0, val accuracy)."""
    arm = row["arm"]
    if arm == "kerastuner":
        res = json.loads((run / "result.json").read_text())
        return {**row, "val_accuracy": res["val_accuracy"], "val_loss": res["val_loss"],
                "seconds_to_model": res["seconds_to_model"], "trials": res["trials"],
                "epochs_log": res["epochs"]}
    m = json.loads((run / "metrics.json").read_text())
    out = {**row, "val_accuracy": m["val_accuracy"], "val_loss": m["val_loss"],
           "seconds_to_model": round((run / "model.keras").stat().st_mtime - t0, 1)}
    if arm.split(":")[0] in ("recipe", "baseline"):
        hist = m.get("history", [])
        return {**out, "epochs": len(hist), "epochs_log": [
            (round(h.get("seconds", 0), 1), h["val_accuracy"]) for h in hist]}
    out["trials"] = len(json.loads((run / "trials.json").read_text()))
    # the final step's retrain, if any, began train_seconds before the model was saved
    began = out["seconds_to_model"] - m.get("train_seconds", 0.0)
    out["epochs_log"] = sorted(trial_epochs(run, t0) + [
        (round(began + h.get("seconds", 0.0), 1), h["val_accuracy"])
        for h in m.get("history", [])])
    out["final_source"], out["final_reason"] = m["final"]["source"], m["final"]["reason"]
    if arm.startswith("default"):
        out["recipe_epoch_s"] = recipe_epoch_s(run)
    return out


def summarise(rows: list[dict]) -> dict:
    out: dict[str, dict] = {}
    for name in dict.fromkeys(r["dataset"] for r in rows):
        ok = [r for r in rows if r["dataset"] == name and "error" not in r]
        # the seconds to reach are counted to the baseline's accuracy where it ran
        ref = "baseline" if any(r["arm"] == "baseline" for r in ok) else "recipe"
        recipe = [r["val_accuracy"] for r in ok if r["arm"] == ref]
        target = statistics.median(recipe) if recipe else None
        per: dict[str, dict] = {}
        for arm in dict.fromkeys(r["arm"] for r in ok):
            rs = [r for r in ok if r["arm"] == arm]
            hits = [next((t for t, acc in r["epochs_log"] if acc >= target), None)
                    for r in rs] if target is not None else []
            reached = [h for h in hits if h is not None]
            per[arm] = {"median_val_accuracy": round(statistics.median(
                            r["val_accuracy"] for r in rs), 4),
                        "runs": len(rs),
                        "reached_recipe": f"{len(reached)}/{len(rs)}",
                        "median_seconds_to_recipe": statistics.median(reached)
                        if reached else None}
        out[name] = per
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--budget", default="15m")
    ap.add_argument("--datasets", default="cifar10-small,digits,clothing,flowers")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--arms", default="default,recipe,random,kerastuner")
    ap.add_argument("--work", help="where the runs go; a run that finished there before "
                    "is not run again")
    ap.add_argument("--paired", action="store_true",
                    help="run each dataset's arms at once, one on each core (with two arms)")
    ap.add_argument("--as-user", action="store_true",
                    help="no --image-size: tune searches the space's sizes, train takes the "
                    "recipe's, as a user's plain command does")
    ap.add_argument("--cores", type=int, choices=(1, 2), default=1,
                    help="cores per run: 1 (two runs at once) or 2 (one run at a time)")
    ap.add_argument("--out")
    a = ap.parse_args()
    import tempfile

    from hyperfcn.cli import parse_duration

    budget_s = float(parse_duration(a.budget))
    work = Path(a.work or tempfile.mkdtemp(prefix="hyperfcn-arms-"))
    work.mkdir(parents=True, exist_ok=True)
    arms = a.arms.split(",")
    rows: list[dict] = []

    def job(j: tuple, core: str) -> dict:
        return one(*j, budget_s=budget_s, core=core, work=work, as_user=a.as_user)

    order = [("default", "default+", "random", "default-acc", "default-seq", "bohb"),
             ("recipe", "baseline", "kerastuner")]
    if a.paired:  # each dataset's arms side by side, one on each core
        jobs = [(arm, name, seed) for seed in map(int, a.seeds.split(","))
                for name in a.datasets.split(",") for arm in arms]
    else:
        jobs = [(arm, name, seed) for seed in map(int, a.seeds.split(","))
                for pair in order for name in a.datasets.split(",")
                for arm in arms if arm.split(":")[0] in pair]
    for r in pinned.pooled(jobs, job, ("0", "1") if a.cores == 1 else ("0,1",)):
        rows.append(r)
        print(json.dumps({k: v for k, v in r.items() if k != "epochs_log"}), flush=True)
    summary = summarise(rows)
    text = "; ".join(f"{name}: " + ", ".join(f"{arm} {v['median_val_accuracy']:.3f}"
                                            for arm, v in per.items())
                     for name, per in summary.items())
    emit({"benchmark": "search_arms", "budget": a.budget, "rows": rows, "summary": summary,
          "cores_per_run": a.cores, "as_user": a.as_user,
          "figure": f"median final val accuracy at {a.budget} on {a.cores} core(s) a run: "
                    f"{text}"}, a.out)


if __name__ == "__main__":
    main()
