"""Aggregate trial throughput (trial-epochs per minute) with 1, 2, 4, 8 trials on one GPU.

    python benchmarks/gpu_packing.py [--data DIR] [--epochs 8] [--levels 1,2,4,8]

Each level runs `hyperfcn tune` with the seed-size model at 128 px, FIFO (no early stopping),
`--gpus-per-trial 1/N` and N trials at once (memory limits set automatically from the share).
Throughput = trial-epochs finished / search wall time. Figure: 4-trial throughput / 1-trial.
Each row also says where a trial's time went (medians over its trials): setup (process start
to the first fit: worker start, imports, build), first epoch (compiles), a later epoch, and
validation within a later epoch.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import FLOWERS, emit  # noqa: E402

HERE = Path(__file__).resolve().parent


def phases(out: Path) -> dict[str, float]:
    """Medians over the level's trials of where their time went, from Ray's result.json."""
    setup, first, later, val = [], [], [], []
    for f in sorted((out / "tune").glob("trial_*/result.json")):
        rs = [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
        if not rs:
            continue
        setup.append(rs[0].get("setup_seconds", 0.0))
        first.append(rs[0].get("epoch_seconds", 0.0))
        later += [r.get("epoch_seconds", 0.0) for r in rs[1:]]
        val += [r.get("val_seconds", 0.0) for r in rs[1:]]

    def med(xs: list[float]) -> float | None:
        return round(statistics.median(xs), 2) if xs else None

    return {"setup_s": med(setup), "first_epoch_s": med(first), "later_epoch_s": med(later),
            "later_val_s": med(val)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=FLOWERS)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--levels", default="1,2,4,8")
    ap.add_argument("--waves", type=int, default=1, help="trials per level = waves x N")
    ap.add_argument("--image-size", type=int, default=128)
    ap.add_argument("--work", type=Path, default=Path("/tmp/hyperfcn-packing"))
    ap.add_argument("--cpu", action="store_true", help="no GPU: check the script on CPU")
    ap.add_argument("--out")
    a = ap.parse_args()
    levels = [int(x) for x in a.levels.split(",")]
    rows = []
    for n in levels:
        out = a.work / f"n{n}"
        shutil.rmtree(out, ignore_errors=True)
        share = ["--cpus-per-trial", "1"] if a.cpu else ["--gpus-per-trial", f"{1 / n:.6f}"]
        cmd = [sys.executable, "-m", "hyperfcn.cli", "tune", str(a.data / "train"),
               "--val-dir", str(a.data / "val"), "--out", str(out), "--space",
               str(HERE / "seed_space.yaml"), "--image-size", str(a.image_size),
               "--scheduler", "fifo", "--samples", str(n * a.waves), "--concurrency", str(n),
               "--max-epochs", str(a.epochs), "--no-final", "--quiet", *share]
        t = time.time()
        r = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.time() - t
        if r.returncode != 0:
            print(r.stdout[-3000:], r.stderr[-6000:], file=sys.stderr)
            raise SystemExit(f"level {n} failed (exit {r.returncode})")
        info = json.loads((out / "search.json").read_text())
        rate = info["trial_epochs"] / info["search_wall_seconds"] * 60
        rows.append({"trials_at_once": n, "trials": info["trials"],
                     "trial_epochs": info["trial_epochs"],
                     "search_seconds": info["search_wall_seconds"],
                     "command_seconds": round(wall, 1),
                     "trial_epochs_per_min": round(rate, 2), **phases(out)})
        print(json.dumps(rows[-1]), flush=True)
        if a.out:  # what is done survives a device call's time limit
            Path(a.out).parent.mkdir(parents=True, exist_ok=True)
            Path(a.out).write_text(json.dumps({"partial": True, "rows": rows}, indent=2))
    base = rows[0]["trial_epochs_per_min"]
    for r in rows:
        r["speedup"] = round(r["trial_epochs_per_min"] / base, 2)
    four = next((r["speedup"] for r in rows if r["trials_at_once"] == 4), None)
    emit({"benchmark": "gpu_packing", "backend": os.environ.get("KERAS_BACKEND"),
          "epochs": a.epochs, "rows": rows,
          "figure": f"GPU packing: 4 trials at once = {four}x the trial-epochs/min of one"
                    if four else f"GPU packing speedups: {[r['speedup'] for r in rows]}"},
         a.out)


if __name__ == "__main__":
    main()
