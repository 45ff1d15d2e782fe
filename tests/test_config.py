import json

import pytest

from hyperfcn.config import ModelConfig, load_config
from hyperfcn.errors import SpaceError


def test_round_trip_and_int_like_floats():
    cfg = ModelConfig.from_dict({"blocks": 3.0, "batch_size": 16, "rotation": True})
    assert cfg.blocks == 3 and isinstance(cfg.blocks, int)
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize("key, value, words", [
    ("rotation", "True", ["rotation='True'", "real boolean"]),
    ("rotation", 1, ["rotation=1", "true or false"]),
    ("blocks", 2.5, ["blocks=2.5", "integer"]),
    ("blocks", 0, ["blocks=0", "1..8"]),
    ("learning_rate", "0.1", ["learning_rate='0.1'", "number"]),
    ("dropout", 1.5, ["dropout=1.5", "[0, 1)"]),
    ("head", "mlp", ["head='mlp'", "dense or conv"]),
    ("colour", 1, ["unknown key 'colour'"]),
])
def test_bad_values_echo_key_value_and_rule(key, value, words):
    with pytest.raises(SpaceError) as e:
        ModelConfig.from_dict({key: value}, "cfg.json")
    for w in words:
        assert w in str(e.value)
    assert str(e.value).startswith("cfg.json")


def test_load_config_errors(tmp_path):
    with pytest.raises(SpaceError, match="not found"):
        load_config(tmp_path / "x.json")
    p = tmp_path / "c.json"
    p.write_text("{not json")
    with pytest.raises(SpaceError, match="cannot parse"):
        load_config(p)
    p.write_text(json.dumps({"blocks": 2}))
    assert load_config(p).blocks == 2
