"""From class folders to the bucketed arrays every trial shares (decoded once, here)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .arrays import TrialData
from .buckets import MAX_BUCKETS, pack, plan_buckets
from .data import Scan, decode_all, scan_folder, stratified_split
from .errors import DataError
from .footprint import available_bytes, check_fits, estimate


@dataclass
class DataSummary:
    classes: list[str]
    train_counts: dict[str, int]
    val_counts: dict[str, int]
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    ignored: int = 0  # files without an image extension
    shapes: dict[int, list[tuple[int, int]]] = field(default_factory=dict)
    padded_fraction: dict[int, float] = field(default_factory=dict)
    decode_seconds: float = 0.0
    decoded: int = 0
    # Validation files in the order of the packed val set's `index`: the report's gallery
    # maps predictions back to files with it.
    val_files: list[str] = field(default_factory=list)
    val_labels: list[int] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "classes": self.classes, "train_counts": self.train_counts,
            "val_counts": self.val_counts, "skipped": len(self.skipped),
            "ignored_non_images": self.ignored,
            "bucket_shapes": {str(k): v for k, v in self.shapes.items()},
            "padded_fraction": {str(k): round(v, 4) for k, v in self.padded_fraction.items()},
            "decode_seconds": round(self.decode_seconds, 3), "decoded": self.decoded,
        }


def skipped_message(summary: DataSummary, log_path: Path | None) -> str | None:
    if not summary.skipped:
        return None
    names = ", ".join(Path(p).name for p, _ in summary.skipped[:3])
    more = " ..." if len(summary.skipped) > 3 else ""
    where = f"; full list in {log_path}" if log_path else ""
    return (f"skipped {len(summary.skipped)} unreadable file(s): {names}{more} "
            f"(first reason: {summary.skipped[0][1]}){where}")


def check_test_dir(test_dir: str | Path, classes: Sequence[str], used: Sequence[Scan]) -> int:
    """Refuse a --test-dir that could not give an honest score: other classes than
    training's, no images, or images the run also trains or validates on. Returns how many
    image files it holds."""
    scan = scan_folder(test_dir, classes=classes, what="--test-dir")
    if not scan.files:
        raise DataError(f"{test_dir}: --test-dir has no image files in its class folders")
    seen = {p.resolve() for s in used for p in s.files}
    shared = [p for p in scan.files if p.resolve() in seen]
    if shared:
        raise DataError(f"{test_dir}: --test-dir shares {len(shared)} of its "
                        f"{len(scan.files)} images with DATA or --val-dir (e.g. {shared[0]}); "
                        f"a test score needs images the run never sees: give a separate "
                        f"folder")
    return len(scan.files)


def prepare(train_dir: str | Path, sizes: Sequence[int], *, val_dir: str | Path | None = None,
            val_split: float = 0.2, seed: int = 0, max_buckets: int = MAX_BUCKETS,
            workers: int | None = None, skipped_log: Path | None = None,
            test_dir: str | Path | None = None) -> tuple[TrialData, DataSummary]:
    train_scan = scan_folder(train_dir, what="DATA")
    if len(train_scan.classes) < 2:
        raise DataError(f"{train_dir}: found one class ({train_scan.classes[0]!r}); a "
                        f"classifier needs at least 2 class sub-folders")
    val_scan = (scan_folder(val_dir, classes=train_scan.classes, what="--val-dir")
                if val_dir is not None else None)
    if test_dir is not None:  # before the decode: a bad test folder costs no work
        check_test_dir(test_dir, train_scan.classes, [s for s in (train_scan, val_scan) if s])
    files = list(train_scan.files) + (list(val_scan.files) if val_scan else [])
    labels = list(train_scan.labels) + (list(val_scan.labels) if val_scan else [])
    n_train_files = len(train_scan.files)
    if not files:
        raise DataError(f"{train_dir}: no image files in the class folders (looked for "
                        f".jpg .png .bmp .gif .webp .tif)")
    check_fits(estimate(files, sizes, seed), available_bytes(), str(train_dir))
    t0 = time.time()
    dec = decode_all(files, sizes, workers=workers)
    dt = time.time() - t0
    skipped = [(str(p), r) for p, r in dec.failed]
    if skipped_log is not None and skipped:
        skipped_log.parent.mkdir(parents=True, exist_ok=True)
        skipped_log.write_text("".join(f"{p}\t{r}\n" for p, r in skipped))
    kept_labels = [labels[i] for i in dec.kept]
    is_train = [i < n_train_files for i in dec.kept]
    if val_scan is not None:
        tr_idx = [k for k, t in enumerate(is_train) if t]
        va_idx = [k for k, t in enumerate(is_train) if not t]
    else:
        tr_idx, va_idx = stratified_split(kept_labels, val_split, seed)
    if not tr_idx:
        raise DataError(f"{train_dir}: no readable training images left "
                        f"({len(skipped)} skipped)")
    if not va_idx:
        raise DataError(f"{val_dir or train_dir}: no validation images; give --val-dir or a "
                        f"larger --val-split")
    classes = train_scan.classes
    summary = DataSummary(
        classes=classes,
        train_counts={c: 0 for c in classes}, val_counts={c: 0 for c in classes},
        skipped=skipped, ignored=len(train_scan.ignored) + (len(val_scan.ignored)
                                                            if val_scan else 0),
        decode_seconds=dt, decoded=len(dec.kept),
        val_files=[str(files[dec.kept[k]]) for k in va_idx],
        val_labels=[kept_labels[k] for k in va_idx])
    for k in tr_idx:
        summary.train_counts[classes[kept_labels[k]]] += 1
    for k in va_idx:
        summary.val_counts[classes[kept_labels[k]]] += 1
    empty = [c for c in classes if summary.train_counts[c] == 0]
    if empty:
        raise DataError(f"{train_dir}: class folder(s) with no readable images: "
                        f"{', '.join(empty)}; add images or remove the folder")
    train, val = _pack_sizes(dec.images, sizes, kept_labels, tr_idx, va_idx, max_buckets,
                             summary)
    return TrialData(classes=classes, train=train, val=val), summary


def _pack_sizes(images: dict, sizes: Sequence[int], labels: list[int], tr_idx: list[int],
                va_idx: list[int], max_buckets: int, summary: DataSummary
                ) -> tuple[dict, dict]:
    """Each size's training and validation images packed into the same few bucket shapes;
    the shapes and the padded share of pixels go into ``summary``."""
    train, val = {}, {}
    for s in sizes:
        imgs = images[s]
        plan = plan_buckets([imgs[k].shape[:2] for k in range(len(imgs))], max_buckets)
        train[s] = pack([imgs[k] for k in tr_idx], [labels[k] for k in tr_idx], plan)
        val[s] = pack([imgs[k] for k in va_idx], [labels[k] for k in va_idx], plan)
        summary.shapes[s] = [tuple(map(int, sh)) for sh in plan.shapes]
        total = sum(b.x.size for b in train[s].buckets) + sum(b.x.size for b in val[s].buckets)
        summary.padded_fraction[s] = (
            (train[s].padded_fraction * sum(b.x.size for b in train[s].buckets)
             + val[s].padded_fraction * sum(b.x.size for b in val[s].buckets)) / total)
    return train, val
