"""MLflow and Weights & Biases: every trial through Ray Tune's own logger callbacks
(:func:`tracker_callbacks`), the final model through :func:`log_final`."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

from .. import artifacts as art
from ..errors import UserError
from ..extras import message


def _numbers(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items()
            if isinstance(v, int | float) and not isinstance(v, bool)}


def log_final(run_dir: Path, experiment: str, config: dict[str, Any],
              metrics: dict[str, Any], mlflow_uri: str | None = None,
              wandb_project: str | None = None) -> list[str]:
    """Log the retrained model, its config, metrics and report; return where it went."""
    where = []
    files = [run_dir / n for n in (art.MODEL, art.CLASSES, art.BEST_CONFIG, art.METRICS,
                                   art.REPORT) if (run_dir / n).is_file()]
    if mlflow_uri:
        import mlflow

        mlflow.set_tracking_uri(mlflow_uri)
        mlflow.set_experiment(experiment)
        with mlflow.start_run(run_name="final", tags={"tool": "hyperfcn",
                                                      "hyperfcn.role": "final"}) as run:
            mlflow.log_params({k: v for k, v in config.items()})
            mlflow.log_metrics(_numbers(metrics))
            for h in metrics.get("history", []):
                mlflow.log_metrics(_numbers({k: v for k, v in h.items() if k != "epoch"}),
                                   step=int(h["epoch"]))
            for f in files:
                mlflow.log_artifact(str(f), artifact_path="model")
            where.append(f"MLflow run {run.info.run_id} ({mlflow_uri})")
    if wandb_project:
        import wandb

        os.environ.setdefault("WANDB_SILENT", "true")  # its banner would bury our summary
        kw: dict[str, Any] = {"dir": str(run_dir)}
        if os.environ.get("WANDB_MODE"):
            kw["mode"] = os.environ["WANDB_MODE"]
        run = wandb.init(project=wandb_project, group=experiment, name="final",
                         job_type="final", config=config, reinit="finish_previous", **kw)
        for h in metrics.get("history", []):
            run.log(_numbers(h))
        run.summary.update(_numbers(metrics))
        artifact = wandb.Artifact("hyperfcn-model", type="model")
        for f in files:
            artifact.add_file(str(f))
        run.log_artifact(artifact)
        where.append(f"W&B run {run.id} (project {wandb_project})")
        run.finish()
    return where


def tracker_callbacks(mlflow_uri: str | None, wandb_project: str | None,
                      experiment: str, run_dir: Path) -> list[Any]:
    """Ray Tune's own MLflow and W&B logger callbacks: one tracker run per trial with its
    parameters and per-epoch metrics."""
    out: list[Any] = []
    if mlflow_uri:
        try:
            import mlflow  # noqa: F401
            from ray.air.integrations.mlflow import MLflowLoggerCallback
        except ImportError:
            raise UserError(message("mlflow")) from None
        _check_mlflow(mlflow_uri)
        out.append(MLflowLoggerCallback(tracking_uri=mlflow_uri, experiment_name=experiment,
                                        tags={"tool": "hyperfcn"}))
    if wandb_project:
        try:
            import wandb  # noqa: F401
            from ray.air.integrations.wandb import WandbLoggerCallback
        except ImportError:
            raise UserError(message("wandb")) from None
        mode = os.environ.get("WANDB_MODE")
        if mode not in ("offline", "disabled") and not os.environ.get("WANDB_API_KEY"):
            logged_in = False
            with contextlib.suppress(Exception):
                import wandb

                logged_in = bool(wandb.api.api_key)
            if not logged_in:
                raise UserError("--wandb: not logged in to Weights & Biases; run "
                                "`wandb login`, set WANDB_API_KEY, or set "
                                "WANDB_MODE=offline to log locally (sync later)")
        kw: dict[str, Any] = {"dir": str(run_dir)}
        if mode:
            kw["mode"] = mode
        out.append(WandbLoggerCallback(project=wandb_project, group=experiment,
                                       log_config=False, **kw))
    return out


def _check_mlflow(uri: str) -> None:
    """Reach the tracking store before any work is done, with a message that says how."""
    import mlflow

    from .session import short_error

    if "://" not in uri or uri.startswith("file:"):
        # MLflow 3 keeps its file store behind a flag ("maintenance mode"); a user who
        # asks for a folder gets one.
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    try:
        mlflow.MlflowClient(tracking_uri=uri).search_experiments(max_results=1)
    except Exception as e:
        raise UserError(f"--mlflow {uri}: cannot use this tracking URI "
                        f"({short_error(e)}); give a server URL, sqlite:///PATH.db or a "
                        f"folder") from None
