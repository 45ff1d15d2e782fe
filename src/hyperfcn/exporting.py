"""A saved model in a format a server or a phone runs: ONNX, TensorFlow SavedModel or LiteRT,
written by Keras' own exporters, then run by its own runtime on validation images and
compared with the Keras model; a mismatch is an error, never a silent file.

What every exported model takes is what `predict` feeds the Keras model: float32 RGB pixel
values in [0, 255] (not rescaled: the model divides by 255 itself), shape (batch, height,
width, 3), each image resized so its short side is the run's ``image_size`` with its aspect
kept (a side past twice the other centre-cropped to it); batch, height and width are dynamic.
It returns class probabilities in the order of ``classes.json``, written beside it.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import json
import os
import shutil
import sys
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np

from . import artifacts as art
from . import extras, guard, hints
from .data.folder import decode_all, scan_folder
from .errors import UserError
from .hints import install
from .inference import load_run

# Largest difference in any class probability between the exported model and Keras'.
TOLERANCE = 1e-4
CHECK_IMAGES = 16


class Format(StrEnum):
    ONNX = "onnx"
    SAVED_MODEL = "saved_model"
    LITERT = "litert"

    @property
    def keras_name(self) -> str:
        return {"saved_model": "tf_saved_model"}.get(self.value, self.value)

    @property
    def default_name(self) -> str:
        return {"onnx": "model.onnx", "saved_model": "saved_model",
                "litert": "model.tflite"}[self.value]

    @property
    def install(self) -> str:
        return install("onnx") if self is Format.ONNX else "pip install tensorflow-cpu"


@dataclass(frozen=True)
class Exported:
    path: Path
    format: Format
    max_abs_diff: float
    checked_images: int
    classes_path: Path


def preprocessing(image_size: int, classes: list[str]) -> dict[str, Any]:
    """What an exported model expects and returns, for the file written beside it."""
    return {"input": {"dtype": "float32", "shape": ["batch", "height", "width", 3],
                      "channels": "RGB", "value_range": [0, 255],
                      "resize": f"short side to {image_size} px, aspect kept, a long side "
                                f"past twice the short centre-cropped to it",
                      "image_size": image_size},
            "output": {"dtype": "float32", "shape": ["batch", len(classes)],
                       "meaning": "class probabilities", "classes": classes}}


def _require(fmt: Format, module: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError:
        raise UserError(f"--format {fmt}: needs the Python package {module!r}; "
                        f"{fmt.install}") from None


def _runner(fmt: Format, path: Path) -> Callable[[np.ndarray], np.ndarray]:
    """A function running the exported file with its own runtime: a batch in, probabilities
    out."""
    if fmt is Format.ONNX:
        ort = _require(fmt, "onnxruntime")
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        return lambda x: np.asarray(sess.run(None, {name: x})[0])
    tf = _require(fmt, "tensorflow")
    if fmt is Format.SAVED_MODEL:
        loaded = tf.saved_model.load(str(path))
        return lambda x: np.asarray(loaded.serve(tf.constant(x)))
    try:  # LiteRT's own runtime where installed; TensorFlow's copy (deprecated) otherwise
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:

        warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated")
        Interpreter = tf.lite.Interpreter  # noqa: N806
    interpreter = Interpreter(model_path=str(path))

    def run(x: np.ndarray) -> np.ndarray:
        inp = interpreter.get_input_details()[0]["index"]
        interpreter.resize_tensor_input(inp, list(x.shape), strict=False)
        interpreter.allocate_tensors()
        interpreter.set_tensor(inp, x)
        interpreter.invoke()
        return np.asarray(interpreter.get_tensor(interpreter.get_output_details()[0]["index"]))

    return run


def check_images(run_dir: Path, image_size: int, n: int = CHECK_IMAGES) -> list[np.ndarray]:
    """Up to ``n`` of the run's validation images (its training images when it kept none),
    decoded as `predict` decodes them, grouped into batches of one shape each."""

    files = [Path(r["path"]) for r in art.read_val_predictions(run_dir)]
    settings = run_dir / art.SETTINGS
    if not any(p.is_file() for p in files) and settings.is_file():
        data = json.loads(settings.read_text()).get("data_abs")
        files = scan_folder(data).files if data and Path(data).is_dir() else []
    files = [p for p in files if p.is_file()][:n]
    if not files:
        raise UserError(f"{run_dir}: none of its validation or training images can be read "
                        f"here, so the exported model cannot be checked against it")
    images = decode_all(files, [image_size]).images[image_size]
    by_shape: dict[tuple, list[np.ndarray]] = {}
    for im in images:
        by_shape.setdefault(im.shape, []).append(im)
    return [np.stack(group).astype(np.float32) for group in by_shape.values()]


def export(run_dir: str | Path, fmt: str, out: str | Path | None = None) -> Exported:
    """Export RUN_DIR's model.keras to ``fmt`` at ``out`` (default: beside it), check the
    file against Keras on validation images, and write ``classes.json`` and
    ``preprocessing.json`` beside it."""

    try:
        f = Format(fmt)
    except ValueError:
        raise UserError(f"--format {fmt}: use one of {', '.join(f.value for f in Format)}"
                        ) from None
    if f is Format.ONNX:  # looked up, not imported: said before TensorFlow loads
        extras.require("onnx")
    if importlib.util.find_spec("tensorflow") is None:
        raise UserError(f"--format {f}: needs the Python package 'tensorflow'; "
                        f"pip install tensorflow-cpu")
    if "keras" not in sys.modules:  # every exporter goes through TensorFlow; the file is
        os.environ["KERAS_BACKEND"] = "tensorflow"  # the same whichever backend trained it
    run = load_run(run_dir)
    assert run.run_dir is not None
    path = _target(run.run_dir, f, out)
    inside = path.resolve().is_relative_to(run.run_dir.resolve())
    with guard.holding(run.run_dir, hints.command(sys.argv[1:])) if inside else \
            contextlib.nullcontext():
        diff, count = _export_checked(run, f, path)
    side = path.parent if f is not Format.SAVED_MODEL else path
    art.write_json(side / art.CLASSES, run.classes)
    art.write_json(side / "preprocessing.json", preprocessing(run.image_size, run.classes))
    return Exported(path=path, format=f, max_abs_diff=diff, checked_images=count,
                    classes_path=side / art.CLASSES)


def _export_checked(run: Any, f: Format, path: Path) -> tuple[float, int]:
    """Export into a temporary folder beside ``path``, check it, and only then put it at
    ``path``: a failed export or check leaves an earlier export there as it was."""
    batches = check_images(run.run_dir, run.image_size)
    want = [np.asarray(run.model.predict_on_batch(x)) for x in batches]  # also: a loaded
    path.parent.mkdir(parents=True, exist_ok=True)  # model must be called before export
    with tempfile.TemporaryDirectory(prefix=".hyperfcn-export-", dir=path.parent) as tmp:
        staged = Path(tmp) / path.name
        run.model.export(str(staged), format=f.keras_name, verbose=False)
        diff, count = _compare(_runner(f, staged), batches, want)
        if diff > TOLERANCE:
            raise UserError(f"{path}: the exported model's probabilities differ from the "
                            f"Keras model's by up to {diff:.2g} on {count} validation images "
                            f"(more than {TOLERANCE:g}), so it was not written (an earlier "
                            f"export there is unchanged); report this with the run's "
                            f"settings.json")
        _swap_in(staged, path)
    return diff, count


def _swap_in(staged: Path, path: Path) -> None:
    """Move the checked export to ``path``, replacing an earlier one (a SavedModel folder
    is moved aside first, then removed)."""
    if not staged.is_dir():
        os.replace(staged, path)
        return
    old = path.with_name(f".{path.name}.old-{os.getpid()}")
    if path.exists():
        os.rename(path, old)
    os.rename(staged, path)
    shutil.rmtree(old, ignore_errors=True)


def _target(run_dir: Path, f: Format, out: str | Path | None) -> Path:
    """Where the export goes: ``out`` (a folder other than a SavedModel gets the format's
    file name inside it), or RUN_DIR/export/."""
    path = Path(out) if out else run_dir / "export" / f.default_name
    if path.is_dir() and f is not Format.SAVED_MODEL:
        path = path / f.default_name
    if path.is_dir() and any(path.iterdir()) and not (path / "saved_model.pb").is_file():
        raise UserError(f"--out {path}: a folder that holds other files; give a new path "
                        f"(a SavedModel is a folder of its own)")
    if f is Format.LITERT and path.suffix != ".tflite":
        raise UserError(f"--out {path}: a LiteRT model's file name must end in .tflite")
    return path


def _compare(runner: Callable[[np.ndarray], np.ndarray], batches: list[np.ndarray],
             want: list[np.ndarray]) -> tuple[float, int]:
    """The largest difference between the exported model's and Keras' probabilities."""
    diff = max(float(np.abs(runner(x) - w).max()) for x, w in zip(batches, want))
    return diff, sum(len(x) for x in batches)
