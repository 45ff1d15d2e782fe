"""The dashboard and the suite agree: every BENCHMARKS.md row names a command that
`benchmarks/run.py ROW` can run, and the script it names is in benchmarks/."""

import importlib.util
import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _runner():
    spec = importlib.util.spec_from_file_location("bench_run", ROOT / "benchmarks" / "run.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_every_row_names_a_benchmark_script_that_exists():
    table = _runner().rows()
    assert len(table) > 30
    for row, (_, commands) in table.items():
        assert commands, f"row {row} names no `python benchmarks/...` command"
        for c in commands:
            script = next(a for a in shlex.split(c) if a.startswith("benchmarks/"))
            assert (ROOT / script).is_file(), f"row {row}: {script} is not in benchmarks/"


def test_a_row_that_another_rows_command_prints_runs_that_command():
    table = _runner().rows("| 1 | a | t | c | m | `python benchmarks/x.py --n 2` | r |\n"
                           "| 1b | b | t | c | m | printed by row 1's command | r |\n")
    assert table["1b"][1] == ["python benchmarks/x.py --n 2"]
