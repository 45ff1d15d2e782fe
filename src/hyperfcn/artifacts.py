"""RUN_DIR files, each written atomically: a crash mid-write leaves the old file or none."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

MODEL = "model.keras"
CLASSES = "classes.json"
BEST_CONFIG = "best_config.json"
METRICS = "metrics.json"
TRIALS = "trials.csv"
SETTINGS = "settings.json"
SKIPPED = "skipped_files.tsv"
TENSORBOARD = "tensorboard"
RAY_DIR = "tune"
DATA_SUMMARY = "data.json"
SEARCH = "search.json"  # --no-final: the search's summary (the best trial, its time)
TRIALS_JSON = "trials.json"  # every trial with its config, status and per-epoch history
VAL_PREDICTIONS = "val_predictions.csv"
AUGMENT_PREVIEW = "augmentation_preview.png"
REPORT = "report.html"
REPORT_DIR = "report"  # the report's plots as PNG files
# "trial_id epoch" per line, appended by the scheduler as it stops trials (scheduler.StopLog)
SCHEDULER_STOPS = "scheduler_stops.txt"
# What a trial's per-epoch history keeps of each Ray result (trials.json, the report).
HISTORY_KEYS = ("epoch", "loss", "accuracy", "val_loss", "val_calibrated_loss", "val_accuracy",
                "val_balanced_accuracy", "val_loss_se", "val_calibrated_loss_se",
                "val_accuracy_se", "val_balanced_accuracy_se",
                "lr", "time_total_s",
                "timestamp", "seconds", "setup_seconds", "epoch_seconds", "val_seconds",
                "worker_pid", "planned_epochs", "race_epochs")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp makes the file 0600; a teammate or a model server running as another
        # user must read the result as they would any file this user writes.
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_text(path: Path, text: str) -> None:
    # A file name that is not UTF-8 reaches Python as lone surrogates: written escaped
    # (\udcff), the file stays readable UTF-8.
    write_bytes(path, text.encode("utf-8", errors="backslashreplace"))


def write_json(path: Path, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_jsonable) + "\n")


def _jsonable(o: Any) -> Any:
    if hasattr(o, "item"):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, set | tuple):
        return list(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def write_csv(path: Path, rows: Iterable[Mapping[str, Any]], first: list[str]) -> None:
    rows = list(rows)
    keys = list(first)
    for r in rows:
        keys += [k for k in r if k not in keys]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys, extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow({k: _cell(r.get(k, "")) for k in keys})
    write_text(path, buf.getvalue())


def _cell(v: Any) -> Any:
    if isinstance(v, float):
        return f"{v:.6g}"
    return v


def read_val_predictions(run_dir: Path) -> list[dict[str, str]]:
    """VAL_PREDICTIONS' rows (path, label, predicted, ...); none when the run kept none."""
    path = run_dir / VAL_PREDICTIONS
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def read_stops(path: Path) -> dict[str, int]:
    """SCHEDULER_STOPS as {trial_id: epoch}; none when it is missing. A torn last line
    (the driver killed mid-append) is skipped."""
    out: dict[str, int] = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            with contextlib.suppress(ValueError):
                tid, epoch = line.split()
                out[tid] = int(epoch)
    return out
