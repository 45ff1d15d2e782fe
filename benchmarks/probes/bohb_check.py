"""Does Ray Tune's BOHB (TuneBOHB + HyperBandForBOHB) run on today's ConfigSpace, and when
would its model start to guide the search on hyperfcn's default space?

    pip install --target /tmp/bohb ConfigSpace hpbandster   # not a hyperfcn dependency
    PYTHONPATH=/tmp/bohb python benchmarks/probes/bohb_check.py

Runs 40 scripted trials (no training) over a space with a log-scaled float, an integer, a
categorical and a conditional parameter, as hyperfcn's has, with 2 at once; then prints how
many results at one budget hpbandster's BOHB needs before its KDE replaces random sampling
on a space with as many parameters as hyperfcn's default one.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]  # benchmarks/
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))
from common import emit  # noqa: E402

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


def scripted(config: dict) -> None:
    from ray import tune

    wd = config.get("wd") or 0.0
    for i in range(1, 10):
        tune.report({"loss": (config["lr"] - 0.003) ** 2 * 1e3 + 0.1 * config["blocks"] + wd
                     + 1.0 / i + (0.2 if config["opt"] == "sgd" else 0.0)})


def space():
    import ConfigSpace as CS

    cs = CS.ConfigurationSpace(seed=0)
    opt = CS.CategoricalHyperparameter("opt", ["adam", "adamw", "sgd"])
    wd = CS.UniformFloatHyperparameter("wd", 1e-5, 1e-2, log=True)
    cs.add([CS.UniformFloatHyperparameter("lr", 1e-4, 1e-1, log=True),
            CS.UniformIntegerHyperparameter("blocks", 2, 5), opt, wd,
            CS.CategoricalHyperparameter("flip", ["none", "horizontal"])])
    cs.add(CS.EqualsCondition(wd, opt, "adamw"))
    return cs


def default_space_parameters() -> int:
    """Searched parameters of hyperfcn's default space (each one a ConfigSpace
    hyperparameter; constants are not)."""
    from hyperfcn.space import Constant, load_space

    return sum(not isinstance(p, Constant) for p in load_space(None).walk())


def main() -> None:
    import ConfigSpace
    import ray
    from ray import tune
    from ray.tune.schedulers import HyperBandForBOHB
    from ray.tune.search.bohb import TuneBOHB

    searcher = TuneBOHB(space=space(), metric="loss", mode="min", seed=0)
    sched = HyperBandForBOHB(time_attr="training_iteration", max_t=9, reduction_factor=3,
                             metric="loss", mode="min")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    with tempfile.TemporaryDirectory() as d:
        res = tune.Tuner(scripted, tune_config=tune.TuneConfig(
            search_alg=searcher, scheduler=sched, num_samples=40, max_concurrent_trials=2),
            run_config=tune.RunConfig(storage_path=d, verbose=0)).fit()
    ray.shutdown()
    n = default_space_parameters()
    emit({"benchmark": "bohb_check", "ray": ray.__version__,
          "configspace": ConfigSpace.__version__, "trials": len(res),
          "errors": res.num_errors, "default_space_parameters": n,
          # hpbandster: min_points_in_model defaults to, and may not be set below, dims + 1
          "results_before_model": n + 1,
          "figure": f"TuneBOHB on ConfigSpace {ConfigSpace.__version__}, Ray {ray.__version__}:"
                    f" {len(res)} trials, {res.num_errors} errors; on the default space "
                    f"({n} parameters) its model needs {n + 1} results at one budget"})


if __name__ == "__main__":
    main()
