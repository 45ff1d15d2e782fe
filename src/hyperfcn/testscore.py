"""The saved model's honest score: its accuracy on `--test-dir`, images no decision of the run
saw, computed once, after the model is saved, by the same code as `hyperfcn evaluate`; and
without a test folder, the sentence that says the validation score is optimistic."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from . import artifacts as art
from . import hints
from .inference import evaluate_folder, load_run


def optimism_note(run_dir: Path, searched: bool) -> str:
    """Why the validation score overstates what the model does on new images, and the way to
    an unbiased one."""
    chose = ("its trial, its epoch and when to stop" if searched
             else "its epoch and when to stop")
    return (f"the validation images chose this model ({chose}), so its validation score is "
            f"optimistic; for an unbiased score give --test-dir DIR (images the run never "
            f"sees), or run `{hints.command(['evaluate', 'NEW_IMAGES', '--model', str(run_dir)])}`"
            f" on images it has not seen")


def score_test(run_dir: Path, test_dir: Path) -> dict[str, Any]:
    """``hyperfcn evaluate TEST_DIR --model RUN_DIR``'s report, for metrics.json's ``test``."""

    settings = run_dir / art.SETTINGS
    if "keras" not in sys.modules and settings.is_file():  # a jax run scores with jax too
        os.environ.setdefault("KERAS_BACKEND", art.read_json(settings).get("backend") or
                              "tensorflow")
    rep, skipped = evaluate_folder(load_run(run_dir), test_dir)
    rep.pop("seen_in_training", None)  # checked before the run started: none
    rep.update(dir=str(test_dir), skipped=len(skipped))
    return rep


def add_test_score(run_dir: Path, test_dir: Path | None, metrics: dict[str, Any]
                   ) -> str | None:
    """Score the saved model on ``test_dir`` into ``metrics`` (and metrics.json); return the
    summary's words for it, or for why there is none. The model is on disk already, so a
    failure here is said, never raised."""
    if test_dir is None:
        metrics.update(test_accuracy=None, test_loss=None, test=None)
        return None
    try:
        rep = score_test(run_dir, test_dir)
    except Exception as e:  # e.g. a driver without Keras on a cluster
        how = hints.command(["evaluate", str(test_dir), "--model", str(run_dir)])
        metrics.update(test_accuracy=None, test_loss=None, test=None)
        return (f"test score not computed ({type(e).__name__}: {e}); the model is saved: "
                f"run `{how}`")
    metrics.update(test_accuracy=rep["accuracy"], test_loss=rep["loss"], test=rep)
    art.write_json(run_dir / art.METRICS, metrics)
    return (f"test_accuracy {rep['accuracy']:.4f}, test_loss {rep['loss']:.4f} on "
            f"{rep['count']} images in {test_dir} that no decision of the run saw")
