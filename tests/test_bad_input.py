"""A messy folder made on the fly, with every kind of bad input users bring. Each case is
used correctly, skipped and reported, or refused with exit 2 and one line naming the file
and the fix: never a traceback, never a hang."""

import csv
import json
import os
import struct
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hyperfcn.cli import main
from hyperfcn.data.folder import decode_all, list_image_paths
from hyperfcn.data.prepare import prepare
from hyperfcn.errors import DataError

CAT = "chats é"  # non-ASCII and a space in a class name


def _png_header_only(w: int, h: int) -> bytes:
    """A valid PNG header claiming w x h pixels (a decompression bomb), a few bytes long."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def _img(w=48, h=32, colour=(200, 40, 40), mode="RGB"):
    return Image.new(mode, (w, h), colour if mode in ("RGB", "RGBA", "CMYK") else 128)


def make_corpus(root: Path) -> dict[str, list[str]]:
    """Write the corpus; return which files must be used and which skipped."""
    used, skipped = [], []
    cat, dog = root / CAT, root / "dogs"
    for d in (cat / "deeper" / "deepest", dog, root / ".hidden_class", cat / ".ipynb_checkpoints"):
        d.mkdir(parents=True, exist_ok=True)

    def save(path: Path, img: Image.Image, bucket: list[str] | None = used, **kw) -> None:
        img.save(path, **kw)
        if bucket is not None:
            bucket.append(str(path))

    save(cat / "plain.jpg", _img())
    save(cat / "UPPER CASE.JPG", _img(), format="JPEG")
    save(cat / "été.jpeg", _img(), format="JPEG")
    save(cat / "alpha.png", _img(mode="RGBA", colour=(0, 0, 255, 0)))
    save(cat / "palette.gif", _img().convert("P"))
    frames = [_img(colour=(255, 0, 0)).convert("P"), _img(colour=(0, 0, 255)).convert("P")]
    frames[0].save(cat / "animated.gif", save_all=True, append_images=frames[1:])
    used.append(str(cat / "animated.gif"))
    save(cat / "gray16.png", Image.fromarray(np.full((32, 48), 50000, np.uint16)))
    save(cat / "cmyk.jpg", _img(mode="CMYK", colour=(0, 255, 255, 0)))
    save(cat / "one.png", _img(1, 1))
    rot = _img(60, 30)
    exif = rot.getexif()
    exif[0x0112] = 6  # stored landscape, shown portrait
    save(cat / "exif_rotated.jpg", rot, exif=exif)
    save(cat / "photo.webp", _img())
    save(cat / "scan.tif", _img())
    save(cat / "deeper" / "deepest" / "nested.png", _img())
    os.symlink(cat / "plain.jpg", cat / "linked.jpg")  # a link to a file is read
    used.append(str(cat / "linked.jpg"))
    os.symlink(cat, cat / "deeper" / "loop")  # a link loop must not trap the walk
    save(cat / ".hidden.jpg", _img(), bucket=None)
    save(cat / ".ipynb_checkpoints" / "copy.jpg", _img(), bucket=None)
    save(root / ".hidden_class" / "x.jpg", _img(), bucket=None)
    (cat / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (cat / "notes.txt").write_text("not an image")

    save(dog / "a.jpg", _img(colour=(20, 200, 20)))
    save(dog / "b.png", _img(colour=(20, 180, 20)))
    save(dog / "c.bmp", _img(colour=(20, 160, 20)), format="BMP")
    (dog / "zero.jpg").write_bytes(b"")
    buf = __import__("io").BytesIO()
    _img(300, 300).save(buf, "JPEG")
    (dog / "truncated.jpg").write_bytes(buf.getvalue()[:300])
    (dog / "text.jpg").write_text("this is a text file named .jpg")
    (dog / "bomb.png").write_bytes(_png_header_only(20000, 20000))
    skipped += [str(dog / n) for n in ("zero.jpg", "truncated.jpg", "text.jpg", "bomb.png")]
    return {"used": used, "skipped": skipped}


def test_every_bad_file_is_used_or_skipped_with_a_reason(tmp_path, deadline):
    deadline(120)  # a symlink loop or a bomb must not hang the scan or the decode
    expect = make_corpus(tmp_path / "data")
    data, summary = prepare(tmp_path / "data", [16, 24], val_split=0.25,
                            skipped_log=tmp_path / "skipped.tsv")
    assert summary.classes == [CAT, "dogs"]  # hidden folders are not classes
    reasons = dict(summary.skipped)
    assert sorted(reasons) == sorted(expect["skipped"])
    assert "too large to decode safely" in reasons[str(tmp_path / "data/dogs/bomb.png")]
    for path, why in reasons.items():
        assert why, path
    n_used = sum(summary.train_counts.values()) + sum(summary.val_counts.values())
    assert n_used == len(expect["used"])  # nothing hidden, nothing looped, nothing lost
    assert set(summary.val_files) <= set(expect["used"])
    log = (tmp_path / "skipped.tsv").read_text().splitlines()
    assert len(log) == 4 and all("\t" in line for line in log)
    for s in (16, 24):
        for b in data.train[s].buckets:
            assert b.x.dtype == np.uint8 and b.x.shape[-1] == 3


def test_a_file_name_that_is_not_utf8_is_read_and_written_escaped(tmp_path, capsys):
    data = _make(tmp_path / "data", {"a": 4, "b": 4})
    odd = os.fsencode(data / "a") + b"/caf\xe9 \xff.png"  # Latin-1 bytes, as old cameras
    _img().save(odd.decode(errors="surrogateescape"), format="PNG")
    (data / "b" / "broken.jpg").write_bytes(b"not an image")
    bad = os.fsdecode(os.fsencode(data / "b") + b"/\xfebad.jpg")
    Path(bad).write_bytes(b"")  # skipped: its name reaches skipped_files.tsv
    _, summary = prepare(data, [16], val_split=0.25, skipped_log=tmp_path / "skipped.tsv",
                         cache_dir=tmp_path / "cache")
    assert sum(summary.train_counts.values()) + sum(summary.val_counts.values()) == 9  # + café
    log = (tmp_path / "skipped.tsv").read_bytes().decode("utf-8")  # valid UTF-8
    assert "\\udcfebad.jpg" in log


def test_a_fifo_named_like_an_image_is_not_opened(tmp_path, deadline):
    deadline(60)  # opening a FIFO waits for a writer: the scan would hang
    data = _make(tmp_path / "data", {"a": 4, "b": 4})
    os.mkfifo(data / "a" / "x.jpg")
    _, summary = prepare(data, [16], val_split=0.25, cache_dir=tmp_path / "cache")
    assert sum(summary.train_counts.values()) + sum(summary.val_counts.values()) == 8
    with pytest.raises(DataError, match="x.jpg: not a regular file"):
        list_image_paths([data / "a" / "x.jpg"])


def test_unreadable_file_is_skipped_with_the_reason(tmp_path):
    d = Path(tempfile.mkdtemp(dir="/tmp"))
    os.chmod(d, 0o755)  # so that an unprivileged user can reach the file
    p = d / "secret.jpg"
    _img().save(p)
    os.chmod(p, 0)
    try:
        if os.geteuid() == 0:  # root reads anything: drop to nobody for this decode
            os.seteuid(65534)
            try:
                out = decode_all([p], [16], workers=1)
            finally:
                os.seteuid(0)
        else:
            out = decode_all([p], [16], workers=1)
    finally:
        os.chmod(p, 0o644)
    assert out.kept == []
    assert "Permission denied" in out.failed[0][1] and out.failed[0][0] == p


@pytest.mark.integration
def test_the_cli_runs_on_the_messy_folder_and_reports_what_it_skipped(tmp_path):
    make_corpus(tmp_path / "data")
    run = tmp_path / "run"
    r = subprocess.run([sys.executable, "-m", "hyperfcn.cli", "tune", str(tmp_path / "data"),
                        "--val-split", "0.25", "--out", str(run), "--image-size", "16",
                        "--samples", "1", "--max-epochs", "1"],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Traceback" not in r.stderr
    assert "skipped 4 unreadable file(s)" in r.stdout and "skipped_files.tsv" in r.stdout
    rows = (run / "skipped_files.tsv").read_text().splitlines()
    assert len(rows) == 4
    assert json.loads((run / "classes.json").read_text()) == [CAT, "dogs"]
    page = (run / "report.html").read_text()
    assert "4 file(s) skipped" in page and "bomb.png" in page
    with open(run / "val_predictions.csv", encoding="utf-8") as f:
        preds = list(csv.DictReader(f))
    assert {p["label"] for p in preds} == {CAT, "dogs"}


def _make(tmp: Path, layout: dict[str, int]) -> Path:
    for cls, n in layout.items():
        (tmp / cls).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            _img(colour=(i * 20, 100, 100)).save(tmp / cls / f"{i}.jpg")
    return tmp


def _refused(argv: list[str], capsys, names: str, words: list[str]) -> None:
    """Exit 2, one line, no traceback, naming the file and saying what is wrong."""
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert names in err, err
    for w in words:
        assert w in err, err


@pytest.mark.parametrize("case, words", [
    ("missing", ["does not exist", "one sub-folder per class"]),
    ("a_file", ["is not a folder"]),
    ("no_classes", ["no class sub-folders"]),
    ("single_class", ["found one class", "at least 2"]),
    ("empty_class", ["empty", "no readable images", "add images or remove the folder"]),
    ("val_extra_class", ["horses", "has classes the training data lacks"]),
    ("val_missing", ["does not exist"]),
])
def test_bad_folders_are_refused_with_one_line(case, words, tmp_path, capsys):
    data = tmp_path / "data"
    extra: list[str] = []
    if case == "a_file":
        data.write_text("x")
    elif case == "no_classes":
        data.mkdir()
        _img().save(data / "loose.jpg")
    elif case == "single_class":
        _make(data, {"cats": 3})
    elif case == "empty_class":
        _make(data, {"cats": 3, "dogs": 3})
        (data / "empty").mkdir()
    elif case == "val_extra_class":
        _make(data, {"cats": 3, "dogs": 3})
        _make(tmp_path / "val", {"cats": 1, "dogs": 1, "horses": 1})
        extra = ["--val-dir", str(tmp_path / "val")]
    elif case == "val_missing":
        _make(data, {"cats": 3, "dogs": 3})
        extra = ["--val-dir", str(tmp_path / "nope")]
    _refused(["tune", str(data), "--out", str(tmp_path / "run"), "--image-size", "16",
              *extra], capsys, str(tmp_path), words)  # names the folder


@pytest.mark.parametrize("text, words", [
    ("parameters:\n  colour: {choice: [1, 2]}\n", ["colour", "unknown key"]),
    ("parameters:\n  filters: {choice: []}\n", ["filters", "empty choice"]),
    ("parameters:\n  dropout: {uniform: [0.5, 0.1]}\n", ["dropout", "low 0.5 > high 0.1"]),
    ("parameters:\n  learning_rate: {loguniform: [0, 0.1]}\n", ["learning_rate", "0 < low"]),
    ("parameters:\n  batch_size: {choice: [sixteen]}\n", ["batch_size", "integer"]),
    ("parameters:\n  dropout: {uniform: [0.0, 1.5]}\n", ["dropout=1.5", "[0, 1)"]),
    ("parameters:\n  rotation: 'yes'\n", ["rotation", "true or false"]),
    # an integer key drawn from a continuous range would fail every trial after Ray starts
    ("parameters:\n  batch_size: {uniform: [16, 128]}\n",
     ["batch_size", "draws fractions", "integer", "randint"]),
    ("parameters:\n  filters: {loguniform: [8, 64]}\n", ["filters", "draws fractions"]),
    ("parameters:\n  blocks: {quniform: [1, 4, 0.5]}\n", ["blocks", "draws fractions"]),
    # sizes without a bound would build until the memory runs out
    ("parameters:\n  max_filters: 1000000000\n", ["max_filters", "1..2048"]),
    ("parameters:\n  head: {choice: {dense: {dense_units: {randint: [64, 1000000000]}}}}\n",
     ["dense_units", "1..8192"]),
    ("parameters: [1, 2\n", ["not valid YAML"]),
    ("- just\n- a list\n", ["expected a mapping"]),
])
def test_bad_space_files_are_refused_with_one_line(text, words, tmp_path, capsys):
    space = tmp_path / "my space.yaml"
    space.write_text(text)
    _make(tmp_path / "data", {"a": 2, "b": 2})
    _refused(["tune", str(tmp_path / "data"), "--space", str(space), "--out",
              str(tmp_path / "run")], capsys, "my space.yaml", words)
    assert not (tmp_path / "run" / "tune").exists()  # refused before any search


@pytest.mark.parametrize("text, words", [
    ('{"blocks": 3, "colour": 1}', ["colour", "unknown key"]),
    ('{"batchnorm": "true"}', ["batchnorm", "true or false"]),
    ('{"batch_size": "32"}', ["batch_size", "integer"]),
    ('{"dropout": 2}', ["dropout=2", "[0, 1)"]),
    ('{"blocks": 3,', ["cannot parse"]),
])
def test_bad_configs_are_refused_with_one_line(text, words, tmp_path, capsys):
    cfg = tmp_path / "cfg.json"
    cfg.write_text(text)
    _make(tmp_path / "data", {"a": 2, "b": 2})
    _refused(["train", str(tmp_path / "data"), "--config", str(cfg), "--out",
              str(tmp_path / "run")], capsys, "cfg.json", words)


def test_an_empty_class_folder_is_refused_before_anything_is_decoded_or_cached(tmp_path):
    data = _make(tmp_path / "data", {"cats": 3, "dogs": 3})
    (data / "empty").mkdir()
    with pytest.raises(DataError, match="with no readable images: empty"):
        prepare(data, [16], cache_dir=tmp_path / "cache")
    assert not list((tmp_path / "cache").rglob("*.npy"))  # no entry left behind
