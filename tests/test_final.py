"""The final model: never worse than the search's best trial, no pointless retrain, early
stopping that waits for what the search showed, and a check of the file that ships."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from hyperfcn import budget
from hyperfcn.budget import MAX_LONGER, end_search_for_longer, too_short_to_search
from hyperfcn.data.arrays import labels_of
from hyperfcn.feed import predict_packed
from hyperfcn.final import (
    BestTrial,
    FinalSource,
    load_core,
    make_final,
    merged,
    near_chance,
    plan_final,
    shortfall,
)
from hyperfcn.hints import command
from hyperfcn.metrics import score
from hyperfcn.precision import as_float32
from hyperfcn.trial import LocalReporter, TrialSettings, run_trial

CFG = {"image_size": 16, "batch_size": 4, "blocks": 2, "filters": 8, "dense_units": 16,
       "learning_rate": 0.01}

# The case from the field: a noisy start (epoch 1 best for three epochs), the best epoch
# late (8 of 10). Early stopping with patience 3 stops at epoch 4 and keeps epoch 1.
NOISY_LOSS = [0.7199, 0.7419, 0.8552, 0.8063, 0.70, 0.62, 0.58, 0.515, 0.52, 0.53]
NOISY_ACC = [0.458, 0.45, 0.47, 0.52, 0.60, 0.66, 0.70, 0.758, 0.75, 0.74]


class RayLikeReporter:
    """Keeps every checkpoint a trial saves, by the epoch it was saved at."""

    def __init__(self, root: Path):
        self.root, self.history, self.saved = root, [], {}

    def report(self, metrics, checkpoint_dir):
        self.history.append(metrics)
        if checkpoint_dir:
            dst = self.root / f"epoch{metrics['epoch']}"
            shutil.copytree(checkpoint_dir, dst)
            self.saved[metrics["epoch"]] = dst

    def restore_dir(self):
        import contextlib

        return contextlib.nullcontext(None)


def _score_with(monkeypatch, fake) -> None:
    """Every validation score the trial and the final model compute comes from ``fake``."""
    monkeypatch.setattr("hyperfcn.trial.score", fake)
    monkeypatch.setattr("hyperfcn.final.score", fake)


@pytest.fixture
def scripted(monkeypatch):
    """Validation scores follow NOISY_LOSS / NOISY_ACC, one value per scored epoch."""
    calls = iter(range(10_000))

    def fake(probs, labels):
        i = next(calls) % len(NOISY_LOSS)
        return {"val_loss": NOISY_LOSS[i], "val_accuracy": NOISY_ACC[i]}

    _score_with(monkeypatch, fake)
    return monkeypatch


def _real_score(core, data):
    """The score of ``core``'s weights in float32, the precision the saved file computes in:
    a checkpoint trained under mixed bfloat16 (a CPU with native bf16) scores differently
    in its own precision, by ~1e-3 in loss."""
    val = data.val[16]
    return score(predict_packed(as_float32(core), val, 4), labels_of(val))


def test_patience_alone_stops_the_noisy_run_at_epoch_4_and_keeps_epoch_1(tiny_data,
                                                                         scripted):
    out = run_trial(CFG, tiny_data, TrialSettings(max_epochs=10, patience=3),
                    LocalReporter())
    assert len(out.history) == 4 and out.best["epoch"] == 1  # what shipped before


def test_early_stopping_waits_for_the_epoch_the_search_reached(tiny_data, scripted):
    out = run_trial(CFG, tiny_data, TrialSettings(max_epochs=10, patience=3, min_epochs=8),
                    LocalReporter())
    assert len(out.history) == 10 and out.best["epoch"] == 8


def test_the_saved_model_is_the_best_trials_best_epoch(tiny_data, scripted, tmp_path):
    rep = RayLikeReporter(tmp_path / "ckpt")
    run_trial(CFG, tiny_data, TrialSettings(max_epochs=10, checkpoint_best=True), rep)
    # a checkpoint at every improving epoch, the best one included
    assert sorted(rep.saved) == [1, 5, 6, 7, 8]
    best = BestTrial("t1", epochs=10, best=rep.history[7], checkpoint=str(rep.saved[8]))
    plan = plan_final(best, 10)
    assert not plan.retrain and "trained all 10 epochs" in plan.reason
    scripted.undo()  # from here on, real scores
    want = _real_score(load_core(rep.saved[8]), tiny_data)
    final = make_final(CFG, tiny_data, TrialSettings(max_epochs=10, patience=3), plan,
                       str(rep.saved[8]))
    assert final.source == FinalSource.BEST_TRIAL and final.best_epoch == 8
    assert final.history == []  # nothing trained again
    assert final.checked == pytest.approx(want, abs=1e-6)
    # the bytes hold those weights: loaded back they score the same again
    path = tmp_path / "model.keras"
    path.write_bytes(final.model)
    import keras

    assert _real_score(keras.saving.load_model(path), tiny_data) == pytest.approx(want,
                                                                                  abs=1e-6)


def test_a_retrain_that_scores_worse_does_not_replace_the_best_trial(tiny_data, tmp_path,
                                                                     monkeypatch):
    rep = RayLikeReporter(tmp_path / "ckpt")
    run_trial(CFG, tiny_data, TrialSettings(max_epochs=2, checkpoint_best=True,
                                            checkpoint_every_s=0), rep)
    epoch = min(rep.saved)
    best = BestTrial("t1", epochs=1, best=rep.history[epoch - 1],
                     checkpoint=str(rep.saved[epoch]), cut_by="the scheduler")
    plan = plan_final(best, 3)
    assert plan.retrain and plan.min_epochs == 1 and "cut short by the scheduler" in plan.reason
    want = _real_score(load_core(rep.saved[epoch]), tiny_data)

    def worse(probs, labels):  # the retrain's own validation: always worse
        return {"val_loss": 99.0, "val_accuracy": 0.0}

    _score_with(monkeypatch, worse)
    final = make_final(CFG, tiny_data, TrialSettings(max_epochs=3, patience=3), plan,
                       str(rep.saved[epoch]))
    assert final.source == FinalSource.BEST_TRIAL
    assert "retrain scored worse" in final.reason and final.history == []
    monkeypatch.undo()
    path = tmp_path / "model.keras"
    path.write_bytes(final.model)
    import keras

    assert _real_score(keras.saving.load_model(path), tiny_data) == pytest.approx(want)


def test_train_val_fits_both_sets_for_the_epochs_where_the_best_trial_peaked(tiny_data,
                                                                             tmp_path):
    rep = RayLikeReporter(tmp_path / "ckpt")
    run_trial(CFG, tiny_data, TrialSettings(max_epochs=3, checkpoint_best=True), rep)
    e = max(rep.saved)
    best = BestTrial("t1", epochs=3, best=rep.history[e - 1], checkpoint=str(rep.saved[e]))
    plan = plan_final(best, 3, train_val=True)
    assert plan.train_val and plan.epochs == e
    final = make_final(CFG, tiny_data, TrialSettings(max_epochs=3, patience=1), plan,
                       str(rep.saved[e]))
    assert final.source == FinalSource.TRAIN_VAL and len(final.history) == e
    both = merged(tiny_data, 16).train[16]
    assert both.size == tiny_data.train[16].size + tiny_data.val[16].size


@pytest.mark.parametrize("best,kw,retrain,text", [
    (BestTrial("a", 10, {"epoch": 8}, "ck"), {}, False, "trained all 10 epochs"),
    (BestTrial("a", 3, {"epoch": 3}, "ck", "the scheduler", 10.0), {}, True,
     "cut short by the scheduler at epoch 3"),
    (BestTrial("a", 3, {"epoch": 3}, "ck", "the scheduler", 10.0, two_stage=True),
     {"time_left": 120.0}, True, "trained again for up to 10"),
    (BestTrial("a", 3, {"epoch": 3}, "ck", "the scheduler", 10.0), {"time_left": 120.0},
     True, "(~11 at the trial's speed, at most 1000)"),
    (BestTrial("a", 7, {"epoch": 7}, "ck", "the budget", 10.0), {"time_left": 15.0}, False,
     "no time left in the budget"),
    # weights cut mid-schedule train on for any epochs that fit
    (BestTrial("a", 7, {"epoch": 7}, "ck", "the budget", 10.0), {"time_left": 30.0}, True,
     "(~2 at the trial's speed"),
    # a recipe fitted to the search's end ran its planned epochs: it is the model
    (BestTrial("a", 3, {"epoch": 3}, "ck", "", 40.0, fitted=3), {"time_left": 300.0},
     False, "trained the 3 epochs it held, its learning rate decaying to 0"),
    (BestTrial("a", 10, {"epoch": 6}, "ck", "", 10.0), {"train_val": True}, True,
     "train+val for 6 epochs"),
    (BestTrial("a", 10, {"epoch": 6}, "ck", "", 10.0), {"train_val": True, "time_left": 20.0},
     False, "did not fit in the budget"),
    (BestTrial("a", 10, {"epoch": 6}, None), {}, True, "were not kept"),
])
def test_plan_final_retrains_only_when_it_buys_something(best, kw, retrain, text):
    plan = plan_final(best, 10, **kw)
    assert plan.retrain is retrain and text in plan.reason
    if plan.resume:
        assert plan.deadline is not None  # it times its own epochs to fit
    elif retrain and not kw.get("train_val") and best.checkpoint:
        assert plan.min_epochs == best.epochs  # early stopping waits for that epoch


@pytest.mark.parametrize("cut_by,two_stage,time_left,epochs,how", [
    # the best trial's weights train on: 400 s of 10 s epochs, one kept back for the compile
    ("", False, 400.0, 39, "as many epochs as fit"),
    ("the scheduler", False, 400.0, 39, "as many epochs as fit"),
    ("", False, 1e6, MAX_LONGER * 10, "as many epochs as fit"),  # capped
    ("", False, 60.0, 5, "as many epochs as fit"),  # half the trial's epochs: worth it
    ("", False, 50.0, 0, ""),  # 4 epochs: not worth a new learning-rate cycle
    ("", False, None, 0, ""),  # no budget, no time to train on
    # a two-stage backbone is trained again from the start, so only when clearly longer
    ("", True, 400.0, 39, "trained again for 39 epochs"),
    ("", True, 150.0, 0, ""),  # 14 epochs: not enough longer than the trial's 10
])
def test_a_budget_trains_the_best_trial_on_only_when_it_buys_enough_epochs(
        cut_by, two_stage, time_left, epochs, how):
    best = BestTrial("a", 10 if not cut_by else 3, {"epoch": 8}, "ck", cut_by, 10.0,
                     two_stage=two_stage)
    plan = plan_final(best, 10, time_left=time_left)
    assert plan.retrain is bool(epochs)
    if not epochs:
        return
    assert plan.checkpoint == "ck" and how in plan.reason
    assert "kept only if better" in plan.reason
    if two_stage:  # planned from the trial's epoch time
        assert not plan.resume and plan.max_epochs == plan.min_epochs == epochs
    else:  # timed by its own epochs, up to MAX_LONGER x the trials'
        assert plan.resume and plan.max_epochs == MAX_LONGER * 10
        assert f"~{epochs} at the trial's speed" in plan.reason


def test_the_search_ends_for_the_final_training_only_when_three_quarters_are_left_and_it_fits():
    # 1,000 s of search, 10 s epochs, trials of 10 epochs: a quarter is searched
    assert budget.LONGER_SHARE == 0.75
    assert not end_search_for_longer(200.0, 1000.0, 10.0, 10)  # 800 s left: search on
    assert end_search_for_longer(250.0, 1000.0, 10.0, 10)  # 750 s left: 74 epochs fit
    assert end_search_for_longer(250.0, 1000.0, 120.0, 10)  # 5 epochs to train on
    assert not end_search_for_longer(250.0, 1000.0, 130.0, 10)  # 4 epochs: not worth it
    # a two-stage leader is retrained from the start: 11 epochs are not worth it
    assert not end_search_for_longer(250.0, 1000.0, 60.0, 10, two_stage=True)
    assert end_search_for_longer(250.0, 1000.0, 10.0, 10, two_stage=True)
    assert not end_search_for_longer(900.0, 1000.0, None, 10)  # no epoch seen yet
    # a long search keeps back only what MAX_LONGER x the epochs need (as many as `train
    # --budget` trains)
    assert budget.MAX_LONGER * 10 == budget.TRAIN_BUDGET_MAX_EPOCHS
    assert not end_search_for_longer(50_000.0, 100_000.0, 10.0, 10)
    assert end_search_for_longer(100_000.0 - 10_010.0, 100_000.0, 10.0, 10)


def test_a_search_too_short_to_compare_configurations_ends_at_once_for_its_leader():
    # 1,800 s of search, three quarters of it kept for training on, trials of 10 epochs:
    # the 450 s left hold 3 trainings of epochs of at most 15 s
    assert too_short_to_search(1800.0, 16.0, 10) and not too_short_to_search(1800.0, 15.0, 10)
    # trials at once count: 2 slots hold twice the trainings
    assert not too_short_to_search(1800.0, 29.0, 10, slots=2)
    assert too_short_to_search(1800.0, 31.0, 10, slots=2)
    # too short: it ends with most of its time left, where it would otherwise search on
    assert not end_search_for_longer(100.0, 1800.0, 60.0, 10)
    assert end_search_for_longer(100.0, 1800.0, 60.0, 10, too_short=True)
    # ... whenever the time left buys the leader an epoch more (its weights would
    # otherwise stop at the learning rate the search left them at): 300 s left hold 4
    assert end_search_for_longer(1500.0, 1800.0, 60.0, 10, too_short=True)
    # ... and not when none fits (one epoch's time is kept back for the final step's start)
    assert not end_search_for_longer(1700.0, 1800.0, 60.0, 10, too_short=True)


def test_a_model_no_better_than_guessing_is_a_loud_warning_saying_what_to_do():
    classes = ["a", "b", "c", "d"]
    balanced = [0, 1, 2, 3] * 25
    # guessing scores 0.25; a tenth of the way to 1.0 is 0.325
    warn = near_chance(0.30, balanced, classes, "give a longer --budget")
    assert "no better than guessing: val_accuracy 0.300" in warn
    assert "guessing among 4 classes scores 0.250" in warn and "longer --budget" in warn
    assert near_chance(0.33, balanced, classes, "x") is None
    # unbalanced: always answering the common class is the bar
    skewed = [0] * 70 + [1, 2, 3] * 10
    warn = near_chance(0.72, skewed, classes, "x")
    assert "always answering 'a' scores 0.700 on these 100 validation images" in warn
    assert near_chance(0.75, skewed, classes, "x") is None
    assert near_chance(None, skewed, classes, "x") is None  # fitted on train+val


def test_a_longer_retrain_trains_its_own_epochs_on_its_own_schedule(tiny_data, tmp_path):
    import dataclasses

    rep = RayLikeReporter(tmp_path / "ckpt")
    run_trial(CFG, tiny_data, TrialSettings(max_epochs=2, checkpoint_best=True,
                                            checkpoint_every_s=0), rep)
    epoch = min(rep.saved)
    best = BestTrial("t1", epochs=2, best=rep.history[epoch - 1],
                     checkpoint=str(rep.saved[epoch]), epoch_seconds=1.0, two_stage=True)
    plan = plan_final(best, 2, time_left=5.5)
    assert plan.max_epochs == 4 and not plan.resume
    # the planned epochs, not this machine's speed against the 5.5 s deadline, are tested
    plan = dataclasses.replace(plan, deadline=None)
    # no checkpoint to beat, so the retrain is the model whatever it scores
    final = make_final(CFG, tiny_data, TrialSettings(max_epochs=2, patience=1), plan)
    assert final.source == FinalSource.RETRAIN
    assert len(final.history) == 4  # patience waits for the planned end


def test_training_on_starts_from_the_best_trials_weights_with_a_new_cycle(tiny_data,
                                                                          tmp_path):
    rep = RayLikeReporter(tmp_path / "ckpt")
    run_trial(CFG, tiny_data, TrialSettings(max_epochs=2, checkpoint_best=True,
                                            checkpoint_every_s=0), rep)
    ckpt = rep.saved[max(rep.saved)]
    # a learning rate too small to move the weights: what the run starts from shows
    still = {**CFG, "learning_rate": 1e-9, "batchnorm": False}
    run_trial(still, tiny_data, TrialSettings(max_epochs=2, checkpoint_best=True,
                                              checkpoint_every_s=0),
              RayLikeReporter(tmp_path / "still"))
    out = run_trial(still, tiny_data, TrialSettings(max_epochs=3, init_from=str(
        tmp_path / "still" / "epoch1")), LocalReporter())
    start = load_core(tmp_path / "still" / "epoch1").get_weights()
    assert len(out.history) == 3 and out.history[0]["epoch"] == 1
    assert all(np.allclose(a, b, atol=1e-5) for a, b in zip(out.model.get_weights(), start))
    fresh = run_trial(still, tiny_data, TrialSettings(max_epochs=1, seed=1), LocalReporter())
    assert not all(np.allclose(a, b, atol=1e-5)
                   for a, b in zip(fresh.model.get_weights(), start))
    # the final model's plan: train on from the best trial's checkpoint, for as many epochs
    # as fit (here all 2 x MAX_LONGER: far more time is left than they take)
    best = BestTrial("t1", epochs=2, best=rep.history[max(rep.saved) - 1],
                     checkpoint=str(ckpt), epoch_seconds=1.0)
    plan = plan_final(best, 2, time_left=1e4)
    assert plan.resume and plan.max_epochs == 2 * MAX_LONGER
    final = make_final(CFG, tiny_data, TrialSettings(max_epochs=2, patience=1), plan,
                       str(ckpt))
    if final.source == FinalSource.RETRAIN:  # early stopping waited for the planned end
        assert len(final.history) == 2 * MAX_LONGER and "as many epochs" in final.reason
        assert final.start_epoch == best.best_epoch  # its epochs follow the trial's
    else:
        assert final.source == FinalSource.BEST_TRIAL and "scored worse" in final.reason
    # never worse than the trial's own weights
    assert final.checked["val_loss"] <= _real_score(load_core(ckpt), tiny_data)[
        "val_loss"] + 1e-6


def test_a_shortfall_is_a_warning_and_noise_is_not():
    best = {"val_loss": 0.515, "val_accuracy": 0.758}
    assert shortfall({"val_loss": 0.52, "val_accuracy": 0.75}, best, "val_loss") is None
    warn = shortfall({"val_loss": 0.72, "val_accuracy": 0.458}, best, "val_loss")
    assert "0.7200" in warn and "0.5150" in warn
    assert shortfall({"val_loss": 0.5, "val_accuracy": 0.70}, best, "val_accuracy")
    assert shortfall({"val_loss": 0.5, "val_accuracy": 0.70}, None, "val_loss") is None


def test_checkpoint_state_names_the_epoch(tiny_data, tmp_path):
    rep = RayLikeReporter(tmp_path)
    run_trial(CFG, tiny_data, TrialSettings(max_epochs=2, checkpoint_best=True), rep)
    for epoch, d in rep.saved.items():
        assert json.loads((d / "state.json").read_text())["epoch"] == epoch
    assert np.isfinite(rep.history[-1]["val_loss"])


def test_a_retrain_the_budget_ends_before_its_first_epoch_keeps_the_trials_weights(
        tiny_data, tmp_path):
    import dataclasses
    import time

    rep = RayLikeReporter(tmp_path / "ckpt")
    run_trial(CFG, tiny_data, TrialSettings(max_epochs=1, checkpoint_best=True), rep)
    best = BestTrial("t1", epochs=1, best=rep.history[0], checkpoint=str(rep.saved[1]),
                     epoch_seconds=1.0)
    plan = dataclasses.replace(plan_final(best, 1, time_left=10.0), deadline=time.time() - 1)
    assert plan.resume
    final = make_final(CFG, tiny_data, TrialSettings(max_epochs=1, patience=1), plan,
                       str(rep.saved[1]))
    assert final.source == FinalSource.BEST_TRIAL and final.history == []
    assert "ended before the retrain's first epoch" in final.reason


def test_a_chance_level_model_is_saved_with_a_warning_in_its_files_and_on_stderr(tmp_path,
                                                                                 capsys):
    """A model that predicts the same for every image scores what guessing scores: the run
    still saves it, and says so in metrics.json and on stderr, with what to do."""
    import hashlib
    import types

    from hyperfcn.final import FinalModel, write_files

    labels = np.array([0, 1] * 10)
    probs = np.tile([[0.6, 0.4]], (20, 1))  # always "dark": half right
    out = FinalModel(model=b"model bytes", source=FinalSource.BEST_TRIAL, reason="r",
                     checked={"val_accuracy": 0.5, "val_loss": 0.69},
                     sha256=hashlib.sha256(b"model bytes").hexdigest(),
                     val_probs=probs, val_labels=labels, val_order=list(range(20)))
    summary = types.SimpleNamespace(classes=["dark", "light"], val_files=[])
    best = BestTrial("t1", 3, {"epoch": 1, "val_loss": 0.69, "val_accuracy": 0.5}, "ck")
    metrics = write_files(tmp_path, {"image_size": 16}, out, summary, lambda m: None, {},
                          best, "val_loss")
    saved = json.loads((tmp_path / "metrics.json").read_text())
    for warning in (metrics["final"]["warning"], saved["final"]["warning"],
                    capsys.readouterr().err):
        assert "no better than guessing: val_accuracy 0.500" in warning
        assert f"--config {tmp_path / 'best_config.json'} --budget" in warning
        assert f"{command(['train'])} DATA --config" in warning  # runs as printed


def test_a_recipe_that_ran_its_fitted_epochs_completed_and_is_promoted():
    """A trial that fitted itself to the search's end and ran its 3 planned epochs (of 10
    --max-epochs) completed: it is not 'out of budget', and the final step promotes it."""
    from hyperfcn.final import best_trial_of
    from hyperfcn.records import TrialStatus, record, status_of

    hist = [{"epoch": e, "val_loss": 1.0 / e, "val_accuracy": 0.3 * e, "epoch_seconds": 40.0,
             "planned_epochs": 3} for e in (1, 2, 3)]
    st = status_of(failed=False, ended=True, epochs=3, max_epochs=3, stopped_by_scheduler=False,
                   budget_can_cut=True)
    assert st == TrialStatus.COMPLETED
    best = best_trial_of(record("r", {}, st, hist, checkpoint="ck"), "val_loss", "min", 10)
    assert best.fitted == 3 and best.cut_by == "" and best.best_epoch == 3
    plan = plan_final(best, 10, time_left=20.0)
    assert not plan.retrain and plan.checkpoint == "ck" and "the 3 epochs it held" in plan.reason
    # cut before its planned end (the search's clock ran out first): cut by the budget
    cut = best_trial_of(record("r", {}, TrialStatus.OUT_OF_BUDGET, hist[:2], checkpoint="ck"),
                        "val_loss", "min", 10)
    assert cut.cut_by == "the budget"


def _saved(run, source, checked, held_out=True):
    from hyperfcn import artifacts as art

    art.write_bytes(run / art.MODEL, b"the model saved before")
    art.write_json(run / art.METRICS, {"final": {"source": source, "held_out": held_out,
                                                 "checked": checked}})


def test_a_later_round_keeps_the_better_model_an_earlier_round_saved(tmp_path):
    """Round 2 may promote the raw weights of round 1's best trial, which round 1 had
    trained on to a better model: the better file stays."""
    from hyperfcn.final import FinalModel, earlier_model_better

    def out(loss, source=FinalSource.BEST_TRIAL, acc=0.5):
        return FinalModel(model=b"", source=source, reason="", sha256="",
                          checked={"val_loss": loss, "val_accuracy": acc,
                                   "val_calibrated_loss": loss})

    assert earlier_model_better(tmp_path, out(0.4), "val_loss") is None  # nothing saved
    _saved(tmp_path, "retrain", {"val_loss": 0.30, "val_accuracy": 0.9})
    said = earlier_model_better(tmp_path, out(0.45), "val_loss")
    assert said and "kept the model saved before: it scores val_loss 0.3000" in said
    assert earlier_model_better(tmp_path, out(0.30), "val_loss")  # a tie keeps the file
    assert earlier_model_better(tmp_path, out(0.25), "val_loss") is None  # better: saved
    # judged by the search's metric where both files have it, else by the loss
    assert earlier_model_better(tmp_path, out(0.45, acc=0.95), "val_accuracy") is None
    assert earlier_model_better(tmp_path, out(0.25, acc=0.5), "val_accuracy")
    assert earlier_model_better(tmp_path, out(0.45), "val_calibrated_loss")  # by val_loss
    # a train+val model has no held-out score: a new one replaces it, and it replaces none
    assert earlier_model_better(tmp_path, out(0.9, FinalSource.TRAIN_VAL), "val_loss") is None
    _saved(tmp_path, "train+val", {"val_loss": 0.01}, held_out=False)
    assert earlier_model_better(tmp_path, out(0.45), "val_loss") is None


def test_a_model_file_that_does_not_hold_the_checked_bytes_is_recorded_in_metrics_json(
        tmp_path, capsys):
    """Without --test-dir too: metrics.json is the run's record of its warnings."""
    import types

    from hyperfcn.final import FinalModel, write_files

    labels = np.array([0, 1] * 10)
    probs = np.where(labels[:, None] == np.arange(2), 0.9, 0.1)
    out = FinalModel(model=b"model bytes", source=FinalSource.BEST_TRIAL, reason="r",
                     checked={"val_accuracy": 1.0, "val_loss": 0.1},
                     sha256="not the bytes' hash", val_probs=probs, val_labels=labels,
                     val_order=list(range(20)))
    summary = types.SimpleNamespace(classes=["dark", "light"], val_files=[])
    write_files(tmp_path, {"image_size": 16}, out, summary, lambda m: None, {}, None,
                "val_loss")
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert "does not hold the bytes that were checked" in saved["final"]["warning"]
    assert "does not hold the bytes" in capsys.readouterr().err
