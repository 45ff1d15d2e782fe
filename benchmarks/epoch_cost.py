"""What an epoch costs, read from finished runs: per image, training time against the
network's multiply-adds, and validation against training.

    python benchmarks/epoch_cost.py RUN_DIR [RUN_DIR ...] [--out FILE]

No training: every trial of each `tune` run (trials.json) and each `train` run
(metrics.json with best_config.json) gives its steady epochs' times (epochs 2 on, the
first compiles) split into training and validation, per image of its split (data.json).
The multiply-adds of its network are counted at the middle batch shape of its image size.
Figure: the median and range of validation's cost per image against training's (what
hyperfcn.data.epoch.FORWARD_COST assumes), and the least-squares fit of training seconds per
image to a + b x multiply-adds with its median error (how well an epoch's time could be
foretold before training).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from common import emit  # noqa: E402


def trials_of(run: Path) -> list[tuple[dict, list[dict]]]:
    """(config, history) of each trial of a run."""
    if (run / "trials.json").is_file():
        return [(t["config"], t.get("history", []))
                for t in json.loads((run / "trials.json").read_text())]
    m = json.loads((run / "metrics.json").read_text())
    return [(json.loads((run / "best_config.json").read_text()), m.get("history", []))]


def multiply_adds(config: dict, classes: int, shape: tuple[int, int], memo: dict) -> int:
    """Multiply-adds of one image's forward pass through the network's convs and denses."""
    import keras
    import numpy as np

    from hyperfcn.config import ModelConfig
    from hyperfcn.model import build_core

    key = (json.dumps(config, sort_keys=True), shape)
    if key not in memo:
        fields = ModelConfig.__dataclass_fields__
        core = build_core(ModelConfig(**{k: v for k, v in config.items() if k in fields}),
                          classes)
        layers = [la for la in core.layers
                  if isinstance(la, keras.layers.Conv2D | keras.layers.Dense)]
        outs = keras.Model(core.inputs, [la.output for la in layers])(
            np.zeros((1, *shape, 3), np.float32))
        memo[key] = sum(int(np.prod(o.shape[1:-1])) * int(np.prod(la.kernel.shape))
                        for la, o in zip(layers, outs, strict=True))
    return memo[key]


def run_rows(run: Path, memo: dict) -> list[dict]:
    data = json.loads((run / "data.json").read_text())
    n_tr, n_va = sum(data["train_counts"].values()), sum(data["val_counts"].values())
    rows = []
    for config, hist in trials_of(run):
        steady = [h for h in hist[1:] if h.get("epoch_seconds")]
        shapes = data["bucket_shapes"].get(str(config.get("image_size")))
        if not steady or not shapes:
            continue
        train = statistics.median(h["epoch_seconds"] - h.get("val_seconds", 0) for h in steady)
        val = statistics.median(h.get("val_seconds", 0) for h in steady)
        shape = tuple(shapes[len(shapes) // 2])
        rows.append({"run": run.name, "image_size": config.get("image_size"),
                     "shape": shape, "macs": multiply_adds(config, len(data["classes"]),
                                                           shape, memo),
                     "train_s_per_image": train / n_tr, "val_s_per_image": val / n_va,
                     "epochs": len(steady)})
    return rows


def fit(rows: list[dict]) -> tuple[float, float, float]:
    """(a seconds, b seconds per multiply-add, median relative error) of t = a + b x macs."""
    import numpy as np

    x = np.array([r["macs"] for r in rows], float)
    t = np.array([r["train_s_per_image"] for r in rows])
    (b, a), *_ = np.linalg.lstsq(np.stack([x, np.ones_like(x)], 1), t, rcond=None)
    err = float(np.median(np.abs((a + b * x) / t - 1)))
    return float(a), float(b), err


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", nargs="+", metavar="RUN_DIR")
    ap.add_argument("--out")
    a = ap.parse_args()
    memo: dict = {}
    rows = [r for run in map(Path, a.runs) for r in run_rows(run, memo)]
    ratios = sorted(r["val_s_per_image"] / r["train_s_per_image"] for r in rows)
    fa, fb, err = fit(rows)
    figure = (f"{len(rows)} trials: validation costs {statistics.median(ratios):.2f} of "
              f"training per image ({ratios[0]:.2f}-{ratios[-1]:.2f}); training per image "
              f"~ {fa * 1e3:.2f} ms + {fb * 1e12:.0f} ps per multiply-add (median error "
              f"{err:.0%})")
    emit({"benchmark": "epoch_cost", "rows": rows, "fit": {"a_s": fa, "b_s_per_mac": fb,
                                                            "median_error": err},
          "val_over_train": ratios, "figure": figure}, a.out)


if __name__ == "__main__":
    main()
