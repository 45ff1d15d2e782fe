"""The decoded cache: decoded once per file and settings, found again by later runs,
resumed after an interruption, every row the image its labels and index name."""

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hyperfcn.data import cache as cache_mod
from hyperfcn.data import folder as data_mod
from hyperfcn.data.buckets import fit_to
from hyperfcn.data.prepare import prepare


def _corpus(root: Path, n: int = 6) -> Path:
    rng = np.random.default_rng(0)
    for c in ("cat", "dog"):
        (root / c).mkdir(parents=True)
        for i in range(n):
            w, h = [(40, 30), (30, 40), (36, 36)][i % 3]
            Image.fromarray(rng.integers(0, 255, (h, w, 3), np.uint8)).save(
                root / c / f"{i}.png")
    return root


def _decodes(fn) -> int:
    before = data_mod.DECODES[0]
    fn()
    return data_mod.DECODES[0] - before


def _rows(packed):
    for b in packed.buckets:
        for k in range(len(b.y)):
            yield b, k


def test_every_row_is_the_image_its_index_and_label_name(tmp_path):
    data, summary = prepare(_corpus(tmp_path / "d"), [16, 24], val_split=0.34,
                            cache_dir=tmp_path / "c")
    for s in (16, 24):
        for b, k in _rows(data.val[s]):
            path = summary.val_files[b.index[k]]
            h, w = b.x.shape[1:3]
            want = fit_to(data_mod.decode_image(path, [16, 24])[s], h, w)
            assert np.array_equal(b.x[k], want), path
            assert summary.classes[b.y[k]] == Path(path).parent.name
    n = sum(summary.train_counts.values()) + sum(summary.val_counts.values())
    assert n == 12 and data.train[16].size + data.val[16].size == 12


def test_a_second_run_on_the_same_files_decodes_nothing_and_a_changed_file_misses(tmp_path):
    d, c = _corpus(tmp_path / "d"), tmp_path / "c"
    first = prepare(d, [16], cache_dir=c)
    again = []
    assert _decodes(lambda: again.append(prepare(d, [16], cache_dir=c))) == 0
    assert again[0][1].cache_hit and again[0][1].cache == first[1].cache
    for a, b in zip(first[0].train[16].buckets, again[0][0].train[16].buckets):
        assert np.array_equal(a.x, b.x) and np.array_equal(a.y, b.y)
    # another size decodes only that size; another split is another entry
    assert _decodes(lambda: prepare(d, [24], cache_dir=c)) == 12
    assert _decodes(lambda: prepare(d, [16, 24], cache_dir=c)) == 0
    assert _decodes(lambda: prepare(d, [16], val_split=0.5, cache_dir=c)) == 12
    f = d / "cat" / "0.png"
    os.utime(f, ns=(f.stat().st_atime_ns, f.stat().st_mtime_ns + 10**9))
    assert _decodes(lambda: prepare(d, [16], cache_dir=c)) == 12


def test_an_interrupted_decode_resumes_where_it_stopped(tmp_path, monkeypatch):
    d, c = _corpus(tmp_path / "d"), tmp_path / "c"
    monkeypatch.setattr(cache_mod, "CHUNK", 4)
    monkeypatch.setattr(cache_mod, "RECORD_EVERY_S", 0.0)  # a record after every chunk
    real, seen = data_mod.decode_image, []

    def dies_at_the_ninth(path, sizes, *a):
        seen.append(path)
        if len(seen) == 9:
            raise KeyboardInterrupt
        return real(path, sizes, *a)

    monkeypatch.setattr(cache_mod, "decode_image", dies_at_the_ninth)
    with pytest.raises(KeyboardInterrupt):
        prepare(d, [16, 24], cache_dir=c, workers=1)
    monkeypatch.setattr(cache_mod, "decode_image", real)
    # two chunks of 4 were recorded: the resumed decode does the last 4 only
    resumed = []
    assert _decodes(lambda: resumed.append(prepare(d, [16, 24], cache_dir=c))) == 4
    fresh = prepare(d, [16, 24], cache_dir=tmp_path / "fresh")[0]
    for s in (16, 24):
        for a, b in zip(resumed[0][0].train[s].buckets, fresh.train[s].buckets):
            assert np.array_equal(a.x, b.x) and np.array_equal(a.index, b.index)


def test_a_file_whose_header_reads_but_whose_pixels_do_not_is_dropped(tmp_path,
                                                                     monkeypatch):
    d = _corpus(tmp_path / "d")
    Image.fromarray(np.zeros((30, 40, 3), np.uint8)).save(d / "dog" / "cut.jpg")
    real = data_mod.decode_image

    def fails_on_cut(path, sizes, *a):  # a file the probe passes and the decode refuses
        if Path(path).name == "cut.jpg":
            raise OSError("broken data stream")
        return real(path, sizes, *a)

    monkeypatch.setattr(cache_mod, "decode_image", fails_on_cut)
    data, summary = prepare(d, [16], val_dir=None, val_split=0.34, cache_dir=tmp_path / "c")
    assert [Path(p).name for p, _ in summary.skipped] == ["cut.jpg"]
    assert data.train[16].size + data.val[16].size == 12
    assert "cut.jpg" not in [Path(p).name for p in summary.val_files]
    assert len(summary.val_files) == data.val[16].size
    for b, k in _rows(data.val[16]):
        assert Path(summary.val_files[b.index[k]]).parent.name == summary.classes[b.y[k]]
    again = prepare(d, [16], val_split=0.34, cache_dir=tmp_path / "c")[1]
    assert again.cache_hit and again.skipped == summary.skipped


def test_a_mapped_bucket_travels_as_its_path(tmp_path):
    data, _ = prepare(_corpus(tmp_path / "d", n=30), [24], cache_dir=tmp_path / "c")
    b = data.train[24].buckets[0]
    assert isinstance(b.x, np.memmap) and b.path
    wire = pickle.dumps(b)
    assert len(wire) < b.x.nbytes / 4
    back = pickle.loads(wire)
    assert isinstance(back.x, np.memmap) and np.array_equal(back.x, b.x)
    assert not back.x.flags.writeable  # trials read the cache, never write it


def test_joining_a_cluster_without_a_shared_cache_ships_copies_in_memory(tmp_path):
    from hyperfcn.api import TuneOptions, shareable

    d = _corpus(tmp_path / "d")
    data, _ = prepare(d, [16], cache_dir=tmp_path / "c")
    assert shareable(data, TuneOptions(data=d)) is data  # local: trials map the cache
    assert shareable(data, TuneOptions(data=d, address="auto", cache_dir=tmp_path / "c")
                     ) is data  # a cache every node mounts
    shipped = shareable(data, TuneOptions(data=d, address="auto"))
    for b, mapped in zip(shipped.train[16].buckets, data.train[16].buckets):
        assert b.path is None and not isinstance(b.x, np.memmap)
        assert np.array_equal(b.x, mapped.x)
        assert len(pickle.dumps(b)) > b.x.nbytes  # the pixels travel, not a path


def test_a_lost_file_of_a_complete_size_is_decoded_anew(tmp_path):
    d, c = _corpus(tmp_path / "d"), tmp_path / "c"
    _, summary = prepare(d, [16], cache_dir=c)
    next(Path(summary.cache).glob("size-16/x-train-*.npy")).unlink()
    again = []
    assert _decodes(lambda: again.append(prepare(d, [16], cache_dir=c))) == 12
    assert not again[0][1].cache_hit and again[0][0].train[16].size == summary.train_counts[
        "cat"] + summary.train_counts["dog"]


def test_a_disk_that_fills_mid_decode_is_an_error_naming_the_file(tmp_path, monkeypatch):
    import errno

    def full(fd, data, offset):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(cache_mod.os, "pwrite", full)
    with pytest.raises(cache_mod.DataError, match=r"x-train-\d\.npy: cannot write .*"
                                                  r"No space left.*--cache-dir"):
        prepare(_corpus(tmp_path / "d"), [16], cache_dir=tmp_path / "c")


def test_a_disk_that_fills_while_failed_rows_are_dropped_keeps_the_old_file(tmp_path):
    """The rewrite without undecodable rows writes plainly, as the decode does: a mapped
    write to a full disk is SIGBUS, a plain one an error that names the file."""
    import resource
    import signal

    path = tmp_path / "x-train-0.npy"
    np.save(path, np.arange(64 * 1024, dtype=np.int64).astype(np.uint8).reshape(64, 1024))
    before = path.read_bytes()
    keep = np.ones(64, bool)
    keep[0] = False
    # a file-size limit stands in for a full disk: a plain write past it fails (EFBIG) as
    # one to a full disk does (ENOSPC)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (len(before) // 2, hard))
    try:
        with pytest.raises(cache_mod.DataError, match=r"x-train-0.npy: cannot write the "
                                                      r"decoded images .*--cache-dir"):
            cache_mod._drop_rows(path, keep)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, handler)
    assert path.read_bytes() == before and not list(tmp_path.glob("*.tmp.npy"))
    cache_mod._drop_rows(path, keep)  # with room, the row is gone
    want = np.arange(64 * 1024, dtype=np.int64).astype(np.uint8).reshape(64, 1024)[1:]
    assert np.array_equal(np.load(path), want)


def test_the_plan_s_array_rules_agree_with_the_one_image_rules():
    from hyperfcn.data.buckets import plan_buckets
    from hyperfcn.data.folder import decoded_shapes, decoded_shapes_many

    rng = np.random.default_rng(0)
    wh = np.concatenate([rng.integers(1, 3000, (3000, 2)),
                         [[100, 201], [201, 100], [300, 100], [7, 3], [1, 1], [5, 10]]])
    for size in (8, 64, 128):
        many = decoded_shapes_many(wh, size)
        assert [tuple(x) for x in many] == [decoded_shapes(int(w), int(h), [size])[size]
                                           for w, h in wh]
        plan = plan_buckets([tuple(x) for x in many], 4)
        odd = np.concatenate([many, rng.integers(1, 400, (500, 2))])  # some fit no bucket
        assert list(plan.assign_many(odd)) == [plan.assign(int(h), int(w)) for h, w in odd]


def test_a_val_dir_without_readable_images_is_refused_not_replaced_by_a_split(tmp_path):
    from hyperfcn.errors import DataError

    d = _corpus(tmp_path / "d")
    for c in ("cat", "dog"):
        (tmp_path / "v" / c).mkdir(parents=True)
        (tmp_path / "v" / c / "x.jpg").write_text("not an image")
    with pytest.raises(DataError, match="no validation images"):
        prepare(d, [16], val_dir=tmp_path / "v", cache_dir=tmp_path / "c")


def test_a_decode_says_what_it_decodes_and_how_far_it_is(tmp_path, monkeypatch):
    d, c = _corpus(tmp_path / "d"), tmp_path / "c"
    monkeypatch.setattr(cache_mod, "CHUNK", 4)
    monkeypatch.setattr(cache_mod, "RECORD_EVERY_S", 0.0)
    heard: list[str] = []
    prepare(d, [16, 24], cache_dir=c, workers=1, say=heard.append)
    assert heard[0].startswith("decoding 12 images at 16, 24 px")
    assert [h.strip() for h in heard[1:]] == ["decoded 4 of 12 images",
                                              "decoded 8 of 12 images"]
    heard.clear()
    prepare(d, [16, 24], cache_dir=c, say=heard.append)
    assert heard == []  # found in the cache: nothing to say


def test_a_run_waiting_for_another_s_decode_says_so(tmp_path):
    import fcntl
    import threading

    entry, heard, entered = tmp_path / "entry", [], threading.Event()
    entry.mkdir()

    def second_run():
        with cache_mod.locked(entry, heard.append):
            entered.set()

    with open(entry / ".lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # the first run, decoding
        t = threading.Thread(target=second_run)
        t.start()
        for _ in range(500):
            if heard:
                break
            threading.Event().wait(0.01)
        assert not entered.is_set()
        assert heard == [f"waiting for another run that is decoding the same images into "
                         f"{entry}"]
        fcntl.flock(held, fcntl.LOCK_UN)
    t.join(10)
    assert entered.is_set()


def test_a_decode_reports_its_progress_up_to_every_image(tmp_path):
    seen = []
    prepare(_corpus(tmp_path / "d"), [16], cache_dir=tmp_path / "c",
            progress=lambda done, total: seen.append((done, total)))
    assert seen and seen[-1][0] == seen[-1][1] and all(t == seen[0][1] for _, t in seen)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
