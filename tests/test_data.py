import io

import numpy as np
import pytest
from PIL import Image

from hyperfcn.data.folder import (
    DECODES,
    decode_all,
    decode_image,
    list_image_paths,
    scan_folder,
    stratified_split,
)
from hyperfcn.data.prepare import prepare, unmeasured_message
from hyperfcn.errors import DataError


def _save(path, img, fmt=None, **kw):
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, fmt, **kw)
    return path


def _rgb(w=40, h=30, colour=(200, 30, 30)):
    return Image.new("RGB", (w, h), colour)


def test_classes_sorted_hidden_ignored_nested_included(tmp_path):
    _save(tmp_path / "b" / "x.jpg", _rgb())
    _save(tmp_path / "a" / "deep" / "y.PNG", _rgb())
    _save(tmp_path / "a" / ".hidden.jpg", _rgb())
    _save(tmp_path / ".ipynb_checkpoints" / "z.jpg", _rgb())
    (tmp_path / "a" / ".DS_Store").write_bytes(b"\0\0")
    (tmp_path / "a" / "notes.txt").write_text("hi")
    s = scan_folder(tmp_path)
    assert s.classes == ["a", "b"]
    assert [p.name for p in s.files] == ["y.PNG", "x.jpg"]
    assert s.labels == [0, 1]
    assert [p.name for p in s.ignored] == ["notes.txt"]


def test_formats_modes_and_exif(tmp_path):
    files = {
        "rgba.png": Image.new("RGBA", (20, 10), (10, 20, 30, 0)),
        "p.gif": _rgb().convert("P"),
        "l16.png": Image.fromarray(np.full((10, 20), 60000, np.uint16)),
        "cmyk.jpg": Image.new("CMYK", (20, 10), (0, 255, 255, 0)),
        "one.bmp": _rgb(1, 1),
        "w.webp": _rgb(),
        "t.tif": _rgb(),
    }
    for name, img in files.items():
        _save(tmp_path / name, img)
    for name in files:
        arrs = decode_image(tmp_path / name, [16, 8])
        for s, a in arrs.items():
            assert a.dtype == np.uint8 and a.ndim == 3 and a.shape[2] == 3
            assert min(a.shape[:2]) == s
    # transparent pixels are laid on white
    assert decode_image(tmp_path / "rgba.png", [8])[8].mean() > 250
    # 16-bit grey is scaled, not clipped to white
    assert 200 < decode_image(tmp_path / "l16.png", [8])[8].mean() < 240
    # EXIF orientation 6 (rotate 90): a 40x20 landscape file shows as portrait
    img = _rgb(40, 20)
    exif = img.getexif()
    exif[0x0112] = 6
    _save(tmp_path / "rot.jpg", img, exif=exif)
    h, w = decode_image(tmp_path / "rot.jpg", [10])[10].shape[:2]
    assert (h, w) == (20, 10)


def test_animated_gif_first_frame(tmp_path):
    frames = [_rgb(20, 20, (255, 0, 0)).convert("P"), _rgb(20, 20, (0, 0, 255)).convert("P")]
    p = tmp_path / "anim.gif"
    frames[0].save(p, save_all=True, append_images=frames[1:])
    a = decode_image(p, [10])[10]
    assert a[..., 0].mean() > a[..., 2].mean()


def test_unreadable_files_are_skipped_not_fatal(tmp_path):
    good = _save(tmp_path / "good.jpg", _rgb())
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    text = tmp_path / "text.jpg"
    text.write_text("not an image")
    buf = io.BytesIO()
    _rgb(200, 200).save(buf, "JPEG")
    trunc = tmp_path / "trunc.jpg"
    trunc.write_bytes(buf.getvalue()[:200])
    d = decode_all([good, empty, text, trunc], [16])
    assert d.kept == [0]
    assert [p.name for p, _ in d.failed] == ["empty.jpg", "text.jpg", "trunc.jpg"]


def test_each_image_decoded_once_for_all_sizes(tmp_path):
    paths = [_save(tmp_path / f"{i}.png", _rgb(30 + i, 20)) for i in range(5)]
    before = DECODES[0]
    d = decode_all(paths, [8, 16, 24])
    assert DECODES[0] - before == 5
    assert all(len(v) == 5 for v in d.images.values())


def test_val_dir_with_other_classes_is_refused(tmp_path):
    _save(tmp_path / "train" / "cat" / "a.jpg", _rgb())
    _save(tmp_path / "train" / "dog" / "a.jpg", _rgb())
    _save(tmp_path / "val" / "cat" / "a.jpg", _rgb())
    _save(tmp_path / "val" / "cow" / "a.jpg", _rgb())
    with pytest.raises(DataError, match="has classes the training data lacks: cow"):
        prepare(tmp_path / "train", [16], val_dir=tmp_path / "val")


def test_missing_and_single_class_folders(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        scan_folder(tmp_path / "nope")
    _save(tmp_path / "only" / "a.jpg", _rgb())
    with pytest.raises(DataError, match="at least 2 class"):
        prepare(tmp_path, [16])
    with pytest.raises(DataError, match="no such file"):
        list_image_paths([tmp_path / "missing.jpg"])


def test_stratified_split_is_seeded_and_keeps_every_class():
    labels = [0] * 50 + [1] * 10 + [2] * 3
    tr, va = stratified_split(labels, 0.2, seed=1)
    assert sorted(tr + va) == list(range(63))
    assert stratified_split(labels, 0.2, seed=1) == (tr, va)
    va_labels = [labels[i] for i in va]
    assert va_labels.count(0) == 10 and va_labels.count(1) == 2 and va_labels.count(2) == 1


@pytest.mark.integration
def test_prepare_real_photos(flowers, tmp_path):
    sample = flowers.parent / "flowers-original-sample"
    data, summary = prepare(sample, [32, 48], val_split=0.25, seed=0)
    assert summary.classes == ["daisy", "dandelion", "roses", "sunflowers", "tulips"]
    assert sum(summary.train_counts.values()) + sum(summary.val_counts.values()) == 20
    for s in (32, 48):
        assert len(summary.shapes[s]) <= 4
        for b in data.train[s].buckets:
            assert min(b.x.shape[1:3]) == s and b.x.dtype == np.uint8


def test_the_header_probe_reads_what_pillow_reads(tmp_path):
    """Sizes as decode_image sees them, EXIF quarter turns swapping the sides, for JPEGs
    (read from their markers), progressive ones, ones with a large APP segment before the
    frame or data after the end, and other formats (read by Pillow); a JPEG cut short is
    refused with the reason."""
    from hyperfcn.data.folder import decode_image, probe_image

    rgb = _rgb(50, 30)
    cases = {}
    for orientation in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = orientation
        p = tmp_path / f"o{orientation}.jpg"
        rgb.save(p, exif=exif.tobytes())
        cases[p] = (30, 50) if orientation in (5, 6, 7, 8) else (50, 30)
    rgb.save(tmp_path / "prog.jpg", progressive=True)
    cases[tmp_path / "prog.jpg"] = (50, 30)
    rgb.save(tmp_path / "icc.jpg", icc_profile=b"\0" * 60000)
    cases[tmp_path / "icc.jpg"] = (50, 30)
    rgb.save(tmp_path / "p.png")
    cases[tmp_path / "p.png"] = (50, 30)
    full = (tmp_path / "prog.jpg").read_bytes()
    (tmp_path / "tail.jpg").write_bytes(full + b"trailing data after the end marker")
    cases[tmp_path / "tail.jpg"] = (50, 30)
    for path, want in cases.items():
        assert probe_image(path) == want, path
        h, w = decode_image(path, [30])[30].shape[:2]  # the decode turns it the same way
        assert (w > h) == (want[0] > want[1]), path
    # a JPEG cut short is found by the probe (it does not end with its end marker)
    (tmp_path / "cut.jpg").write_bytes(full[:len(full) // 2])
    assert "truncated" in probe_image(tmp_path / "cut.jpg")
    assert "cannot identify" in probe_image(_text(tmp_path / "x.jpg"))


def _text(p):
    p.write_text("not an image")
    return p


def test_a_class_left_without_validation_images_is_named_with_what_to_do(tmp_path):
    _save(tmp_path / "a" / "only.jpg", _rgb())  # one image: none for validation
    for i in range(5):
        _save(tmp_path / "b" / f"{i}.jpg", _rgb(colour=(10, 20 * i, 30)))
    _, summary = prepare(tmp_path, [16], val_split=0.2, cache_dir=tmp_path / "cache")
    assert summary.val_counts == {"a": 0, "b": 1}
    msg = unmeasured_message(summary, None)
    assert msg is not None and "'a'" in msg and "'b'" not in msg
    assert "2 or more readable images" in msg and "--val-dir" in msg
    assert str(tmp_path / "v") in unmeasured_message(summary, tmp_path / "v")
    summary.val_counts["a"] = 1
    assert unmeasured_message(summary, None) is None
