"""Whether a search would ship a better model if it compared its trials by calibrated
validation loss. Plain cross-entropy (what the search selects on) also scores confidence:
a trial trained with label smoothing, or more dropout, is less confident, so on a data set
it classifies almost perfectly its loss sits above an overconfident trial's that makes more
mistakes. One temperature fitted per model on the same validation images (Guo et al. 2017;
the "calibrated log-likelihood" of Ashukha et al. 2020) takes confidence out of the score.

    python benchmarks/calibrated_selection.py RUN_DIR [RUN_DIR ...] [--out FILE]

No training: every trial checkpoint a finished `tune` run kept is loaded and scored on the
run's own validation split (from its settings.json); the calibrated loss is
`hyperfcn.metrics.calibrated_loss`, what `--metric val_calibrated_loss` selects on. Figure:
per run, the validation accuracy of the checkpoint that plain and calibrated loss each
pick, and the best there.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from common import emit  # noqa: E402


def run_rows(run: Path) -> list[dict]:
    from hyperfcn import feed, metrics
    from hyperfcn.data.arrays import labels_of
    from hyperfcn.data.prepare import prepare
    from hyperfcn.final import load_core

    s = json.loads((run / "settings.json").read_text())
    data, _ = prepare(s["data"], s["image_sizes"], val_dir=s.get("val_dir"),
                      val_split=s["val_split"], seed=s["seed"], max_buckets=s["max_buckets"],
                      cache_dir=s.get("cache_dir"))
    rows = []
    for t in sorted((run / "tune").glob("trial_*")):
        size = json.loads((t / "params.json").read_text())["image_size"]
        val = data.val[size]
        for c in sorted(t.glob("checkpoint_*")):
            probs = feed.predict_packed(load_core(c), val, 64)
            plain = metrics.score(probs, labels_of(val))
            rows.append({"trial": t.name, "checkpoint": c.name, "val_loss": plain["val_loss"],
                         "calibrated_loss": plain["val_calibrated_loss"],
                         "val_accuracy": plain["val_accuracy"]})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", nargs="+", metavar="RUN_DIR")
    ap.add_argument("--out")
    a = ap.parse_args()
    out, said = {}, []
    for run in map(Path, a.runs):
        rows = run_rows(run)
        plain = min(rows, key=lambda r: r["val_loss"])
        cal = min(rows, key=lambda r: r["calibrated_loss"])
        best = max(r["val_accuracy"] for r in rows)
        out[str(run)] = {"checkpoints": rows, "plain_pick": plain, "calibrated_pick": cal}
        said.append(f"{run.name}: plain {plain['val_accuracy']:.4f}, calibrated "
                    f"{cal['val_accuracy']:.4f}, best {best:.4f} ({len(rows)} checkpoints)")
    emit({"benchmark": "calibrated_selection", "runs": out,
          "figure": "val accuracy of the checkpoint each loss picks: " + "; ".join(said)},
         a.out)


if __name__ == "__main__":
    main()
