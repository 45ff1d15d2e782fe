"""The race (race.py, tuning/racing.py, budget.regime): which variants of the recipe race
it, how long, which trials the stopper stops, and who wins, on scripted times and curves."""

from pathlib import Path

import numpy as np
import pytest

from hyperfcn import race
from hyperfcn.budget import Regime, SearchClock, race_epochs, regime
from hyperfcn.config import ModelConfig
from hyperfcn.final import best_usable, race_record, race_winner
from hyperfcn.metrics import score
from hyperfcn.records import TrialRecord
from hyperfcn.space import load_space, parse_space
from hyperfcn.tuning.racing import Race


def _space():
    return load_space(None, known_keys=ModelConfig.keys())


def test_the_variant_is_the_next_larger_size_where_the_images_have_the_pixels():
    """Images of at least twice the recipe's size: the next larger searched size races the
    recipe, costed by its pixels, a valid point of the space. Smaller images, an unknown
    size, or a space with no larger size: nothing races."""
    space = _space()
    recipe = space.defaults
    assert race.variants(space, native=2 * recipe["image_size"] - 1) == ()
    (size,) = race.variants(space, native=2 * recipe["image_size"])
    assert (size.key, size.value) == ("image_size", 96)
    assert size.cost == pytest.approx((96 / 64) ** 2)
    assert size.point == {**recipe, "image_size": 96}
    assert race.variants(space, native=None) == ()
    raw = dict(space.raw)
    raw["parameters"] = {**raw["parameters"], "image_size": 64}
    fixed = parse_space(raw, "s.yaml", ModelConfig.keys())
    assert race.variants(fixed, native=1000) == ()
    assert "image_size=96" in race.race_text((size,))


def test_a_changed_choice_drops_the_options_it_switches_off():
    """rotation off: a valid point without the rotation's factor; a value the space cannot
    take: no point."""
    space = _space()
    off = race.changed(space, space.defaults, "rotation", False)
    assert off["rotation"] is False and "rotation_factor" not in off
    assert race.changed(space, space.defaults, "rotation", True) is None  # the recipe's
    assert race.changed(space, space.defaults, "image_size", 100) is None


def test_a_race_is_of_whole_trainings_in_a_quarter_of_the_search():
    """400 s of search, 10 s epochs, two variants of the recipe's cost: a quarter holds 3
    epochs of the three racers, a whole training at --max-epochs 3 and none at 10 (a
    shorter race judges how fast a configuration starts); two at once hold twice as many;
    a 128 px variant (4x the pixels), or variants that each spend 35 s compiling their
    first epoch, leave too little; no variant, no race."""
    assert race_epochs(400.0, 10.0, (1.0, 1.0), max_epochs=3) == 3
    assert race_epochs(400.0, 10.0, (1.0, 1.0), max_epochs=10) == 0
    assert race_epochs(400.0, 10.0, (1.0, 1.0), max_epochs=6, slots=2) == 6
    assert race_epochs(400.0, 10.0, (1.0, 4.0), max_epochs=3) == 0
    assert race_epochs(400.0, 10.0, (1.0, 1.0), max_epochs=3, startup_s=35.0) == 0
    assert race_epochs(800.0, 10.0, (1.0, 1.0), max_epochs=4, startup_s=35.0) == 4
    assert race_epochs(400.0, 10.0, (), max_epochs=3) == 0


@pytest.mark.parametrize("racers, seconds, expected", [
    ((1.0,), [10.0], (Regime.SEARCH, 0)),  # 100 s hold 3 trainings of 3 x 10 s
    ((), [45.0], (Regime.FIT, 0)),  # too short, nothing to race: fit at once
    ((1.0,), [45.0], (Regime.WAIT, 0)),  # too short: the next epoch times the race
    # 100 s less the variant's 35 s of compiling hold 3 epochs of two racers
    ((1.0,), [45.0, 10.0], (Regime.RACE, 3)),
    ((1.0,), [45.0, 30.0], (Regime.FIT, 0)),  # ... but not of 30 s
])
def test_the_regime_follows_from_the_recipes_first_epochs(racers, seconds, expected):
    clock = SearchClock(until=1e9, search_s=400.0, max_epochs=3, racers=racers)
    assert regime(clock, seconds) == expected


RECIPE = {"rotation": True, "flip": "horizontal"}
VARIANT = {"rotation": False, "flip": "horizontal"}


def test_the_stopper_runs_the_race_its_racers_only_and_ends_it():
    """Scripted results: the recipe's second epoch (10 s) decides a race of its 3 epochs.
    Each racer stops at its 3rd; any other trial stops at once; the searcher may suggest the
    racers only; once both ran their epochs the race is over. Where the recipe fits itself
    instead, the race has no say."""
    clock = SearchClock(until=1e9, search_s=400.0, max_epochs=3, racers=(1.0,))
    r = Race.of(clock, [RECIPE, VARIANT])
    assert r.pending and r.observe("a", RECIPE, {"epoch": 1, "epoch_seconds": 45.0}) is None
    assert r.pending and r.may_suggest(1)
    assert r.observe("a", RECIPE, {"epoch": 2, "epoch_seconds": 10.0}) is False
    assert not r.pending and r.epochs == 3 and r.may_suggest(1) and not r.may_suggest(2)
    assert r.observe("x", {"rotation": True, "flip": "none"}, {"epoch": 1}) is True
    assert r.observe("a", RECIPE, {"epoch": 3}) is True and not r.over
    assert r.observe("b", VARIANT, {"epoch": 2}) is False
    assert r.observe("b", VARIANT, {"epoch": 3}) is True and r.over
    fits = Race.of(clock, [RECIPE, VARIANT])
    for e, s in ((1, 45.0), (2, 30.0)):
        assert fits.observe("a", RECIPE, {"epoch": e, "epoch_seconds": s}) is None
    assert not fits.pending and not fits.epochs and fits.may_suggest(5)
    assert "1 variant (whole trainings, its second epoch timed at ~30 s) does not fit" in \
        fits.unraced() and r.unraced() == ""
    assert Race.of(SearchClock(until=1e9, search_s=400.0, max_epochs=3), [RECIPE]).observe(
        "a", RECIPE, {"epoch": 1, "epoch_seconds": 45.0}) is None


def _hist(losses, se=0.02, race_epochs=None):
    out = []
    for e, v in enumerate(losses, 1):
        h = {"epoch": e, "val_loss": v, "val_loss_se": se, "val_accuracy": 1 - v / 2}
        if race_epochs:
            h["race_epochs"] = race_epochs
        out.append(h)
    return out


def _rec(tid, config, hist, race_epochs=0):
    return TrialRecord(trial_id=tid, config=config, status="completed", epochs=len(hist),
                       best_val_loss=min(h["val_loss"] for h in hist),
                       best_val_accuracy=max(h["val_accuracy"] for h in hist), seconds=1.0,
                       history=hist, race_epochs=race_epochs)


@pytest.mark.parametrize("variant_loss, se, winner", [
    (0.55, 0.02, "recipe"),  # 0.05 better, 2 s.e. of the difference 0.057: a tie
    (0.50, 0.02, "variant"),  # 0.10 better: beyond the noise
    (0.55, 0.005, "variant"),  # the same 0.05 on a larger validation set
    (0.65, 0.02, "recipe"),  # worse
])
def test_a_variant_replaces_the_recipe_only_beyond_the_noise(tmp_path, variant_loss, se,
                                                             winner):
    recipe = _rec("recipe", RECIPE, _hist([0.9, 0.7, 0.6], se, race_epochs=3), 3)
    variant = _rec("variant", VARIANT, _hist([0.9, 0.8, variant_loss], se), 3)
    got, why = race_winner([recipe, variant], "val_loss")
    assert got.trial_id == winner
    assert ("stays" in why) == (winner == "recipe" and variant_loss < 0.6)
    assert best_usable([recipe, variant], "val_loss", Path(tmp_path)).trial_id == winner


def test_the_race_judges_at_equal_epochs_and_other_trials_compete_plainly(tmp_path):
    """A variant with more epochs than the recipe is judged on its first as many; a trial
    outside the race (the search after it) competes with the race's winner on the plain
    metric, as every trial did before races."""
    recipe = _rec("recipe", RECIPE, _hist([0.9, 0.6], race_epochs=2), 2)
    variant = _rec("variant", VARIANT, _hist([0.9, 0.62, 0.3]), 2)
    assert race_winner([recipe, variant], "val_loss")[0] is recipe
    other = _rec("other", {"rotation": True, "flip": "none"}, _hist([0.8, 0.58]))
    assert best_usable([recipe, variant, other], "val_loss", tmp_path).trial_id == "other"
    record = race_record([recipe, variant, other], [], "val_loss")
    assert record["winner"] == "recipe" and record["epochs"] == 2
    assert [r["racer"] for r in record["racers"]] == ["recipe", "?"]
    assert record["racers"][1]["val_loss"] == 0.62  # its best within the race's epochs


def test_every_score_comes_with_its_standard_error():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 400)
    probs = rng.dirichlet(np.ones(3), 400)
    s = score(probs, labels)
    p = np.clip(probs[np.arange(400), labels], 1e-7, 1)
    assert s["val_loss_se"] == pytest.approx(np.log(p).std(ddof=1) / 20)
    acc = s["val_accuracy"]
    assert s["val_accuracy_se"] == pytest.approx(np.sqrt(acc * (1 - acc) / 400))
    assert 0 < s["val_balanced_accuracy_se"] < 0.05
    assert s["val_calibrated_loss_se"] == s["val_loss_se"]
    assert np.isnan(score(probs[:1], labels[:1])["val_loss_se"])


def test_the_winner_trains_on_in_the_final_step_for_any_epochs_that_fit():
    """The race stops its racers mid-schedule, at their peak learning rate: the winner's
    weights train on, on a new learning-rate cycle, even when fewer epochs fit than a
    search's leader would be trained on for."""
    from hyperfcn.final import best_trial_of, plan_final

    hist = [{**h, "epoch_seconds": 10.0} for h in _hist([0.9, 0.7, 0.6], race_epochs=3)]
    winner = _rec("recipe", RECIPE, hist, race_epochs=3)
    winner.checkpoint = "/ckpt"
    bt = best_trial_of(winner, "val_loss", "min", max_epochs=10)
    assert bt.cut_by == "the race"
    plan = plan_final(bt, 10, time_left=35.0)  # 2 epochs fit, fewer than half of 10
    assert plan.retrain and plan.resume and plan.checkpoint == "/ckpt"
