"""Who may write a RUN_DIR: the lock every command that writes one holds, what kind of run a
folder holds, and the checks that refuse a command its folder does not fit (a `train` onto
any run, a `tune` onto a `train` run, a second command while one runs, a `--resume` on
other data), each before anything in the folder changes.

The lock is ``RUN_DIR/.hyperfcn.lock``, held with ``flock`` for the command's life: the
kernel lets it go when the process ends, however it ends (kill -9 included), so a stale lock
never blocks a resume. The file stays, recording the run's kind and the last command that
held it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, TextIO

from . import artifacts as art
from .errors import UserError

LOCK = ".hyperfcn.lock"


class RunKind(StrEnum):
    TUNE = "tune"
    TRAIN = "train"


# The files any command writes in a RUN_DIR: a folder holding one of them is a run.
_RUN_FILES = (art.SETTINGS, art.MODEL, art.METRICS, art.TRIALS_JSON, art.SEARCH,
              art.DATA_SUMMARY, art.RAY_DIR, LOCK)

# What a held lock's holder is, per folder, in this process: a command that writes its
# report from within `tune` holds the lock already.
_HELD: dict[Path, TextIO] = {}


def _lock_info(run_dir: Path) -> dict[str, Any]:
    try:
        info = json.loads((run_dir / LOCK).read_text())
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def kind_of(run_dir: Path) -> RunKind | None:
    """The kind of run RUN_DIR holds, or None when it holds none (missing or empty of
    hyperfcn's files)."""
    if not run_dir.is_dir() or not any((run_dir / f).exists() for f in _RUN_FILES):
        return None
    recorded = _lock_info(run_dir).get("kind")
    if recorded in tuple(RunKind):
        return RunKind(recorded)
    # a folder written before kinds were recorded: a search leaves Ray's folder
    search = any((run_dir / f).exists() for f in (art.RAY_DIR, art.SEARCH, art.TRIALS_JSON))
    return RunKind.TUNE if search else RunKind.TRAIN


def check_target(run_dir: Path, kind: RunKind) -> None:
    """Refuse a RUN_DIR this command must not write, before anything is created in it."""
    if run_dir.exists() and not run_dir.is_dir():
        raise UserError(f"--out {run_dir}: is a file, not a folder; give a new folder (or a "
                        f"run's, to resume it)")
    held = kind_of(run_dir)
    if held is None:
        return
    if kind == RunKind.TRAIN:
        raise UserError(f"--out {run_dir}: holds a `{held}` run already; `train` writes a "
                        f"new run and never overwrites one: give a new --out")
    if held == RunKind.TRAIN:
        raise UserError(f"--out {run_dir}: holds a `train` run (one configuration trained, "
                        f"not a search): `tune` cannot resume or extend it; give a new --out")


def _acquire(run_dir: Path) -> TextIO:
    f = open(run_dir / LOCK, "a+")  # noqa: SIM115 (held until the command ends)
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.seek(0)
        try:
            who = json.loads(f.read() or "{}")
        except ValueError:
            who = {}
        f.close()
        by = f" (pid {who['pid']}: {who.get('command', '?')})" if who.get("pid") else ""
        raise UserError(f"{run_dir}: in use by another hyperfcn command{by}; wait for it "
                        f"to end, or give another --out") from None
    return f


def _record(f: TextIO, info: Mapping[str, Any]) -> None:
    f.seek(0)
    f.truncate()
    f.write(json.dumps(dict(info)) + "\n")
    f.flush()


@contextlib.contextmanager
def holding(run_dir: Path, command: str, kind: RunKind | None = None) -> Iterator[None]:
    """Hold RUN_DIR's lock while the block runs (at once, or a one-line refusal when another
    command holds it); ``kind`` records what the folder holds. Re-entrant in a process."""
    run_dir = run_dir.resolve()
    if run_dir in _HELD:
        yield
        return
    try:
        f = _acquire(run_dir)
    except OSError as e:
        raise UserError(f"{run_dir}: cannot write there ({e.strerror}); give a folder you "
                        f"can write") from None
    _HELD[run_dir] = f
    try:
        info = {**_lock_info(run_dir), "pid": os.getpid(), "command": command}
        if kind is not None:
            info["kind"] = str(kind)
        _record(f, info)
        yield
    finally:
        del _HELD[run_dir]
        f.close()  # releases the lock


@dataclass
class Claim:
    """A RUN_DIR this command holds: whether it made the folder, and whether its work has
    begun (before that, everything it wrote there can be made again in seconds)."""

    run_dir: Path
    created: bool
    working: bool = False

    def begin_work(self) -> None:
        """From here, what the command writes is work a failure must not lose."""
        self.working = True

    def _undo(self) -> None:
        """A failure leaves no folder behind that this command made and that holds nothing
        worth keeping: any failure before the work began (a refusal, an interrupt, a
        crash), or later one that wrote none of a run's files."""
        holds = any((self.run_dir / f).exists() for f in _RUN_FILES if f != LOCK)
        if self.created and (not self.working or not holds):
            shutil.rmtree(self.run_dir, ignore_errors=True)


@contextlib.contextmanager
def claimed(run_dir: Path, kind: RunKind, command: str) -> Iterator[Claim]:
    """Check, create and lock RUN_DIR for a `tune` or `train`; the command calls
    :meth:`Claim.begin_work` once its checks have passed."""
    check_target(run_dir, kind)
    claim = Claim(run_dir, created=not run_dir.exists())
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"--out {run_dir}: cannot create the folder ({e.strerror}); give a "
                        f"folder you can write") from None
    try:
        with holding(run_dir, command, kind):
            yield claim
    except BaseException:
        claim._undo()
        raise


RUNS = Path("runs")


def default_run_dir(data: Path, resume: bool, parent: Path = RUNS) -> Path:
    """Where a run goes without --out: ``runs/<DATA's name>``, numbered ``-2``, ``-3``, ...
    past the runs already there, so that a second run never collides with the first (as
    Ray Tune and AutoGluon do); with --resume, the last of them."""
    name = data.resolve().name or "hyperfcn"
    taken = [parent / name]
    while kind_of(taken[-1]) is not None or (taken[-1].exists()
                                             and any(taken[-1].iterdir())):
        taken.append(parent / f"{name}-{len(taken) + 1}")
    if resume and len(taken) > 1:
        return taken[-2]
    return taken[-1]


# What a search's split is made of: a resume on other data would mix trials (and ship a
# model with the wrong classes.json).
SAME_DATA_KEYS = ("data_abs", "val_dir_abs", "val_split", "seed")


def check_same_data(run_dir: Path, now: Mapping[str, Any]) -> None:
    """Refuse a resume whose data or split differ from those the run was searched on."""
    try:
        before = art.read_json(run_dir / art.SETTINGS)
    except (OSError, ValueError):
        return  # interrupted before its settings were written: nothing to compare
    diff = [f"{k} {before.get(k)!r} (now {now.get(k)!r})" for k in SAME_DATA_KEYS
            if k in before and before.get(k) != now.get(k)]
    if diff:
        raise UserError(f"{run_dir}: searched with {', '.join(diff)}; --resume must read the "
                        f"same data and split: give the same DATA, --val-dir, --val-split "
                        f"and --seed, or start a new --out")


def check_same_classes(run_dir: Path, classes: list[str]) -> None:
    """Refuse a resume whose data's classes differ from the run's."""
    try:
        before = art.read_json(run_dir / art.DATA_SUMMARY).get("classes")
    except (OSError, ValueError, AttributeError):
        return
    if before is not None and list(before) != list(classes):
        gone, new = sorted(set(before) - set(classes)), sorted(set(classes) - set(before))
        what = "; ".join(x for x in (new and f"new classes {', '.join(new)}",
                                     gone and f"classes gone {', '.join(gone)}") if x)
        raise UserError(f"{run_dir}: its search had the classes {', '.join(before)}, and the "
                        f"data now has {what or 'them in another order'}; --resume must read "
                        f"the same classes: start a new --out")
