"""Row 1's tune side, this checkout against an earlier one: the same six configurations
through `hyperfcn tune` (FIFO, one trial at a time on both cores), the two checkouts
alternating, so that a change in the machine's speed between repeats falls on both.

    python benchmarks/probes/overhead_ab.py --baseline-src OLD/src [--pairs 3]

Figure: the median over the pairs of new search seconds / baseline search seconds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
import overhead  # noqa: E402
from common import emit  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--baseline-src", type=Path, required=True)
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--out")
    a = ap.parse_args()
    configs = overhead.six_configs(64)
    work = Path(tempfile.mkdtemp(prefix="hyperfcn-overhead-ab-"))
    sides = {"new": HERE.parents[1] / "src", "baseline": a.baseline_src.resolve()}
    rows: dict[str, list[float]] = {k: [] for k in sides}
    for i in range(a.pairs):
        for k in (sides if i % 2 == 0 else reversed(list(sides))):
            os.environ["PYTHONPATH"] = str(sides[k])
            (work / k).mkdir(exist_ok=True)
            rows[k].append(round(overhead.tuned(configs, 3, 1, work / k)["search"], 1))
            print(k, rows[k][-1], flush=True)
    ratios = [round(n / b, 3) for n, b in zip(rows["new"], rows["baseline"], strict=True)]
    emit({"benchmark": "overhead_ab", "rows": rows, "ratios": ratios,
          "figure": f"tune search seconds, new / baseline checkout, median of {a.pairs} "
                    f"alternating pairs: {statistics.median(ratios):.3f}x ({ratios})"},
         a.out)


if __name__ == "__main__":
    main()
