"""`hyperfcn predict` over a million small images: its peak RSS stays bounded (it decodes
and predicts a chunk at a time and prints rows as they come).

    python benchmarks/predict_memory.py [--images 1000000] [--work /tmp/hyperfcn-predict]

Writes ``--images`` 16x16 PNGs (1,000 a folder, once; kept in --work for the next run) and a
run folder holding a small model at 16 px, then runs `hyperfcn predict WORK/images --model
RUN --format csv` with its output to /dev/null, and reads the command's peak RSS. Figure:
peak RSS in MiB against the 2 GiB target.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))
from common import emit  # noqa: E402

CFG = {"image_size": 16, "batch_size": 64, "blocks": 2, "filters": 8, "head": "dense",
       "dense_units": 16, "learning_rate": 0.01}
PER_FOLDER = 1000


def make_images(root: Path, n: int) -> None:
    """n random 16x16 PNGs, PER_FOLDER to a folder; a finished set is kept (a marker)."""
    import numpy as np
    from PIL import Image

    done = root / f".made_{n}"
    if done.is_file():
        return
    rng = np.random.default_rng(0)
    tiles = rng.integers(0, 256, (256, 16, 16, 3), dtype=np.uint8)
    for i in range(n):
        folder = root / f"{i // PER_FOLDER:05d}"
        if i % PER_FOLDER == 0:
            folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(tiles[i % 256]).save(folder / f"{i:07d}.png", compress_level=1)
    done.write_text("")


def make_run(run: Path) -> None:
    import keras

    from hyperfcn.config import ModelConfig
    from hyperfcn.model import build_core

    run.mkdir(parents=True, exist_ok=True)
    build_core(ModelConfig.from_dict(CFG), 10).save(run / "model.keras")
    (run / "classes.json").write_text(json.dumps([f"c{i}" for i in range(10)]))
    (run / "best_config.json").write_text(json.dumps(CFG))
    del keras


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=1_000_000)
    ap.add_argument("--work", default="/tmp/hyperfcn-predict")
    ap.add_argument("--out", default=str(HERE / "results" / "predict_memory_cpu.json"))
    a = ap.parse_args()
    work = Path(a.work)
    t0 = time.time()
    make_images(work / "images", a.images)
    made_s = time.time() - t0
    make_run(work / "run")
    t0 = time.time()
    with open("/dev/null", "w") as sink:
        r = subprocess.run([sys.executable, "-m", "hyperfcn.cli", "predict",
                            str(work / "images"), "--model", str(work / "run"), "--format",
                            "csv"], stdout=sink, stderr=subprocess.PIPE, text=True)
    secs = time.time() - t0
    if r.returncode:
        raise SystemExit(r.stderr[-3000:])
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    emit({"images": a.images, "peak_rss_mib": round(peak_mib, 1),
          "predict_seconds": round(secs, 1), "images_per_s": round(a.images / secs),
          "make_seconds": round(made_s, 1),
          "figure": f"predict over {a.images} 16x16 images: peak RSS {peak_mib:.0f} MiB "
                    f"(target < 2048), {a.images / secs:.0f} images/s"}, a.out)


if __name__ == "__main__":
    main()
