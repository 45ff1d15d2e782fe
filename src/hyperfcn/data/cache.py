"""The decoded images on disk, memory-mapped: one ``.npy`` array per (size, split, bucket).

A run decodes each image once, straight into the cache's files; every trial and the final
model map the same files read-only, so the page cache is shared and no worker keeps a copy,
and a dataset may be larger than memory. A later run on the same files and settings
(``--resume``, ``train``, another ``tune``) decodes nothing.

An entry is keyed on the files (path, bytes, modification time, class) and the settings that
shape it (the validation split, the number of buckets). Its headers are probed first, so the
split and every bucket's shape are planned before any decode; each size is a folder of its
own, complete once its ``meta.json`` exists, so a run at another size decodes only that
size. A decode records each finished chunk of images: an interrupted one resumes there.
A run holds its entry (a shared lock) until it ends, so `hyperfcn cache --clear`
(:mod:`hyperfcn.data.cache_admin`) never removes one in use.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import fcntl
import json
import os
import shutil
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

from ..errors import DataError, UserError
from .buckets import Bucket, Packed, fit_to
from .cache_plan import FORMAT, SizePlan, Source, Split, make_split
from .folder import decode_image

# Images decoded at a time, and the least time between two progress records (each flushes
# the arrays to disk and waits for it): what an interrupted decode may redo.
CHUNK = 1024
RECORD_EVERY_S = 20.0
TASK = 16  # images one thread decodes per task
CACHE_ENV = "HYPERFCN_CACHE_DIR"
PARTS = ("train", "val")
LOCK, IN_USE = ".lock", ".in-use"  # an entry's decode lock; its users' shared lock
SOURCE = "source.json"  # what an entry was made from


def quiet(msg: str) -> None:
    """Where a decode's progress goes when nobody listens."""


def cache_root(cache_dir: str | Path | None = None) -> Path:
    """--cache-dir, else $HYPERFCN_CACHE_DIR, else $XDG_CACHE_HOME/hyperfcn (~/.cache)."""
    if cache_dir:
        return Path(cache_dir).expanduser()
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "hyperfcn"


def _save_split(d: Path, split: Split) -> None:
    np.save(d / "shapes.npy", split.shapes)
    np.save(d / "part.npy", split.part)
    _write_json(d / "split.json", {"skipped": split.skipped})


def _load_split(d: Path) -> Split | None:
    if not (d / "split.json").exists():
        return None
    return Split(shapes=np.load(d / "shapes.npy"), part=np.load(d / "part.npy"),
                 skipped=[tuple(s) for s in _read_json(d / "split.json")["skipped"]])


def _write_json(path: Path, obj: object) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj))
    os.replace(tmp, path)  # a reader never sees half a file


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def _x_path(d: Path, part: int, b: int) -> Path:
    return d / f"x-{PARTS[part]}-{b}.npy"


class _RowWriter:
    """Writes rows of one bucket's ``.npy`` file with plain writes, not through a mapping:
    a disk that fills raises an error here (a mapped write would kill the process with
    SIGBUS), and ext4 converts no reserved blocks (reserving them cost a fifth of the
    decode's time)."""

    def __init__(self, path: Path, shape: tuple[int, ...], resume: bool) -> None:
        self.path, self.kept = path, False
        if resume and path.exists():
            old = np.load(path, mmap_mode="r")
            self.kept = old.shape == shape and old.dtype == np.uint8
        if self.kept:
            offset = old.offset
        else:  # the header, and the file at its full size (sparse until written)
            offset = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8,
                                               shape=shape).offset
        self.offset, self.row_bytes = offset, int(np.prod(shape[1:]))
        self.fd = os.open(path, os.O_WRONLY)

    def put(self, row: int, image: np.ndarray) -> None:
        data = memoryview(np.ascontiguousarray(image)).cast("B")
        try:
            written = os.pwrite(self.fd, data, self.offset + row * self.row_bytes)
            if written != len(data):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        except OSError as e:
            raise DataError(f"{self.path}: cannot write the decoded images ({e.strerror}); "
                            f"free space there or give --cache-dir on another disk; the "
                            f"images decoded so far are kept") from None

    def flush(self) -> None:
        os.fsync(self.fd)

    def close(self) -> None:
        os.close(self.fd)


def _writer(d: Path, plan: SizePlan, part: int, b: int, resume: bool) -> _RowWriter:
    h, w = plan.plan.shapes[b]
    return _RowWriter(_x_path(d, part, b), (len(plan.rows[(part, b)]), h, w, 3), resume)


@dataclass
class _Progress:
    done: set[int]  # finished chunks
    failed: dict[int, str]  # file index -> why it did not decode


def _progress(dirs: Sequence[Path]) -> _Progress:
    """What every size of this decode finished before it was interrupted."""
    done: set[int] | None = None
    failed: dict[int, str] = {}
    for d in dirs:
        p = d / "progress.json"
        got = _read_json(p) if p.exists() else {"done": [], "failed": {}}
        done = set(got["done"]) if done is None else done & set(got["done"])
        failed.update({int(k): v for k, v in got["failed"].items()})
    return _Progress(done=done or set(), failed=failed)


def _record(dirs: Sequence[Path], prog: _Progress) -> None:
    for d in dirs:
        _write_json(d / "progress.json", {"done": sorted(prog.done),
                                          "failed": {str(k): v for k, v in prog.failed.items()}})


def decode_sizes(src: Source, plans: Sequence[SizePlan], dirs: Sequence[Path],
                 workers: int | None = None, say: Callable[[str], None] = quiet,
                 progress: Callable[[int, int], None] | None = None) -> dict[int, str]:
    """Decode every readable file once into the arrays of each plan's size, CHUNK files at a
    time, recording the finished chunks (and saying how far it is) at most every
    RECORD_EVERY_S; returns {file index: why} for the files that did not decode. Resumes an
    earlier, interrupted decode of the same sizes."""
    prog = _progress(dirs)
    arrays = {(p.size, part, b): _writer(d, p, part, b, resume=bool(prog.done))
              for p, d in zip(plans, dirs) for (part, b) in p.rows}
    if not all(a.kept for a in arrays.values()):  # a file is new: its rows are not done
        prog = _Progress(done=set(), failed={})
    try:
        return _decode_chunks(src, plans, dirs, arrays, prog, workers, say, progress)
    finally:
        for a in arrays.values():
            a.close()


def _decode_chunks(src: Source, plans: Sequence[SizePlan], dirs: Sequence[Path],
                   arrays: dict[tuple[int, int, int], _RowWriter], prog: _Progress,
                   workers: int | None, say: Callable[[str], None],
                   progress: Callable[[int, int], None] | None = None) -> dict[int, str]:
    sizes = [p.size for p in plans]
    order = list(range(len(plans[0].files)))  # every plan lists the same readable files

    def one(k: int) -> str | None:
        try:
            images = decode_image(src.files[plans[0].files[k]], sizes)
        except Exception as e:  # any unreadable file is skipped, never fatal
            return f"{type(e).__name__}: {e}"
        for p in plans:
            part, b = int(p.part[k]), int(p.bucket[k])
            h, w = p.plan.shapes[b]
            arrays[(p.size, part, b)].put(int(p.row[k]), fit_to(images[p.size], h, w))
        return None

    def some(ks: list[int]) -> list[tuple[int, str | None]]:
        return [(k, one(k)) for k in ks]

    last = time.monotonic()
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        # two chunks in flight: the threads never wait at a chunk's end, and the futures
        # held stay bounded however many images there are
        pending: collections.deque = collections.deque()
        for c, start in enumerate(range(0, len(order), CHUNK)):
            if c not in prog.done:
                chunk = order[start:start + CHUNK]
                # a task per TASK images: a future per image cost the threads the GIL
                pending.append((c, chunk, [pool.submit(some, chunk[i:i + TASK])
                                           for i in range(0, len(chunk), TASK)]))
            while pending and (len(pending) > 1 or start + CHUNK >= len(order)):
                done_c, chunk, futures = pending.popleft()
                for k, why in (r for fut in futures for r in fut.result()):
                    if why is not None:
                        prog.failed[int(plans[0].files[k])] = why
                prog.done.add(done_c)
                if progress is not None:  # (images done, images in all)
                    progress(min(len(prog.done) * CHUNK, len(order)), len(order))
                if time.monotonic() - last >= RECORD_EVERY_S or not pending:
                    _flush_and_record(arrays.values(), dirs, prog)
                    last = time.monotonic()
                    if pending:
                        done = min(len(prog.done) * CHUNK, len(order))
                        say(f"  decoded {done:,} of {len(order):,} images")
    return prog.failed


def _flush_and_record(arrays: Iterable[_RowWriter], dirs: Sequence[Path],
                      prog: _Progress) -> None:
    """Finished chunks are recorded only once their rows are on disk: a resume after a
    crash of the machine itself never trusts rows that were still in memory."""
    for a in arrays:
        a.flush()
    _record(dirs, prog)


def _drop_rows(path: Path, keep: np.ndarray) -> None:
    """Rewrite an array file without the rows of images that did not decode, a bounded
    number of rows at a time, with plain writes (as :class:`_RowWriter`): a disk that
    fills mid-way is an error that keeps the old file, never SIGBUS."""
    old = np.load(path, mmap_mode="r")
    tmp = path.with_suffix(".tmp.npy")
    rows = np.flatnonzero(keep)
    header = {"descr": np.lib.format.dtype_to_descr(old.dtype), "fortran_order": False,
              "shape": (len(rows),) + old.shape[1:]}
    try:
        with open(tmp, "wb") as f:
            np.lib.format.write_array_header_1_0(f, header)
            for s in range(0, len(rows), CHUNK):
                f.write(np.ascontiguousarray(old[rows[s:s + CHUNK]]).tobytes())
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise DataError(f"{path}: cannot write the decoded images ({e.strerror}); free "
                        f"space there or give --cache-dir on another disk; the images "
                        f"decoded so far are kept") from None
    del old
    os.replace(tmp, path)


def finish_size(d: Path, plan: SizePlan, src: Source, failed: dict[int, str]) -> None:
    """Labels and positions beside each array, failed rows dropped, then meta.json: the
    mark that this size is complete."""
    # an image's index is its position among its part's decoded files (val_files' order)
    members = {part: {int(i): k for k, i in enumerate(
        i for i in plan.files[plan.part == part] if int(i) not in failed)} for part in (0, 1)}
    for (part, b), rows in plan.rows.items():
        keep = np.asarray([int(i) not in failed for i in rows], dtype=bool)
        if not keep.all():
            _drop_rows(_x_path(d, part, b), keep)
        kept = [int(i) for i in rows[keep]]
        np.save(d / f"y-{PARTS[part]}-{b}.npy",
                np.asarray([src.labels[i] for i in kept], np.int32))
        np.save(d / f"i-{PARTS[part]}-{b}.npy",
                np.asarray([members[part][i] for i in kept], np.int64))
    _write_json(d / "meta.json", {
        "size": plan.size, "shapes": [list(s) for s in plan.plan.shapes],
        "buckets": sorted([list(k) for k in plan.rows]),
        "padded_fraction": plan.padded_fraction(list(failed)),
        "failed": [[str(src.files[i]), why] for i, why in sorted(failed.items())]})
    (d / "progress.json").unlink(missing_ok=True)


def open_size(d: Path) -> tuple[Packed, Packed, dict]:
    """The training and validation buckets of a complete size, mapped read-only."""
    meta = _read_json(d / "meta.json")
    out: tuple[list[Bucket], list[Bucket]] = ([], [])
    for part, b in meta["buckets"]:
        x_path = _x_path(d, part, b)
        out[part].append(Bucket(
            x=np.load(x_path, mmap_mode="r"), y=np.load(d / f"y-{PARTS[part]}-{b}.npy"),
            index=np.load(d / f"i-{PARTS[part]}-{b}.npy"), path=str(x_path)))
    pad = float(meta["padded_fraction"])
    return Packed(out[0], pad), Packed(out[1], pad), meta


@contextlib.contextmanager
def locked(d: Path, say: Callable[[str], None] = quiet) -> Iterator[None]:
    """One process builds an entry at a time; another waits, saying so, then finds it
    built."""
    with _lock_file(d, say):
        yield


def _lock_file(d: Path, say: Callable[[str], None]) -> IO:
    """The entry's lock file, open and locked (closing it unlocks)."""
    while True:
        d.mkdir(parents=True, exist_ok=True)
        try:
            f = open(d / LOCK, "w")  # noqa: SIM115 (the caller closes it)
        except FileNotFoundError:  # cleared between the two lines above
            continue
        if not _try_lock(f):
            say(f"waiting for another run that is decoding the same images into {d}")
            fcntl.flock(f, fcntl.LOCK_EX)
        if _same_file(f, d / LOCK):
            return f
        f.close()  # `hyperfcn cache --clear` removed the entry while this run waited


def _same_file(f: IO, path: Path) -> bool:
    try:
        return os.fstat(f.fileno()).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        return False


# The entries this process's runs use, each held with a shared lock until the run ends
# (release) or the process exits: `hyperfcn cache --clear` leaves them alone (trials map
# their files, the final step opens them again).
_HELD: dict[Path, IO] = {}


def hold(d: Path) -> None:
    """Mark entry ``d`` used now, and in use until :func:`release` or this process's end."""
    if d in _HELD:
        return
    f = open(d / IN_USE, "a")  # noqa: SIM115 (open until the process exits)
    fcntl.flock(f, fcntl.LOCK_SH)
    os.utime(d / IN_USE)  # the entry's last use, for `hyperfcn cache`
    _HELD[d] = f


def release(d: Path) -> None:
    """Stop holding entry ``d`` (its run has ended)."""
    f = _HELD.pop(d, None)
    if f is not None:
        f.close()


@contextlib.contextmanager
def unused(d: Path) -> Iterator[bool]:
    """Whether no run is using or building entry ``d``. While True, none can start to: a
    run takes the entry's lock before it holds the entry (hold), and checks, once it has
    the lock, that its lock file is still the entry's."""
    with contextlib.ExitStack() as stack:
        free = _try_lock(stack.enter_context(open(d / LOCK, "a")))
        if free and (d / IN_USE).exists():
            free = _try_lock(stack.enter_context(open(d / IN_USE, "rb")))
        yield free


def _try_lock(f: IO) -> bool:
    """Lock ``f`` exclusively if no one else holds it; whether it did."""
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def make_root(root: Path) -> None:
    """Create the cache's folder, or refuse in one line before any work."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        if not os.access(root, os.W_OK | os.X_OK):
            raise PermissionError(13, "permission denied")
    except OSError as e:
        raise UserError(f"--cache-dir {root}: cannot use it for the decoded cache "
                        f"({e.strerror or e}); give a folder you can write (or set "
                        f"{CACHE_ENV})") from None


def entry_dir(root: Path, src: Source) -> Path:
    return root / f"decoded-v{FORMAT}" / src.key()


def size_dir(entry: Path, size: int) -> Path:
    return entry / f"size-{size}"


def is_complete(entry: Path, size: int) -> bool:
    return (size_dir(entry, size) / "meta.json").exists()


def split_of(entry: Path, src: Source) -> Split:
    """The entry's split, probed from the headers and saved the first time."""
    split = _load_split(entry)
    if split is None:
        split = make_split(src)
        _save_split(entry, split)
    return split


def describe(entry: Path, src: Source, data: str | Path, val_dir: str | Path | None) -> None:
    """Write once what the entry was made from, for `hyperfcn cache` to list."""
    if not (entry / SOURCE).exists():
        _write_json(entry / SOURCE, {
            "data": str(Path(data).resolve()),
            "val_dir": str(Path(val_dir).resolve()) if val_dir is not None else None,
            "images": len(src.files), "val_split": None if src.val_dir else src.val_split,
            "seed": None if src.val_dir else src.seed})


def free_bytes(root: Path) -> int:
    """Free bytes on the disk that holds ``root`` (or would, once made)."""
    p = root
    while not p.exists() and p != p.parent:
        p = p.parent
    return shutil.disk_usage(p).free


def partial_bytes(entry: Path, size: int) -> int:
    """Bytes an interrupted decode of ``size`` already holds on disk (its files are sparse
    until written: their blocks, not their length)."""
    return sum(f.stat().st_blocks * 512 for f in size_dir(entry, size).glob("x-*.npy"))


def in_memory(packed: Packed) -> Packed:
    """A copy of mapped buckets held in memory, for a cluster whose other nodes cannot see
    the cache's path: it then travels through Ray's object store."""
    return Packed([Bucket(x=np.array(b.x), y=b.y, index=b.index) for b in packed.buckets],
                  packed.padded_fraction)
