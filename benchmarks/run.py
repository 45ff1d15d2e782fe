"""Run a BENCHMARKS.md row by its number: the dashboard's command cell is the one place a
figure's command is written, and this runs it.

    python benchmarks/run.py --list        every row and its command
    python benchmarks/run.py 35 [--dry-run]

A row's command is the first `python benchmarks/...` (or `bash benchmarks/...`, after any
`NAME=value` settings) in its command cell, or the command of the row whose command prints
its figure too; a cell may say what to run after it: those steps are printed, not run.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DASHBOARD = ROOT / "BENCHMARKS.md"
COMMAND = re.compile(r"`((?:[A-Z_]+=\S+ )*(?:python3?|bash) benchmarks/[^`]+)`")
PRINTED_BY = re.compile(r"printed by row (\w+)'s command")


def rows(text: str | None = None) -> dict[str, tuple[str, list[str]]]:
    """{row number: (its figure, the benchmark commands its command cell names)}."""
    text = DASHBOARD.read_text() if text is None else text
    out: dict[str, tuple[str, list[str]]] = {}
    by: dict[str, str] = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 6 and re.fullmatch(r"\d+[a-z]?", cells[0]):
            out[cells[0]] = (cells[1], COMMAND.findall(cells[-2]))
            printed = PRINTED_BY.search(cells[-2])
            if printed:
                by[cells[0]] = printed.group(1)
    for n, other in by.items():
        if not out[n][1] and other in out:
            out[n] = (out[n][0], out[other][1])
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("row", nargs="?", help="the row's number (e.g. 35, 25c)")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--dry-run", action="store_true", help="print the command only")
    a = ap.parse_args()
    table = rows()
    if a.list or not a.row:
        for n, (figure, commands) in table.items():
            print(f"{n:>4}  {commands[0] if commands else '(no benchmark command)'}"
                  f"\n      {figure[:90]}")
        return 0
    if a.row not in table or not table[a.row][1]:
        print(f"row {a.row}: not in {DASHBOARD.name}, or it names no `python benchmarks/...` "
              f"command; --list shows them", file=sys.stderr)
        return 2
    first, *more = table[a.row][1]
    print(f"row {a.row}: {first}" + "".join(f"\n  then (not run): {m}" for m in more),
          flush=True)
    if a.dry_run:
        return 0
    argv = shlex.split(first)
    env = dict(kv.split("=", 1) for kv in argv if re.fullmatch(r"[A-Z_]+=\S+", kv))
    argv = argv[len(env):]
    program = [sys.executable] if argv[0].startswith("python") else [argv[0]]
    return subprocess.call([*program, *argv[1:]], cwd=ROOT, env={**os.environ, **env})


if __name__ == "__main__":
    sys.exit(main())
