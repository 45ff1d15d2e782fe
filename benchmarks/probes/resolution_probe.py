"""Whether saved models score better at a larger test resolution than they trained at (models
trained with zoom augmentation see objects larger than they are; FixRes, Touvron et al. 2019,
found the best test size above the training size): validation accuracy of each RUN_DIR's
model.keras on its validation folder, its images' short side at the run's image size and at
-8, +8, +16, +24 and +32 px.

    python benchmarks/probes/resolution_probe.py RUN_DIR:VAL_DIR [RUN_DIR:VAL_DIR ...] [--out FILE]

No training: it scores models that runs saved (the network is fully convolutional, so any size
runs). Figure: each run's best test size and its gain over the training size, in points.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
from common import emit  # noqa: E402

OFFSETS = (-8, 0, 8, 16, 24, 32)


def by_size(run_dir: str, val_dir: str) -> dict[int, float]:
    from hyperfcn.inference import evaluate_folder, load_run

    run = load_run(run_dir)
    out = {}
    for d in OFFSETS:
        sized = dataclasses.replace(run, config={**run.config,
                                                 "image_size": run.image_size + d})
        out[run.image_size + d] = round(evaluate_folder(sized, val_dir)[0]["accuracy"], 4)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", nargs="+", metavar="RUN_DIR:VAL_DIR")
    ap.add_argument("--out")
    a = ap.parse_args()
    rows, said = {}, []
    for spec in a.runs:
        run_dir, val_dir = spec.rsplit(":", 1)
        acc = by_size(run_dir, val_dir)
        trained = list(acc)[OFFSETS.index(0)]
        best = max(acc, key=acc.__getitem__)
        rows[run_dir] = {"trained_at": trained, "accuracy_by_test_size": acc}
        said.append(f"{Path(run_dir).name}: best at {best} px "
                    f"({100 * (acc[best] - acc[trained]):+.1f} points over {trained} px)")
    emit({"benchmark": "resolution_probe", "runs": rows,
          "figure": "test resolution above training: " + "; ".join(said)}, a.out)


if __name__ == "__main__":
    main()
