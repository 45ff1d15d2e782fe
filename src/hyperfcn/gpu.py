"""Whether this machine has NVIDIA GPUs and whether the installed Keras backend is a build that
can use them, read from the driver's and the packages' files without importing TensorFlow,
JAX or Ray: said on the startup line, and a GPU option refused before any work."""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path

from .errors import UserError

NVIDIA_GPUS = Path("/proc/driver/nvidia/gpus")  # one folder per GPU the driver sees


def local_gpus(proc: Path = NVIDIA_GPUS, visible: str | None = None) -> int:
    """NVIDIA GPUs this process may use: the driver's, less those CUDA_VISIBLE_DEVICES
    hides."""
    try:
        n = sum(1 for _ in proc.iterdir())
    except OSError:
        return 0
    visible = os.environ.get("CUDA_VISIBLE_DEVICES") if visible is None else visible
    if visible is not None:
        ids = [v for v in visible.split(",") if v.strip() and v.strip() != "-1"]
        n = min(n, len(ids))
    return n


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def cuda_build(backend: str) -> bool | None:
    """Whether the installed backend can run on an NVIDIA GPU (None: cannot tell)."""
    if backend == "jax":
        return any(importlib.util.find_spec(m) is not None
                   for m in ("jax_cuda12_plugin", "jax_cuda13_plugin"))
    if backend == "tensorflow":
        tf = _package_dir("tensorflow")
        info = tf / "python" / "platform" / "build_info.py" if tf else None
        try:
            text = info.read_text() if info else ""
        except OSError:
            return None
        found = re.search(r"""['"]is_cuda_build['"]\s*[:,]\s*(True|False)""", text)
        return None if found is None else found.group(1) == "True"
    return None


def gpu_note(backend: str, gpus: int | None = None) -> str | None:
    """A line for the start of a run when a GPU is here but the backend cannot use it."""
    gpus = local_gpus() if gpus is None else gpus
    if not gpus or cuda_build(backend) is not False:
        return None
    return (f"note: this machine has {gpus} NVIDIA GPU{'s' if gpus > 1 else ''}, but the "
            f"installed {backend} is a CPU-only build, so everything runs on the CPU; "
            f"docs/gpu.md says how to install the GPU build")


def check_gpu_option(gpus_per_trial: float | None, address: str | None, backend: str,
                     gpus: int | None = None) -> None:
    """Refuse --gpus-per-trial on this machine when it has no GPU the backend can use (on a
    cluster, Ray's count is checked once it is joined)."""
    if not gpus_per_trial or address:
        return
    gpus = local_gpus() if gpus is None else gpus
    if gpus == 0:
        raise UserError(f"--gpus-per-trial {gpus_per_trial:g}: this machine has no NVIDIA GPU "
                        f"(none under {NVIDIA_GPUS}, or CUDA_VISIBLE_DEVICES hides them); "
                        f"leave it out to train on the CPU")
    if gpus_per_trial > gpus:
        raise UserError(f"--gpus-per-trial {gpus_per_trial:g}: more than the {gpus} GPU"
                        f"{'s' if gpus > 1 else ''} of this machine (a trial runs on one "
                        f"machine); use at most {gpus}, or a fraction to share one")
    if cuda_build(backend) is False:
        raise UserError(f"--gpus-per-trial {gpus_per_trial:g}: the installed {backend} is a "
                        f"CPU-only build and cannot use the GPU; install the GPU build "
                        f"(docs/gpu.md), or leave the option out")
