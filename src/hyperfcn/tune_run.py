"""One `tune` command: the checks before any work, the round it runs (new, resumed,
extended, or only its final step), the data, the search on Ray, and the final model; what
it prints and writes on the way. :func:`hyperfcn.tune` is this module's :func:`tune`."""

from __future__ import annotations

import collections
import dataclasses
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import artifacts as art
from . import guard
from .budget import (
    CONTINUE,
    LONGER_SHARE,
    MAX_LONGER,
    MIN_TRAININGS,
    final_reserve,
    search_budget,
    tune_epochs,
)
from .config import ModelConfig
from .data import cache
from .data.cache import in_memory
from .data.footprint import available_bytes, check_memory
from .data.traits import read_traits
from .final import (
    best_trial_of,
    best_usable,
    earlier_model_better,
    plan_final,
    race_record,
    write_files,
)
from .options import TuneOptions
from .precision import describe
from .preflight import command_line, preflight, with_out
from .progress import Board, make_view
from .race import race_text, variants
from .records import TrialRecord
from .resources import Resources, final_settings, plan_resources
from .rounds import FINAL_DONE, FINAL_PENDING, evaluated, finished_rounds, image_sizes, plan_round
from .rundir import (
    Printer,
    RunResult,
    Say,
    budget_text,
    data_identity,
    epoch_printer,
    prepare_data,
    trial_rows,
    wrap_up,
    write_report_or_say,
    write_settings,
)
from .space import SearchSpace
from .space_setup import (
    DataFit,
    adapt_to_data,
    fit_sizes_to_data,
    resolve_space,
    rotation_degrees,
    sizes,
    space_infos,
    uses_backbone,
)
from .trial import TrialSettings

if TYPE_CHECKING:  # the Ray layer is imported where it runs, once the run's checks pass
    from .data.arrays import TrialData
    from .data.prepare import DataSummary
    from .rounds import Round
    from .tuning.scheduler import SchedulerPlan
    from .tuning.search import SearchRequest


def _fetch_weights(space: SearchSpace, opts: TuneOptions, res: Resources, say: Printer
                   ) -> None:
    """ImageNet weights are downloaded once, before any trial, so that an offline machine
    fails in seconds with the way out, and trials never race to write Keras' cache."""
    if opts.weights != "imagenet" or not uses_backbone(space):
        return
    from .tuning import session  # Ray, once the run's checks have passed

    names = [str(v) for v in space.values_of("backbone") or [] if v != "none"]
    say(f"getting ImageNet weights for {', '.join(names)} (Keras' cache, downloaded once)")
    session.fetch_weights(names, res.cpus_per_trial)


def _space(opts: TuneOptions, p: Printer) -> tuple[SearchSpace, DataFit]:
    """The space `tune` searches, its image sizes fitted to the data (said when probed)."""
    space, sizing = fit_sizes_to_data(resolve_space(opts), opts.data, opts.seed)
    if sizing is not None:
        p(sizing.describe())
    return space, DataFit(sizing=sizing)


def _fit_to_data(req: SearchRequest, data: TrialData, rnd: Round, fit: DataFit,
                 p: Printer) -> tuple[SearchRequest, DataFit]:
    """The space without the choices the decoded training images rule out (space_setup.
    adapt_to_data), said. A round of a run begun before these rules were read keeps the
    space it searched: its searcher's history is on that space."""
    settings = req.run_dir / art.SETTINGS
    earlier = art.read_json(settings) if settings.is_file() else {}
    if (rnd.restore or rnd.number > 1 or rnd.final_only) and earlier and \
            "data_rules" not in earlier:
        return req, fit
    traits = read_traits(data.train[min(data.train)], data.classes, req.settings.seed,
                         degrees=rotation_degrees(req.space.defaults or {}))
    space, said = adapt_to_data(req.space, traits)
    found = variants(space, fit.sizing.native if fit.sizing else None)
    fit = dataclasses.replace(fit, traits=traits, said=tuple(said), variants=found)
    for line in said or [f"data: {fit.read()}"]:
        p(line)
    if found and rnd.number == 1 and not rnd.final_only:
        p(race_text(found))
    return dataclasses.replace(req, space=space, variants=found), fit


def tune(opts: TuneOptions, say: Say | None = None) -> RunResult:
    """Search, then save the best model found (see final.plan_final) with everything that
    explains it."""
    preflight(opts, say, opts.searcher)  # before Ray and TensorFlow: a typo fails at once
    opts = dataclasses.replace(opts, max_epochs=tune_epochs(opts.max_epochs))
    t0 = time.time()  # --budget counts from here to the saved model
    p = Printer(opts.quiet, say)
    space, fit = _space(opts, p)
    opts = with_out(opts, p)
    req = _search_request(opts, space)
    run_dir = req.run_dir
    with guard.claimed(run_dir, guard.RunKind.TUNE, command_line()) as claim:
        opts, rnd, trackers, data, summary = _prepare_round(req, opts, t0, p)
        req, fit = _fit_to_data(req, data, rnd, fit, p)
        claim.begin_work()
        result = _on_ray(req, opts, rnd, trackers, data, summary, t0, p, say, fit)
        if result.metrics and not result.interrupted and opts.final != "none":
            wrap_up(opts, run_dir, result.best_config, result.metrics, p)
    return result


def _search_request(opts: TuneOptions, space: SearchSpace) -> SearchRequest:
    """The search as far as the options say it, before the round and the machine are known."""
    from .tuning import search  # Ray, once the run's checks have passed
    from .tuning.scheduler import plan_scheduler  # Ray, once the run's checks have passed

    run_dir = opts.out.resolve()
    settings = TrialSettings(max_epochs=opts.max_epochs, metric=opts.metric, seed=opts.seed,
                             class_weight=opts.class_weight,
                             weights=opts.weights if uses_backbone(space) else None,
                             checkpoint_every_s=opts.checkpoint_every_s,
                             checkpoint_best=opts.final != "none")
    return search.SearchRequest(space=space, run_dir=run_dir, data_ref=None,
                                settings=settings, storage=opts.storage,
                                tb_dir=run_dir / art.TENSORBOARD,
                                scheduler=plan_scheduler(str(opts.scheduler),
                                                         opts.max_epochs, opts.searcher))


def _prepare_round(req: SearchRequest, opts: TuneOptions, t0: float, p: Printer) -> tuple:
    """The round this command runs, its trackers, and the data read: every refusal that can
    come before Ray starts comes here."""
    from .tuning import search  # Ray, once the run's checks have passed
    from .tuning.trackers import tracker_callbacks  # Ray, once the run's checks have passed

    run_dir = req.run_dir
    rnd = plan_round(run_dir, opts.resume, opts.samples, opts.budget_s,
                     lambda name: search.can_resume(dataclasses.replace(req, name=name)))
    resuming = rnd.restore or rnd.number > 1 or rnd.final_only
    if resuming:
        guard.check_same_data(run_dir, data_identity(opts))
    _say_round(rnd, run_dir, p)
    if opts.samples is None and opts.budget_s is None:
        opts = dataclasses.replace(opts, samples=20)
    trackers = tracker_callbacks(opts.mlflow, opts.wandb, run_dir.name, run_dir)
    data, summary = prepare_data(opts, image_sizes(sizes(req.space), rnd.earlier), run_dir,
                                 p, resuming=resuming)
    if not rnd.final_only:
        search_budget(opts, t0, summary)  # a budget the final step would use up
    return opts, rnd, trackers, data, summary


def _on_ray(req: SearchRequest, opts: TuneOptions, rnd: Round, trackers: list[Any],
            data: TrialData, summary: DataSummary, t0: float, p: Printer, say: Say | None,
            fit: DataFit) -> RunResult:
    """The search (or, resuming an interrupted final step, its records) and the final model,
    on a Ray cluster of our own or the one joined."""
    from .tuning import session  # Ray, once the run's checks have passed

    cluster = session.start(opts.address, opts.backend, quiet=opts.quiet)
    try:
        res = plan_resources(opts, cluster)
        _fetch_weights(req.space, opts, res, p)
        ref = session.put(shareable(data, opts))
        del data
        if rnd.final_only:
            req = _final_request(req, res, ref)
            records, info = _finished_search(req.run_dir, rnd)
        else:
            req = _request(req, opts, res, rnd, ref, summary, t0, trackers, p, say, fit)
            records, interrupted, info = _run_search(req, rnd, opts, summary, t0, p)
            if interrupted:
                return RunResult(req.run_dir, {}, {}, records, interrupted=True)
            _say_race(records, req, opts.metric, info, p)
        best = best_usable(records, opts.metric, req.run_dir, info.get("best_trial"),
                           _too_short_for_one_epoch(opts, info, summary))
        config = ModelConfig.from_dict(best.config).to_dict()
        if opts.final == "none":
            return _no_final(req.run_dir, best, config, info, records, p)
        if not rnd.final_only:  # from here an interrupt resumes the final step alone
            info.update(best_trial=best.trial_id, final_step=FINAL_PENDING,
                        final_time_left=_final_time_left(opts, t0, summary))
            art.write_json(req.run_dir / art.SEARCH, info)
        metrics = _final_model(best, config, req, opts, res, summary, info, p)
        art.write_json(req.run_dir / art.SEARCH, {**info, "final_step": FINAL_DONE})
        return RunResult(req.run_dir, config, metrics, records)
    finally:
        session.shutdown()
        cache.release(Path(summary.cache))


def _say_round(rnd: Round, run_dir: Path, p: Printer) -> None:
    if rnd.final_only:
        p(f"the search in {run_dir} finished ({len(rnd.earlier)} trials) and its final step "
          f"was interrupted: making the final model again, no trial runs again")
    elif rnd.number > 1:
        p(f"extending the finished search in {run_dir} ({len(rnd.earlier)} trials) with "
          f"round {rnd.number}: its searcher starts from their results")


def _final_time_left(opts: TuneOptions, t0: float, summary: DataSummary) -> float | None:
    """Seconds the budget leaves the final step (None: no budget); recorded, so that a
    resumed final step plans with the time it had."""
    if opts.budget_s is None:
        return None
    return opts.budget_s - (time.time() - t0) - final_reserve(summary)


def _final_request(req: SearchRequest, res: Resources, data_ref: object) -> SearchRequest:
    """The request a resumed final step needs: the data and this machine's share."""
    return dataclasses.replace(req, data_ref=data_ref, settings=dataclasses.replace(
        req.settings, cpus=res.cpus_per_trial, gpus=res.gpus_per_trial))


def _finished_search(run_dir: Path, rnd: Round) -> tuple[list[TrialRecord], dict[str, Any]]:
    """The trials and the summary of a search whose final step is to run again."""

    return [TrialRecord(**r) for r in rnd.earlier], art.read_json(run_dir / art.SEARCH)


def _no_final(run_dir: Path, best: TrialRecord, config: dict[str, Any], info: dict[str, Any],
              records: list[TrialRecord], p: Printer) -> RunResult:
    """--no-final: the best trial's config, and the report, without a model."""
    art.write_json(run_dir / art.SEARCH, {**info, "best_trial": best.trial_id})
    art.write_json(run_dir / art.BEST_CONFIG, config)
    p(f"best trial {best.trial_id}: val_loss {best.best_val_loss:.4f}; no final "
      f"model (--no-final)")
    write_report_or_say(run_dir, p)
    return RunResult(run_dir, config, info, records)


def shareable(data: TrialData, opts: TuneOptions) -> TrialData:
    """The data as the trials will read it: mapped from the decoded cache, whose path every
    trial sees on this machine (or, with --cache-dir, on a cluster that mounts it); joining
    a cluster without --cache-dir, held in memory and shipped through Ray's object store."""
    if not opts.address or opts.cache_dir is not None:
        return data

    sets = [*data.train.values(), *data.val.values()]
    check_memory(sum(b.x.nbytes for s in sets for b in s.buckets), available_bytes(),
                 str(opts.data))
    return dataclasses.replace(data, train={k: in_memory(v) for k, v in data.train.items()},
                               val={k: in_memory(v) for k, v in data.val.items()})


def _request(req: SearchRequest, opts: TuneOptions, res: Resources, rnd: Round, data_ref: object,
             summary: DataSummary, t0: float, trackers: list[Any], p: Printer, say: Say | None,
             fit: DataFit):
    """The search request for this round, once the resources are known; says the plan."""
    from .tb import HParamsLog  # TensorBoard, only when writing HParams
    from .tuning.searchers import random_starts  # Ray, once the run's checks have passed

    plan, space = req.scheduler, req.space
    settings = dataclasses.replace(req.settings, cpus=res.cpus_per_trial,
                                   gpus=res.gpus_per_trial)
    n_random = opts.random_starts or random_starts(res.concurrency, opts.samples)
    _announce(opts, res, plan, space, n_random, rnd, p)
    earlier, left_out = evaluated(rnd.earlier, opts.metric, space)
    if left_out:
        p(left_out)
    write_settings(req.run_dir, opts, {"kind": "tune",
        "scheduler_plan": dataclasses.asdict(plan), "resources": dataclasses.asdict(res),
        "space": dict(space.raw), "image_sizes": sizes(space),
        "precision": describe(opts.backend, res.gpus_per_trial > 0), **fit.to_settings()})
    if rnd.number == 1 and not rnd.restore:
        HParamsLog(req.run_dir / art.TENSORBOARD).experiment(space_infos(space))
    board = Board(metric=opts.metric, mode=settings.mode, max_epochs=opts.max_epochs,
                  budget_s=opts.budget_s, samples=opts.samples, concurrency=res.concurrency,
                  rungs=tuple(plan.rungs()) if plan.name == "asha" else (),
                  final=opts.final != "none", t0=t0)
    return dataclasses.replace(
        req, data_ref=data_ref, settings=settings, searcher=opts.searcher,
        samples=rnd.samples if rnd.number > 1 else opts.samples,
        budget_s=search_budget(opts, t0, summary), name=rnd.name,
        evaluated=earlier, concurrency=res.concurrency,
        cpus_per_trial=res.cpus_per_trial, gpus_per_trial=res.gpus_per_trial,
        resume=rnd.restore, max_failures=opts.max_failures, extra_callbacks=trackers,
        random_starts=n_random,
        longer_final=opts.final == "auto", view=make_view(board, opts.quiet, say))


def _announce(opts: TuneOptions, res: Resources, plan: SchedulerPlan, space: SearchSpace,
              n_random: int, rnd: Round, p: Printer) -> None:
    p(f"Ray: {res.cpus:g} CPUs, {res.gpus:g} GPUs; each trial {res.cpus_per_trial:g} CPU"
      f"{', ' + format(res.gpus_per_trial, 'g') + ' GPU' if res.gpus_per_trial else ''}; "
      f"up to {res.concurrency} at once; backend {opts.backend}; "
      f"{describe(opts.backend, res.gpus_per_trial > 0)}")
    p(plan.describe())
    starts = ""
    if opts.searcher in ("hyperopt", "optuna") and not rnd.restore and rnd.number == 1:
        starts = f", TPE after {n_random} random configurations"
        if space.points:
            starts += f" and {len(space.points)} from the space's defaults"
    samples = f"{opts.samples or 'unlimited'}"
    if rnd.number > 1 and rnd.samples:
        samples += f" ({rnd.samples} more in round {rnd.number})"
    p(f"searcher {opts.searcher} (seed {opts.seed}{starts}); samples {samples}; budget "
      f"{budget_text(opts.budget_s)}")
    if opts.budget_s is not None and opts.final == "auto":
        p(f"the search ends early, with up to {LONGER_SHARE:.0%} of its time left, when "
          f"that time lets the best trial train on for {CONTINUE:g}x to {MAX_LONGER}x "
          f"its {opts.max_epochs} epochs; and when {1 - LONGER_SHARE:.0%} of the search's "
          f"time holds fewer than {MIN_TRAININGS} trainings of the space's recipe (timed "
          f"by its first epoch), the budget is too short to compare configurations: the "
          f"recipe trains alone, its schedule fitted to the budget")


def _run_search(req: SearchRequest, rnd: Round, opts: TuneOptions, summary: DataSummary, t0: float,
                p: Printer) -> tuple[list[TrialRecord], bool, dict[str, Any]]:
    """Run the round; write every round's trials; return them, whether it was cut short,
    and the search's summary."""
    from .tuning import search  # Ray, once the run's checks have passed

    t_search = time.time()
    records, interrupted = search.run_search(req)
    search_wall = time.time() - t_search
    records = [TrialRecord(**r) for r in rnd.earlier] + records
    run_dir = req.run_dir
    art.write_csv(run_dir / art.TRIALS, trial_rows(records, req.space), ["trial_id"])
    art.write_json(run_dir / art.TRIALS_JSON, [dataclasses.asdict(r) for r in records])
    counts = collections.Counter(r.status for r in records)
    how = ", ".join(f"{v} {k}" for k, v in counts.items())
    p(f"search: {len(records)} trial{'' if len(records) == 1 else 's'} ({how}) in "
      f"{time.time() - t0:.0f} s; table in {run_dir / art.TRIALS}")
    info = {"search_wall_seconds": round(search_wall, 2),
            "trial_epochs": sum(r.epochs for r in records), "trials": len(records),
            "rounds": list(dict.fromkeys([*finished_rounds(run_dir), rnd.name]))}
    return records, interrupted, info


def _say_race(records: list[TrialRecord], req: SearchRequest, metric: str,
              info: dict[str, Any], p: Printer) -> None:
    """The race's outcome, said and kept in search.json's summary (the report shows it)."""
    race = race_record(records, req.variants, metric)
    if race is not None:
        info["race"] = race
        p(f"race over {race['epochs']} epochs each: {race['why']}")


def _too_short_for_one_epoch(opts: TuneOptions, info: dict[str, Any],
                             summary: DataSummary) -> str | None:
    """What to say when no trial finished an epoch within --budget (None: no budget)."""
    if opts.budget_s is None:
        return None
    return (f"--budget {budget_text(opts.budget_s)}: too short for one epoch; no trial "
            f"finished its first epoch in the {info['search_wall_seconds']:.0f} s the search "
            f"had (after reading the data, starting Ray and keeping "
            f"~{final_reserve(summary):.0f} s for the final model); give a longer "
            f"--budget, or a smaller --image-size")


def _final_model(best: TrialRecord, config: dict[str, Any], req: SearchRequest,
                 opts: TuneOptions, res: Resources, summary: DataSummary, info: dict[str, Any],
                 p: Printer) -> dict[str, Any]:
    """Plan the final step, run it on a worker, write its files (unless the model an
    earlier round saved scores better); return metrics.json."""
    from .tuning import session  # Ray, once the run's checks have passed

    bt = best_trial_of(best, opts.metric, req.settings.mode, opts.max_epochs)
    fplan = plan_final(bt, opts.max_epochs, train_val=opts.final == "train+val",
                       time_left=info.get("final_time_left"))
    p(f"best trial {best.trial_id}: val_loss {best.best_val_loss:.4f}, val_accuracy "
      f"{best.best_val_accuracy:.4f}; final model: {fplan.reason}")
    fs = final_settings(opts, res, req.settings.weights)
    out = session.run_final(config, req.data_ref, fs, fplan,
                            epoch_printer(p, fs, 0 if fplan.resume else fplan.max_epochs))
    kept = earlier_model_better(req.run_dir, out, opts.metric)
    if kept is not None:
        p(kept)
        return art.read_json(req.run_dir / art.METRICS)
    search = {k: v for k, v in info.items() if k not in ("final_step", "final_time_left")}
    return write_files(req.run_dir, config, out, summary, p, search, bt, opts.metric,
                       opts.test_dir)

