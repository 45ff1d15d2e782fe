"""What a refused command costs: the CPU time (user + system) of `hyperfcn tune /nope` and
of `hyperfcn tune DATA --val-dir /nope`, until their one-line exit 2. Medians of several
runs.

    python benchmarks/refusal_cpu.py [--repeats 5] [--out FILE]

The README promises a bad folder is refused in a second; these are the commands a typo
costs.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import emit  # noqa: E402


def cpu_seconds(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, int, str]:
    """(CPU seconds of the child, its exit code, its stderr's last line)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    r = subprocess.run([sys.executable, "-m", "hyperfcn", *argv], capture_output=True,
                       text=True, env={**os.environ, **(env or {})})
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, r.returncode, (r.stderr.strip().splitlines() or [""])[-1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out")
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="hyperfcn-refusal-"))
    for c in ("a", "b"):
        (work / "data" / c).mkdir(parents=True)
    cases = {"tune /nope": (["tune", str(work / "nope")], None),
             "tune DATA --val-dir /nope": (["tune", str(work / "data"), "--val-dir",
                                            str(work / "nope")], None)}
    out = {}
    for name, (argv, env) in cases.items():
        runs = [cpu_seconds(argv, env) for _ in range(a.repeats)]
        out[name] = {"cpu_s": [round(r[0], 3) for r in runs], "exit": runs[0][1],
                     "said": runs[0][2], "median_cpu_s": round(statistics.median(
                         r[0] for r in runs), 3)}
    figure = "; ".join(f"{k}: {v['median_cpu_s']:.2f} s of CPU, exit {v['exit']}"
                       for k, v in out.items())
    emit({"benchmark": "refusal_cpu", "repeats": a.repeats, "cases": out,
          "command": " ".join(["python", "benchmarks/refusal_cpu.py", *sys.argv[1:]]),
          "figure": f"refused before any work (medians of {a.repeats}): {figure}"}, a.out)


if __name__ == "__main__":
    main()
