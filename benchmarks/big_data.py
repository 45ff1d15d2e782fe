"""A dataset bigger than the in-memory path could hold: `tune` on 150,000 synthetic 4:3
photos to a saved model, with the default space's sizes and a tiny network.

    python benchmarks/big_data.py [--images 150000] [--work /tmp/hyperfcn-big]

Writes ``--images`` JPEGs of 171x128 px (10 classes told apart by the angle and colour of
their stripes, with noise and shifts; once, kept in --work for the next run), then runs
`hyperfcn tune WORK/photos --samples 1 --max-epochs 1` with a fresh decoded cache, reading
the driver's peak RSS and the machine's least available memory while it runs. The bytes
the run puts in Ray's object store are those of its pickled arrays (mapped: their paths).
Figure: driver peak RSS, the object-store bytes, the cache's size, and whether a model was
saved.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import pickle
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))
from common import emit  # noqa: E402

CLASSES = 10
W, H = 171, 128


def _photo(i: int):
    """Photo i: class i % CLASSES, stripes at its angle in its colour, shifted, noisy."""
    import numpy as np

    c = i % CLASSES
    rng = np.random.default_rng(i)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    angle = np.pi * c / CLASSES
    phase = rng.uniform(0, 2 * np.pi)
    wave = np.sin((xx * np.cos(angle) + yy * np.sin(angle)) / 6.0 + phase)
    tint = np.array([np.cos(2 * np.pi * c / CLASSES), np.sin(2 * np.pi * c / CLASSES), 0.3])
    img = 128 + 60 * wave[..., None] * tint + rng.normal(0, 25, (H, W, 3))
    return c, np.clip(img, 0, 255).astype(np.uint8)


def _write(args: tuple[Path, int, int]) -> None:
    from PIL import Image

    root, start, stop = args
    for i in range(start, stop):
        c, img = _photo(i)
        Image.fromarray(img).save(root / f"c{c}" / f"{i:07d}.jpg", quality=85)


def make_photos(root: Path, n: int) -> None:
    done = root / f".made_{n}"
    if done.is_file():
        return
    for c in range(CLASSES):
        (root / f"c{c}").mkdir(parents=True, exist_ok=True)
    step = 2000
    with multiprocessing.Pool(2) as pool:
        pool.map(_write, [(root, s, min(s + step, n)) for s in range(0, n, step)])
    done.write_text("")


def tiny_space(work: Path) -> Path:
    import yaml

    from hyperfcn.space import default_space_text

    raw = yaml.safe_load(default_space_text())
    raw["parameters"].update(blocks=2, convs_per_block=1, max_filters=32,
                             filters={"choice": [8, 16]}, head={"choice": {
                                 "dense": {"dense_units": {"choice": [16, 32]}},
                                 "conv": {"conv_head_filters": {"choice": [16, 32]}}}})
    raw["defaults"].update(blocks=2, convs_per_block=1, filters=16, conv_head_filters=32)
    path = work / "tiny_space.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def _status_kb(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _available_kb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1])
    return 0


def run_tune(photos: Path, work: Path, cache: Path) -> dict:
    run = work / "run"
    subprocess.run(["rm", "-rf", str(run), str(cache)], check=True)
    cmd = [sys.executable, "-m", "hyperfcn.cli", "tune", str(photos), "--out", str(run),
           "--samples", "1", "--max-epochs", "1", "--space", str(tiny_space(work)),
           "--cache-dir", str(cache)]
    t0 = time.time()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak_kb, least_free_kb, lines = 0, _available_kb(), []
    import threading

    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    while proc.poll() is None:
        peak_kb = max(peak_kb, _status_kb(proc.pid, "VmHWM"))
        least_free_kb = min(least_free_kb, _available_kb())
        time.sleep(0.5)
    reader.join(timeout=10)
    summary = json.loads((run / "data.json").read_text()) if (run / "data.json").exists() else {}
    return {"exit_code": proc.returncode, "seconds": round(time.time() - t0, 1),
            "driver_peak_rss_mib": round(peak_kb / 1024), "model_saved":
            (run / "model.keras").is_file(), "least_available_mib": round(least_free_kb / 1024),
            "decode_seconds": summary.get("decode_seconds"),
            "bucket_shapes": summary.get("bucket_shapes"), "output_tail": "".join(lines[-15:])}


def object_store_bytes(photos: Path, cache: Path) -> int:
    """The bytes of the arrays the run puts in Ray's object store (the cache is warm)."""
    from hyperfcn.api import TuneOptions, shareable
    from hyperfcn.data.prepare import prepare

    data, _ = prepare(photos, [64, 96, 128], cache_dir=cache)
    return len(pickle.dumps(shareable(data, TuneOptions(data=photos)), protocol=5))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=150_000)
    ap.add_argument("--work", type=Path, default=Path("/tmp/hyperfcn-big"))
    ap.add_argument("--out")
    a = ap.parse_args()
    photos = a.work / f"photos-{a.images}"
    t = time.time()
    make_photos(photos, a.images)
    made_s = time.time() - t
    cache = a.work / "cache"
    res = run_tune(photos, a.work, cache)
    store = object_store_bytes(photos, cache) if res["exit_code"] == 0 else None
    cache_bytes = sum(f.stat().st_size for f in cache.rglob("*") if f.is_file())
    emit({"benchmark": "big_data", "images": a.images, "photo_size": f"{W}x{H}",
          "make_photos_s": round(made_s, 1), **res, "object_store_bytes": store,
          "cache_gib": round(cache_bytes / 2**30, 2),
          "figure": f"tune on {a.images} photos at 64/96/128 px: exit {res['exit_code']}, "
                    f"model saved: {res['model_saved']}; driver peak RSS "
                    f"{res['driver_peak_rss_mib']} MiB; object store {store} bytes; "
                    f"cache {cache_bytes / 2**30:.1f} GiB on disk"}, a.out)


if __name__ == "__main__":
    main()
