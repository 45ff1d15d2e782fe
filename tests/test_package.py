"""The package as a Python user meets it: every module imports, and the functions the
package exports stay functions whatever was imported (a submodule named like one of them
would replace it on the package)."""

import ast
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

    from hyperfcn.data.arrays import TrialData
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


SRC = Path(hyperfcn.__file__).parent


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at the top or inside a function, as absolute names."""
    return _imports_of(ast.parse(path.read_text()), path)


def _imports_of(tree: ast.AST, path: Path) -> set[str]:
    package = ".".join(("hyperfcn", *path.relative_to(SRC).parent.parts))
    out = set()
    for n in ast.walk(tree):
        if isinstance(n, ast.Import):
            out |= {a.name for a in n.names}
        elif isinstance(n, ast.ImportFrom):
            base = (package.rsplit(".", n.level - 1)[0] if n.level > 1 else package
                    ) if n.level else ""
            module = ".".join(x for x in (base, n.module or "") if x)
            out.add(module)
            out |= {f"{module}.{a.name}" for a in n.names}  # `from . import x`
    return out


def _file(module: str) -> Path | None:
    parts = module.split(".")[1:]
    for p in (SRC.joinpath(*parts).with_suffix(".py"), SRC.joinpath(*parts, "__init__.py")):
        if parts and p.exists():
            return p
    return None


def _top_level_imports(path: Path) -> set[str]:
    """The hyperfcn modules ``path`` imports when it is imported (not inside functions,
    not for type checking only)."""
    mods = set()
    for n in ast.parse(path.read_text()).body:
        if isinstance(n, ast.Import | ast.ImportFrom):
            one = ast.Module(body=[n], type_ignores=[])
            mods |= {m for m in _imports_of(one, path) if _file(m) is not None}
    return mods


def test_no_two_modules_import_each_other_however_indirectly():
    graph = {p: {_file(m) for m in _top_level_imports(p)} - {p} for p in SRC.rglob("*.py")}

    def cycle_from(start: Path) -> list[Path] | None:
        stack = [(start, [start])]
        while stack:
            node, path = stack.pop()
            for nxt in graph.get(node, ()):
                if nxt == start:
                    return path
                if nxt not in path:
                    stack.append((nxt, [*path, nxt]))
        return None

    for p in graph:
        loop = cycle_from(p)
        assert loop is None, " -> ".join(str(x.relative_to(SRC)) for x in [*loop, p])


def test_the_ray_layer_is_the_only_place_ray_is_imported():
    for p in SRC.rglob("*.py"):
        if any(x == "ray" or x.startswith("ray.") for x in _imports(p)):
            assert p.parent.name == "tuning", f"{p.relative_to(SRC)} imports ray"


def test_the_data_path_imports_neither_keras_nor_ray_nor_any_module_that_does():
    todo = [p for p in (SRC / "data").glob("*.py")]
    seen: set[Path] = set()
    while todo:
        p = todo.pop()
        seen.add(p)
        for m in _imports(p):
            top = m.split(".")[0]
            assert top not in {"keras", "tensorflow", "jax", "ray"}, \
                f"{p.relative_to(SRC)} imports {m}"
            f = _file(m) if top == "hyperfcn" else None
            if f is not None and f not in seen:
                todo.append(f)
    assert len(seen) > 10


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


@pytest.mark.parametrize("old, new", [("hyperfcn.buckets", "hyperfcn.data.buckets"),
                                      ("hyperfcn.arrays", "hyperfcn.data.arrays"),
                                      ("hyperfcn.searchers", "hyperfcn.tuning.searchers")])
def test_the_old_paths_of_moved_modules_are_the_new_modules(old, new):
    assert importlib.import_module(old) is importlib.import_module(new)


def test_every_function_reads_at_once_and_no_class_outgrows_its_job():
    """The house rules: a function of at most 60 lines, a class of at most 250, api.py at
    most 400."""
    long = []
    for p in SRC.rglob("*.py"):
        for n in ast.walk(ast.parse(p.read_text())):
            if not isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                continue
            size = (n.end_lineno or n.lineno) - n.lineno + 1
            if size > (250 if isinstance(n, ast.ClassDef) else 60):
                long.append(f"{p.relative_to(SRC)}: {n.name} ({size} lines)")
    assert not long, long
    assert len((SRC / "api.py").read_text().splitlines()) <= 400
