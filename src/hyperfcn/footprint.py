"""The memory a run's decoded images will take, estimated from a sample of image headers
before anything is decoded, and the refusal of a run that cannot fit: without it, a dataset
too big for the machine is decoded in full and then the kernel kills the driver while it
packs the arrays, with no message and nothing saved.

Every image is kept decoded at every prepared size (uint8, short side = the size, aspect
capped as :func:`hyperfcn.data.target_shape` does). At the peak, two copies are held at once:
the per-image arrays and their packed buckets while packing, then the buckets and Ray's
object-store copy while they are shared with the trials.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .data import target_shape
from .errors import DataError
from .sizing import PROBE, sample_headers

# Copies held at the peak (see above), and the padding packing adds (the development
# datasets pad 0-12% of pixels).
PEAK_COPIES = 2
PADDING = 1.15
# The share of the memory available at the start that a run's data may take at its peak:
# the trials' models, activations and Ray's own processes need the rest.
USABLE = 0.8


@dataclass(frozen=True)
class Footprint:
    images: int
    sizes: tuple[int, ...]
    per_image: dict[int, float]  # bytes of one decoded image at each size, on average

    def peak_bytes(self, sizes: Sequence[int] | None = None) -> float:
        sizes = self.sizes if sizes is None else sizes
        return PEAK_COPIES * PADDING * self.images * sum(self.per_image[s] for s in sizes)


def estimate(files: Sequence[Path], sizes: Sequence[int], seed: int = 0,
             n: int = PROBE) -> Footprint | None:
    """The decoded bytes of ``files`` at ``sizes``, from a seeded sample of their headers;
    None when no header could be read (the decode then reports the files)."""
    shapes = sample_headers(files, seed, n)
    if not shapes:
        return None
    per_image = {}
    for size in sizes:
        px = [h * w for h, w in (target_shape(w0, h0, size) for w0, h0 in shapes)]
        per_image[size] = 3.0 * sum(px) / len(px)
    return Footprint(images=len(files), sizes=tuple(sizes), per_image=per_image)


# A container's memory limit and use: cgroup v2, then v1 (a limit past the machine's memory
# means none).
CGROUP_FILES = (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                 "/sys/fs/cgroup/memory/memory.usage_in_bytes"))


def available_bytes(meminfo: str | None = None,
                    cgroup: tuple[str, str] | None = None) -> int | None:
    """Memory this process can have without swapping or its container's kill: Linux's
    MemAvailable, or less when a container's limit leaves less; None where unknown."""
    try:
        text = Path("/proc/meminfo").read_text() if meminfo is None else meminfo
    except OSError:
        return None
    free = next((int(line.split()[1]) * 1024 for line in text.splitlines()
                 if line.startswith("MemAvailable:")), None)
    if free is None:
        return None
    limit, used = cgroup or _cgroup()
    if limit.strip().isdigit() and used.strip().isdigit():
        free = min(free, max(0, int(limit) - int(used)))
    return free


def _cgroup() -> tuple[str, str]:
    for limit, used in CGROUP_FILES:
        try:
            return Path(limit).read_text(), Path(used).read_text()
        except OSError:
            continue
    return "", ""


def _gib(b: float) -> str:
    return f"{b / 2**30:.1f} GiB"


def check_fits(fp: Footprint | None, available: int | None, where: str) -> None:
    """Refuse, with the numbers and what to change, a run whose data cannot fit in USABLE
    of the available memory."""
    if fp is None or available is None:
        return
    need, room = fp.peak_bytes(), USABLE * available
    if need <= room:
        return
    smallest = min(fp.sizes)
    one = fp.peak_bytes([smallest])
    fix = (f"give --image-size {smallest} (one size: ~{_gib(one)})" if one <= room and
           len(fp.sizes) > 1 else "train on a subset of the images, or a smaller --image-size")
    raise DataError(
        f"{where}: {fp.images} images decoded at {', '.join(map(str, fp.sizes))} px need "
        f"~{_gib(need)} of memory at the peak (~{sum(fp.per_image.values()) / 1e3:.0f} KB "
        f"an image, held twice while they are packed and shared with the trials), and this "
        f"machine has {_gib(available)} available ({USABLE:.0%} of it usable for the data); "
        f"nothing was decoded. {fix[0].upper()}{fix[1:]}, or run on a machine with more "
        f"memory")
