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
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from . import artifacts as art
from .data.buckets import pack, plan_buckets
from .data.folder import decode_all, list_image_paths, resized, scan_folder
from .errors import DataError, UserError
from .feed import predict_packed
from .metrics import classification_report


@dataclass
class LoadedRun:
    """A saved run's model, ready to classify images in memory (``hyperfcn.load(RUN)``):
    each image is prepared as the run's training images were (RGB, a side past twice the
    other centre-cropped, the short side resized to the run's image size)."""

    model: Any
    classes: list[str]
    config: dict[str, Any]
    run_dir: Path | None = None

    @property
    def image_size(self) -> int:
        return int(self.config.get("image_size", 64))

    def predict_proba(self, images: Any) -> np.ndarray:
        """Class probabilities, shape (images, classes) in the order of ``classes``, for
        one image or a sequence of them: PIL images, or arrays (H, W) grey or (H, W, 3|4)
        RGB(A), uint8 or floats in 0..255; a 4-d array is a batch."""
        size = self.image_size
        return _probabilities(self, [resized(_as_pil(x, i), [size])[size]
                                     for i, x in enumerate(_as_list(images))])

    def predict(self, images: Any) -> list[str]:
        """The most likely class of each image (see :meth:`predict_proba`)."""
        return [self.classes[int(i)] for i in self.predict_proba(images).argmax(1)]


def _as_list(images: Any) -> list[Any]:
    if isinstance(images, Image.Image):
        return [images]
    if isinstance(images, np.ndarray):
        one = images.ndim == 2 or (images.ndim == 3 and images.shape[-1] in (1, 3, 4))
        return [images] if one else list(images)
    return list(images)


def _as_pil(x: Any, i: int) -> Image.Image:
    if isinstance(x, Image.Image):
        return x
    a = np.asarray(x) if isinstance(x, np.ndarray | list) else None
    if a is None or a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[-1] not in (1, 3, 4)):
        what = type(x).__name__ if a is None else f"an array of shape {a.shape}"
        raise UserError(f"image {i}: {what} is not an image; give PIL images or arrays "
                        f"(H, W) or (H, W, 3|4) of pixel values in 0..255")
    if a.dtype != np.uint8:
        a = np.clip(np.rint(a.astype(np.float32)), 0, 255).astype(np.uint8)
    return Image.fromarray(a[..., 0] if a.ndim == 3 and a.shape[-1] == 1 else a)


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
                     skipped: list[tuple[str, str]] | None = None,
                     done: Callable[[int], None] | None = None
                     ) -> Iterator[dict[str, Any]]:
    """A row {path, label, score, top_k} per readable file, in ``files``' order, CHUNK
    files decoded at a time; unreadable ones are appended to ``skipped`` as (path, why).
    ``done`` hears how many files each chunk finished."""
    k = max(1, min(top_k, len(run.classes)))
    for part, dec in _chunks(files, run.image_size):
        if done is not None:
            done(len(part))
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


def evaluate_folder(run: LoadedRun, data_dir: str | Path,
                    done: Callable[[int, int], None] | None = None
                    ) -> tuple[dict, list[tuple[str, str]]]:
    """The run's classification report on a labelled folder, and the files skipped;
    ``done`` hears (files done, files in all) after each chunk."""
    scan = scan_folder(data_dir, what="DATA")
    if scan.classes != run.classes:
        raise DataError(f"{data_dir}: classes {scan.classes} differ from the model's "
                        f"{run.classes}; give a folder with the model's class sub-folders")
    probs: list[np.ndarray] = []
    kept: list[int] = []
    failed: list[tuple[str, str]] = []
    offset = 0
    for part, dec in _chunks(list(scan.files), run.image_size):
        if done is not None:
            done(offset + len(part), len(scan.files))
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
