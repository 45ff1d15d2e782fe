"""What test-time augmentation buys saved models: validation accuracy and loss of each RUN_DIR's
model.keras on its validation folder, plain and averaged with its horizontal mirror.

    python benchmarks/probes/tta_probe.py RUN_DIR:VAL_DIR [RUN_DIR:VAL_DIR ...] [--out FILE]

No training: it scores models that runs saved. Figure: the median gain in accuracy (points)
of flip averaging, over the runs whose model trained with horizontal flips.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
from common import emit, median  # noqa: E402

HERE = Path(__file__).resolve().parents[1]  # benchmarks/


def scores(run_dir: Path, val_dir: Path) -> dict:
    import numpy as np

    from hyperfcn.data.arrays import labels_of
    from hyperfcn.data.buckets import batch_plan, pack, plan_buckets
    from hyperfcn.data.folder import decode_all, scan_folder
    from hyperfcn.inference import load_run
    from hyperfcn.metrics import score

    run = load_run(run_dir)
    scan = scan_folder(val_dir, classes=run.classes)
    dec = decode_all(scan.files, [run.image_size])
    imgs = dec.images[run.image_size]
    packed = pack(imgs, [scan.labels[i] for i in dec.kept],
                  plan_buckets([im.shape[:2] for im in imgs]))
    plain, flipped = [], []
    for b, idx, n in batch_plan(packed, 32, None):
        x = packed.buckets[b].x[idx].astype(np.float32)
        plain.append(np.asarray(run.model.predict_on_batch(x))[:n])
        flipped.append(np.asarray(run.model.predict_on_batch(x[:, :, ::-1]))[:n])
    p, f = np.concatenate(plain), np.concatenate(flipped)
    y = labels_of(packed)
    return {"run": str(run_dir), "flip": run.config.get("flip"), "plain": score(p, y),
            "flip_avg": score((p + f) / 2, y), "images": int(len(y))}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("pairs", nargs="+", help="RUN_DIR:VAL_DIR")
    ap.add_argument("--out", default=str(HERE / "results" / "tta_probe_cpu.json"))
    a = ap.parse_args()
    rows = []
    for pair in a.pairs:
        run, _, val = pair.partition(":")
        rows.append(scores(Path(run), Path(val)))
        r = rows[-1]
        print(json.dumps({k: r[k] for k in ("run", "flip", "plain", "flip_avg")}), flush=True)
    gains = [100 * (r["flip_avg"]["val_accuracy"] - r["plain"]["val_accuracy"])
             for r in rows if r["flip"] in ("horizontal", "horizontal_and_vertical")]
    emit({"rows": rows, "gain_points": gains,
          "figure": f"flip TTA gain in val accuracy, median of {len(gains)} saved models: "
                    f"{median(gains):+.2f} points" if gains else "no model trained with flips"},
         a.out)


if __name__ == "__main__":
    main()
