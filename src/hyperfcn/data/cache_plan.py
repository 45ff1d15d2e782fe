"""What goes where in the decoded cache, planned from the images' headers before any
decode: the split (which files train, which validate, which cannot be read) and, at each
size, every image's decoded shape, its bucket and its row in its bucket's array."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .buckets import BucketPlan, plan_buckets
from .folder import MAX_ASPECT, decoded_shapes_many, probe_all, stratified_split

# Bump when what an entry's files hold changes: older entries are then never read.
FORMAT = 1


@dataclass(frozen=True)
class Source:
    """The files an entry is made from and the settings that shape it."""

    files: tuple[Path, ...]
    labels: tuple[int, ...]
    n_train: int  # files[:n_train] are DATA's; the rest --val-dir's
    val_split: float
    seed: int
    max_buckets: int
    val_dir: bool = False  # validation is --val-dir's files, not a split drawn from DATA

    def key(self) -> str:
        drawn = not self.val_dir  # a drawn split depends on its fraction and seed
        h = hashlib.sha256(json.dumps(
            [FORMAT, MAX_ASPECT, self.n_train, len(self.files), self.max_buckets,
             self.val_split if drawn else None, self.seed if drawn else None]).encode())
        for p, label in zip(self.files, self.labels):
            try:
                st = os.stat(p)
                stamp = f"{st.st_size}:{st.st_mtime_ns}"
            except OSError:
                stamp = "missing"
            # a file name need not be UTF-8: hash its bytes as the file system has them
            h.update(os.fsencode(os.path.abspath(p)) + f"\0{stamp}\0{label}\n".encode())
        return h.hexdigest()[:24]


@dataclass
class Split:
    """Every file's (width, height) from its header and its part: 0 train, 1 val, -1 not
    readable (with why in ``skipped``)."""

    shapes: np.ndarray  # int64 (n, 2)
    part: np.ndarray  # int8 (n,)
    skipped: list[tuple[str, str]]

    def members(self, part: int) -> np.ndarray:
        return np.flatnonzero(self.part == part)


def make_split(src: Source) -> Split:
    probes = probe_all(src.files)
    shapes = np.full((len(src.files), 2), -1, np.int64)
    skipped = []
    for i, r in enumerate(probes):
        if isinstance(r, str):
            skipped.append((str(src.files[i]), r))
        else:
            shapes[i] = r
    ok = np.flatnonzero(shapes[:, 0] >= 0)
    part = np.full(len(src.files), -1, np.int8)
    if src.val_dir:
        part[ok] = (ok >= src.n_train).astype(np.int8)
    elif len(ok):
        _, va = stratified_split([src.labels[i] for i in ok], src.val_split, src.seed)
        part[ok] = 0
        part[ok[va]] = 1
    return Split(shapes=shapes, part=part, skipped=skipped)


@dataclass(frozen=True)
class SizePlan:
    """Where each readable image goes at one size, as arrays over the readable files in
    file order: its decoded shape, its part, its bucket and its row in (part, bucket)."""

    size: int
    plan: BucketPlan
    files: np.ndarray  # file indices, ascending
    hw: np.ndarray  # (n, 2) decoded (height, width)
    part: np.ndarray  # 0 train, 1 val
    bucket: np.ndarray
    row: np.ndarray
    rows: dict[tuple[int, int], np.ndarray]  # (part, bucket) -> file indices, row order

    def padded_fraction(self, failed: Sequence[int] = ()) -> float:
        keep = ~np.isin(self.files, np.asarray(list(failed), np.int64))
        bh, bw = np.asarray(self.plan.shapes)[self.bucket].T
        real = np.minimum(self.hw[:, 0], bh) * np.minimum(self.hw[:, 1], bw)
        total = float((bh * bw)[keep].sum())
        return 1.0 - float(real[keep].sum()) / total if total else 0.0


def plan_size(split: Split, size: int, max_buckets: int) -> SizePlan:
    files = np.flatnonzero(split.part >= 0)
    hw = decoded_shapes_many(split.shapes[files], size)
    plan = plan_buckets([tuple(x) for x in hw], max_buckets)
    bucket = plan.assign_many(hw)
    part = split.part[files].astype(np.int64)
    row = np.zeros(len(files), np.int64)
    rows: dict[tuple[int, int], np.ndarray] = {}
    for p in (0, 1):
        for b in range(len(plan.shapes)):
            mine = np.flatnonzero((part == p) & (bucket == b))
            if len(mine):
                row[mine] = np.arange(len(mine))
                rows[(p, b)] = files[mine]
    return SizePlan(size=size, plan=plan, files=files, hw=hw, part=part, bucket=bucket,
                    row=row, rows=rows)


def needed_bytes(plan: SizePlan) -> int:
    return sum(3 * len(r) * plan.plan.shapes[b][0] * plan.plan.shapes[b][1]
               for (_, b), r in plan.rows.items())
