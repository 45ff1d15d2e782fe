"""From class folders to the bucketed arrays every trial shares: decoded once into the
decoded cache (:mod:`hyperfcn.data.cache`), or found there, and checked."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import artifacts as art
from ..errors import DataError
from .arrays import TrialData
from .buckets import MAX_BUCKETS, Packed
from .cache import (
    Source,
    cache_root,
    decode_sizes,
    describe,
    entry_dir,
    finish_size,
    free_bytes,
    hold,
    is_complete,
    locked,
    make_root,
    open_size,
    partial_bytes,
    quiet,
    release,
    size_dir,
    split_of,
)
from .cache_plan import Split, needed_bytes, plan_size
from .folder import Scan, scan_folder
from .footprint import check_disk


@dataclass
class DataSummary:
    classes: list[str]
    train_counts: dict[str, int]
    val_counts: dict[str, int]
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    ignored: int = 0  # files without an image extension
    shapes: dict[int, list[tuple[int, int]]] = field(default_factory=dict)
    padded_fraction: dict[int, float] = field(default_factory=dict)
    decode_seconds: float = 0.0  # decoding, or finding the images decoded in the cache
    decoded: int = 0
    cache: str = ""  # the decoded cache's entry these arrays map
    cache_hit: bool = False  # every size was decoded before: nothing decoded now
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
            "cache": self.cache, "cache_hit": self.cache_hit,
        }


def skipped_message(summary: DataSummary, log_path: Path | None) -> str | None:
    if not summary.skipped:
        return None
    names = ", ".join(Path(p).name for p, _ in summary.skipped[:3])
    more = " ..." if len(summary.skipped) > 3 else ""
    where = f"; full list in {log_path}" if log_path else ""
    return (f"skipped {len(summary.skipped)} unreadable file(s): {names}{more} "
            f"(first reason: {summary.skipped[0][1]}){where}")


def unmeasured_message(summary: DataSummary, val_dir: str | Path | None) -> str | None:
    """Say which classes have no validation image: the validation score, which picks the
    model, cannot see them. A class gets none from a split when it has fewer than 2
    readable images, or when the files drawn for validation turned out unreadable."""
    none = [c for c in summary.classes if not summary.val_counts.get(c)]
    if not none:
        return None
    names = ", ".join(repr(c) for c in none[:5]) + (" ..." if len(none) > 5 else "")
    fix = (f"add readable images to their folders in {val_dir}" if val_dir is not None else
           "add images to their folders (a class needs 2 or more readable images to keep "
           "one for validation), or give --val-dir")
    return (f"warning: {len(none)} class(es) with no validation image: {names}; the "
            f"validation score that picks the model does not measure them: {fix}")


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


def _scan(train_dir: str | Path, val_dir: str | Path | None,
          test_dir: str | Path | None) -> tuple[Scan, Scan | None]:
    train_scan = scan_folder(train_dir, what="DATA")
    if len(train_scan.classes) < 2:
        raise DataError(f"{train_dir}: found one class ({train_scan.classes[0]!r}); a "
                        f"classifier needs at least 2 class sub-folders")
    val_scan = (scan_folder(val_dir, classes=train_scan.classes, what="--val-dir")
                if val_dir is not None else None)
    if test_dir is not None:  # before the decode: a bad test folder costs no work
        check_test_dir(test_dir, train_scan.classes, [s for s in (train_scan, val_scan) if s])
    if not train_scan.files:
        raise DataError(f"{train_dir}: no image files in the class folders (looked for "
                        f".jpg .png .bmp .gif .webp .tif)")
    empty = [c for c, n in train_scan.counts().items() if n == 0]
    if empty:  # said before anything is probed, decoded or cached
        raise DataError(f"{train_dir}: class folder(s) with no readable images: "
                        f"{', '.join(empty)}; add images or remove the folder")
    return train_scan, val_scan


def _check_split(split: Split, train_dir: str | Path, val_dir: str | Path | None) -> None:
    if not len(split.members(0)):
        raise DataError(f"{train_dir}: no readable training images left "
                        f"({len(split.skipped)} skipped)")
    if not len(split.members(1)):
        raise DataError(f"{val_dir or train_dir}: no validation images; give --val-dir or a "
                        f"larger --val-split")


def prepare(train_dir: str | Path, sizes: Sequence[int], *, val_dir: str | Path | None = None,
            val_split: float = 0.2, seed: int = 0, max_buckets: int = MAX_BUCKETS,
            workers: int | None = None, skipped_log: Path | None = None,
            test_dir: str | Path | None = None, cache_dir: str | Path | None = None,
            say: Callable[[str], None] = quiet,
            progress: Callable[[int, int], None] | None = None
            ) -> tuple[TrialData, DataSummary]:
    """Decode DATA (and --val-dir) into the decoded cache at ``sizes``, or find it there,
    and map it: the arrays every trial and the final model share. ``say`` hears what a
    long decode is doing. The entry is held (cache.hold) until the run calls
    cache.release or the process ends."""
    train_scan, val_scan = _scan(train_dir, val_dir, test_dir)
    root = cache_root(cache_dir)
    make_root(root)  # after the scan: a cache inside DATA must not read as a class
    scans = [train_scan] + ([val_scan] if val_scan else [])
    src = Source(files=tuple(f for s in scans for f in s.files),
                 labels=tuple(lab for s in scans for lab in s.labels),
                 n_train=len(train_scan.files), val_split=val_split, seed=seed,
                 max_buckets=max_buckets, val_dir=val_scan is not None)
    entry = entry_dir(root, src)
    t0 = time.time()
    with locked(entry, say):
        split = split_of(entry, src)
        describe(entry, src, train_dir, val_dir)
        _check_split(split, train_dir, val_dir)
        parts = {s: _open_complete(entry, s) for s in sizes}
        missing = [s for s, got in parts.items() if got is None]
        if missing:
            _decode(src, split, missing, entry, root, workers, str(train_dir), say, progress)
            parts.update({s: open_size(size_dir(entry, s)) for s in missing})
        hold(entry)  # before the lock goes: `hyperfcn cache --clear` must not take it now
    failed = {tuple(f) for s in sizes for f in parts[s][2]["failed"]}
    skipped = split.skipped + sorted(failed)
    if skipped_log is not None and skipped:
        art.write_text(skipped_log, "".join(f"{p}\t{r}\n" for p, r in skipped))
    classes = train_scan.classes
    gone = {p for p, _ in failed}
    val_members = [i for i in split.members(1) if str(src.files[i]) not in gone]
    summary = DataSummary(
        classes=classes, train_counts=_counts(parts[sizes[0]][0], classes),
        val_counts=_counts(parts[sizes[0]][1], classes), skipped=skipped,
        ignored=sum(len(s.ignored) for s in scans), decode_seconds=time.time() - t0,
        decoded=sum(p.size for p in parts[sizes[0]][:2]), cache=str(entry),
        cache_hit=not missing, val_files=[str(src.files[i]) for i in val_members],
        val_labels=[src.labels[i] for i in val_members])
    for s in sizes:
        summary.shapes[s] = [tuple(map(int, sh)) for sh in parts[s][2]["shapes"]]
        summary.padded_fraction[s] = float(parts[s][2]["padded_fraction"])
    empty = [c for c in classes if summary.train_counts[c] == 0]
    if empty:
        release(entry)
        raise DataError(f"{train_dir}: class folder(s) with no readable images: "
                        f"{', '.join(empty)}; add images or remove the folder")
    return TrialData(classes=classes, train={s: parts[s][0] for s in sizes},
                     val={s: parts[s][1] for s in sizes}), summary


def _decode(src: Source, split: Split, sizes: Sequence[int], entry: Path, root: Path,
            workers: int | None, where: str, say: Callable[[str], None],
            progress: Callable[[int, int], None] | None = None) -> None:
    """Plan each size's buckets from the headers, refuse a decode the disk cannot hold,
    then decode once into every size's arrays."""
    plans = [plan_size(split, s, src.max_buckets) for s in sizes]
    need = {p.size: needed_bytes(p) - partial_bytes(entry, p.size) for p in plans}
    check_disk(need, free_bytes(root), len(plans[0].files), where, root)
    dirs = [size_dir(entry, s) for s in sizes]
    for d in dirs:
        d.mkdir(parents=True, exist_ok=True)
    say(f"decoding {len(plans[0].files):,} images at {', '.join(map(str, sizes))} px "
        f"into the decoded cache, once: later runs on these files find them there")
    failed = decode_sizes(src, plans, dirs, workers, say, progress)
    for plan, d in zip(plans, dirs):
        finish_size(d, plan, src, failed)


def _open_complete(entry: Path, size: int) -> tuple[Packed, Packed, dict] | None:
    """A size the cache holds complete, mapped; None when it must be decoded (never
    decoded, interrupted, or a file of it since lost or damaged: it is decoded anew)."""
    if not is_complete(entry, size):
        return None
    try:
        return open_size(size_dir(entry, size))
    except (OSError, ValueError):
        shutil.rmtree(size_dir(entry, size), ignore_errors=True)
        return None


def _counts(packed: Packed, classes: Sequence[str]) -> dict[str, int]:
    n = np.bincount(np.concatenate([b.y for b in packed.buckets] or [np.zeros(0, np.int32)]),
                    minlength=len(classes))
    return {c: int(n[k]) for k, c in enumerate(classes)}
