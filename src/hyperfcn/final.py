"""The final model: which weights ship, why, and the check that the file holds them.

Three ways to a model, chosen on the driver by :func:`plan_final` (pure, no Keras):

- the best trial's own weights at its best epoch, read from the checkpoint the trial saved
  there (``best_trial``): no retrain when the trial trained all its epochs;
- the best trial's weights trained on (``retrain`` from its checkpoint) over a fresh
  learning-rate cycle, when a budget kept time for ``CONTINUE``x its epochs or more;
- the best config trained again (``retrain``) when the trial was cut short and time is
  left, or for longer (``LONGER``x its epochs or more) when a budget kept time for that
  and the config cannot be continued (a two-stage backbone);
  either replaces the best trial's weights only when it scores better on validation;
- the best config fitted on train+val (``train+val``, asked for with ``--final train+val``)
  for the epochs at which the best trial peaked: no held-out score exists afterwards.

:func:`make_final` runs on a worker. Whatever it keeps is saved, loaded back from the saved
bytes and scored on the validation set, so the figure reported is the file's. No Ray here.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import io
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from . import artifacts as art
from .budget import MAX_LONGER, continue_epochs, longer_epochs
from .config import ModelConfig
from .data.arrays import TrialData, labels_of
from .data.buckets import Packed
from .data.epoch import VAL_IMAGES, sample_positions, scoring_rows
from .errors import SearchFailed, UserError
from .feed import predict_packed
from .hints import command
from .metrics import classification_report, format_report, score
from .precision import as_float32
from .race import Variant, best_within, judge, standard_error
from .records import Objective, TrialRecord, fitted_epochs
from .space import is_recipe
from .testscore import add_test_score, optimism_note
from .trial import CHECKPOINT_MODEL, LocalReporter, TrialOutcome, TrialSettings, run_trial

if TYPE_CHECKING:
    import keras

    from .data.prepare import DataSummary

log = logging.getLogger("hyperfcn")


class FinalSource(StrEnum):
    BEST_TRIAL = "best_trial"
    RETRAIN = "retrain"
    TRAIN_VAL = "train+val"


# A saved model scoring worse than the best trial by more than this is reported loudly.
ACCURACY_DROP = 0.01
LOSS_RISE = 0.02  # relative
# A saved model that closes less than this share of the gap between guessing (the larger of
# chance and always predicting the most common class) and a perfect score is no model: the
# run says so loudly, whatever its exit status.
NEAR_CHANCE = 0.1


@dataclass(frozen=True)
class BestTrial:
    """What the search knows of its best trial: enough to promote or retrain it."""

    trial_id: str
    epochs: int  # epochs it trained
    best: Mapping[str, float]  # its best epoch's metrics (epoch, val_loss, val_accuracy, ...)
    checkpoint: str | None = None  # the checkpoint saved at its best epoch
    cut_by: str = ""  # "" (trained all epochs) | "the scheduler" | "the budget" | "a failure"
    epoch_seconds: float | None = None  # median seconds an epoch took in the trial
    two_stage: bool = False  # a backbone fine-tuned in two stages: not continued
    # a trial that fitted its schedule to the search's end (a budget too short to search,
    # see trial.py): the epochs it planned, its learning rate reaching 0 at the last
    fitted: int = 0

    @property
    def best_epoch(self) -> int:
        return int(self.best.get("epoch", self.epochs))


@dataclass(frozen=True)
class FinalPlan:
    retrain: bool  # train the config again
    train_val: bool = False  # ... on train+val, for `epochs` epochs
    checkpoint: str | None = None  # promote these weights (a retrain must beat them)
    epochs: int | None = None  # train+val: stop after this epoch
    max_epochs: int | None = None  # a longer retrain: its epochs (the schedule spans them)
    resume: bool = False  # the retrain starts from `checkpoint`'s weights, and has as many
    # epochs as fit before `deadline` (TrialSettings.fit_until), at most `max_epochs`
    min_epochs: int = 0  # a retrain's early stopping waits until this epoch
    deadline: float | None = None  # time.time() by which a retrain must end
    reason: str = ""
    best: BestTrial | None = None


def plan_final(best: BestTrial | None, max_epochs: int, *, train_val: bool = False,
               time_left: float | None = None) -> FinalPlan:
    """What the final step does with the search's best trial, and why (one sentence).

    ``time_left``: seconds until the budget ends (None: no budget). A retrain is estimated
    from the best trial's own epoch time, and is planned only when it fits.
    """
    if best is None:  # `hyperfcn train`: no search, train the config
        return FinalPlan(retrain=True, reason="no search: the config trained once")
    deadline = None if time_left is None else time.time() + time_left
    if best.checkpoint is None:
        return FinalPlan(retrain=True, min_epochs=best.best_epoch, deadline=deadline,
                         best=best, reason=f"trial {best.trial_id}'s weights were not "
                         f"kept; its config trained again, for at least {best.best_epoch} "
                         f"epochs")
    if train_val:
        return _plan_train_val(best, time_left, deadline)
    promote = FinalPlan(retrain=False, checkpoint=best.checkpoint, best=best)
    if best.fitted and not best.cut_by:
        return dataclasses.replace(promote, reason=(
            f"the budget was too short to compare configurations, so trial "
            f"{best.trial_id} (the space's recipe) trained the {best.fitted} epochs it held, "
            f"its learning rate decaying to 0 at the search's end; its weights at epoch "
            f"{best.best_epoch} are the model"))
    longer = _plan_longer(best, max_epochs, time_left, deadline)
    if longer is not None:
        return longer
    if not best.cut_by:
        return dataclasses.replace(promote, reason=(
            f"trial {best.trial_id} trained all {max_epochs} epochs; its weights at epoch "
            f"{best.best_epoch} are the model (a retrain would repeat it)"))
    cut = f"trial {best.trial_id} was cut short by {best.cut_by} at epoch {best.epochs}"
    if best.epochs < max_epochs and (time_left is None or (
            best.epoch_seconds or 0.0) * max_epochs <= time_left):
        return FinalPlan(retrain=True, checkpoint=best.checkpoint, min_epochs=best.epochs,
                         deadline=deadline, best=best,
                         reason=f"{cut}: its config trained again for up to {max_epochs} "
                         f"epochs, kept only if better on validation")
    return dataclasses.replace(promote, reason=(
        f"{cut}; no time left in the budget to train it again: its weights at epoch "
        f"{best.best_epoch} are the model"))


def _plan_train_val(best: BestTrial, time_left: float | None,
                    deadline: float | None) -> FinalPlan:
    """--final train+val: the best config on train+val for the epochs where it peaked."""
    n, per_epoch = best.best_epoch, best.epoch_seconds or 0.0
    # the validation images make each epoch longer
    if time_left is None or per_epoch * (int(n * 1.3) + 1) <= time_left:
        return FinalPlan(retrain=True, train_val=True, checkpoint=best.checkpoint,
                         epochs=n, deadline=deadline, best=best,
                         reason=f"--final train+val: trial {best.trial_id}'s config "
                         f"fitted on train+val for {n} epochs (where it peaked)")
    return FinalPlan(retrain=False, checkpoint=best.checkpoint, best=best, reason=(
        f"--final train+val did not fit in the budget ({n} epochs at "
        f"~{per_epoch:.0f} s); trial {best.trial_id}'s weights at epoch {n} instead"))


def _plan_longer(best: BestTrial, max_epochs: int, time_left: float | None,
                 deadline: float | None) -> FinalPlan | None:
    """The best trial's weights trained on, or its config trained again for longer, in
    the time a budget kept for it; None when neither fits."""
    per_epoch = best.epoch_seconds or 0.0
    # weights cut short mid-schedule gain from any epochs more (kept only if better)
    more = continue_epochs(per_epoch, time_left, max_epochs, best.two_stage,
                           too_short=bool(best.cut_by))
    if more:
        # the final step may run on more cores than a trial: it times its own epochs
        cap = MAX_LONGER * max_epochs
        return FinalPlan(retrain=True, resume=True, checkpoint=best.checkpoint,
                         max_epochs=cap, deadline=deadline, best=best,
                         reason=f"trial {best.trial_id}'s weights at epoch {best.best_epoch} "
                         f"trained on, on a new learning-rate cycle, for as many epochs as "
                         f"fit in the time the budget kept for it (~{more} at the trial's "
                         f"speed, at most {cap}); kept only if better on validation")
    longer = longer_epochs(per_epoch, time_left, max_epochs)
    if not longer:
        return None
    was = (f"trained all {max_epochs} epochs" if not best.cut_by else
           f"was cut short by {best.cut_by} at epoch {best.epochs}")
    return FinalPlan(retrain=True, checkpoint=best.checkpoint, max_epochs=longer,
                     min_epochs=longer, deadline=deadline, best=best,
                     reason=f"trial {best.trial_id} {was}: its config trained again "
                     f"for {longer} epochs in the time the budget kept for it, kept "
                     f"only if better on validation")


@dataclass
class FinalModel:
    """What the worker hands back: the model file's bytes and the evidence about them."""

    model: bytes
    source: FinalSource
    reason: str
    checked: dict[str, float]  # the saved file, loaded back, on the validation set
    sha256: str
    # the same on the images the trials' epochs were scored on (all of them but on large
    # data): what is compared with the best trial
    compared: dict[str, float] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)  # the retrain's, if any
    best_epoch: int = 0
    val_probs: np.ndarray | None = None
    val_labels: np.ndarray | None = None
    val_order: list[int] = field(default_factory=list)
    seconds: float = 0.0
    augment_preview: bytes | None = None
    # a continuation's epochs follow the best trial's: its epoch 1 is overall epoch this + 1
    start_epoch: int = 0


def merged(data: TrialData, size: int) -> TrialData:
    """TrialData whose training set is train+val at `size`: both sets' buckets side by side
    (they share shapes, so nothing compiles anew), nothing copied."""
    tr, va = data.train[size], data.val[size]
    return TrialData(classes=data.classes,
                     train={size: Packed(tr.buckets + va.buckets, tr.padded_fraction)},
                     val=data.val)


def load_core(checkpoint_dir: str | Path) -> keras.Model:
    """The inference model inside a trial checkpoint (its optimizer is not needed)."""
    import keras

    from . import augment  # noqa: F401  (registers Augment for loading)

    return keras.saving.load_model(Path(checkpoint_dir, CHECKPOINT_MODEL),
                                   compile=False).get_layer("hyperfcn")


def _score(model: keras.Model, val: Packed, batch_size: int,
           rows: list[np.ndarray] | None = None) -> tuple[dict[str, float], np.ndarray]:
    probs = predict_packed(model, val, batch_size, rows)
    return score(probs, labels_of(val, rows)), probs


def _on_sample(checked: dict[str, float], probs: np.ndarray, val: Packed
               ) -> dict[str, float]:
    """The scores of ``probs`` (every validation image, in bucket order) on the epochs'
    validation sample."""
    at = sample_positions(val)
    if at is None:
        return checked
    return score(probs[at], labels_of(val)[at])


def make_final(config: dict[str, Any], data: TrialData, settings: TrialSettings,
               plan: FinalPlan,
               checkpoint_dir: str | None = None,
               on_epoch: Callable[[dict], None] | None = None) -> FinalModel:
    """Build the final model as planned, save it, load the bytes back and score them."""
    import keras

    t0 = time.time()
    size, bs = int(config["image_size"]), int(config["batch_size"])
    val = data.val[size]
    kept = _Kept(reason=plan.reason)
    if checkpoint_dir:
        kept.core, kept.source = load_core(checkpoint_dir), FinalSource.BEST_TRIAL
        kept.best_epoch = plan.best.best_epoch if plan.best else 0
    if plan.retrain:
        out = _retrain(config, data, settings, plan, checkpoint_dir, on_epoch)
        _keep_better(kept, out, plan, val, bs, settings.metric)
    assert kept.core is not None and kept.source is not None
    with tempfile.TemporaryDirectory(prefix="hyperfcn-final-") as d:
        path = Path(d, "model.keras")
        as_float32(kept.core).save(path)  # the same file on any machine, whatever trained it
        blob = path.read_bytes()
        loaded = keras.saving.load_model(path, safe_mode=True)
        checked, probs = _score(loaded, val, bs)
    return FinalModel(
        model=blob, source=kept.source, reason=kept.reason, checked=checked,
        compared=_on_sample(checked, probs, val),
        sha256=hashlib.sha256(blob).hexdigest(), history=kept.history,
        best_epoch=kept.best_epoch, val_probs=probs, val_labels=labels_of(val),
        # position of each prediction in the validation file list (bucket order)
        val_order=[int(i) for b in val.buckets for i in b.index], seconds=time.time() - t0,
        start_epoch=kept.start_epoch)


@dataclass
class _Kept:
    """The model the final step keeps so far, and why."""

    reason: str
    core: keras.Model | None = None
    source: FinalSource | None = None
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    start_epoch: int = 0


def _retrain(config: dict[str, Any], data: TrialData, settings: TrialSettings,
             plan: FinalPlan, checkpoint_dir: str | None,
             on_epoch: Callable[[dict], None] | None) -> TrialOutcome:
    """The planned retrain (or continuation, or train+val refit): its TrialOutcome."""

    s = dataclasses.replace(settings, min_epochs=plan.min_epochs,
                            max_epochs=plan.max_epochs or settings.max_epochs,
                            init_from=checkpoint_dir if plan.resume else None,
                            fit_until=plan.deadline if plan.resume else settings.fit_until,
                            stop_after=plan.epochs if plan.train_val else None,
                            patience=None if plan.train_val else settings.patience)
    rep = LocalReporter(on_epoch=on_epoch, deadline=plan.deadline)
    size = int(config["image_size"])
    return run_trial(config, merged(data, size) if plan.train_val else data, s, rep)


def _keep_better(kept: _Kept, out: TrialOutcome, plan: FinalPlan, val: Packed, bs: int,
                 metric: str) -> None:
    """Keep the retrain's model where it is the model: a train+val refit that ran its
    epochs, or a retrain that scores better on validation than the weights kept so far."""
    if plan.train_val:
        if len(out.history) >= (plan.epochs or 0) or kept.core is None:
            kept.core, kept.source, kept.history = out.model, FinalSource.TRAIN_VAL, out.history
            kept.best_epoch = len(out.history)
        else:
            kept.reason += (f"; stopped by the budget after {len(out.history)} of "
                            f"{plan.epochs} epochs, so the best trial's weights were kept")
        return
    if not out.best and kept.core is not None:
        kept.reason += ("; the budget ended before the retrain's first epoch, so the best "
                        "trial's weights were kept")
    elif kept.core is None or Objective(metric).better(  # on the images epochs are scored on
            out.best[metric], _score(kept.core, val, bs, scoring_rows(val))[0][metric]):
        if kept.core is not None:
            kept.reason += f"; the retrain scored better ({metric} {out.best[metric]:.4f})"
        kept.core, kept.source, kept.history = out.model, FinalSource.RETRAIN, out.history
        kept.best_epoch = int(out.best.get("epoch", 0))
        if plan.resume and plan.best is not None:
            kept.start_epoch = plan.best.best_epoch
    else:
        kept.reason += (f"; the retrain scored worse ({metric} {out.best[metric]:.4f} at "
                        f"epoch {out.best.get('epoch')}), so the best trial's weights were kept")


def preview_png(config: dict[str, Any], val: Packed, seed: int) -> bytes | None:
    """PNG of the best config's augmentation on up to 8 validation images, one per class
    first, from the largest bucket (one shape, so they stack)."""

    from .augment import preview_grid  # Keras: loaded only where a model is needed

    try:
        bucket = max(val.buckets, key=lambda b: len(b.y))
        picks: list[int] = []
        for cls in dict.fromkeys(int(c) for c in bucket.y):
            picks.append(next(i for i, c in enumerate(bucket.y) if int(c) == cls))
        picks += [i for i in range(len(bucket.y)) if i not in picks]
        grid = preview_grid(ModelConfig.from_dict(config), bucket.x[sorted(picks[:8])],
                            seed=seed)
        im = Image.fromarray(grid)
        scale = max(1, 96 // int(bucket.x.shape[1]))  # small sizes stay visible
        if scale > 1:
            im = im.resize((im.width * scale, im.height * scale), Image.NEAREST)
        buf = io.BytesIO()
        im.save(buf, format="PNG")
        return buf.getvalue()
    except Exception as e:  # a preview must never cost the trained model
        log.warning("augmentation preview failed: %s", e)
        return None


def shortfall(checked: Mapping[str, float], best: Mapping[str, float] | None,
              metric: str) -> str | None:
    """A warning when the saved model scores clearly worse than the best trial did."""
    if not best or metric not in best:
        return None
    got, want = checked[metric], best[metric]
    if Objective(metric).mode == "min":
        bad = got > want + max(0.01, LOSS_RISE * want)
    else:
        bad = got < want - ACCURACY_DROP
    if not bad:
        return None
    return (f"the saved model scores {metric} {got:.4f} on validation, worse than the best "
            f"trial's {want:.4f}; the search found a better model than the one saved")


def near_chance(accuracy: float | None, labels: np.ndarray, classes: list[str],
                fix: str) -> str | None:
    """A warning when the saved model's validation accuracy is within NEAR_CHANCE of
    guessing, saying what guessing scores here and ``fix``, what to do instead."""

    n = len(labels)
    if accuracy is None or not n or len(classes) < 2:
        return None
    counts = np.bincount(np.asarray(labels, dtype=int), minlength=len(classes))
    top = int(counts.argmax())
    majority, chance = counts[top] / n, 1.0 / len(classes)
    guess = max(chance, majority)
    if accuracy >= guess + NEAR_CHANCE * (1.0 - guess):
        return None
    how = (f"always answering {classes[top]!r} scores {majority:.3f}" if majority > chance
           else f"guessing among {len(classes)} classes scores {chance:.3f}")
    return (f"the saved model is no better than guessing: val_accuracy {accuracy:.3f}, "
            f"where {how} on these {n} validation images. It did not train long enough to "
            f"learn (or the data has no learnable signal); {fix}")


def fix_hint(run_dir: Path, searched: bool) -> str:
    """What to do about a model no better than guessing, for `tune` or `train`."""
    if searched:  # spelled as the user ran hyperfcn, so that it runs as printed
        train = command(["train", "DATA", "--config", str(run_dir / "best_config.json"),
                         "--budget", "10m"])
        return f"give a longer --budget, or train its configuration for a set time: {train}"
    return "give it a longer --budget, or more --max-epochs"


# ---------------------------------------------------------------- on the driver

def best_usable(records: list[TrialRecord], metric: str, run_dir: Path,
                recorded: str | None = None, too_short: str | None = None) -> TrialRecord:
    """The trial whose config ships: the one a resumed final step ``recorded``, else the
    best on ``metric`` (the first, on a tie). No usable trial is refused: with
    ``too_short`` (what a budget too short for one epoch says) where no trial failed,
    else with the most common failure."""
    usable = [r for r in records if r.status != "failed" and r.best_val_loss is not None]
    if not usable and too_short is not None and not any(r.error for r in records):
        raise UserError(too_short)
    if not usable:
        reasons = collections.Counter(r.error or "no result" for r in records)
        reason, n = reasons.most_common(1)[0] if reasons else ("no trials ran", 0)
        raise SearchFailed(f"every trial failed ({n} of {len(records)}: {reason}); "
                           f"see {run_dir / art.TRIALS}")
    chosen = [r for r in usable if r.trial_id == recorded]
    if chosen:
        return chosen[0]
    raced = [r for r in usable if r.race_epochs]
    winner = race_winner(raced, metric)[0] if raced else None
    return _best_of([r for r in usable if not r.race_epochs or r is winner], metric)


def _best_of(records: list[TrialRecord], metric: str) -> TrialRecord:
    """The best on ``metric`` (the first, on a tie)."""
    objective = Objective(metric)
    best = records[0]
    for r in records[1:]:
        if objective.better(objective.best_value(r.history),
                            objective.best_value(best.history)):
            best = r
    return best


def race_record(records: list[TrialRecord], found: Sequence[Variant],
                metric: str) -> dict[str, Any] | None:
    """What the race ran and decided, for search.json and the report (None: no race)."""
    raced = [r for r in records if r.race_epochs and r.status != "failed"
             and r.best_val_loss is not None]
    if not raced:
        return None
    winner, why = race_winner(raced, metric)

    def row(r: TrialRecord) -> dict[str, Any]:
        b = best_within(r.history, metric, r.race_epochs) or {}
        name = "recipe" if any(h.get("race_epochs") for h in r.history) else next(
            (v.name for v in found if is_recipe(r.config, [v.point])), "?")
        return {"racer": name, "trial_id": r.trial_id, metric: b.get(metric),
                "se": standard_error(b, metric), "val_accuracy": b.get("val_accuracy")}

    return {"epochs": max(r.race_epochs for r in raced), "metric": metric,
            "racers": [row(r) for r in raced], "winner": winner.trial_id, "why": why}


def race_winner(raced: list[TrialRecord], metric: str) -> tuple[TrialRecord, str]:
    """The race's winner and why (race.py): the recipe unless the best of its variants
    beats it at equal epochs by more than the validation set's noise. The recipe is the
    racer that reported the race's length (it decided the race)."""
    best = _best_of(raced, metric)
    recipe = next((r for r in raced if any(h.get("race_epochs") for h in r.history)), None)
    if recipe is None:
        return best, f"the recipe has no score; trial {best.trial_id} scored best"
    if best is recipe:
        return recipe, f"the recipe (trial {recipe.trial_id}) scored best"
    wins, why = judge(recipe.history, best.history, metric)
    if wins:
        return best, f"trial {best.trial_id} beat the recipe by more than the noise: {why}"
    return recipe, (f"the recipe (trial {recipe.trial_id}) stays: the lead of trial "
                    f"{best.trial_id} is within the noise: {why}")


def best_trial_of(r: TrialRecord, metric: str, mode: str, max_epochs: int) -> BestTrial:
    """The search's best trial as the final step sees it."""
    best = Objective(metric).best(r.history) or {
        "epoch": r.epochs, "val_loss": r.best_val_loss, "val_accuracy": r.best_val_accuracy}
    fitted = fitted_epochs(r.history)
    # a racer stopped at the race's end, mid-schedule: trained on for any epochs that fit
    cut = "" if r.epochs >= (fitted or max_epochs) else "the race" if r.race_epochs else {
        "stopped": "the scheduler", "out_of_budget": "the budget"}.get(r.status, r.status)
    secs = [h["epoch_seconds"] for h in r.history if h.get("epoch_seconds")]
    return BestTrial(trial_id=r.trial_id, epochs=r.epochs, best=dict(best),
                     checkpoint=r.checkpoint or None, cut_by=cut,
                     epoch_seconds=statistics.median(secs) if secs else None,
                     two_stage=is_two_stage(r.config), fitted=fitted)


def is_two_stage(config: Mapping[str, Any]) -> bool:
    """A trial config (a dict) whose backbone is fine-tuned in two stages: its weights are
    not trained on."""
    keys = ("backbone", "fine_tune")
    return ModelConfig(**{k: config[k] for k in keys if k in config}).two_stage


def _final_text(out: FinalModel, best: BestTrial | None, metric: str) -> str:
    c = out.checked
    text = (f"saved model: val_accuracy {c['val_accuracy']:.4f}, val_loss "
            f"{c['val_loss']:.4f} (loaded back from the file and scored")
    if out.source == "train+val":
        text = (f"saved model: fitted on train+val, so it has no held-out score; the best "
                f"trial scored val_accuracy {best.best.get('val_accuracy', float('nan')):.4f}"
                f" (the file was loaded back and checked")
    elif best is not None:
        text += (f"; best trial {best.trial_id} at epoch {best.best_epoch}: val_accuracy "
                 f"{best.best.get('val_accuracy', float('nan')):.4f}, val_loss "
                 f"{best.best.get('val_loss', float('nan')):.4f}")
        if len(out.val_labels) > VAL_IMAGES:
            text += f", on {VAL_IMAGES:,} of the {len(out.val_labels):,} validation images"
    return text + ")"


def _val_predictions(out: FinalModel, summary: DataSummary) -> list[dict[str, Any]]:
    classes = summary.classes
    rows = []
    probs = out.val_probs
    for j, pos in enumerate(out.val_order):
        pred = int(probs[j].argmax())
        true = int(out.val_labels[j])
        rows.append({"path": summary.val_files[pos], "label": classes[true],
                     "predicted": classes[pred], "confidence": round(float(probs[j, pred]), 5),
                     "p_label": round(float(probs[j, true]), 5)})
    return rows


def _log_final_tb(run_dir: Path, config: dict[str, Any], out: FinalModel) -> None:
    from .tb import HParamsLog  # TensorBoard, only when writing HParams

    tb = HParamsLog(run_dir / art.TENSORBOARD)
    tb.start("final", config, group="final")
    for h in out.history:
        tb.scalars("final", out.start_epoch + int(h["epoch"]),
                   {k: v for k, v in h.items() if k != "epoch"})
    tb.end("final", "ok")


def earlier_model_better(run_dir: Path, out: FinalModel, metric: str) -> str | None:
    """Why the model an earlier round saved in RUN_DIR stays (it scores at least as well on
    the validation set as ``out``), or None when ``out`` is to be saved. Both scores are
    files loaded back and scored on every validation image of the same data; a model
    fitted on train+val has no held-out score, and a new one replaces it."""

    try:
        before = art.read_json(run_dir / art.METRICS)["final"]
        old = before["checked"]
    except (OSError, ValueError, KeyError, TypeError):
        return None  # no earlier model, or one from a run that never finished writing
    if (not (run_dir / art.MODEL).is_file() or not before.get("held_out")
            or out.source == FinalSource.TRAIN_VAL):
        return None
    key = metric if metric in old and metric in out.checked else "val_loss"
    if key not in old or Objective(key).better(out.checked[key], old[key]):
        return None
    return (f"kept the model saved before: it scores {key} {old[key]:.4f} on validation, "
            f"this round's {out.checked[key]:.4f} ({out.source}); {run_dir / art.MODEL} "
            f"is unchanged")


def write_files(run_dir: Path, config: dict[str, Any], out: FinalModel, summary: DataSummary,
                say: Callable[[str], None], extra_metrics: dict[str, Any],
                best: BestTrial | None = None, metric: str = "val_loss",
                test_dir: Path | None = None) -> dict[str, Any]:
    """Write the final model and everything that describes it, each file atomically; then
    score the saved file on ``test_dir``, if given."""

    classes = summary.classes
    rep = classification_report(out.val_probs, out.val_labels, classes)
    held_out = out.source != "train+val"
    warnings = [w for w in (
        shortfall(out.compared or out.checked, best.best if best else None, metric)
        if held_out else None,
        near_chance(out.checked.get("val_accuracy"), out.val_labels, classes,
                    fix_hint(run_dir, best is not None)) if held_out else None) if w]
    warning = "; ".join(warnings) or None
    metrics = {"val_accuracy": rep["accuracy"] if held_out else None,
               "val_loss": rep["loss"] if held_out else None,
               "best_epoch": out.best_epoch, "epochs_run": len(out.history),
               "train_seconds": round(out.seconds, 1), "history": out.history,
               "validation": rep if held_out else None,
               "final": {"source": str(out.source), "reason": out.reason,
                         "start_epoch": out.start_epoch,
                         "held_out": held_out, "checked": out.checked, "sha256": out.sha256,
                         "warning": warning,
                         "note": optimism_note(run_dir, best is not None)
                         if held_out and test_dir is None else None,
                         "best_trial": None if best is None else {
                             "trial_id": best.trial_id, "epoch": best.best_epoch,
                             "epochs": best.epochs,
                             **{k: best.best.get(k) for k in ("val_loss", "val_accuracy")}}},
               "test_accuracy": None, "test_loss": None, "test": None,
               **extra_metrics}
    # The model last: a run dir with model.keras is complete.
    art.write_json(run_dir / art.CLASSES, classes)
    art.write_json(run_dir / art.BEST_CONFIG, config)
    art.write_json(run_dir / art.METRICS, metrics)
    if summary.val_files and held_out:
        art.write_csv(run_dir / art.VAL_PREDICTIONS, _val_predictions(out, summary), ["path"])
    if out.augment_preview:
        art.write_bytes(run_dir / art.AUGMENT_PREVIEW, out.augment_preview)
    art.write_bytes(run_dir / art.MODEL, out.model)
    if hashlib.sha256((run_dir / art.MODEL).read_bytes()).hexdigest() != out.sha256:
        warnings.append(f"{run_dir / art.MODEL} does not hold the bytes that were checked")
        warning = metrics["final"]["warning"] = "; ".join(warnings)
        art.write_json(run_dir / art.METRICS, metrics)  # the warning is the run's record
    _log_final_tb(run_dir, config, out)
    _say_final(say, rep if held_out else None, _final_text(out, best, metric),
               add_test_score(run_dir, test_dir, metrics), metrics["final"])
    return metrics


def _say_final(say: Callable[[str], None], rep: dict[str, Any] | None, text: str,
               test_text: str | None, final: dict[str, Any]) -> None:
    """The saved model's report, its line, its note, and a warning on stderr."""

    if rep is not None:
        say(format_report(rep))
    say(text + (f"; {test_text}" if test_text else ""))
    if final["note"]:
        say(f"note: {final['note']}")
    if final["warning"]:
        print(f"hyperfcn: warning: {final['warning']}", file=sys.stderr, flush=True)
