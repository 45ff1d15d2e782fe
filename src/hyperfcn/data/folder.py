"""Find labelled images in class folders and decode each one once, in parallel.

Every image is decoded a single time per experiment, at the largest image size the search
can ask for; smaller sizes are resized from that decode, never read from disk again.
"""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from ..errors import DataError

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".gif", ".webp",
                              ".tif", ".tiff"})
# Very elongated images (panoramas) would force huge padded buckets: crop them centrally.
MAX_ASPECT = 2.0

_decode_lock = threading.Lock()
DECODES = [0]  # how many files were decoded in this process (the decode-once check reads it)


def _count_decode() -> None:
    with _decode_lock:
        DECODES[0] += 1


def _hidden(name: str) -> bool:
    return name.startswith(".") or name.startswith("__") or name == "Thumbs.db"


@dataclass
class Scan:
    """Image files found under a root: path, label index, and what was left out."""

    root: Path
    classes: list[str]
    files: list[Path]
    labels: list[int]
    ignored: list[Path] = field(default_factory=list)  # not images by their extension

    def counts(self) -> dict[str, int]:
        c = dict.fromkeys(self.classes, 0)
        for lab in self.labels:
            c[self.classes[lab]] += 1
        return c


def _walk_images(folder: Path) -> tuple[list[Path], list[Path]]:
    """Image files under folder, recursively, sorted; hidden entries and link loops skipped.
    Only regular files (or links to them) are images: opening a FIFO named ``x.jpg`` would
    wait forever for a writer, and a device would be read without end."""
    images, others = [], []
    stack = [folder]
    while stack:
        here = stack.pop()
        try:
            entries = sorted(os.scandir(here), key=lambda e: e.name)
        except OSError:
            continue
        dirs = []
        for e in entries:
            if _hidden(e.name):
                continue
            # a linked folder is not walked (a link loop cannot trap the walk); a linked
            # file is read, and a dangling link is kept to be reported as unreadable
            if e.is_dir(follow_symlinks=False):
                dirs.append(Path(e.path))
            elif e.is_file() or (e.is_symlink() and not os.path.exists(e.path)):
                p = Path(e.path)
                (images if p.suffix.lower() in IMAGE_EXTENSIONS else others).append(p)
            elif not e.is_dir():
                others.append(Path(e.path))  # a FIFO, socket or device: never opened
        stack += reversed(dirs)
    return images, others


def class_names(root: str | Path, what: str = "DATA") -> list[str]:
    """The sorted class sub-folders of a data folder, or a one-line refusal: what a command
    checks first, in milliseconds, before it imports or reads anything heavy."""
    root = Path(root)
    if not root.exists():
        raise DataError(f"{root}: {what} folder does not exist; give a folder with one "
                        f"sub-folder per class")
    if not root.is_dir():
        raise DataError(f"{root}: {what} is not a folder; give a folder with one sub-folder "
                        f"per class")
    try:
        found = sorted(d.name for d in root.iterdir() if d.is_dir() and not _hidden(d.name))
    except PermissionError:
        raise DataError(f"{root}: cannot read the folder (permission denied)") from None
    if not found:
        raise DataError(f"{root}: no class sub-folders; put each class's images in "
                        f"{root}/<class name>/")
    return found


def scan_folder(root: str | Path, classes: Sequence[str] | None = None,
                what: str = "DATA") -> Scan:
    """Classes are the sorted sub-folder names; each holds images at any depth."""
    root = Path(root)
    found = class_names(root, what)
    if classes is not None and found != list(classes):
        missing = sorted(set(classes) - set(found))
        extra = sorted(set(found) - set(classes))
        parts = []
        if extra:
            parts.append(f"has classes the training data lacks: {', '.join(extra)}")
        if missing:
            parts.append(f"lacks training classes: {', '.join(missing)}")
        if not parts:
            parts.append("orders classes differently")
        raise DataError(f"{root}: {what} {'; '.join(parts)}; its sub-folders must be exactly "
                        f"the training classes")
    files: list[Path] = []
    labels: list[int] = []
    ignored: list[Path] = []
    for i, name in enumerate(found):
        imgs, others = _walk_images(root / name)
        files += imgs
        labels += [i] * len(imgs)
        ignored += others
    return Scan(root=root, classes=found, files=files, labels=labels, ignored=ignored)


def list_image_paths(paths: Iterable[str | Path]) -> list[Path]:
    """Files as given, folders searched recursively (for predict)."""
    out: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if not p.exists():
            raise DataError(f"{p}: no such file or folder")
        if p.is_dir():
            out += _walk_images(p)[0]
        elif not p.is_file():
            raise DataError(f"{p}: not a regular file (a pipe, socket or device); give "
                            f"image files or folders")
        else:
            out.append(p)
    return out


# ---------------------------------------------------------------- decoding

def _to_rgb(im: Image.Image) -> Image.Image:
    if im.mode == "RGB":
        return im
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        a = np.asarray(im, dtype=np.float32)
        hi = 65535.0 if im.mode.startswith("I;16") else max(float(a.max()), 1.0)
        a = np.clip(a * (255.0 / hi), 0, 255).astype(np.uint8)
        return Image.fromarray(a, "L").convert("RGB")
    if im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        # Transparent pixels carry undefined colours: lay the image on white, as viewers do.
        im = im.convert("RGBA")
        bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
        return Image.alpha_composite(bg, im).convert("RGB")
    return im.convert("RGB")


def target_shape(width: int, height: int, size: int,
                 max_aspect: float = MAX_ASPECT) -> tuple[int, int]:
    """(height, width) after the short side becomes `size` and the aspect is capped."""
    short, long = min(width, height), max(width, height)
    aspect = min(long / short, max_aspect)
    long_px = max(size, int(round(size * aspect)))
    return (size, long_px) if width >= height else (long_px, size)


def _crop_aspect(im: Image.Image, max_aspect: float) -> Image.Image:
    w, h = im.size
    if max(w, h) <= max_aspect * min(w, h):
        return im
    if w > h:
        nw = int(round(h * max_aspect))
        left = (w - nw) // 2
        return im.crop((left, 0, left + nw, h))
    nh = int(round(w * max_aspect))
    top = (h - nh) // 2
    return im.crop((0, top, w, top + nh))


def decode_image(path: str | Path, sizes: Sequence[int],
                 max_aspect: float = MAX_ASPECT) -> dict[int, np.ndarray]:
    """Decode one file once and return an RGB uint8 array per requested short-side size."""
    big = max(sizes)
    with warnings.catch_warnings():
        # Pillow warns from 89 MP and raises DecompressionBombError from 179 MP: big camera
        # photos pass (draft mode keeps them cheap), bombs are refused and reported.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with Image.open(path) as im:
            if getattr(im, "n_frames", 1) > 1:
                im.seek(0)
            # JPEG draft mode decodes at 1/2, 1/4 or 1/8 scale straight from the DCT: the
            # decode is several times faster and both sides stay >= the target.
            im.draft("RGB", (big, big))
            im.load()
            im = ImageOps.exif_transpose(im)
            im = _to_rgb(im)
    _count_decode()
    return resized(im, sizes, max_aspect)


def resized(im: Image.Image, sizes: Sequence[int],
            max_aspect: float = MAX_ASPECT) -> dict[int, np.ndarray]:
    """An RGB image as trials see it at each size: a side past ``max_aspect`` times the
    other centre-cropped, then the short side resized to the size, the aspect kept."""
    im = _crop_aspect(_to_rgb(im), max_aspect)
    out: dict[int, np.ndarray] = {}
    src = im
    for s in sorted(set(sizes), reverse=True):
        h, w = target_shape(src.width, src.height, s, max_aspect)
        # Resize from the previous (larger) result: cheaper and every size comes from one
        # decode.
        src = src.resize((w, h), Image.Resampling.BILINEAR, reducing_gap=None)
        out[s] = np.asarray(src, dtype=np.uint8)
    return out


# EXIF orientations that turn the image a quarter: exif_transpose swaps its sides.
_QUARTER_TURNS = frozenset({5, 6, 7, 8})


# Start-of-frame markers (baseline, progressive, lossless...): they carry the size.
_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE,
                  0xCF})


def _exif_orientation(app1: bytes) -> int:
    """The orientation tag of an APP1 segment's EXIF IFD0, 1 (upright) when absent."""
    if not app1.startswith(b"Exif\0\0") or len(app1) < 14:
        return 1
    tiff = app1[6:]
    order = {b"II": "little", b"MM": "big"}.get(tiff[:2])
    if order is None:
        return 1
    ifd = int.from_bytes(tiff[4:8], order)
    count = int.from_bytes(tiff[ifd:ifd + 2], order)
    for k in range(count):
        e = ifd + 2 + 12 * k
        if int.from_bytes(tiff[e:e + 2], order) == 0x0112:
            return int.from_bytes(tiff[e + 8:e + 10], order)
    return 1


def _jpeg_size(path: str | Path) -> tuple[int, int, int, bool] | None:
    """(width, height, EXIF orientation, whether the file ends with its end-of-image
    marker, as one cut short does not) of a JPEG from its markers, ~5x faster than
    Pillow's open; None for anything else, or anything unusual, which Pillow then reads."""
    with open(path, "rb") as f:
        if f.read(2) != b"\xff\xd8":
            return None
        orientation = 1
        while True:
            head = f.read(4)
            if len(head) < 4 or head[0] != 0xFF:
                return None
            marker, length = head[1], int.from_bytes(head[2:4], "big")
            if marker in _SOF:
                sof = f.read(5)
                h, w = int.from_bytes(sof[1:3], "big"), int.from_bytes(sof[3:5], "big")
                if len(sof) != 5 or not (w and h):
                    return None
                f.seek(-2, os.SEEK_END)
                return w, h, orientation, f.read(2) == b"\xff\xd9"
            if marker == 0xDA or length < 2:  # the scan came first: unusual, ask Pillow
                return None
            if marker == 0xE1 and orientation == 1:
                orientation = _exif_orientation(f.read(length - 2))
            else:
                f.seek(length - 2, 1)


def _decode_problem(path: str | Path) -> str | None:
    """Why a JPEG whose end is not its end marker fails to decode (cut short), None when
    it decodes (data after the marker): found here, it is left out before the split, not
    after it, where it could take a class's only validation image with it."""
    try:
        with Image.open(path) as im:
            im.draft("RGB", (64, 64))
            im.load()
    except Exception as e:
        return f"{type(e).__name__}: {e}"
    return None


def probe_image(path: str | Path) -> tuple[int, int] | str:
    """(width, height) of an image as :func:`decode_image` will see it (EXIF rotation
    applied), read from its header alone; the reason when it cannot be read."""
    try:
        fast = _jpeg_size(path)
    except (OSError, ValueError):
        fast = None
    if fast is not None and fast[0] * fast[1] <= Image.MAX_IMAGE_PIXELS:
        w, h, orientation, whole = fast
        why = None if whole else _decode_problem(path)
        return why or ((h, w) if orientation in _QUARTER_TURNS else (w, h))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                w, h = im.size
                turned = im.getexif().get(0x0112) in _QUARTER_TURNS
    except Image.DecompressionBombError as e:
        return f"too large to decode safely ({e})"
    except Exception as e:  # any unreadable file is skipped, never fatal
        return f"{type(e).__name__}: {e}"
    if w < 1 or h < 1:
        return f"empty image ({w}x{h})"
    return (h, w) if turned else (w, h)


def probe_all(paths: Sequence[Path]) -> list[tuple[int, int] | str]:
    """:func:`probe_image` of every path, in order. One thread: parsing a header holds
    the GIL, and a thread pool took longer than one thread."""
    return [probe_image(p) for p in paths]


def decoded_shapes(width: int, height: int, sizes: Sequence[int],
                   max_aspect: float = MAX_ASPECT) -> dict[int, tuple[int, int]]:
    """(height, width) that :func:`decode_image` gives an image of this size at each size,
    without decoding it (a JPEG's draft decode may land a pixel off: packing crops or pads
    to the bucket either way)."""
    if max(width, height) > max_aspect * min(width, height):
        if width > height:
            width = int(round(height * max_aspect))
        else:
            height = int(round(width * max_aspect))
    out: dict[int, tuple[int, int]] = {}
    for s in sorted(set(sizes), reverse=True):
        height, width = target_shape(width, height, s, max_aspect)
        out[s] = (height, width)
    return out


def decoded_shapes_many(wh: np.ndarray, size: int,
                        max_aspect: float = MAX_ASPECT) -> np.ndarray:
    """:func:`decoded_shapes` at one size for an (n, 2) array of (width, height): (n, 2)
    of (height, width)."""
    w, h = wh[:, 0].astype(np.int64), wh[:, 1].astype(np.int64)
    short = np.minimum(w, h)
    cut = np.maximum(w, h) > max_aspect * short
    capped = np.rint(short * max_aspect).astype(np.int64)  # round half to even, as round()
    w = np.where(cut & (w > h), capped, w)
    h = np.where(cut & (w <= h), capped, h)
    short, long = np.minimum(w, h), np.maximum(w, h)
    aspect = np.minimum(long / short, max_aspect)
    long_px = np.maximum(size, np.rint(size * aspect).astype(np.int64))
    return np.where((w >= h)[:, None], np.stack([np.full_like(w, size), long_px], 1),
                    np.stack([long_px, np.full_like(w, size)], 1))


@dataclass
class Decoded:
    """Arrays per size for the images that decoded, and why the others did not."""

    images: dict[int, list[np.ndarray]]
    kept: list[int]  # indices into the input list
    failed: list[tuple[Path, str]]


def decode_all(paths: Sequence[Path], sizes: Sequence[int], workers: int | None = None,
               max_aspect: float = MAX_ASPECT) -> Decoded:
    """Decode in parallel threads (Pillow releases the GIL while it decodes and resizes)."""
    workers = workers or os.cpu_count() or 1

    def one(p: Path) -> dict[int, np.ndarray] | str:
        try:
            return decode_image(p, sizes, max_aspect)
        except Image.DecompressionBombError as e:
            return f"too large to decode safely ({e})"
        except Exception as e:  # any unreadable file is skipped, never fatal
            return f"{type(e).__name__}: {e}"

    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(one, paths, chunksize=16))
    images: dict[int, list[np.ndarray]] = {s: [] for s in sizes}
    kept: list[int] = []
    failed: list[tuple[Path, str]] = []
    for i, (p, r) in enumerate(zip(paths, results)):
        if isinstance(r, str):
            failed.append((p, r))
            continue
        kept.append(i)
        for s in sizes:
            images[s].append(r[s])
    return Decoded(images=images, kept=kept, failed=failed)


def stratified_split(labels: Sequence[int], fraction: float, seed: int) -> tuple[list[int],
                                                                                list[int]]:
    """Indices (train, val): each class keeps `fraction` of its items for validation."""
    if not 0 < fraction < 1:
        raise DataError(f"--val-split {fraction}: must be between 0 and 1 (e.g. 0.2)")
    rng = np.random.default_rng(seed)
    labels_a = np.asarray(labels)
    train: list[int] = []
    val: list[int] = []
    for c in np.unique(labels_a):
        idx = np.flatnonzero(labels_a == c)
        rng.shuffle(idx)
        n_val = int(round(len(idx) * fraction))
        n_val = min(max(n_val, 1), len(idx) - 1) if len(idx) >= 2 else 0
        val += idx[:n_val].tolist()
        train += idx[n_val:].tolist()
    return sorted(train), sorted(val)
