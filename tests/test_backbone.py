"""Backbone mode: preprocessing inside the model, what trains when, weights, and the CLI."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import FLOWERS_SAMPLE, make_packed

from hyperfcn.cli import main


def test_space_command_prints_the_recipe_space(capsys):
    import yaml

    assert main(["space", "--backbone", "resnet50"]) == 0
    data = yaml.safe_load(capsys.readouterr().out)
    assert data["parameters"]["backbone"] == "resnet50"
    assert set(data["parameters"]["fine_tune"]["choice"]) == {"frozen", "top", "all",
                                                             "two_stage"}
    assert "blocks" not in data["parameters"]  # the FCN's shape is not searched


def test_space_resolves_with_the_backbone_fixed():
    from hyperfcn.api import TuneOptions, resolve_space, uses_backbone

    space = resolve_space(TuneOptions(data=Path("."), backbone="efficientnetb0",
                                      image_size=32))
    assert space.values_of("backbone") == ["efficientnetb0"] and uses_backbone(space)
    assert space.defaults["backbone"] == "efficientnetb0"
    assert space.values_of("image_size") == [32]
    assert not uses_backbone(resolve_space(TuneOptions(data=Path("."))))


def test_weights_path_must_exist(capsys, tmp_path):
    assert main(["tune", str(tmp_path), "--backbone", "mobilenetv2", "--weights",
                 str(tmp_path / "none.weights.h5")]) == 2
    err = capsys.readouterr().err
    assert "none.weights.h5" in err and "no such file" in err


@pytest.mark.parametrize("name", ["mobilenetv2", "efficientnetb0", "resnet50"])
def test_preprocessing_matches_the_networks_own(name):
    import keras

    from hyperfcn.backbone import preprocess

    x = np.random.default_rng(0).uniform(0, 255, (2, 8, 8, 3)).astype("float32")
    inp = keras.Input((None, None, 3))
    ours = np.asarray(keras.Model(inp, preprocess(name, inp))(x))
    module = {"mobilenetv2": keras.applications.mobilenet_v2,
              "efficientnetb0": keras.applications.efficientnet,
              "resnet50": keras.applications.resnet50}[name]
    theirs = np.asarray(module.preprocess_input(x.copy()))
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-3)


def _backbone_weights(core):
    return [np.array(w) for w in core.get_layer("backbone").get_weights()]


def test_two_stage_trains_the_head_first_then_the_top_of_the_backbone():
    import keras

    from hyperfcn.model import build_training_model
    from hyperfcn.trial import LocalReporter, TrialData, TrialSettings, run_trial

    data = TrialData(classes=["dark", "light"],
                     train={32: make_packed(8, shapes=((32, 32), (32, 40)))},
                     val={32: make_packed(4, shapes=((32, 32),), seed=1)})
    cfg = {"backbone": "mobilenetv2", "image_size": 32, "batch_size": 8,
           "fine_tune": "two_stage", "head_epochs": 1, "fine_tune_fraction": 0.3,
           "learning_rate": 1e-2, "flip": "none"}
    from hyperfcn.config import ModelConfig

    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    _, fresh = build_training_model(ModelConfig.from_dict(cfg), 2, seed=0, weights="none")
    start = _backbone_weights(fresh)

    one = run_trial(cfg, data, TrialSettings(max_epochs=1, weights="none"), LocalReporter())
    after_head = _backbone_weights(one.model)
    assert all(np.array_equal(a, b) for a, b in zip(start, after_head))  # frozen
    assert one.model.get_layer("backbone").trainable is False

    two = run_trial(cfg, data, TrialSettings(max_epochs=2, weights="none"), LocalReporter())
    base = two.model.get_layer("backbone")
    trained = [layer.name for layer in base.layers if layer.trainable]
    assert trained and trained == [layer.name for layer in base.layers[-len(trained):]]
    assert 0.25 < len(trained) / len(base.layers) < 0.35
    after = _backbone_weights(two.model)
    changed = [not np.array_equal(a, b) for a, b in zip(start, after)]
    assert any(changed) and not changed[0]  # the top moved, the stem did not


# ---------------------------------------------------------------- the real CLI

def _cli(*args, env=None, check=True):
    e = {**os.environ, **(env or {})}
    r = subprocess.run([sys.executable, "-m", "hyperfcn.cli", *map(str, args)],
                       capture_output=True, text=True, env=e, timeout=900)
    if check and r.returncode:
        raise AssertionError(f"exit {r.returncode}\n{r.stdout[-2000:]}\n{r.stderr[-4000:]}")
    return r


@pytest.mark.integration
@pytest.mark.parametrize("name", ["efficientnetb0", "resnet50"])
def test_each_backbone_trains_saves_loads_and_predicts_alike(name, tmp_path):
    """The networks the CLI test below does not run: trained by the trial's code, saved as
    the run saves its model, loaded back in safe mode, the same predictions."""
    import keras

    from hyperfcn.precision import as_float32
    from hyperfcn.trial import LocalReporter, TrialData, TrialSettings, run_trial

    data = TrialData(classes=["dark", "light"],
                     train={32: make_packed(8, shapes=((32, 32), (32, 40)))},
                     val={32: make_packed(4, shapes=((32, 32),), seed=1)})
    cfg = {"backbone": name, "image_size": 32, "batch_size": 8, "fine_tune": "all",
           "learning_rate": 1e-3, "flip": "none"}
    out = run_trial(cfg, data, TrialSettings(max_epochs=1, weights="none"), LocalReporter())
    saved = as_float32(out.model)  # as final.make_final saves it: float32 on any machine
    saved.save(tmp_path / "model.keras")
    back = keras.saving.load_model(tmp_path / "model.keras", safe_mode=True)
    x = data.val[32].buckets[0].x.astype("float32")
    # against the trained weights in float32, the precision the file computes in (a CPU with
    # native bf16 trains in mixed bfloat16, whose predictions differ by ~1e-3)
    np.testing.assert_allclose(np.asarray(back.predict_on_batch(x)),
                               np.asarray(saved.predict_on_batch(x)), atol=1e-5)


@pytest.mark.integration
@pytest.mark.parametrize("name", ["mobilenetv2"])
def test_backbone_tunes_retrains_saves_loads_and_predicts(name, tmp_path):
    run = tmp_path / name
    _cli("tune", FLOWERS_SAMPLE, "--val-split", 0.25, "--out", run, "--backbone", name,
         "--weights", "none", "--image-size", 32, "--samples", 1, "--max-epochs", 2,
         "--quiet")
    cfg = json.loads((run / "best_config.json").read_text())
    assert cfg["backbone"] == name
    r = _cli("predict", FLOWERS_SAMPLE, "--model", run, "--format", "json")
    rows = json.loads(r.stdout)
    assert len(rows) == 20 and all(0 <= x["score"] <= 1 for x in rows)
    assert (run / "report.html").is_file()


@pytest.mark.integration
def test_weights_file_is_loaded_into_the_backbone(tmp_path):
    import keras

    base = keras.applications.MobileNetV2(include_top=False, weights=None,
                                          input_shape=(None, None, 3))
    rng = np.random.default_rng(3)
    # different from any seeded init, and BatchNorm variances stay positive
    base.set_weights([(w * rng.uniform(0.9, 1.1, w.shape)).astype("float32")
                      for w in base.get_weights()])
    path = tmp_path / "mine.weights.h5"
    base.save_weights(path)
    space = tmp_path / "frozen.yaml"
    space.write_text("parameters:\n  backbone: mobilenetv2\n  image_size: 32\n"
                     "  batch_size: 8\n  learning_rate: 0.001\n  fine_tune: frozen\n"
                     "  flip: none\n")
    run = tmp_path / "run"
    _cli("tune", FLOWERS_SAMPLE, "--val-split", 0.25, "--out", run, "--space", space,
         "--weights", path, "--samples", 1, "--max-epochs", 1, "--quiet")
    model = keras.saving.load_model(run / "model.keras")
    inner = model.get_layer("hyperfcn") if "hyperfcn" in [
        la.name for la in model.layers] else model
    got = inner.get_layer("backbone").get_weights()
    # frozen, so the saved backbone is exactly the file's
    assert all(np.array_equal(a, b) for a, b in zip(base.get_weights(), got))


@pytest.mark.integration
def test_imagenet_offline_says_where_to_put_the_file(tmp_path):
    run = tmp_path / "run"
    dead = "http://127.0.0.1:9"
    r = _cli("tune", FLOWERS_SAMPLE, "--val-split", 0.25, "--out", run,
             "--backbone", "resnet50", "--image-size", 32, "--samples", 1,
             env={"KERAS_HOME": str(tmp_path / "keras"), "HTTPS_PROXY": dead,
                  "HTTP_PROXY": dead, "https_proxy": dead, "http_proxy": dead},
             check=False)
    assert r.returncode == 2, r.stderr[-3000:]
    err = r.stderr.strip().splitlines()[-1]
    assert "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5" in err
    assert "--weights PATH" in err and "Traceback" not in r.stderr
    assert not list((run / "tune").glob("trial_*")) if (run / "tune").exists() else True
