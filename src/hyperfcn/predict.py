"""Load a saved run and classify images: predict a folder, evaluate a labelled one.

Both stream: images are decoded and predicted CHUNK at a time, so memory stays bounded
however many there are (a million small images predict in under 2 GiB), and the rows come
out in the input's order. Within a chunk, images of like shapes are packed into shared
batch shapes as in training.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterable, Iterator
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


# Images decoded and predicted at a time: ~12 MB of 64 px images, many batches per chunk.
CHUNK = 1024


def _chunks(files: list[Path], size: int) -> Iterator[tuple[list[Path], Any]]:
    """(files, their decoded images at ``size``) CHUNK files at a time."""
    for start in range(0, len(files), CHUNK):
        part = files[start:start + CHUNK]
        yield part, decode_all(part, [size])


def iter_predictions(run: LoadedRun, files: list[Path], top_k: int = 1,
                     skipped: list[tuple[str, str]] | None = None
                     ) -> Iterator[dict[str, Any]]:
    """A row {path, label, score, top_k} per readable file, in ``files``' order, CHUNK
    files decoded at a time; unreadable ones are appended to ``skipped`` as (path, why)."""
    k = max(1, min(top_k, len(run.classes)))
    for part, dec in _chunks(files, run.image_size):
        if skipped is not None:
            skipped.extend((str(f), r) for f, r in dec.failed)
        probs = _probabilities(run, dec.images[run.image_size])
        for i, p in zip(dec.kept, probs):
            top = np.argsort(-p)[:k]
            yield {"path": str(part[i]), "label": run.classes[int(top[0])],
                   "score": float(p[top[0]]),
                   "top_k": [{"label": run.classes[int(j)], "score": float(p[j])}
                             for j in top]}


def image_files(paths: Iterable[str | Path]) -> list[Path]:
    """The image files under ``paths`` (files or folders); an error when there are none."""
    paths = list(paths)
    files = list_image_paths(paths)
    if not files:
        raise DataError(f"{', '.join(map(str, paths))}: no image files found")
    return files


def predict_paths(run: LoadedRun, paths: list[str | Path], top_k: int = 1
                  ) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    """All of :func:`iter_predictions`' rows at once, and the skipped files."""
    skipped: list[tuple[str, str]] = []
    rows = list(iter_predictions(run, image_files(paths), top_k, skipped))
    return rows, skipped


def evaluate_folder(run: LoadedRun, data_dir: str | Path) -> tuple[dict, list[tuple[str, str]]]:
    scan = scan_folder(data_dir, what="DATA")
    if scan.classes != run.classes:
        raise DataError(f"{data_dir}: classes {scan.classes} differ from the model's "
                        f"{run.classes}; give a folder with the model's class sub-folders")
    probs: list[np.ndarray] = []
    kept: list[int] = []
    failed: list[tuple[str, str]] = []
    offset = 0
    for part, dec in _chunks(list(scan.files), run.image_size):
        probs.append(_probabilities(run, dec.images[run.image_size]))
        kept += [offset + i for i in dec.kept]
        failed += [(str(f), r) for f, r in dec.failed]
        offset += len(part)
    if not kept:
        raise DataError(f"{data_dir}: no readable images")
    labels = np.asarray([scan.labels[i] for i in kept])
    rep = classification_report(np.concatenate(probs), labels, run.classes)
    rep["seen_in_training"] = seen_in_training(run.run_dir, [scan.files[i] for i in kept])
    return rep, failed


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
