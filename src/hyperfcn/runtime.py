"""The worker process a trial runs in: its thread and GPU-memory limits, what earlier
trials left compiled in it, its age and its memory.

A worker is configured once (TensorFlow cannot change its thread pools after its first op)
and reused by later trials: each trial first frees what the last one compiled, so a worker
stays flat (benchmarks/memory.py). Under JAX, programs that recur load from JAX's
persistent compilation cache instead of compiling again.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import time
from pathlib import Path
from typing import Any

_configured: dict[str, Any] = {}


def configure_runtime(cpus: float, gpus: float) -> None:
    """Limit threads to the trial's CPU share and GPU memory to its GPU share.

    Must run before the backend starts in this process; a second call is a no-op because
    TensorFlow cannot change its thread pools once it has run an op.
    """
    if _configured:
        return
    n = max(1, int(cpus))
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    os.environ["OMP_NUM_THREADS"] = str(n)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if backend == "jax":
        if 0 < gpus < 1:
            os.environ.setdefault("XLA_PYTHON_CLIENT_MEM_FRACTION", f"{0.9 * gpus:.3f}")
        if n == 1 and "intra_op_parallelism_threads" not in os.environ.get("XLA_FLAGS", ""):
            os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                                       + " --xla_cpu_multi_thread_eigen=false"
                                       " intra_op_parallelism_threads=1").strip()
        _jax_compilation_cache()
    elif backend == "tensorflow":
        import tensorflow as tf

        with contextlib.suppress(RuntimeError):
            tf.config.threading.set_intra_op_parallelism_threads(n)
            tf.config.threading.set_inter_op_parallelism_threads(min(n, 2))
        for gpu in tf.config.list_physical_devices("GPU"):
            with contextlib.suppress(RuntimeError):
                tf.config.experimental.set_memory_growth(gpu, True)
    _configured.update(cpus=n, gpus=gpus, backend=backend)


def _default_jax_cache_dir() -> Path:
    """The user's cache folder (JAX itself reads $JAX_COMPILATION_CACHE_DIR at import)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "hyperfcn" / "jax"


JAX_CACHE_MAX_BYTES = 2 << 30


def _jax_compilation_cache() -> None:
    """JAX's persistent compilation cache, on unless the user turned it off
    (JAX_ENABLE_COMPILATION_CACHE=false).

    XLA spends most of a CPU trial's first epoch compiling, and much of a new worker's
    setup compiling weight initialisers (0.1-0.5 s per weight shape, below JAX's 1 s
    threshold for keeping a program), and a trial of another architecture than the last
    starts with the in-memory caches cleared (forget_compiled). Programs that recur
    (weight shapes, an architecture tried again at another learning rate, a model resumed
    or trained on as the final model, a search run again) then load instead. The oldest
    entries go once the cache passes 2 GiB.
    """
    import jax

    if jax.config.jax_compilation_cache_dir is None:
        jax.config.update("jax_compilation_cache_dir", str(_default_jax_cache_dir()))
    if jax.config.jax_compilation_cache_max_size == -1:
        jax.config.update("jax_compilation_cache_max_size", JAX_CACHE_MAX_BYTES)
    if "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS" not in os.environ:
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.1)


_last_program: list[str | None] = [None]


def forget_compiled(program: str | None = None) -> None:
    """Free what earlier trials in this process compiled, so a reused worker stays flat.

    Keras' optimizer sums gradients through a graph-mode ``custom_gradient`` under
    TensorFlow, which registers a gradient function under a fresh name in TensorFlow's
    global registry and never removes it; the function's closure holds the whole traced
    training step (~10 MB per trial, and the only thing left once the model is gone). JAX
    keeps every program it compiled in its in-memory caches: they are cleared unless
    ``program`` (what the coming trial compiles: its config but for the learning rate,
    which is optimizer state) is the last trial's, whose programs it then runs again. And
    what compilers free goes back to the C heap, not the system, unless asked. Call it only
    when no earlier model is in use.
    """
    backend = _configured.get("backend")
    if backend == "tensorflow":
        try:
            from tensorflow.python.framework import ops as tf_ops

            registry = tf_ops._gradient_registry._registry  # noqa: SLF001
        except (ImportError, AttributeError):  # a TensorFlow that has moved it: just leak
            registry = {}
        for name in [k for k in registry if str(k).startswith("CustomGradient-")]:
            del registry[name]
    elif backend == "jax" and (program is None or program != _last_program[0]):
        import jax

        jax.clear_caches()
    _last_program[0] = program
    gc.collect()
    _return_free_heap()


def _return_free_heap() -> None:
    """Hand the C heap's free pages back to the system (glibc only; elsewhere a no-op)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def process_age_at(t: float) -> float:
    """Seconds this process had been running at time t (0 where /proc is missing)."""
    try:
        start_ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0.0
    started = time.time() - uptime + start_ticks / os.sysconf("SC_CLK_TCK")
    return max(0.0, t - started)


def rss_mb() -> float:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError):
        return 0.0


_trials_started = [0]


def claim_first_trial() -> bool:
    """True for the first trial in this process, False for every later one."""
    _trials_started[0] += 1
    return _trials_started[0] == 1


def freeze_imports() -> None:
    """Leave the ~500k objects the imports made (they live as long as the worker) out of
    every later collection: a full one took 0.22 s with them, 0.03 s without."""
    gc.freeze()
