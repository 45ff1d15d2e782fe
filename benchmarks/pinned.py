"""The one A/B harness: hyperfcn commands run side by side as the comparisons need them.

Each command runs pinned to its own core(s) with `taskset` (so two runs at once do not share
a core), in a run folder of its own made afresh, with a cold decoded cache of its own (as a
user's first run decodes), optionally from another checkout's `src` (a baseline), and with
extra environment variables. :func:`pooled` runs many such jobs, at most one per core set at
a time. Every side-by-side benchmark goes through here: class_weight, train_deadline,
final_model, search_arms, large_epochs, bohb_live, record_curves.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import os
import queue
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Command:
    """One run: ``hyperfcn ARGS...`` (or ``python SCRIPT ARGS...``) writing into ``out``."""

    args: Sequence[str]
    out: Path
    src: Path | None = None  # a checkout's src/ to run instead of this one
    env: dict[str, str] = field(default_factory=dict)
    script: Path | None = None  # a Python script to run instead of the hyperfcn CLI

    @property
    def cache(self) -> Path:
        return Path(f"{self.out}-cache")


@dataclass(frozen=True)
class Finished:
    """A command that ran: its exit, its output and its times since its start."""

    command: Command
    returncode: int
    stdout: str
    stderr: str
    t0: float
    exit_s: float

    @property
    def error(self) -> list[str] | None:
        """None when it exited 0; else the last line of what it printed to stderr."""
        return None if not self.returncode else self.stderr.strip().splitlines()[-1:]

    def saved_s(self) -> float:
        """Seconds from the command's start until its model.keras was written."""
        return round((self.command.out / "model.keras").stat().st_mtime - self.t0, 1)

    def json(self, name: str) -> Any:
        return json.loads((self.command.out / name).read_text())


def _argv(c: Command, cores: str) -> list[str]:
    what = [str(c.script)] if c.script else ["-m", "hyperfcn.cli"]
    return ["taskset", "-c", cores, sys.executable, *what, *c.args]


def _env(c: Command) -> dict[str, str]:
    env = {**os.environ, "HYPERFCN_CACHE_DIR": str(c.cache), **c.env}
    if c.src is not None:
        env["PYTHONPATH"] = str(c.src)
    return env


def start(c: Command, cores: str) -> tuple[subprocess.Popen, float]:
    """Start ``c`` on ``cores`` (e.g. "0" or "0,1") in a fresh run folder and cache."""
    shutil.rmtree(c.out, ignore_errors=True)
    shutil.rmtree(c.cache, ignore_errors=True)
    proc = subprocess.Popen(_argv(c, cores), env=_env(c), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    return proc, time.time()


def finish(c: Command, proc: subprocess.Popen, t0: float) -> Finished:
    out, err = proc.communicate()
    shutil.rmtree(c.cache, ignore_errors=True)
    return Finished(c, proc.returncode, out, err, t0, round(time.time() - t0, 1))


def run(c: Command, cores: str) -> Finished:
    return finish(c, *start(c, cores))


def side_by_side(commands: Sequence[Command], cores: Sequence[str] = ("0", "1")
                 ) -> list[Finished]:
    """Each command at once on its own core set, started together: the comparison a noisy
    shared machine allows (both sides see the same load)."""
    if len(commands) > len(cores):
        raise ValueError(f"{len(commands)} commands for {len(cores)} core sets")
    started = [(c, *start(c, k)) for c, k in zip(commands, cores, strict=False)]
    return [finish(c, p, t0) for c, p, t0 in started]


def pooled(jobs: Iterable[Any], work: Callable[[Any, str], dict],
           cores: Sequence[str] = ("0", "1")) -> Iterator[dict]:
    """``work(job, cores)`` for every job, at most one at a time on each core set; results
    in the jobs' order."""
    free: queue.Queue[str] = queue.Queue()
    for k in cores:
        free.put(k)

    def one(job: Any) -> dict:
        k = free.get()
        try:
            return work(job, k)
        finally:
            free.put(k)

    with cf.ThreadPoolExecutor(max_workers=len(cores)) as pool:
        yield from pool.map(one, jobs)
