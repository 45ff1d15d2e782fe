"""Load a saved run and classify images: predict a folder, evaluate a labelled one."""

from __future__ import annotations

import json
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

    @property
    def image_size(self) -> int:
        return int(self.config.get("image_size", 64))


def load_run(run_dir: str | Path) -> LoadedRun:
    run = Path(run_dir)
    model_path = run / art.MODEL
    for p in (model_path, run / art.CLASSES, run / art.BEST_CONFIG):
        if not p.is_file():
            raise UserError(f"{p}: missing; --model must be a RUN_DIR written by "
                            f"`hyperfcn tune` or `hyperfcn train`")
    import keras

    # safe_mode (the default) refuses models that would run arbitrary Python on load.
    model = keras.saving.load_model(model_path, safe_mode=True)
    classes = json.loads((run / art.CLASSES).read_text())
    config = json.loads((run / art.BEST_CONFIG).read_text())
    return LoadedRun(model=model, classes=classes, config=config)


def _probabilities(run: LoadedRun, images: list[np.ndarray], batch_size: int = 32
                   ) -> np.ndarray:
    from .trial import predict_packed

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
    return classification_report(probs, labels, run.classes), [
        (str(f), r) for f, r in dec.failed]
