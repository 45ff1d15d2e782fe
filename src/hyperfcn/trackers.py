"""The final model in MLflow and Weights & Biases (the trials get there through Ray Tune's
logger callbacks, see tuning.tracker_callbacks)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from . import artifacts as art


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
