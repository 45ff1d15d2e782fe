"""The room a run's decoded images need, counted from every image's header before anything
is decoded, and the refusal of a run that cannot have it: without it, a dataset too big for
the machine is decoded until the disk fills or the kernel kills the driver, with no message
and nothing saved.

The decoded cache (:mod:`hyperfcn.data.cache`) holds every image at every prepared size on disk
(uint8, its bucket's shape); trials map it, so memory is not what bounds the data there.
Data held in memory instead (shared through a Ray cluster's object store) needs its bytes
twice at the peak: the mapped arrays read in, and the object store's copy.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from ..errors import DataError

# The share of the free disk the decoded cache may fill (logs, checkpoints and the rest of
# the machine need some), and of the available memory data held in memory may take at its
# peak (the trials' models, activations and Ray's own processes need the rest).
DISK_USABLE = 0.95
USABLE = 0.8
PEAK_COPIES = 2


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


def check_disk(need: Mapping[int, int], free: int, images: int, where: str,
               root: Path) -> None:
    """Refuse, with the numbers and what to change, a decode whose arrays (``need``: bytes
    at each size still to decode) the cache's disk cannot hold."""
    total, room = sum(need.values()), DISK_USABLE * free
    if total <= room:
        return
    smallest = min(need)
    fix = (f"give --image-size {smallest} (one size: ~{_gib(need[smallest])})"
           if need[smallest] <= room and len(need) > 1
           else "give a smaller --image-size or train on a subset of the images")
    raise DataError(
        f"{where}: {images} images decoded at {', '.join(map(str, sorted(need)))} px need "
        f"~{_gib(total)} in the decoded cache ({root}), and its disk has {_gib(free)} free; "
        f"nothing was decoded. {fix[0].upper()}{fix[1:]}, or --cache-dir on a disk with "
        f"more room")


def check_memory(need: int, available: int | None, where: str) -> None:
    """Refuse, with the numbers, data to be held in memory that cannot fit in USABLE of
    the available memory at its peak (PEAK_COPIES copies)."""
    if available is None or PEAK_COPIES * need <= USABLE * available:
        return
    raise DataError(
        f"{where}: the decoded images take {_gib(need)}, held {PEAK_COPIES} times in memory "
        f"while they are shared through the cluster's object store, and this machine has "
        f"{_gib(available)} available ({USABLE:.0%} of it usable for the data). Give "
        f"--cache-dir on a path every node of the cluster mounts, so the trials map the "
        f"cache there, or a smaller --image-size")
