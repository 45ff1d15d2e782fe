"""The package as a Python user meets it: every module imports, and the functions the
package exports stay functions whatever was imported (a submodule named like one of them
would replace it on the package)."""

import importlib
import inspect
import pkgutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import hyperfcn
from hyperfcn.errors import UserError

FUNCTIONS = ("tune", "train", "predict", "evaluate", "export", "report", "load",
             "cache_entries", "clear_cache")


def test_every_submodule_imports_and_the_exported_functions_stay_functions():
    names = [m.name for m in pkgutil.walk_packages(hyperfcn.__path__, "hyperfcn.")
             if m.name != "hyperfcn.__main__"]  # it runs the CLI
    for name in names:
        importlib.import_module(name)
    assert len(names) > 40
    for f in FUNCTIONS:
        assert inspect.isfunction(getattr(hyperfcn, f)), f
        assert f in hyperfcn.__all__


def test_options_take_strings_for_paths(tmp_path):
    opts = hyperfcn.TuneOptions(data="photos", out=str(tmp_path), val_dir="val",
                                cache_dir="c")
    assert opts.data == Path("photos") and opts.out == tmp_path
    assert opts.val_dir == Path("val") and opts.cache_dir == Path("c")


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    """A run trained one epoch on tiny arrays, loaded as a user would."""
    import types

    from conftest import make_packed

    from hyperfcn.arrays import TrialData
    from hyperfcn.final import make_final, plan_final, write_files
    from hyperfcn.trial import TrialSettings

    cfg = {"image_size": 16, "batch_size": 4, "blocks": 2, "filters": 8, "dense_units": 16,
           "learning_rate": 0.01}
    data = TrialData(classes=["dark", "light"], train={16: make_packed(8)},
                     val={16: make_packed(4, seed=1)})
    out = make_final(cfg, data, TrialSettings(max_epochs=1, patience=1), plan_final(None, 1))
    run = tmp_path_factory.mktemp("run")
    summary = types.SimpleNamespace(classes=data.classes, val_files=[])
    write_files(run, cfg, out, summary, lambda m: None, {}, None, "val_loss")
    return hyperfcn.load(run)


def test_a_loaded_run_predicts_arrays_and_pil_images_as_predict_does_files(loaded,
                                                                         tmp_path):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (30, 20, 3), np.uint8)
    grey = rng.integers(0, 255, (24, 24), np.uint8)
    pil = Image.fromarray(rgb)
    probs = loaded.predict_proba([rgb, grey, pil, rgb.astype(np.float32)])
    assert probs.shape == (4, 2) and np.allclose(probs.sum(1), 1, atol=1e-5)
    assert np.allclose(probs[0], probs[2], atol=1e-6)  # an array and its PIL image
    assert np.allclose(probs[0], probs[3], atol=1e-6)  # uint8 or floats in 0..255
    assert loaded.predict(pil) == [loaded.classes[int(probs[0].argmax())]]  # one image
    assert loaded.predict(np.stack([rgb, rgb])) == loaded.predict([rgb]) * 2  # a batch
    # the same as `predict` on the file: the run's own preprocessing
    pil.save(tmp_path / "x.png")
    rows, _ = hyperfcn.predict([tmp_path / "x.png"], loaded.run_dir)
    assert rows[0]["score"] == pytest.approx(float(probs[0].max()), abs=1e-6)


def test_a_loaded_run_refuses_what_is_not_an_image(loaded):
    with pytest.raises(UserError, match=r"image 1: an array of shape \(5,\) is "
                                                    r"not an image"):
        loaded.predict([np.zeros((8, 8, 3)), np.zeros(5)])


def test_predict_says_a_missing_file_before_loading_the_model(tmp_path):
    with pytest.raises(UserError, match="nope.jpg: no such file"):
        hyperfcn.predict([tmp_path / "nope.jpg"], tmp_path / "no run")


def test_the_ray_layer_is_the_only_place_ray_is_imported():
    import ast

    src = Path(hyperfcn.__file__).parent
    for p in src.rglob("*.py"):
        for n in ast.walk(ast.parse(p.read_text())):
            names = ([a.name for a in n.names] if isinstance(n, ast.Import) else
                     [n.module or ""] if isinstance(n, ast.ImportFrom) and n.level == 0
                     else [])
            if any(x == "ray" or x.startswith("ray.") for x in names):
                assert p.parent.name == "tuning", f"{p.relative_to(src)} imports ray"


def test_a_moved_module_loads_by_its_old_path_as_a_pickle_from_before_names_it():
    """A run interrupted before the Ray layer moved into hyperfcn.tuning resumes: Ray's
    pickles name classes by their old module path."""
    import pickle
    import sys

    from hyperfcn.tuning import scheduler

    assert importlib.import_module("hyperfcn.scheduler") is scheduler
    cls = scheduler.StopLog
    cls.__module__ = "hyperfcn.scheduler"  # as pickled before the move
    try:
        blob = pickle.dumps(cls)
    finally:
        cls.__module__ = "hyperfcn.tuning.scheduler"
    sys.modules.pop("hyperfcn.scheduler", None)
    assert pickle.loads(blob) is cls
