"""What a command runs on: trials per machine, each trial's CPU and GPU share, and the final
step's, planned from what Ray sees rather than from hard-coded counts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import UserError
from .trial import TrialSettings

if TYPE_CHECKING:
    from .options import TuneOptions

# CPU threads of a trial on CPU machines: the recipe's network runs nearly twice as fast on
# two threads as on one beside another trial, so two 1-thread trials bought few more epochs
# per second at half each trial's speed, and a budgeted search waits on its leader.
CPU_THREADS_PER_TRIAL = 2.0


@dataclass(frozen=True)
class Resources:
    cpus: float
    gpus: float
    cpus_per_trial: float
    gpus_per_trial: float
    concurrency: int
    node_cpus: float = 0.0  # the largest node's (0: unknown, take the cluster's)
    node_gpus: float = 0.0


def plan_resources(opts: TuneOptions, cluster: dict[str, float]) -> Resources:
    """Trials per machine from what Ray sees, not from hard-coded counts."""
    cpus, gpus = cluster["cpus"], cluster["gpus"]
    node_cpus = cluster.get("node_cpus") or cpus  # a trial runs on one node
    gpt = opts.gpus_per_trial
    if gpt is None:
        # Several small trials share a GPU far better than one trial uses it alone.
        gpt = 0.25 if gpus >= 1 else (gpus if gpus > 0 else 0.0)
    if gpt > 0 and gpus <= 0:
        raise UserError(f"--gpus-per-trial {gpt}: Ray sees no GPU on this machine or "
                        f"cluster; use 0")
    cpt = opts.cpus_per_trial
    if cpt is None:
        if gpt > 0:
            slots = max(1, int(gpus / gpt))
            cpt = min(max(1.0, float(int(cpus // slots))), node_cpus)
        else:
            cpt = min(CPU_THREADS_PER_TRIAL, max(1.0, float(node_cpus)))
    if cpt > node_cpus:
        raise UserError(f"--cpus-per-trial {cpt}: more than the {node_cpus:g} CPUs of the "
                        f"largest node Ray sees (a trial runs on one node)")
    fit = int(cpus // cpt)
    if gpt > 0:
        fit = min(fit, int(round(gpus / gpt, 6)))
    conc = opts.concurrency or max(1, fit)
    return Resources(cpus, gpus, cpt, gpt, conc, cluster.get("node_cpus", cpus),
                     cluster.get("node_gpus", gpus))


def final_settings(opts: TuneOptions, res: Resources, weights: str | None = None):
    # The final retrain is one task: all of one node's CPUs (up to 8) or one GPU; a task
    # asking for more than any single node has would wait forever.
    node_cpus = res.node_cpus or res.cpus
    node_gpus = res.node_gpus or res.gpus
    return TrialSettings(max_epochs=opts.max_epochs, metric=opts.metric, seed=opts.seed,
                         weights=weights, class_weight=opts.class_weight,
                         cpus=min(max(res.cpus_per_trial, min(node_cpus, 8.0)), node_cpus)
                         if res.gpus == 0 else res.cpus_per_trial,
                         gpus=1.0 if node_gpus >= 1 else res.gpus_per_trial,
                         patience=max(3, opts.max_epochs // 5),
                         checkpoint_every_s=float("inf"))

