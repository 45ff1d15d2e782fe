"""The searchers driven with scripted metrics: the space's recipe first, TPE after its
random starts, seeded. No training, no Ray cluster."""

import pytest

from hyperfcn.config import ModelConfig
from hyperfcn.space import load_space, parse_space
from hyperfcn.tuning import searchers  # noqa: E402

KEYS = ModelConfig.keys()


def _score(cfg):
    # A made-up objective: smaller lr distance from 3e-3 and conv head are "better".
    import math

    return abs(math.log(cfg["learning_rate"] / 3e-3)) + (0.0 if cfg["head"] == "conv" else 0.5)


def _drive(searcher, n):
    """n suggestions, each completed with its made-up score, in order."""
    out = []
    for i in range(n):
        c = searcher.suggest(str(i))
        out.append(c)
        searcher.on_trial_complete(str(i), {"val_loss": _score(c)})
    return out


@pytest.mark.parametrize("name", ["hyperopt", "random", "optuna"])
def test_initial_point_first_then_valid_flat_suggestions(name, deadline):
    deadline(60)
    space = load_space(known_keys=KEYS)
    s = searchers.make_searcher(name, space, "val_loss", "min", seed=3,
                             points=[dict(space.defaults)], n_initial_points=4)
    first = s.suggest("t0")
    assert first == space.defaults
    s.on_trial_complete("t0", {"val_loss": _score(first)})
    for i in range(1, 14):
        cfg = s.suggest(f"t{i}")
        assert space.validate_point(cfg) == cfg  # flat, values form, only active keys
        ModelConfig.from_dict(cfg)
        s.on_trial_complete(f"t{i}", {"val_loss": _score(cfg)})


@pytest.mark.parametrize("name", ["hyperopt", "random", "optuna"])
def test_a_searcher_saves_and_restores_mid_search_as_ray_checkpoints_it(name, tmp_path,
                                                                       deadline):
    """Ray saves the searcher with pickle at every experiment checkpoint: a searcher that
    cannot be pickled ends the search (Optuna's define-by-run function was a closure)."""
    deadline(60)
    space = load_space(known_keys=KEYS)
    s = searchers.make_searcher(name, space, "val_loss", "min", seed=3,
                                points=[dict(space.defaults)], n_initial_points=2)
    for i in range(3):
        cfg = s.suggest(f"t{i}")
        s.on_trial_complete(f"t{i}", {"val_loss": _score(cfg)})
    s.save(str(tmp_path / "searcher.pkl"))
    again = searchers.make_searcher(name, space, "val_loss", "min", seed=3,
                                    points=[dict(space.defaults)], n_initial_points=2)
    again.restore(str(tmp_path / "searcher.pkl"))
    cfg = again.suggest("t3")
    assert space.validate_point(cfg) == cfg


def test_nested_initial_point_with_conditional_choices_does_not_hang(deadline):
    """Ray 2.60's own HyperOptSearch hangs on exactly this; ours must not."""
    deadline(30)
    space = parse_space({
        "parameters": {
            "head": {"choice": {"dense": {"dense_units": {"choice": [64, 128]}},
                                "conv": {"conv_head_filters": {"choice": [32, 64]}}}},
            "rotation": {"choice": {True: {"rotation_factor": {"uniform": [0.0, 0.3]}},
                                    False: {}}},
            "learning_rate": {"loguniform": [1e-4, 1e-1]},
        },
        "defaults": {"head": "conv", "conv_head_filters": 64, "rotation": True,
                     "rotation_factor": 0.2, "learning_rate": 0.01},
    }, "nested", KEYS)
    points = [dict(space.defaults), {"head": "dense", "dense_units": 128, "rotation": False,
                                     "learning_rate": 0.001}]
    s = searchers.make_searcher("hyperopt", space, "val_loss", "min", 0, points, 2)
    got = [s.suggest("a"), s.suggest("b")]
    assert got == points  # in order, values form
    for i in range(len(got)):
        s.on_trial_complete("ab"[i], {"val_loss": float(i)})
    for i in range(10):  # TPE after the initial points, over the recorded nested docs
        cfg = s.suggest(f"n{i}")
        assert space.validate_point(cfg) == cfg
        s.on_trial_complete(f"n{i}", {"val_loss": 1.0})


@pytest.mark.parametrize("concurrency, samples, n", [
    (1, None, 4), (2, None, 4), (4, None, 8), (32, None, 20), (2, 6, 2), (1, 2, 1),
    (8, 30, 10)])
def test_random_starts_scale_with_concurrency_and_samples(concurrency, samples, n):
    assert searchers.random_starts(concurrency, samples) == n


def test_tpe_takes_over_after_the_random_starts():
    """The same seed draws the same random configs; TPE's first own pick differs."""
    space = load_space(known_keys=KEYS)

    def run(n_initial):
        return _drive(searchers.make_searcher("hyperopt", space, "val_loss", "min", 5,
                                           [dict(space.defaults)], n_initial), 4)

    early, late = run(1 + 2), run(1 + 8)
    assert early[:3] == late[:3]  # the defaults, then two random draws
    assert early[3] != late[3]  # TPE (a model of 3 results) against a 4th random draw


def test_seeded_searcher_is_reproducible():
    space = load_space(known_keys=KEYS)

    def run():
        return _drive(searchers.make_searcher("hyperopt", space, "val_loss", "min", 7, None, 3), 6)

    assert run() == run()


def test_tpe_moves_towards_better_region():
    """After the random start, TPE samples the good head more often than chance."""
    space = load_space(known_keys=KEYS)
    s = searchers.make_searcher("hyperopt", space, "val_loss", "min", 11, None, 8)
    heads = [c["head"] for c in _drive(s, 40)[20:]]
    assert heads.count("conv") > len(heads) / 2


def test_a_new_round_starts_from_the_earlier_rounds_results():
    """Extending a finished search (--resume with more samples): the new round's searcher
    models the earlier trials at once instead of drawing random starts again."""
    name = "hyperopt"
    space = load_space(known_keys=KEYS)
    earlier = _drive(searchers.make_searcher("random", space, "val_loss", "min", 3, None, 8), 30)
    evaluated = [(c, _score(c)) for c in earlier]
    s = searchers.make_searcher(name, space, "val_loss", "min", 4, None, 8, evaluated)
    heads = [c["head"] for c in _drive(s, 12)]
    cold = [c["head"] for c in _drive(
        searchers.make_searcher(name, space, "val_loss", "min", 4, None, 8), 12)]
    assert heads.count("conv") > cold.count("conv") and heads.count("conv") >= 9
