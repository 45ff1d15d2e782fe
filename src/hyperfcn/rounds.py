"""Which round of a search a `tune` command runs in a RUN_DIR.

A search is one or more rounds, each a Ray Tune experiment in RUN_DIR (`tune`, `tune-2`,
...) followed by its final step (the model saved). A new RUN_DIR starts round 1.
`--resume` continues the last round if its search was interrupted (Ray restores it), or
runs its final step again if that was interrupted (no trial runs again); if every round
finished, `--resume` with a larger `--samples` or a `--budget` starts the next round,
whose searcher learns from every earlier trial. `search.json` lists the rounds whose
search finished, and whether the last one's final step is still to do. No Ray here: the
caller says which experiments exist.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import artifacts as art
from .errors import SpaceError, UserError


@dataclass(frozen=True)
class Round:
    name: str  # the experiment's folder under the storage path
    restore: bool  # continue an interrupted experiment
    earlier: list[dict[str, Any]] = field(default_factory=list)  # trials of other rounds
    samples: int | None = None  # trials this round may start (None: the budget decides)
    final_only: bool = False  # the search finished; its final step was interrupted

    @property
    def number(self) -> int:
        return 1 if self.name == FIRST else int(self.name.rsplit("-", 1)[1])


FIRST = "tune"
# search.json's "final_step": the last round's final step is still to do, or done
FINAL_PENDING, FINAL_DONE = "pending", "done"


def name_of(number: int) -> str:
    return FIRST if number == 1 else f"{FIRST}-{number}"


def finished_rounds(run_dir: Path) -> list[str]:
    search = run_dir / art.SEARCH
    if search.is_file():
        done = json.loads(search.read_text()).get("rounds")
        if done is not None:
            return list(done)
    # a run from before rounds were recorded: finished if it saved a model
    return [FIRST] if (run_dir / art.MODEL).is_file() or search.is_file() else []


def final_pending(run_dir: Path) -> bool:
    """Whether the last round's search finished and its final step did not."""
    search = run_dir / art.SEARCH
    return search.is_file() and json.loads(search.read_text()).get("final_step") == FINAL_PENDING


def _records(run_dir: Path) -> list[dict[str, Any]]:
    p = run_dir / art.TRIALS_JSON
    return json.loads(p.read_text()) if p.is_file() else []


def plan_round(run_dir: Path, resume: bool, samples: int | None, budget_s: float | None,
               exists: Callable[[str], bool]) -> Round:
    """The round to run, or a UserError that says what to do instead."""
    names = []
    while exists(name_of(len(names) + 1)):
        names.append(name_of(len(names) + 1))
    done = finished_rounds(run_dir)
    if not names:
        if resume:
            raise UserError(f"{run_dir}: no search to resume there; drop --resume to start "
                            f"one")
        return Round(FIRST, restore=False, samples=samples)
    last_finished = names[-1] in done
    if last_finished and final_pending(run_dir):
        if not resume:
            raise UserError(f"{run_dir}: holds a finished search whose final model was not "
                            f"saved (interrupted); add --resume to make it (no trial runs "
                            f"again), or pick another --out")
        return Round(names[-1], restore=False, earlier=_records(run_dir), final_only=True)
    if not resume:
        if last_finished:
            raise UserError(f"{run_dir}: holds a finished search; use a new --out, or "
                            f"--resume with a larger --samples or --budget to extend it")
        raise UserError(f"{run_dir}: holds an interrupted search; add --resume to continue "
                        f"it, or pick another --out")
    records = _records(run_dir)
    if not last_finished:
        return Round(names[-1], restore=True,
                     earlier=[r for r in records if r.get("search", FIRST) != names[-1]])
    if budget_s is None and (samples is None or samples <= len(records)):
        raise UserError(f"{run_dir}: the search finished with {len(records)} trials; to "
                        f"extend it, give --samples larger than {len(records)}, or a "
                        f"--budget, with --resume")
    return Round(name_of(len(names) + 1), restore=False, earlier=records,
                 samples=None if samples is None else samples - len(records))


def evaluated(records: list[dict[str, Any]], metric: str,
              space: Any) -> tuple[list[tuple[dict, float]], str | None]:
    """(config, best metric) of each earlier trial with a result that lies in this round's
    space: what a new round's searcher starts from. A round may search another `--space`
    (or `--image-size`) than the rounds before it, and TPE cannot place a value its space
    lacks; the second item says how many trials were left out, and why the first was."""
    key = f"best_{metric}"
    kept, outside = [], []
    for r in records:
        if r.get(key) is None or r.get("status") == "failed":
            continue
        try:
            space.validate_point(r["config"], what=f"trial {r.get('trial_id', '?')}")
        except SpaceError as e:
            outside.append(str(e))
        else:
            kept.append((dict(r["config"]), float(r[key])))
    if not outside:
        return kept, None
    return kept, (f"{len(outside)} of {len(kept) + len(outside)} earlier trials lie outside "
                  f"this round's space ({outside[0]}): its searcher starts from the other "
                  f"{len(kept)}; every trial still competes for the final model")


def image_sizes(space_sizes: list[int], earlier: list[dict[str, Any]]) -> list[int]:
    """The sizes to prepare: the space's, and any an earlier round's trial trained at (the
    final model may be that trial's)."""
    return sorted(set(space_sizes) | {int(r["config"]["image_size"]) for r in earlier
                                      if "image_size" in r.get("config", {})})
