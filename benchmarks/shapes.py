"""Compiled shapes per trial and padding waste on the flowers photos at 64 and 128 px.

    python benchmarks/shapes.py [--batch 32]

Counts the distinct input shapes a trial's training and validation batches have (each one
costs a compile under XLA or a trace under tf.function), against padding each batch to its
own largest image. Figure: shapes and padded share of pixels per size.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))
from common import FLOWERS, emit  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--out")
    a = ap.parse_args()
    from hyperfcn.data.buckets import batch_plan
    from hyperfcn.data.folder import decode_all, scan_folder
    from hyperfcn.data.prepare import prepare

    sizes = [64, 128]
    data, summary = prepare(FLOWERS / "train", sizes, val_dir=FLOWERS / "val")
    files = scan_folder(FLOWERS / "train").files
    raw = decode_all(files, sizes)
    rows = {}
    for s in sizes:
        shapes = set()
        for packed, rng in ((data.train[s], np.random.default_rng(0)), (data.val[s], None)):
            for b, _idx, _ in batch_plan(packed, a.batch, rng):
                shapes.add((a.batch, *packed.buckets[b].x.shape[1:]))
        # the naive way: shuffle, pad each batch to its own largest image
        rng = np.random.default_rng(0)
        order = rng.permutation(len(raw.images[s]))
        naive = set()
        for i in range(0, len(order), a.batch):
            hw = [raw.images[s][j].shape[:2] for j in order[i:i + a.batch]]
            naive.add((len(hw), max(h for h, _ in hw), max(w for _, w in hw)))
        rows[s] = {"shapes": len(shapes), "padded_fraction": round(summary.padded_fraction[s], 4),
                   "naive_shapes": len(naive), "bucket_shapes": summary.shapes[s]}
    fig = "; ".join(f"{s} px: {r['shapes']} shapes, {r['padded_fraction']:.1%} padding "
                    f"(naive: {r['naive_shapes']} shapes)" for s, r in rows.items())
    emit({"benchmark": "shapes", "batch": a.batch, "rows": {str(k): v for k, v in rows.items()},
          "figure": f"compiled shapes per trial: {fig}"}, a.out)


if __name__ == "__main__":
    main()
