"""A search's rounds and records: resume, extend, and what a resumed trial reports again."""

from pathlib import Path

import pytest

from hyperfcn import records  # noqa: E402
from hyperfcn.config import ModelConfig

KEYS = ModelConfig.keys()


def test_a_resumed_trials_redone_epochs_replace_its_first_reports(tmp_path):
    import json

    lines = [{"epoch": 1, "val_loss": 1.0}, {"epoch": 2, "val_loss": 0.9},
             {"epoch": 2, "val_loss": 0.8}, {"epoch": 3, "val_loss": 0.7}]
    (tmp_path / "result.json").write_text("\n".join(json.dumps(r) for r in lines) + "\n")
    hist = records.read_history(tmp_path)
    assert [(h["epoch"], h["val_loss"]) for h in hist] == [(1, 1.0), (2, 0.8), (3, 0.7)]


def test_plan_round_new_resume_extend_and_refusals(tmp_path):
    from hyperfcn import artifacts as art
    from hyperfcn.errors import UserError
    from hyperfcn.rounds import plan_round

    def exists(*names):
        return lambda n: n in names

    assert plan_round(tmp_path, False, 5, None, exists()).name == "tune"
    with pytest.raises(UserError, match="no search to resume"):
        plan_round(tmp_path, True, 5, None, exists())
    with pytest.raises(UserError, match="holds an interrupted search; add --resume"):
        plan_round(tmp_path, False, 5, None, exists("tune"))
    r = plan_round(tmp_path, True, None, None, exists("tune"))
    assert r.restore and r.name == "tune"
    art.write_json(tmp_path / art.TRIALS_JSON, [
        {"trial_id": "a", "config": {"learning_rate": 0.1}, "status": "completed",
         "best_val_loss": 0.5, "search": "tune"}] * 4)
    art.write_json(tmp_path / art.SEARCH, {"rounds": ["tune"]})
    with pytest.raises(UserError, match="holds a finished search; use a new --out, or "
                                        "--resume with a larger --samples"):
        plan_round(tmp_path, False, 5, None, exists("tune"))
    with pytest.raises(UserError, match="finished with 4 trials; to extend it, give "
                                        "--samples larger than 4"):
        plan_round(tmp_path, True, 4, None, exists("tune"))
    r = plan_round(tmp_path, True, 6, None, exists("tune"))
    assert (r.name, r.restore, r.samples, len(r.earlier)) == ("tune-2", False, 2, 4)
    r = plan_round(tmp_path, True, None, 600.0, exists("tune", "tune-2"))
    assert r.restore and r.name == "tune-2"  # round 2 was interrupted: continue it
    assert len(r.earlier) == 4


def test_a_round_whose_final_step_was_interrupted_resumes_that_step_alone(tmp_path):
    """search.json says the search finished and the model is still to make: --resume
    makes it (no trial runs again), and without --resume the refusal says so."""
    from hyperfcn import artifacts as art
    from hyperfcn.errors import UserError
    from hyperfcn.rounds import plan_round

    art.write_json(tmp_path / art.TRIALS_JSON, [
        {"trial_id": "a", "config": {}, "status": "completed", "best_val_loss": 0.5,
         "search": "tune"}] * 3)
    art.write_json(tmp_path / art.SEARCH, {"rounds": ["tune"], "best_trial": "a",
                                           "final_step": "pending"})
    r = plan_round(tmp_path, True, None, None, lambda n: n == "tune")
    assert r.final_only and not r.restore and r.name == "tune" and len(r.earlier) == 3
    with pytest.raises(UserError, match="final model was not saved .interrupted.; add "
                                        "--resume to make it .no trial runs again."):
        plan_round(tmp_path, False, None, None, lambda n: n == "tune")
    art.write_json(tmp_path / art.SEARCH, {"rounds": ["tune"], "final_step": "done"})
    with pytest.raises(UserError, match="finished with 3 trials; to extend it"):
        plan_round(tmp_path, True, None, None, lambda n: n == "tune")


def test_a_round_on_another_space_starts_its_searcher_from_the_trials_that_fit_it():
    """A trial of an earlier round whose config the new `--space` cannot hold (here a
    fixed key set otherwise) is left out of the searcher's start, and said; the final
    model may still be it, so its image size is prepared."""
    from hyperfcn.rounds import evaluated, image_sizes
    from hyperfcn.space import load_space

    space = load_space(known_keys=KEYS)
    fits = space.validate_point(space.defaults)
    other = {**fits, "max_filters": 32, "image_size": 48}
    records = [{"trial_id": "a", "config": fits, "best_val_loss": 0.5, "status": "completed"},
               {"trial_id": "b", "config": other, "best_val_loss": 0.4, "status": "stopped"},
               {"trial_id": "c", "config": fits, "best_val_loss": None, "status": "failed"}]
    kept, said = evaluated(records, "val_loss", space)
    assert kept == [(fits, 0.5)]
    assert said.startswith("1 of 2 earlier trials lie outside this round's space")
    assert "trial b.image_size=48 is outside" in said and "starts from the other 1" in said
    assert evaluated(records[:1], "val_loss", space) == ([(fits, 0.5)], None)
    assert image_sizes([64], records) == sorted({64, 48, fits["image_size"]})


def test_the_best_of_a_trial_on_the_calibrated_loss_comes_from_its_history():
    from hyperfcn.final import best_usable

    hist = [{"epoch": 1, "val_loss": 0.2, "val_calibrated_loss": 0.05, "val_accuracy": 0.9},
            {"epoch": 2, "val_loss": 0.1, "val_calibrated_loss": 0.08, "val_accuracy": 0.8}]
    other = [{"epoch": 1, "val_loss": 0.09, "val_calibrated_loss": 0.06, "val_accuracy": 0.85}]
    r = records.record("t", {}, records.TrialStatus.COMPLETED, hist)
    o = records.record("o", {}, records.TrialStatus.COMPLETED, other)
    assert best_usable([o, r], "val_loss", Path(".")) is o
    assert best_usable([o, r], "val_accuracy", Path(".")) is r
    assert best_usable([o, r], "val_calibrated_loss", Path(".")) is r
    assert best_usable([o, r], "val_loss", Path("."), recorded="t") is r  # a resumed step


@pytest.mark.parametrize("history", [
    [{"epoch": 1, "val_loss": float("nan"), "val_accuracy": float("nan")},
     {"epoch": 2, "val_loss": 0.7, "val_accuracy": 0.6},
     {"epoch": 3, "val_loss": 0.5, "val_accuracy": 0.7}],
    [{"epoch": 1, "val_loss": 0.7, "val_accuracy": 0.6},
     {"epoch": 2, "val_loss": float("nan"), "val_accuracy": float("nan")},
     {"epoch": 3, "val_loss": 0.5, "val_accuracy": 0.7}],
    [{"epoch": 1, "val_loss": 0.5, "val_accuracy": 0.7},
     {"epoch": 2, "val_loss": 0.7, "val_accuracy": 0.6},
     {"epoch": 3, "val_loss": float("inf"), "val_accuracy": float("nan")}],
])
def test_a_trials_best_is_one_rule_wherever_a_nan_stands(history):
    """The record, the search's choice and the report agree: a diverged epoch (NaN) is
    never a trial's best, first, middle or last (min() kept a NaN that came first)."""
    from hyperfcn.final import best_usable
    from hyperfcn.records import Objective, TrialStatus, record
    from hyperfcn.reporting import best_of

    r = record("t", {}, TrialStatus.COMPLETED, history)
    assert (r.best_val_loss, r.best_val_accuracy) == (0.5, 0.7)
    worse = record("w", {}, TrialStatus.COMPLETED, [{"epoch": 1, "val_loss": 0.6,
                                                      "val_accuracy": 0.65}])
    assert best_usable([worse, r], "val_loss", Path(".")) is r
    assert best_usable([worse, r], "val_accuracy", Path(".")) is r
    assert best_of({"history": history}, "val_loss", "min") == 0.5
    assert Objective("val_loss").best(history)["val_accuracy"] == 0.7
    nans = [{"epoch": 1, "val_loss": float("nan")}]
    assert Objective("val_loss").best(nans) is None and record(
        "t", {}, TrialStatus.FAILED, nans).best_val_loss is None
