"""What the decoded cache holds, and clearing the entries no run is using (`hyperfcn cache`).

Every dataset, validation split and seed a run reads gets an entry of its own, and nothing
deletes one by itself: this module lists them (the folder each was made from, its sizes, its
bytes on disk, its last use) and removes them, never one that a running run maps or is
decoding (cache.hold, cache.unused).
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from .cache import FORMAT, IN_USE, SOURCE, unused


@dataclass(frozen=True)
class Entry:
    """One entry of the decoded cache."""

    path: Path
    data: str  # the DATA folder it was made from ("?" for an entry older than its record)
    val_dir: str | None
    images: int | None
    split: str  # how validation was drawn: "--val-dir", "validation 20% seed 0", or "?"
    sizes: tuple[int, ...]  # the image sizes decoded completely
    bytes: int  # on disk (blocks, not lengths: a decode stopped midway is sparse)
    last_used: float  # seconds since the epoch
    in_use: bool


def _disk_bytes(d: Path) -> int:
    return sum(f.stat().st_blocks * 512 for f in d.rglob("*") if f.is_file())


def _split_text(src: dict) -> str:
    if src.get("val_dir"):
        return "--val-dir"
    if src.get("val_split") is None:
        return "?"
    return f"validation {src['val_split']:.0%} seed {src['seed']}"


def _last_used(d: Path) -> float:
    """A run marks its entry at each use (cache.hold); an entry never marked, when it was
    made."""
    for p in (d / IN_USE, d / "split.json", d):
        if p.exists():
            return p.stat().st_mtime
    return 0.0


def _read_entry(d: Path) -> Entry:
    try:
        src = json.loads((d / SOURCE).read_text())
    except (OSError, ValueError):
        src = {}
    sizes = sorted(int(p.parent.name.removeprefix("size-")) for p in d.glob("size-*/meta.json"))
    last_used = _last_used(d)
    with unused(d) as free:
        return Entry(path=d, data=src.get("data", "?"), val_dir=src.get("val_dir"),
                     images=src.get("images"), split=_split_text(src), sizes=tuple(sizes),
                     bytes=_disk_bytes(d), last_used=last_used, in_use=not free)


def entries(root: Path) -> list[Entry]:
    """The cache's entries under ``root`` (cache.cache_root), the most recently used first;
    entries of an older format, which no run reads any more, are listed too."""
    dirs = [d for v in sorted(root.glob("decoded-v*")) if v.is_dir()
            for d in v.iterdir() if d.is_dir()]
    return sorted(map(_read_entry, dirs), key=lambda e: -e.last_used)


def outdated(e: Entry) -> bool:
    return e.path.parent.name != f"decoded-v{FORMAT}"


def clear(root: Path, older_than_s: float = 0.0) -> tuple[list[Entry], list[Entry]]:
    """Remove the entries last used more than ``older_than_s`` ago that no run is using;
    return (removed, left because in use)."""
    removed: list[Entry] = []
    busy: list[Entry] = []
    now = time.time()
    for e in entries(root):
        if now - e.last_used < older_than_s:
            continue
        with unused(e.path) as free:
            if free:
                shutil.rmtree(e.path)
        (removed if free else busy).append(e)
    return removed, busy


def _size(n: float) -> str:
    units = ("B", "KiB", "MiB", "GiB", "TiB")
    k = 0
    while n >= 1024 and k < len(units) - 1:
        n, k = n / 1024, k + 1
    return f"{n:.0f} B" if k == 0 else f"{n:.1f} {units[k]}"


def _ago(t: float, now: float) -> str:
    s = max(0.0, now - t)
    for unit, n in (("d", 86400), ("h", 3600), ("min", 60)):
        if s >= n:
            return f"{s / n:.0f} {unit} ago"
    return "just now"


def _n(k: int, one: str, many: str) -> str:
    return f"{k} {one if k == 1 else many}"


def describe_entries(found: list[Entry], root: Path) -> str:
    """The listing `hyperfcn cache` prints."""
    total = sum(e.bytes for e in found)
    head = f"decoded cache {root}: {_n(len(found), 'entry', 'entries')}, {_size(total)}"
    if not found:
        return head
    now = time.time()
    lines = [head]
    for e in found:
        sizes = ", ".join(map(str, e.sizes)) + " px" if e.sizes else "no size complete"
        val = f" + {e.val_dir}" if e.val_dir else ""
        flags = [f for f, on in (("in use", e.in_use), ("old format", outdated(e))) if on]
        lines.append(f"  {e.path.name}  {_size(e.bytes):>10}  {_ago(e.last_used, now):>12}"
                     f"  {e.data}{val} ({e.images if e.images is not None else '?'} images;"
                     f" {e.split}; {sizes}){'  [' + ', '.join(flags) + ']' if flags else ''}")
    lines.append("`hyperfcn cache --clear [--older-than 7d]` removes the entries no run uses")
    return "\n".join(lines)


def describe_removed(removed: list[Entry], busy: list[Entry]) -> str:
    """What `hyperfcn cache --clear` did."""
    out = (f"removed {_n(len(removed), 'entry', 'entries')} "
           f"({_size(sum(e.bytes for e in removed))})")
    if busy:
        out += (f"; left {len(busy)} that a running run uses "
                f"({', '.join(e.path.name for e in busy)})")
    return out
