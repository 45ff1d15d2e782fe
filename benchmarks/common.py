"""Shared helpers for the benchmarks: data loading, timing, medians."""

from __future__ import annotations

import atexit
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Every benchmark decodes cold, into a decoded cache of its own (its commands inherit it),
# removed when it ends: a figure never rests on an earlier run's cache.
if "HYPERFCN_CACHE_DIR" not in os.environ:
    os.environ["HYPERFCN_CACHE_DIR"] = tempfile.mkdtemp(prefix="hyperfcn-bench-cache-")
    atexit.register(shutil.rmtree, os.environ["HYPERFCN_CACHE_DIR"], ignore_errors=True)

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ROOT.parent / "shared" / "datasets"
SIZES = {"cifar10-small": 32, "digits": 32}  # the others at 64 px, the recipe's size
FLOWERS = Path(os.environ.get("HYPERFCN_FLOWERS", ROOT.parent / "shared" / "datasets" /
                              "flowers"))


def machine() -> str:
    gpu = ""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10)
        if out.returncode == 0 and out.stdout.strip():
            gpu = ", " + out.stdout.strip().splitlines()[0]
    except (OSError, subprocess.TimeoutExpired):
        pass
    return f"{platform.machine()} {os.cpu_count()} cores{gpu}"


def median(xs):
    return statistics.median(xs)


def load_flowers(sizes):
    """Decoded, bucketed flowers arrays, as a trial sees them."""
    sys.path.insert(0, str(ROOT / "src"))
    from hyperfcn.data.prepare import prepare

    data, summary = prepare(FLOWERS / "train", sizes, val_dir=FLOWERS / "val")
    return data, summary


def commit() -> str:
    """The checkout's git commit (with "+changes" when its tracked files differ from it):
    what a raw result was measured on."""
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True,
                                  text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return ""

    head = git("rev-parse", "--short=12", "HEAD")
    return (head + ("+changes" if git("status", "--porcelain", "--untracked-files=no")
                    else "")) if head else "unknown"


def emit(result: dict, out: str | None = None) -> None:
    """Write the result as JSON (to $OUT when on the device) and print the figure last."""
    result = {**result, "machine": machine(), "date": time.strftime("%Y-%m-%d"),
              "commit": commit()}
    text = json.dumps(result, indent=2)
    target = out or os.environ.get("BENCH_OUT")
    if target:
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        Path(target).write_text(text)
    print(text)
    print(result["figure"])


def data_args(name: str, work: Path) -> list[str]:
    """DATA (and --val-dir) of a development dataset for the CLI; the bundled digits, and a
    kind of the suite of datasets unlike them (``suite:mirror``, see suite/make_data.py),
    are written under `work` first. ``flowers@50``: a small photo set, 50 training images
    a class drawn (seeded) from the dataset's training split and linked under `work`, with
    its whole validation split; ``flowers@50/30`` draws 30 validation images a class too
    (a validation set of the size such data has, whose cost an epoch is the data's own)."""
    if "@" in name:
        base, sizes = name.split("@", 1)
        train, _, val = sizes.partition("/")
        return [str(_sample(base, "train", int(train), work)), "--val-dir",
                str(_sample(base, "val", int(val), work) if val else DATASETS / base / "val")]
    if name.startswith("suite:"):
        kind = name.split(":", 1)[1]
        d = work / "suite" / kind
        if not (d / "val").is_dir():
            subprocess.run([sys.executable, str(ROOT / "benchmarks" / "suite" / "make_data.py"),
                            kind, str(d)], check=True, capture_output=True)
        return [str(d / "train"), "--val-dir", str(d / "val")]
    if name == "digits":
        d = work / "digits"
        if not d.is_dir():
            subprocess.run([sys.executable, str(ROOT / "examples" / "make_digits.py"), str(d)],
                           check=True, capture_output=True)
        return [str(d)]
    return [str(DATASETS / name / "train"), "--val-dir", str(DATASETS / name / "val")]


def _sample(base: str, split: str, per_class: int, work: Path) -> Path:
    """`per_class` of each class's images of a development dataset's split, as links."""
    import random

    d = work / f"{base}-{split}@{per_class}"
    if d.is_dir():
        return d
    # made aside and renamed into place: two runs started at once (--paired) both make it
    tmp = Path(tempfile.mkdtemp(prefix=f".{d.name}-", dir=work))
    for cls in sorted(p for p in (DATASETS / base / split).iterdir() if p.is_dir()):
        files = sorted(f for f in cls.iterdir() if f.is_file())
        (tmp / cls.name).mkdir()
        for f in random.Random(f"{base}/{split}/{cls.name}").sample(
                files, min(per_class, len(files))):
            (tmp / cls.name / f.name).symlink_to(f)
    try:
        tmp.rename(d)
    except OSError:  # the other run's is in place: the same draw
        shutil.rmtree(tmp)
    return d
