"""What a running search shows: a live table on a terminal, one line per event elsewhere.

The views are plain objects fed by events (trial started, epoch reported, trial ended);
search.ProgressCallback turns Ray Tune's callbacks into those events.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any


@contextlib.contextmanager
def counted_bar(what: str, quiet: bool = False) -> Iterator[Callable[[int, int], None]]:
    """A progress bar whose total is known only once the work starts (the decode): the
    callable it yields takes (done, total) and opens the bar at its first call, on a
    terminal's stderr, for jobs of more than one chunk."""
    state: dict[str, Any] = {}

    def update(done: int, total: int) -> None:
        if "advance" not in state:
            state["advance"] = stack.enter_context(bar(what, total, quiet))
            state["done"] = 0
        state["advance"](done - state["done"])
        state["done"] = done

    with contextlib.ExitStack() as stack:
        yield update


@contextlib.contextmanager
def bar(what: str, total: int, quiet: bool = False) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr while a long job runs (predict, evaluate), advanced by the
    callable it yields; nothing where stderr is not a terminal (logs stay clean) or the job
    is one chunk."""
    if quiet or total <= 1024 or not sys.stderr.isatty():
        yield lambda n: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    # rich's live display would take over stdout by default, and the rows `predict` writes
    # there (to a file, a pipe) would go to the terminal instead
    with Progress(f"[bold]{what}", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=Console(stderr=True), transient=True, redirect_stdout=False,
                  redirect_stderr=False) as p:
        task = p.add_task(what, total=total)
        yield lambda n: p.advance(task, n)


KEY_PARAMS = ("image_size", "batch_size", "learning_rate", "optimizer", "blocks", "filters",
              "head", "backbone", "fine_tune")


def _fmt(v: Any) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def _clock(s: float) -> str:
    s = max(0, int(s))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else \
        f"{s // 60:02d}:{s % 60:02d}"


@dataclass
class TrialRow:
    trial_id: str
    params: str
    epoch: int = 0
    last: float | None = None
    best: float | None = None
    status: str = "running"
    seconds_per_epoch: float | None = None
    planned: int = 0  # the epochs of a recipe fitted to the search's end (trial.py)


@dataclass
class Board:
    """The state of a search, enough to draw it and to estimate what is left."""

    metric: str
    mode: str
    max_epochs: int
    budget_s: float | None = None
    samples: int | None = None
    concurrency: int = 1
    rungs: tuple[int, ...] = ()
    final: bool = True
    t0: float = field(default_factory=time.time)
    rows: dict[str, TrialRow] = field(default_factory=dict)
    best: float | None = None
    best_trial: str | None = None
    # (seconds left, when estimated, trials done): see _reestimate
    _estimate: tuple[float, float, int] | None = None

    def better(self, a: float, b: float | None) -> bool:
        return b is None or (a < b if self.mode == "min" else a > b)

    def epochs_of(self, row: TrialRow) -> int:
        """The epochs a trial is to train: --max-epochs, or those a fitted recipe planned."""
        return row.planned or self.max_epochs

    def started(self, trial_id: str, config: Mapping[str, Any]) -> TrialRow:
        shown = " ".join(f"{k}={_fmt(config[k])}" for k in KEY_PARAMS if k in config)
        row = self.rows.setdefault(trial_id, TrialRow(trial_id, shown))
        row.status = "running"
        return row

    def result(self, trial_id: str, result: Mapping[str, Any]) -> TrialRow | None:
        row = self.rows.get(trial_id) or self.started(trial_id, result.get("config") or {})
        v = result.get(self.metric)
        if v is None or not math.isfinite(v):
            return None
        row.epoch = int(result.get("epoch", row.epoch + 1))
        row.planned = int(result.get("planned_epochs") or row.planned)
        row.last = float(v)
        if self.better(v, row.best):
            row.best = float(v)
        if self.better(v, self.best):
            self.best, self.best_trial = float(v), trial_id
        secs = result.get("time_total_s")
        if secs and row.epoch:
            row.seconds_per_epoch = float(secs) / row.epoch
        self._reestimate()
        return row

    def ended(self, trial_id: str, epochs: int | None = None, error: str = "",
              out_of_budget: bool = False, raced: int = 0) -> TrialRow:
        row = self.rows.get(trial_id) or TrialRow(trial_id, "")
        self.rows[trial_id] = row
        if epochs is not None:
            row.epoch = max(row.epoch, epochs)
        if error:
            row.status = f"failed: {error}"
        elif row.epoch >= self.epochs_of(row):
            row.status = "done"
        elif raced and row.epoch >= raced:
            row.status = f"ran the race's {raced} epochs"
        elif out_of_budget:
            row.status = f"out of budget at epoch {row.epoch}"
        else:
            rung = (self.rungs.index(row.epoch) + 1) if row.epoch in self.rungs else None
            row.status = (f"stopped at rung {rung} (epoch {row.epoch})" if rung
                          else f"stopped at epoch {row.epoch}")
        self._reestimate()
        return row

    def _reestimate(self) -> None:
        """The --samples upper bound, moved only by evidence (a reported epoch, an ended
        trial): trials left x the median trial's full length / concurrency, less the
        epochs the running trials have done."""
        speeds = sorted(r.seconds_per_epoch for r in self.rows.values() if r.seconds_per_epoch)
        if not (self.samples and speeds) or self.budget_s is not None:
            return
        per_epoch = speeds[len(speeds) // 2]
        done = sum(1 for r in self.rows.values() if r.status != "running")
        running = [r for r in self.rows.values() if r.status == "running"]
        epochs_left = ((self.samples - done - len(running)) * self.max_epochs
                       + sum(max(0, self.max_epochs - r.epoch) for r in running))
        self._estimate = (max(0.0, epochs_left * per_epoch / max(1, self.concurrency)),
                          time.time(), done)

    def is_open(self, trial_id: str) -> bool:
        row = self.rows.get(trial_id)
        return row is not None and row.status == "running"

    def elapsed(self) -> float:
        return time.time() - self.t0

    def eta(self) -> str:
        """With a budget, the time until the model is saved (the budget counts from the
        command's start, ``t0``, and includes the final step); with --samples alone, an
        upper bound on the search."""
        if self.budget_s is not None:
            left = max(0.0, self.budget_s - self.elapsed())
            ready = time.strftime("%H:%M", time.localtime(self.t0 + self.budget_s))
            return (f"{_clock(left)} left of {_clock(self.budget_s)}; model saved by "
                    f"{ready}")
        if self._estimate is None:
            return ""
        est, at, done = self._estimate
        left = max(0.0, est - (time.time() - at))  # counts down between pieces of evidence
        text = f"search: ~{_clock(left)} left (upper bound, {done}/{self.samples} trials)"
        if self.final:
            text += "; then the final model (seconds, unless the best trial was cut short)"
        return text


class LineView:
    """One line per event: readable in CI logs and files."""

    def __init__(self, board: Board, say: Callable[[str], None] | None = None) -> None:
        self.board = board
        self.say = say or (lambda m: print(m, flush=True))
        self._last_eta = 0.0

    def _stamp(self) -> str:
        return f"[{_clock(self.board.elapsed())}]"

    def started(self, trial_id: str, config: Mapping[str, Any]) -> None:
        row = self.board.started(trial_id, config)
        self.say(f"{self._stamp()} trial {trial_id} started: {row.params}")

    def result(self, trial_id: str, result: Mapping[str, Any]) -> None:
        row = self.board.result(trial_id, result)
        if row is None:
            return
        b = self.board
        self.say(f"{self._stamp()} trial {trial_id} epoch {row.epoch}/{b.epochs_of(row)}: "
                 f"val_loss {result.get('val_loss', float('nan')):.4f} val_accuracy "
                 f"{result.get('val_accuracy', float('nan')):.4f} (best {b.metric} so far "
                 f"{b.best:.4f})")
        if time.time() - self._last_eta > 60 and b.eta():
            self._last_eta = time.time()
            self.say(f"{self._stamp()} {b.eta()}")

    def ended(self, trial_id: str, epochs: int | None = None, error: str = "",
              out_of_budget: bool = False, raced: int = 0) -> None:
        row = self.board.ended(trial_id, epochs, error, out_of_budget, raced)
        self.say(f"{self._stamp()} trial {trial_id} {row.status}")

    def note(self, msg: str) -> None:
        """A decision of the search's (not a trial's), said once."""
        self.say(f"{self._stamp()} {msg}")

    def tick(self) -> None:
        pass

    def close(self) -> None:
        pass


class LiveView(LineView):
    """A table redrawn in place (rich), for terminals."""

    MAX_ROWS = 14

    def __init__(self, board: Board, console: Any = None) -> None:
        from rich.console import Console
        from rich.live import Live

        super().__init__(board, say=lambda m: None)
        self.console = console or Console()
        self.live = Live(self._render(), console=self.console, refresh_per_second=2,
                         transient=False, redirect_stdout=True, redirect_stderr=True)
        self.live.start()

    def _render(self) -> Any:
        from rich.table import Table

        b = self.board
        title = f"hyperfcn search  [{_clock(b.elapsed())}]"
        if b.best is not None:
            title += f"  best {b.metric} {b.best:.4f} (trial {b.best_trial})"
        t = Table(title=title, caption=b.eta() or None, expand=False, title_justify="left")
        for col in ("trial", "parameters", "epoch", b.metric, "best", "status"):
            t.add_column(col, overflow="fold" if col == "parameters" else "ellipsis",
                         max_width=60 if col == "parameters" else None)
        rows = list(b.rows.values())
        running = [r for r in rows if r.status == "running"]
        rest = sorted((r for r in rows if r.status != "running"),
                      key=lambda r: (r.best is None,
                                     (r.best or 0) * (1 if b.mode == "min" else -1)))
        shown = running + rest[:max(3, self.MAX_ROWS - len(running))]
        for r in shown:
            style = ("bold green" if r.trial_id == b.best_trial else
                     "red" if r.status.startswith("failed") else
                     "dim" if r.status.startswith(("stopped", "out of budget")) else None)
            t.add_row(r.trial_id, r.params, f"{r.epoch}/{b.epochs_of(r)}",
                      "" if r.last is None else f"{r.last:.4f}",
                      "" if r.best is None else f"{r.best:.4f}", r.status[:60], style=style)
        hidden = len(rows) - len(shown)
        if hidden > 0:
            t.add_row("", f"... {hidden} more (all in trials.csv at the end)", "", "", "", "")
        return t

    def _update(self) -> None:
        self.live.update(self._render())

    def started(self, trial_id: str, config: Mapping[str, Any]) -> None:
        self.board.started(trial_id, config)
        self._update()

    def result(self, trial_id: str, result: Mapping[str, Any]) -> None:
        self.board.result(trial_id, result)
        self._update()

    def ended(self, trial_id: str, epochs: int | None = None, error: str = "",
              out_of_budget: bool = False) -> None:
        self.board.ended(trial_id, epochs, error, out_of_budget)
        self._update()

    def note(self, msg: str) -> None:
        self.console.print(f"{self._stamp()} {msg}")

    def tick(self) -> None:
        self._update()

    def close(self) -> None:
        self._update()
        self.live.stop()


def make_view(board: Board, quiet: bool, say: Callable[[str], None] | None = None,
              stream: Any = None) -> LineView | None:
    """None when quiet; lines for a given `say`, a pipe or a file; a live table on a tty."""
    if quiet:
        return None
    if say is not None:
        return LineView(board, say)
    stream = stream or sys.stdout
    if hasattr(stream, "isatty") and stream.isatty():
        return LiveView(board)
    return LineView(board)
