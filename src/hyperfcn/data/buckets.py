"""Aspect-ratio buckets: a few fixed batch shapes instead of one compile per shape.

The FCN accepts any size, but every new input shape costs a recompile (XLA) or a retrace
(tf.function). Images whose short side is S are grouped into at most `max_buckets` shapes,
chosen by dynamic programming to minimise padding; each image is padded (mirrored, centred)
to its bucket's shape.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

MAX_BUCKETS = 4


@dataclass(frozen=True)
class BucketPlan:
    shapes: tuple[tuple[int, int], ...]  # (height, width) of each bucket

    def assign(self, h: int, w: int) -> int:
        """The smallest bucket that holds (h, w); if none does, the one that crops least."""
        fits = [i for i, (bh, bw) in enumerate(self.shapes) if bh >= h and bw >= w]
        if fits:
            return min(fits, key=lambda i: self.shapes[i][0] * self.shapes[i][1])
        return min(range(len(self.shapes)),
                   key=lambda i: h * w - min(h, self.shapes[i][0]) * min(w, self.shapes[i][1]))

    def assign_many(self, hw: np.ndarray) -> np.ndarray:
        """:meth:`assign` of every (height, width) row of ``hw``."""
        shapes = np.asarray(self.shapes, np.int64)  # (k, 2)
        h, w = hw[:, :1].astype(np.int64), hw[:, 1:].astype(np.int64)
        fits = (shapes[None, :, 0] >= h) & (shapes[None, :, 1] >= w)
        area = np.where(fits, shapes[:, 0] * shapes[:, 1], np.iinfo(np.int64).max)
        kept = np.minimum(h, shapes[None, :, 0]) * np.minimum(w, shapes[None, :, 1])
        return np.where(fits.any(1), area.argmin(1), (h * w - kept).argmin(1))


def _round_up(x: int, m: int) -> int:
    return -(-x // m) * m


def plan_buckets(shapes: Sequence[tuple[int, int]], max_buckets: int = MAX_BUCKETS,
                 multiple: int = 1) -> BucketPlan:
    """Choose up to max_buckets (h, w) shapes minimising padded pixels over `shapes`.

    Shapes are ordered by aspect ratio (portrait ... landscape); a bucket is a contiguous
    run in that order and its shape is the run's max height and max width.
    """
    if not shapes:
        raise ValueError("no image shapes to plan buckets for")
    uniq, counts = np.unique(np.asarray(shapes, dtype=np.int64), axis=0, return_counts=True)
    order = np.argsort(np.log(uniq[:, 1] / uniq[:, 0]), kind="stable")
    uniq, counts = uniq[order], counts[order]
    n = len(uniq)
    k_max = min(max_buckets, n)
    area = (uniq[:, 0] * uniq[:, 1] * counts).astype(np.float64)

    # cost[i][j]: padded pixels if items i..j form one bucket
    cost = np.zeros((n, n))
    shape_of: dict[tuple[int, int], tuple[int, int]] = {}
    for i in range(n):
        mh, mw, tot, cnt = 0, 0, 0.0, 0
        for j in range(i, n):
            mh, mw = max(mh, uniq[j, 0]), max(mw, uniq[j, 1])
            tot += area[j]
            cnt += counts[j]
            bh, bw = _round_up(int(mh), multiple), _round_up(int(mw), multiple)
            cost[i, j] = bh * bw * cnt - tot
            shape_of[(i, j)] = (bh, bw)
    inf = float("inf")
    best = np.full((k_max + 1, n + 1), inf)
    back = np.zeros((k_max + 1, n + 1), dtype=np.int64)
    best[0, 0] = 0.0
    for k in range(1, k_max + 1):
        for j in range(1, n + 1):
            for i in range(k - 1, j):
                c = best[k - 1, i] + cost[i, j - 1]
                if c < best[k, j]:
                    best[k, j], back[k, j] = c, i
    k = int(np.argmin(best[1:, n])) + 1
    out: list[tuple[int, int]] = []
    j = n
    while k > 0:
        i = int(back[k, j])
        out.append(shape_of[(i, j - 1)])
        j, k = i, k - 1
    return BucketPlan(tuple(reversed(out)))


def fit_to(img: np.ndarray, h: int, w: int) -> np.ndarray:
    """Centre-crop or mirror-pad an (H, W, C) array to exactly (h, w, C)."""
    ih, iw = img.shape[:2]
    if ih > h:
        t = (ih - h) // 2
        img = img[t:t + h]
    if iw > w:
        left = (iw - w) // 2
        img = img[:, left:left + w]
    ih, iw = img.shape[:2]
    if ih == h and iw == w:
        return img
    ph, pw = h - ih, w - iw
    # Mirror padding keeps image statistics; zeros would bias global pooling.
    return np.pad(img, ((ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)),
                  mode="symmetric")


@dataclass
class Bucket:
    x: np.ndarray  # uint8 (N, H, W, 3)
    y: np.ndarray  # int32 (N,)
    index: np.ndarray  # position of each image in the input list
    path: str | None = None  # the .npy file x maps, when it is the decoded cache's

    def __reduce__(self):
        # A mapped bucket travels as its file's path (Ray's object store, a trial's
        # arguments): each process maps the file, sharing the page cache, never a copy.
        if self.path is None:
            return (Bucket, (self.x, self.y, self.index))
        return (_mapped, (self.path, self.y, self.index))


def _mapped(path: str, y: np.ndarray, index: np.ndarray) -> Bucket:
    return Bucket(x=np.load(path, mmap_mode="r"), y=y, index=index, path=path)


@dataclass
class Packed:
    buckets: list[Bucket]
    padded_fraction: float  # share of pixels that are padding, not image

    @property
    def size(self) -> int:
        return sum(len(b.y) for b in self.buckets)

    def shapes(self) -> list[tuple[int, int]]:
        return [tuple(b.x.shape[1:3]) for b in self.buckets]


def pack(images: Sequence[np.ndarray], labels: Sequence[int] | None,
         plan: BucketPlan) -> Packed:
    groups: dict[int, list[int]] = {}
    for i, img in enumerate(images):
        groups.setdefault(plan.assign(img.shape[0], img.shape[1]), []).append(i)
    buckets: list[Bucket] = []
    real = 0
    total = 0
    lab = np.asarray(labels if labels is not None else [-1] * len(images), dtype=np.int32)
    for b in sorted(groups):
        h, w = plan.shapes[b]
        idx = np.asarray(groups[b], dtype=np.int64)
        x = np.empty((len(idx), h, w, 3), dtype=np.uint8)
        for k, i in enumerate(idx):
            x[k] = fit_to(images[i], h, w)
            real += min(images[i].shape[0], h) * min(images[i].shape[1], w)
        total += len(idx) * h * w
        buckets.append(Bucket(x=x, y=lab[idx], index=idx))
    return Packed(buckets=buckets, padded_fraction=1.0 - real / total if total else 0.0)


def batch_plan(packed: Packed, batch_size: int, rng: np.random.Generator | None,
               rows: Sequence[np.ndarray] | None = None) -> list[tuple[int, np.ndarray, int]]:
    """(bucket, indices, n_real) per batch, every batch exactly batch_size long.

    Fixed batch sizes keep the number of compiled shapes at the number of buckets. With an
    rng (training), items are shuffled within buckets, batches across buckets, and a short
    last batch is topped up with random other items of its bucket. Without one
    (evaluation), order is kept and the last batch is topped up with repeats: the first
    n_real rows are real, the caller drops the rest; ``rows`` (per bucket) evaluates only
    those.
    """
    plan: list[tuple[int, np.ndarray, int]] = []
    for b, bucket in enumerate(packed.buckets):
        n = len(bucket.y)
        order = (rng.permutation(n) if rng is not None
                 else np.asarray(rows[b]) if rows is not None else np.arange(n))
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            n_real = len(idx)
            if n_real < batch_size:
                fill = (rng.integers(0, n, batch_size - n_real) if rng is not None
                        else np.resize(idx, batch_size - n_real))
                idx = np.concatenate([idx, fill])
            plan.append((b, idx, n_real))
    if rng is not None:
        plan = [plan[i] for i in rng.permutation(len(plan))]
    return plan


def batches(packed: Packed, batch_size: int, rng: np.random.Generator | None
            ) -> Iterator[tuple[np.ndarray, np.ndarray, int]]:
    """The batches of batch_plan, gathered: (x, y, n_real)."""
    for b, idx, n_real in batch_plan(packed, batch_size, rng):
        bucket = packed.buckets[b]
        yield bucket.x[idx], bucket.y[idx], n_real


def steps(packed: Packed, batch_size: int) -> int:
    return sum(-(-len(b.y) // batch_size) for b in packed.buckets)
