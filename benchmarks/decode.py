"""Decode once: count decodes over an 8-trial run, and decode throughput per core, in
memory (decode_all) and as a run decodes (headers, plan, decode into the decoded cache).

    python benchmarks/decode.py [--size 64] [--repeats 3]

Every process counts the files it decodes; the driver's count must equal the number of
images and every trial's must be 0. Figure: decodes per image, and images/s per core.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))
from common import FLOWERS, emit, median  # noqa: E402


def in_memory_path(size: int, workers: int) -> int:
    """The run's way before the decoded cache: scan, decode every image into a list,
    plan the buckets, pack them (a second copy); returns the images kept."""
    from hyperfcn.data.buckets import pack, plan_buckets
    from hyperfcn.data.folder import decode_all, scan_folder

    files = scan_folder(FLOWERS / "train").files + scan_folder(FLOWERS / "val").files
    d = decode_all(files, [size], workers=workers)
    imgs = d.images[size]
    pack(imgs, [0] * len(imgs), plan_buckets([im.shape[:2] for im in imgs]))
    return len(imgs)


def throughputs(size: int, repeats: int) -> tuple[list[Path], dict[str, dict[int, list]]]:
    """Images/s on 1 and 2 threads: the decode alone, and the run's two ways from folders to
    the arrays trials read: in memory (scan, decode, pack into buckets) and the decoded
    cache (scan, headers, plan, decode into its files)."""
    from hyperfcn.data.folder import decode_all, scan_folder
    from hyperfcn.data.prepare import prepare

    files = scan_folder(FLOWERS / "train").files + scan_folder(FLOWERS / "val").files
    out: dict[str, dict[int, list]] = {k: {1: [], 2: []} for k in ("decode", "memory", "cache")}
    for _ in range(repeats):
        for workers in (1, 2):
            t = time.perf_counter()
            d = decode_all(files, [size], workers=workers)
            out["decode"][workers].append(len(d.kept) / (time.perf_counter() - t))
            t = time.perf_counter()
            n = in_memory_path(size, workers)
            out["memory"][workers].append(n / (time.perf_counter() - t))
            cache = Path(tempfile.mkdtemp(prefix="hyperfcn-decode-cache-"))
            t = time.perf_counter()
            _, summary = prepare(FLOWERS / "train", [size], val_dir=FLOWERS / "val",
                                 workers=workers, cache_dir=cache)
            out["cache"][workers].append(summary.decoded / (time.perf_counter() - t))
            shutil.rmtree(cache)
    return files, out


def decodes_in_a_search() -> tuple[int, list[int], int]:
    """(the driver's decodes, each trial's, trials) of an 8-trial search at 32 px."""
    run = Path(tempfile.mkdtemp(prefix="hyperfcn-decode-")) / "run"
    r = subprocess.run([sys.executable, "-m", "hyperfcn.cli", "tune", str(FLOWERS / "train"),
                        "--val-dir", str(FLOWERS / "val"), "--out", str(run), "--image-size",
                        "32", "--samples", "8", "--max-epochs", "1", "--no-final", "--quiet"],
                       capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(r.stderr[-4000:])
    driver = json.loads((run / "data.json").read_text())["decoded"]
    trial_decodes = []
    for p in (run / "tune").glob("trial_*/result.json"):
        trial_decodes += [json.loads(line)["worker_decodes"] for line in
                          p.read_text().splitlines() if line.strip()]
    return driver, trial_decodes, len(list((run / "tune").glob("trial_*")))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out")
    a = ap.parse_args()
    files, t = throughputs(a.size, a.repeats)
    rates, memory, cached = t["decode"], t["memory"], t["cache"]
    driver, trial_decodes, trials = decodes_in_a_search()
    per_image = (driver + sum(trial_decodes)) / len(files)
    ratio = {w: round(median(cached[w]) / median(memory[w]), 3) for w in (1, 2)}
    emit({"benchmark": "decode", "images": len(files), "driver_decodes": driver,
          "trials": trials, "decodes_in_trials": sum(trial_decodes),
          "decodes_per_image": per_image, "size": a.size,
          "images_per_s_1_thread": [round(x) for x in rates[1]],
          "images_per_s_2_threads": [round(x) for x in rates[2]],
          "cache_images_per_s_1_thread": [round(x) for x in cached[1]],
          "cache_images_per_s_2_threads": [round(x) for x in cached[2]],
          "memory_path_images_per_s_1_thread": [round(x) for x in memory[1]],
          "memory_path_images_per_s_2_threads": [round(x) for x in memory[2]],
          "cache_vs_memory_path": ratio,
          "figure": f"decodes per image over 8 trials: {per_image:.2f}; decode+resize to "
                    f"{a.size} px: {median(rates[1]):.0f} images/s per core "
                    f"({median(rates[2]):.0f} on 2 threads); folders to arrays, into the "
                    f"decoded cache vs in memory: {median(cached[1]):.0f} vs "
                    f"{median(memory[1]):.0f} images/s on 1 thread ({ratio[1]:.2f}x), "
                    f"{median(cached[2]):.0f} vs {median(memory[2]):.0f} on 2 "
                    f"({ratio[2]:.2f}x)"}, a.out)


if __name__ == "__main__":
    main()
