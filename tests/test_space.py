import random

import pytest
import yaml

from hyperfcn.config import ModelConfig
from hyperfcn.errors import SpaceError
from hyperfcn.space import Conditional, default_space_text, load_space, parse_space

KEYS = ModelConfig.keys()


def test_default_space_parses_and_defaults_are_a_valid_config():
    s = load_space(known_keys=KEYS)
    assert s.defaults is not None
    cfg = ModelConfig.from_dict(s.defaults)
    assert isinstance(cfg.rotation, bool) and cfg.rotation is True
    head = s.get("head")
    assert isinstance(head, Conditional) and set(head.keys) == {"dense", "conv"}
    lr = s.get("learning_rate")
    assert (lr.low, lr.high) == (1e-4, 1e-1)
    assert s.values_of("batch_size") == [8, 16, 32, 64]


def test_samples_are_valid_configs_with_real_booleans():
    s = load_space(known_keys=KEYS)
    rng = random.Random(1)
    for _ in range(200):
        c = s.sample(rng)
        ModelConfig.from_dict(c)
        for k in ("rotation", "zoom", "contrast", "brightness", "translation"):
            assert isinstance(c[k], bool)
        # a conditional child appears exactly when its option is on
        assert ("rotation_factor" in c) == c["rotation"]
        assert ("dense_units" in c) == (c["head"] == "dense")
        assert s.validate_point(c) == c


def test_printed_space_round_trips():
    data = yaml.safe_load(default_space_text())
    s = parse_space(data, "printed", KEYS)
    assert s.names() == load_space(known_keys=KEYS).names()


@pytest.mark.parametrize("params, words", [
    ({"nope": {"choice": [1, 2]}}, ["nope", "unknown key"]),
    ({"dropout": {"choice": []}}, ["dropout", "empty choice"]),
    ({"dropout": {"uniform": [0.5, 0.1]}}, ["dropout", "low 0.5 > high 0.1"]),
    ({"learning_rate": {"loguniform": [0.0, 0.1]}}, ["learning_rate", "0 < low"]),
    ({"learning_rate": {"loguniform": [-1, 0.1]}}, ["learning_rate", "low is -1"]),
    ({"dropout": {"uniform": ["a", 1]}}, ["dropout", "numbers"]),
    ({"dropout": {"normal": [0, 1]}}, ["dropout", "unknown distribution 'normal'"]),
    ({"blocks": {"randint": [2.5, 4]}}, ["blocks", "integers"]),
    ({"blocks": {"quniform": [1, 4, 0]}}, ["blocks", "q is 0"]),
    ({"head": {"choice": {"dense": 5}}}, ["head", "mapping"]),
    ({"dropout": None}, ["dropout", "empty value"]),
])
def test_bad_space_files_name_the_key_and_the_rule(params, words):
    with pytest.raises(SpaceError) as e:
        parse_space({"parameters": params}, "my.yaml", KEYS)
    msg = str(e.value)
    assert msg.startswith("my.yaml")
    for w in words:
        assert w in msg


def test_bad_defaults_are_refused():
    params = {"dropout": {"uniform": [0.0, 0.5]},
              "head": {"choice": {"dense": {"dense_units": {"choice": [64, 128]}},
                                  "conv": {}}}}
    with pytest.raises(SpaceError, match="outside uniform"):
        parse_space({"parameters": params, "defaults": {"dropout": 0.9, "head": "conv"}},
                    "s", KEYS)
    with pytest.raises(SpaceError, match="lacks 'dense_units'"):
        parse_space({"parameters": params, "defaults": {"dropout": 0.1, "head": "dense"}},
                    "s", KEYS)
    with pytest.raises(SpaceError, match="switch off"):
        parse_space({"parameters": params, "defaults": {"dropout": 0.1, "head": "conv",
                                                        "dense_units": 64}}, "s", KEYS)
    with pytest.raises(SpaceError, match="unknown top-level"):
        parse_space({"parameters": params, "defualts": {}}, "s", KEYS)


def test_string_boolean_is_not_a_boolean():
    params = {"rotation": {"choice": [True, False]}}
    with pytest.raises(SpaceError, match="outside"):
        parse_space({"parameters": params, "defaults": {"rotation": "True"}}, "s", KEYS)


def test_duplicate_nested_names_refused():
    params = {"head": {"choice": {"dense": {"dropout": 0.1}, "conv": {}}}, "dropout": 0.2}
    with pytest.raises(SpaceError, match="defined twice"):
        parse_space({"parameters": params}, "s", KEYS)


def test_missing_file_message(tmp_path):
    with pytest.raises(SpaceError, match="hyperfcn space"):
        load_space(tmp_path / "nope.yaml", KEYS)
    bad = tmp_path / "bad.yaml"
    bad.write_text("parameters: [unclosed")
    with pytest.raises(SpaceError, match="not valid YAML"):
        load_space(bad, KEYS)


def test_defaults_may_list_several_points():
    params = {"dropout": {"uniform": [0.0, 0.5]}, "blocks": {"randint": [2, 4]}}
    s = parse_space({"parameters": params,
                     "defaults": [{"dropout": 0.1, "blocks": 2}, {"dropout": 0.3, "blocks": 4}]},
                    "s", KEYS)
    assert [p["blocks"] for p in s.points] == [2, 4] and s.defaults["dropout"] == 0.1
    with pytest.raises(SpaceError, match=r"defaults\[1\]"):
        parse_space({"parameters": params,
                     "defaults": [{"dropout": 0.1, "blocks": 2}, {"dropout": 0.9, "blocks": 4}]},
                    "s", KEYS)
