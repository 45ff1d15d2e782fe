"""--searcher bohb: the space as ConfigSpace sees it (conditionals included), BOHB's configs
back as hyperfcn's flat ones, the recipe tried first, and its own HyperBand."""

import pytest

from hyperfcn.config import ModelConfig
from hyperfcn.errors import UserError
from hyperfcn.options import TuneOptions
from hyperfcn.space import load_space
from hyperfcn.tuning.bohb import config_space, decode, encode, make_bohb
from hyperfcn.tuning.scheduler import make_scheduler, plan_scheduler

pytest.importorskip("ConfigSpace")
pytest.importorskip("hpbandster")


def test_every_configuration_bohb_samples_is_a_valid_flat_config():
    space = load_space(None)
    cs = config_space(space, seed=0)
    searched = [p for p in space.walk() if type(p).__name__ != "Constant"]
    assert len(list(cs.values())) == len(searched)
    seen_wd = set()
    for c in cs.sample_configuration(50):
        cfg = decode(space, dict(c))
        ModelConfig.from_dict(cfg)  # valid, constants included
        assert all(space.get(k).contains(v) for k, v in cfg.items())
        assert ("weight_decay" in cfg) == (cfg["optimizer"] == "adamw")
        seen_wd.add(cfg["optimizer"])
    assert seen_wd == {"adam", "adamw", "sgd"}


def test_the_recipe_goes_to_bohb_and_comes_back_unchanged():
    space = load_space(None)
    for point in space.points:
        enc = encode(space, point)
        assert all(isinstance(v, str) for k, v in enc.items()
                   if type(space.get(k)).__name__ in ("Choice", "Conditional"))
        assert {k: v for k, v in decode(space, enc).items()} == {
            **{p.name: p.value for p in space.active(point)
               if type(p).__name__ == "Constant"}, **point}


def test_bohb_suggests_the_recipe_first_then_flat_configs():
    space = load_space(None)
    searcher = make_bohb(space, "val_loss", "min", 0, [dict(space.points[0])])
    first = searcher.suggest("t1")
    assert {k: first[k] for k in space.points[0]} == dict(space.points[0])
    ModelConfig.from_dict(searcher.suggest("t2"))


def test_bohb_runs_with_its_own_hyperband_and_refuses_another_scheduler():
    assert TuneOptions(data=".", searcher="bohb").scheduler == "hyperband"
    assert TuneOptions(data=".").scheduler == "asha"
    with pytest.raises(UserError, match=r"--scheduler asha: --searcher bohb runs with its own"):
        TuneOptions(data=".", searcher="bohb", scheduler="asha")
    sched = make_scheduler(plan_scheduler("bohb", 9), "val_loss", "min")
    assert type(sched).__name__ == "HyperBandForBOHB"


def test_a_bohb_searcher_pickles_as_a_restored_search_needs():
    import pickle

    space = load_space(None)
    again = pickle.loads(pickle.dumps(make_bohb(space, "val_loss", "min", 0, None)))
    ModelConfig.from_dict(again.suggest("t1"))
