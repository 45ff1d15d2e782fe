"""The Ray session: the process environment Ray needs, starting or joining a cluster, sharing
the data, and the two tasks the driver runs on a worker (fetching backbone weights, making
the final model). Nothing here runs at import: :func:`start` sets the environment.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable
from typing import Any

import ray
from ray import tune

from ..data.arrays import TrialData
from ..errors import UserError
from ..final import FinalModel, FinalPlan, make_final, preview_png
from ..precision import PRECISION_ENV
from ..trial import TrialSettings
from . import compat

log = logging.getLogger("hyperfcn")


def configure_environment(local: bool = True) -> None:
    """What Ray reads from the environment when it starts a cluster or runs a search."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # no Ray logger callbacks: we write our own TensorBoard logs with HParams domains
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    # Ray's new console output prints an experiment box even at verbose=0, which breaks
    # --json and the live view; the classic reporter is silent at verbose=0.
    os.environ["RAY_AIR_NEW_OUTPUT"] = "0"
    _secure_auth_mode(local)


# glibc gives threads that allocate at once arenas of their own (up to 8 a core) and keeps
# what they free there: a reused worker, whose trials each run in a new thread beside XLA's
# or TensorFlow's, grew trial after trial on 2 cores; with 2 arenas it stays flat
# (benchmarks/memory.py). glibc reads this once, as a process starts.
WORKER_MALLOC_ARENAS = "2"


def worker_malloc_env() -> dict[str, str]:
    """The malloc settings every worker starts with (the user's own win)."""
    return {"MALLOC_ARENA_MAX": os.environ.get("MALLOC_ARENA_MAX", WORKER_MALLOC_ARENAS)}


def _secure_auth_mode(local: bool) -> None:
    """Ray binds its gRPC ports on every interface and its token authentication is what
    protects them: never run with it off. A cluster of our own always has it on (Ray 2.52
    to 2.58 leave it off by default); joining a cluster, the user's token settings stand."""
    mode = os.environ.get("RAY_AUTH_MODE")
    if mode is not None and mode.lower() != "token":
        log.warning("ignoring RAY_AUTH_MODE=%s: hyperfcn runs Ray with token "
                    "authentication", mode)
        del os.environ["RAY_AUTH_MODE"]
    if local:
        compat.require_token_auth()


def start(address: str | None = None, backend: str = "tensorflow", num_cpus: int | None = None,
          num_gpus: int | None = None, quiet: bool = False) -> dict[str, float]:
    """Start (or join) Ray and return the cluster's CPU and GPU counts."""
    configure_environment(local=not address)
    warning = compat.check_ray_version()
    if warning and not quiet:
        log.warning("%s", warning)
    env = {"KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3", "TF_ENABLE_ONEDNN_OPTS": "1",
           "RAY_USAGE_STATS_ENABLED": "0", "PYTHONWARNINGS": "ignore::DeprecationWarning",
           # A reused worker waits this long for the last trial's thread to return (Ray's
           # default, 2 s, is shorter than a loaded machine needs to tear down a fit; a
           # missed wait fails the next trial).
           "TUNE_FUNCTION_THREAD_TIMEOUT_S": "120", **worker_malloc_env(),
           **{k: os.environ[k] for k in (PRECISION_ENV,) if k in os.environ}}
    # Workers' stdout stays in Ray's logs (TensorFlow prints banners at import): progress
    # reaches the driver as results, the final retrain's through a queue.
    kwargs: dict[str, Any] = dict(
        runtime_env={"env_vars": env}, logging_level=logging.WARNING,
        log_to_driver=False, configure_logging=True, ignore_reinit_error=True)
    if address:
        ray.init(address=address, **kwargs)
        if not compat.token_auth_enabled():
            log.warning(
                "the Ray cluster at %s runs without token authentication: anyone who reaches "
                "its ports can run code on it (CVE-2023-48022). Start it with "
                "RAY_AUTH_MODE=token (KubeRay: spec.authOptions); see the README.", address)
    else:
        # The dashboard (and with it the Jobs API, which runs code) stays off; token
        # authentication stays on (see _secure_auth_mode). A single-machine cluster lives
        # on loopback: otherwise Ray's runtime-env agent serves HTTP on the machine's
        # public address (tests/test_security.py).
        compat.keep_local_cluster_on_loopback()
        # address="local": always a cluster of our own. Without it Ray joins any cluster
        # a `ray start` left on this machine (and fails if it has since died).
        ray.init(address="local", num_cpus=num_cpus, num_gpus=num_gpus,
                 include_dashboard=False, **kwargs)
    logging.getLogger("ray.tune.tune").addFilter(_RESUME_HINT_FILTER)  # once: a set
    res = ray.cluster_resources()
    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    return {"cpus": float(res.get("CPU", 0)), "gpus": float(res.get("GPU", 0)),
            # one task (the final retrain) cannot span nodes
            "node_cpus": max((float(n.get("CPU", 0)) for n in nodes), default=0.0),
            "node_gpus": max((float(n.get("GPU", 0)) for n in nodes), default=0.0),
            "nodes": float(len(nodes))}


class _OurResumeHintOnly(logging.Filter):
    """Ray's "Resume experiment with: Tuner.restore(...)" is Python, not a command; the CLI
    prints the command that resumes instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Resume experiment with" not in record.getMessage()


_RESUME_HINT_FILTER = _OurResumeHintOnly()


def shutdown() -> None:
    with contextlib.suppress(Exception):
        ray.shutdown()


def put(obj: Any) -> Any:
    return ray.put(obj)


def short_error(err: Any) -> str:
    """The line of an error (or a traceback's text) that says what went wrong."""
    text = str(err).strip()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for ln in reversed(lines):
        if "Error" in ln or "error" in ln:
            return ln[:300]
    return (lines[-1] if lines else type(err).__name__)[:300]


def _fetch(names: list[str]) -> None:
    from ..backbone import build_base  # Keras: loaded only where a model is needed

    for n in names:
        build_base(n, "imagenet")


def fetch_weights(names: list[str], cpus: float) -> None:
    """Download (or find in Keras' cache) the ImageNet weights on a worker."""
    try:
        ray.get(ray.remote(_fetch).options(num_cpus=cpus, max_retries=0).remote(names))
    except ray.exceptions.RayTaskError as e:
        cause = getattr(e, "cause", None) or e
        raise UserError(short_error(cause) if cause is e else str(cause)) from None


def _final_task(config: dict[str, Any], data: TrialData, settings: TrialSettings,
                plan: FinalPlan, progress: Any = None) -> FinalModel:
    ckpt = tune.Checkpoint(plan.checkpoint) if plan.checkpoint else None
    with ckpt.as_directory() if ckpt else contextlib.nullcontext() as d:
        out = make_final(config, data, settings, plan, d,
                         on_epoch=progress.put if progress is not None else None)
    out.augment_preview = preview_png(config, data.val[int(config["image_size"])],
                                      settings.seed)
    return out


def run_final(config: dict[str, Any], data_ref: Any, settings: TrialSettings,
              plan: FinalPlan, on_epoch: Callable[[dict], None] | None = None) -> FinalModel:
    """Make the final model on a Ray worker (TensorFlow stays out of the driver)."""
    from ray.util.queue import Empty, Queue

    cpus, gpus = settings.cpus, settings.gpus
    task = ray.remote(_final_task).options(num_cpus=cpus, num_gpus=gpus, max_retries=0)
    queue = Queue() if on_epoch else None
    ref = task.remote(config, data_ref, settings, plan, queue)
    while queue is not None:
        done, _ = ray.wait([ref], timeout=0.5)
        with contextlib.suppress(Empty):
            while True:
                on_epoch(queue.get_nowait())
        if done:
            break
    out = ray.get(ref)
    if queue is not None:
        with contextlib.suppress(Exception):
            ray.kill(queue.actor)
    return out
