"""Data bigger than an epoch: `tune` on 150,000 synthetic photos with a budget shorter than
one pass over them, this checkout against an earlier one, one core each, side by side.

    python benchmarks/large_epochs.py --baseline-src OLD/src [--images 150000]
        [--budget 9m] [--size 32] [--work /tmp/hyperfcn-big-epochs] [--out FILE]

Writes the photos once (benchmarks/big_data.py's 10 classes of stripes, at 43x32 px: the
figure is about the number of images, and small files are quick to write; kept in --work),
then runs `hyperfcn tune PHOTOS --image-size SIZE --budget B
--cpus-per-trial 1 --concurrency 1` with this checkout's src on core 0 and --baseline-src's
on core 1, each decoding into its own cold cache. Figure, per side: whether a model was
saved (else the error), its val accuracy, the epochs trained, and the share of an epoch's
time its validation took.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))
import big_data  # noqa: E402
from common import emit  # noqa: E402
from pinned import Command, Finished, side_by_side  # noqa: E402

big_data.W, big_data.H = 43, 32  # a 4:3 photo whose short side is 32 px


def command(src: Path, photos: Path, run: Path, a: argparse.Namespace) -> Command:
    return Command(["tune", str(photos), "--image-size", str(a.size), "--budget", a.budget,
                    "--out", str(run), "--cpus-per-trial", "1", "--concurrency", "1",
                    "--quiet"], run, src=src)


def result(f: Finished) -> dict:
    row: dict = {"exit_s": f.exit_s, "returncode": f.returncode}
    if f.error:
        return {**row, "saved": False, "error": f.error}
    m = f.json("metrics.json")
    trials = f.json("trials.json")
    hist = [h for t in trials for h in t.get("history", [])]
    shares = [h["val_seconds"] / h["epoch_seconds"] for h in hist if h.get("epoch_seconds")]
    return {**row, "saved": (f.command.out / "model.keras").is_file(),
            "val_accuracy": m["val_accuracy"], "trials": len(trials),
            "epochs": [len(t.get("history", [])) for t in trials],
            "epoch_seconds": [round(h["epoch_seconds"], 1) for h in hist],
            "val_share": round(statistics.median(shares), 3) if shares else None,
            "startup": [line for line in f.stdout.splitlines() if "an epoch is" in line]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--baseline-src", type=Path, required=True)
    ap.add_argument("--images", type=int, default=150_000)
    ap.add_argument("--budget", default="9m")
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--work", type=Path, default=Path("/tmp/hyperfcn-big-epochs"))
    ap.add_argument("--out")
    a = ap.parse_args()
    photos = a.work / "photos"
    big_data.make_photos(photos, a.images)
    sides = {"new": HERE.parent / "src", "baseline": a.baseline_src.resolve()}
    done = side_by_side([command(src, photos, a.work / f"run-{k}", a)
                         for k, src in sides.items()])
    rows = {k: result(f) for k, f in zip(sides, done, strict=True)}

    def said(r: dict) -> str:
        if not r["saved"]:
            return f"no model ({' '.join(r['error'])[:160]})"
        return (f"saved, val accuracy {r['val_accuracy']:.3f}, epochs {r['epochs']}, "
                f"validation {r['val_share']:.1%} of an epoch")
    figure = (f"{a.images:,} photos at {a.size} px, --budget {a.budget}, one core each: "
              f"new: {said(rows['new'])}; baseline: {said(rows['baseline'])}")
    emit({"benchmark": "large_epochs", "images": a.images, "budget": a.budget,
          "size": a.size, "rows": rows, "figure": figure}, a.out)


if __name__ == "__main__":
    main()
