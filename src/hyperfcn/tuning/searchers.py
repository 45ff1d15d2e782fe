"""What to try next: a hyperfcn search space as HyperOpt's TPE (or random search) and
Optuna's TPE see it, behind Ray Tune's public ``Searcher`` interface.

The space is plain data (:mod:`hyperfcn.space`); this module translates it. HyperOpt runs
in :class:`HyperOptSearcher`, our own ``Searcher``: it takes the space's first recipes as
values (Ray's HyperOptSearch hangs or fails on nested choices given that way) and the
results of an earlier round of the search (which Ray's takes not at all), and hands back
flat configs.
"""

from __future__ import annotations

import copy
import math
import pickle
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

import hyperopt as hpo
import numpy as np
from hyperopt import hp
from ray.tune.search import Searcher

from .. import space as sp
from ..errors import UserError
from ..extras import message
from .bohb import make_bohb


def _flatten(cfg: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in cfg.items():
        if isinstance(v, Mapping):
            out.update(_flatten(v))
        else:
            out[k] = v
    return out


class _HyperOptExpr:
    """Each kind of parameter as a hyperopt expression (a space.ParamVisitor)."""

    def constant(self, p: sp.Constant) -> Any:
        return p.value

    def choice(self, p: sp.Choice) -> Any:
        return hp.choice(p.name, list(p.values))

    def conditional(self, p: sp.Conditional) -> Any:
        return hp.choice(p.name, [{p.name: key, **{q.name: q.accept(self) for q in sub}}
                                  for key, sub in p.options])

    def uniform(self, p: sp.Uniform) -> Any:
        return hp.uniform(p.name, p.low, p.high)

    def loguniform(self, p: sp.LogUniform) -> Any:
        return hp.loguniform(p.name, math.log(p.low), math.log(p.high))

    def quniform(self, p: sp.QUniform) -> Any:
        expr = hp.quniform(p.name, p.low, p.high, p.q)
        return hpo.pyll.scope.int(expr) if p.integer else expr

    def randint(self, p: sp.RandInt) -> Any:
        return hp.uniformint(p.name, p.low, p.high)


def hyperopt_space(space: sp.SearchSpace) -> dict[str, Any]:
    return {p.name: p.accept(_HyperOptExpr()) for p in space.params}


def hyperopt_point(space: sp.SearchSpace, point: Mapping[str, Any]) -> dict[str, Any]:
    """A values-form point as hyperopt stores it: choice indices, raw numbers, active only."""
    out: dict[str, Any] = {}
    for p in space.active(point):
        if isinstance(p, sp.Constant):
            continue
        index = getattr(p, "index", None)  # choices are stored by position
        out[p.name] = index(point[p.name]) if index else point[p.name]
    return out


def _doc(tid: int, labels: list[str], hpoint: dict[str, Any]) -> dict[str, Any]:
    """A hyperopt trial document for a point, every label present, inactive ones empty (as
    hyperopt itself records them)."""
    return {
        "state": hpo.base.JOB_STATE_NEW, "tid": tid, "spec": None,
        "result": {"status": "new"},
        "misc": {"tid": tid, "cmd": ("domain_attachment", "FMinIter_Domain"),
                 "workdir": None,
                 "idxs": {k: [tid] if k in hpoint else [] for k in labels},
                 "vals": {k: [hpoint[k]] if k in hpoint else [] for k in labels}},
        "exp_key": None, "owner": None, "version": 0, "book_time": None,
        "refresh_time": None}


class HyperOptSearcher(Searcher):
    """HyperOpt's TPE (``algo="tpe"``) or random search over a hyperfcn space.

    ``points`` run first, in order; ``evaluated`` ((config, metric value) pairs) are
    finished trials TPE learns from before it suggests anything. It draws the suggestions
    Ray's HyperOptSearch would draw from the same seed: same algorithm calls, same
    random-state stream.
    """

    def __init__(self, space: sp.SearchSpace, metric: str, mode: str, seed: int,
                 points: list[dict[str, Any]] | None = None, n_initial_points: int = 8,
                 algo: str = "tpe",
                 evaluated: list[tuple[dict[str, Any], float]] | None = None) -> None:
        super().__init__(metric=metric, mode=mode)
        self.loss_sign = 1.0 if mode == "min" else -1.0  # hyperopt minimises
        self.domain = hpo.Domain(lambda spc: spc, hyperopt_space(space))
        self.algo = (partial(hpo.tpe.suggest, n_startup_jobs=n_initial_points)
                     if algo == "tpe" else hpo.rand.suggest)
        self.rstate = np.random.RandomState(seed)
        labels = [p.name for p in space.walk() if not isinstance(p, sp.Constant)]
        # hyperopt pops initial points last-in-first-out: reversed, they run in order
        docs = [_doc(tid, labels, hyperopt_point(space, pt))
                for tid, pt in enumerate(reversed(points or []))]
        self.points_left = len(docs)
        for value_pt in evaluated or []:
            point, value = value_pt
            docs.append({**_doc(len(docs), labels, hyperopt_point(space, point)),
                         "state": hpo.base.JOB_STATE_DONE,
                         "result": {"status": "ok", "loss": self.loss_sign * value}})
        self.trials = hpo.Trials()
        if docs:
            self.trials.insert_trial_docs(docs)
            self.trials.refresh()
        self.live: dict[str, int] = {}  # Tune's trial id -> hyperopt's tid

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        if self.points_left > 0:
            doc = self.trials.trials[self.points_left - 1]
            self.points_left -= 1
        else:
            new_ids = self.trials.new_trial_ids(1)
            self.trials.refresh()
            docs = self.algo(new_ids, self.domain, self.trials,
                             self.rstate.randint(2**31 - 1))
            self.trials.insert_trial_docs(docs)
            self.trials.refresh()
            doc = docs[0]
        self.live[trial_id] = doc["tid"]
        return _flatten(self._config_of(doc))

    def _config_of(self, doc: dict[str, Any]) -> dict[str, Any]:
        """The config a hyperopt document stands for (as hyperopt.base.evaluate does)."""
        config = hpo.base.spec_from_misc(doc["misc"])
        ctrl = hpo.base.Ctrl(self.trials, current_trial=doc)
        memo = self.domain.memo_from_config(config)
        hpo.utils.use_obj_for_literal_in_memo(self.domain.expr, ctrl, hpo.base.Ctrl, memo)
        return copy.deepcopy(hpo.pyll.rec_eval(self.domain.expr, memo=memo))

    def _doc_of(self, trial_id: str) -> dict[str, Any] | None:
        tid = self.live.get(trial_id)
        return next((t for t in self.trials.trials if t["tid"] == tid), None)

    def on_trial_complete(self, trial_id: str, result: dict | None = None,
                          error: bool = False) -> None:
        doc = self._doc_of(trial_id)
        if doc is None:
            return
        doc["refresh_time"] = hpo.utils.coarse_utcnow()
        if error or not result or self.metric not in result:
            doc["state"] = hpo.base.JOB_STATE_ERROR
            doc["misc"]["error"] = ("TrialError", "the trial failed or reported nothing")
        else:
            doc["state"] = hpo.base.JOB_STATE_DONE
            doc["result"] = {"loss": self.loss_sign * float(result[self.metric]),
                             "status": "ok"}
        self.trials.refresh()
        del self.live[trial_id]

    def save(self, checkpoint_path: str) -> None:
        state = {k: v for k, v in self.__dict__.items() if k not in ("domain", "algo")}
        with open(checkpoint_path, "wb") as f:
            pickle.dump(state, f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            self.__dict__.update(pickle.load(f))


class EndsWhen(Searcher):
    """Any searcher, suggesting nothing more once ``until.ended`` is true: Ray then ends
    the search when its running trials have stopped."""

    def __init__(self, searcher: Searcher, until: Any) -> None:
        super().__init__(metric=searcher.metric, mode=searcher.mode)
        self.searcher, self.until = searcher, until
        self.suggested = 0

    @property
    def metric(self) -> str:
        return self.searcher.metric

    @property
    def mode(self) -> str:
        return self.searcher.mode

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict,
                              **spec: Any) -> bool:
        return self.searcher.set_search_properties(metric, mode, config, **spec)

    def set_max_concurrency(self, max_concurrent: int) -> bool:
        return self.searcher.set_max_concurrency(max_concurrent)

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        # a searcher or stopper pickled before races has neither count nor limit
        suggested = getattr(self, "suggested", 0)
        may = getattr(self.until, "may_suggest", None)
        if self.until.ended or (may is not None and not may(suggested)):
            return Searcher.FINISHED
        config = self.searcher.suggest(trial_id)
        if isinstance(config, dict):
            self.suggested = suggested + 1
        return config

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        self.searcher.on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None,
                          error: bool = False) -> None:
        self.searcher.on_trial_complete(trial_id, result=result, error=error)

    def on_pause(self, trial_id: str) -> None:  # HyperBandForBOHB tells BOHB through these
        self.searcher.on_pause(trial_id)  # type: ignore[attr-defined]

    def on_unpause(self, trial_id: str) -> None:
        self.searcher.on_unpause(trial_id)  # type: ignore[attr-defined]

    def add_evaluated_point(self, *args: Any, **kwargs: Any) -> None:
        self.searcher.add_evaluated_point(*args, **kwargs)

    # Ray saves a wrapper's state beside the searcher it wraps; this one has none (the
    # decision is the stopper's, and a resumed round decides afresh).
    def get_state(self) -> dict:
        return {}

    def set_state(self, state: dict) -> None:
        pass

    def save(self, checkpoint_path: str) -> None:
        self.searcher.save(checkpoint_path)

    def restore(self, checkpoint_path: str) -> None:
        self.searcher.restore(checkpoint_path)


class _OptunaSuggest:
    """Each kind of parameter as an Optuna suggestion, conditional ones recursively (a
    space.ParamVisitor)."""

    def __init__(self, trial: Any, consts: dict[str, Any]) -> None:
        self.trial, self.consts = trial, consts

    def constant(self, p: sp.Constant) -> None:
        self.consts[p.name] = p.value

    def choice(self, p: sp.Choice) -> None:
        self.trial.suggest_categorical(p.name, list(p.values))

    def conditional(self, p: sp.Conditional) -> None:
        key = self.trial.suggest_categorical(p.name, list(p.keys))
        for q in p.sub(key):
            q.accept(self)

    def uniform(self, p: sp.Uniform) -> None:
        self.trial.suggest_float(p.name, p.low, p.high)

    def loguniform(self, p: sp.LogUniform) -> None:
        self.trial.suggest_float(p.name, p.low, p.high, log=True)

    def quniform(self, p: sp.QUniform) -> None:
        if p.integer:
            self.trial.suggest_int(p.name, int(p.low), int(p.high), step=int(p.q))
        else:
            self.trial.suggest_float(p.name, p.low, p.high, step=p.q)

    def randint(self, p: sp.RandInt) -> None:
        self.trial.suggest_int(p.name, p.low, p.high)


@dataclass(frozen=True)
class _DefineByRun:
    """Optuna's define-by-run function for a space: a picklable object, not a closure, since
    Ray saves the searcher (and with it this function) with pickle at every checkpoint."""

    space: sp.SearchSpace

    def __call__(self, trial: Any) -> dict[str, Any]:
        consts: dict[str, Any] = {}
        visitor = _OptunaSuggest(trial, consts)
        for p in self.space.params:
            p.accept(visitor)
        return consts


def optuna_define_by_run(space: sp.SearchSpace) -> Callable[[Any], dict[str, Any]]:
    return _DefineByRun(space)


def random_starts(concurrency: int, samples: int | None = None) -> int:
    """How many random configurations TPE draws before it models the results.

    A fixed count (hyperopt's and Ray's default is 20) is all of a laptop search: at 2-5
    trials a run on 2 cores, TPE would never leave its random start and would run the very
    trials random search runs. With C trials at once the first C have
    nothing to learn from, and TPE needs a few finished ones, so: twice the concurrency, at
    least 4, at most 20, and no more than a third of --samples.
    """
    n = min(20, max(4, 2 * concurrency))
    return max(1, min(n, samples // 3)) if samples else n


def make_searcher(name: str, space: sp.SearchSpace, metric: str, mode: str, seed: int,
                  points: list[dict[str, Any]] | None, n_initial_points: int = 8,
                  evaluated: list[tuple[dict[str, Any], float]] | None = None):
    """``n_initial_points`` counts ``points`` too (hyperopt and Optuna both do);
    ``evaluated``: (config, metric) of trials an earlier round of the search ran."""
    if name in ("hyperopt", "random"):
        return HyperOptSearcher(space, metric, mode, seed, points, n_initial_points,
                                algo="tpe" if name == "hyperopt" else "random",
                                evaluated=evaluated)
    if name == "optuna":
        try:
            import optuna
            from ray.tune.search.optuna import OptunaSearch
        except ImportError:
            raise UserError(message("optuna")) from None
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        # Ray's OptunaSearch takes no evaluated points with a define-by-run space (the only
        # kind that expresses conditional parameters): a new round starts afresh.
        return OptunaSearch(space=optuna_define_by_run(space), metric=metric, mode=mode,
                            sampler=optuna.samplers.TPESampler(
                                seed=seed, n_startup_trials=n_initial_points),
                            points_to_evaluate=points)
    if name == "bohb":

        # like Optuna's, a new round of BOHB starts afresh: its model needs each result's
        # HyperBand budget, which an earlier round's table does not keep
        return make_bohb(space, metric, mode, seed, points)
    raise UserError(f"--searcher {name!r}: use hyperopt, random, optuna or bohb")
