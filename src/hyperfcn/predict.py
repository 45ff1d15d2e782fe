"""Load a saved run and classify images: predict a folder, evaluate a labelled one."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import artifacts as art
from .buckets import pack, plan_buckets
from .data import decode_all, list_image_paths, scan_folder
from .errors import DataError, UserError
from .metrics import classification_report


@dataclass
class LoadedRun:
    model: Any
    classes: list[str]
    config: dict[str, Any]
    run_dir: Path | None = None

    @property
    def image_size(self) -> int:
        return int(self.config.get("image_size", 64))


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """TensorFlow's C++ start-up lines ("oneDNN custom operations are on", "This TensorFlow
    binary is optimized ...") reach file descriptor 2 before any setting can stop them."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def load_run(run_dir: str | Path) -> LoadedRun:
    """A RUN_DIR, or the model.keras inside one."""
    run = Path(run_dir)
    if run.suffix == ".keras" and not run.is_dir():
        run = run.parent
    model_path = run / art.MODEL
    if not run.is_dir():
        raise UserError(f"--model {run_dir}: no such folder; give a RUN_DIR written by "
                        f"`hyperfcn tune` or `hyperfcn train`, or its model.keras")
    settings = run / art.SETTINGS
    if not model_path.is_file() and settings.is_file():
        command = json.loads(settings.read_text()).get("command", "")
        raise UserError(f"{run}: holds no model yet: its search did not finish. Continue "
                        f"it with: {command} --resume" if " tune " in f" {command} " else
                        f"{run}: holds no model yet: its training did not finish")
    for p in (model_path, run / art.CLASSES, run / art.BEST_CONFIG):
        if not p.is_file():
            raise UserError(f"{p}: missing; --model must be a RUN_DIR written by "
                            f"`hyperfcn tune` or `hyperfcn train`, or its model.keras")
    with _native_stderr_silenced():
        import keras

        # safe_mode (the default) refuses models that would run arbitrary Python on load.
        model = keras.saving.load_model(model_path, safe_mode=True)
    classes = json.loads((run / art.CLASSES).read_text())
    config = json.loads((run / art.BEST_CONFIG).read_text())
    return LoadedRun(model=model, classes=classes, config=config, run_dir=run)


def _probabilities(run: LoadedRun, images: list[np.ndarray], batch_size: int = 32
                   ) -> np.ndarray:
    from .arrays import predict_packed

    if not images:
        return np.zeros((0, len(run.classes)), np.float32)
    plan = plan_buckets([im.shape[:2] for im in images])
    packed = pack(images, None, plan)
    probs = predict_packed(run.model, packed, min(batch_size, len(images)))
    order = np.concatenate([b.index for b in packed.buckets])
    out = np.empty_like(probs)
    out[order] = probs
    return out


def predict_paths(run: LoadedRun, paths: list[str | Path], top_k: int = 1
                  ) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    files = list_image_paths(paths)
    if not files:
        raise DataError(f"{', '.join(map(str, paths))}: no image files found")
    dec = decode_all(files, [run.image_size])
    probs = _probabilities(run, dec.images[run.image_size])
    k = max(1, min(top_k, len(run.classes)))
    rows = []
    for i, p in zip(dec.kept, probs):
        top = np.argsort(-p)[:k]
        rows.append({"path": str(files[i]), "label": run.classes[int(top[0])],
                     "score": float(p[top[0]]),
                     "top_k": [{"label": run.classes[int(j)], "score": float(p[j])}
                               for j in top]})
    return rows, [(str(f), r) for f, r in dec.failed]


def evaluate_folder(run: LoadedRun, data_dir: str | Path) -> tuple[dict, list[tuple[str, str]]]:
    scan = scan_folder(data_dir, what="DATA")
    if scan.classes != run.classes:
        raise DataError(f"{data_dir}: classes {scan.classes} differ from the model's "
                        f"{run.classes}; give a folder with the model's class sub-folders")
    dec = decode_all(scan.files, [run.image_size])
    if not dec.kept:
        raise DataError(f"{data_dir}: no readable images")
    probs = _probabilities(run, dec.images[run.image_size])
    labels = np.asarray([scan.labels[i] for i in dec.kept])
    rep = classification_report(probs, labels, run.classes)
    rep["seen_in_training"] = seen_in_training(run.run_dir, [scan.files[i] for i in dec.kept])
    return rep, [(str(f), r) for f, r in dec.failed]


def training_files(run_dir: Path | None) -> set[Path]:
    """The images a run trained on: its DATA folder's files, less those it held out."""
    if run_dir is None or not (run_dir / art.SETTINGS).is_file():
        return set()
    s = json.loads((run_dir / art.SETTINGS).read_text())
    data = Path(s.get("data_abs") or s.get("data") or "")
    if not data.is_dir():
        return set()
    held_out = set() if s.get("val_dir") else {
        Path(r["path"]).resolve() for r in art.read_val_predictions(run_dir)}
    with_val = scan_folder(data, what="DATA")
    return {Path(p).resolve() for p in with_val.files} - held_out


def seen_in_training(run_dir: Path | None, files: list[Path]) -> int:
    """How many of `files` the run trained on (0 when the run does not say)."""
    train = training_files(run_dir)
    return sum(Path(f).resolve() in train for f in files)
