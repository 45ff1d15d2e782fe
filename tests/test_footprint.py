"""The room a run's decoded images need, counted from headers before any decode, and the
refusal of a run that cannot have it."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hyperfcn.data import folder as data_mod
from hyperfcn.data import prepare as prepare_mod
from hyperfcn.data.cache import Source
from hyperfcn.data.cache_plan import make_split, needed_bytes, plan_size
from hyperfcn.data.footprint import available_bytes, check_memory
from hyperfcn.errors import DataError


def _photos(root: Path, w: int, h: int, n: int = 3) -> Path:
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(np.full((h, w, 3), 40 * i, np.uint8)).save(root / c / f"{i}.png")
    return root


def _source(data: Path) -> Source:
    scan = data_mod.scan_folder(data)
    return Source(files=tuple(scan.files), labels=tuple(scan.labels),
                  n_train=len(scan.files), val_split=0.5, seed=0, max_buckets=4)


def test_a_4_by_3_photo_takes_119_kb_at_the_default_sizes(tmp_path):
    """Short side = the size, long side 4/3 of it, 3 bytes a pixel, at 64, 96 and 128 px."""
    split = make_split(_source(_photos(tmp_path / "d", 400, 300)))
    need = {s: needed_bytes(plan_size(split, s, 4)) for s in (64, 96, 128)}
    assert need == {64: 6 * 3 * 64 * 85, 96: 6 * 3 * 96 * 128, 128: 6 * 3 * 128 * 171}
    assert sum(need.values()) == pytest.approx(6 * 119_000, rel=0.01)


def test_available_memory_is_the_machines_or_less_where_a_container_limits_it():
    meminfo = "MemTotal: 100 kB\nMemAvailable:   2048 kB\n"
    no_limit = ("max\n", "123\n")  # cgroup v2 without a limit
    assert available_bytes(meminfo, no_limit) == 2048 * 1024
    assert available_bytes(meminfo, ("9223372036854771712\n", "100\n")) == 2048 * 1024
    assert available_bytes(meminfo, ("1000000\n", "400000\n")) == 600_000  # the container's
    assert available_bytes(meminfo, ("", "")) == 2048 * 1024  # no cgroup files
    assert available_bytes("nothing", no_limit) is None


def test_a_run_the_disk_cannot_hold_is_refused_before_any_decode_with_the_numbers(
        tmp_path, monkeypatch):
    data = _photos(tmp_path / "d", 400, 300)
    one_size = 6 * 3 * 64 * 85
    # room for one size, not three: the way out names that size
    monkeypatch.setattr(prepare_mod, "free_bytes", lambda root: int(one_size * 1.5))
    before = data_mod.DECODES[0]
    with pytest.raises(DataError) as e:
        prepare_mod.prepare(data, [64, 96, 128], val_split=0.5, cache_dir=tmp_path / "c")
    msg = str(e.value)
    assert str(data) in msg and "6 images decoded at 64, 96, 128 px need" in msg
    assert str(tmp_path / "c") in msg and "nothing was decoded" in msg
    assert "Give --image-size 64" in msg and "--cache-dir" in msg
    assert data_mod.DECODES[0] == before
    monkeypatch.setattr(prepare_mod, "free_bytes", lambda root: 10 * 2**30)
    prepare_mod.prepare(data, [64, 96, 128], val_split=0.5, cache_dir=tmp_path / "c")
    assert data_mod.DECODES[0] == before + 6


def test_data_held_in_memory_is_refused_when_twice_it_cannot_fit():
    check_memory(100, None, "DATA")  # unknown memory: no refusal
    check_memory(100, 1000, "DATA")
    with pytest.raises(DataError, match="held 2 times in memory.*--cache-dir"):
        check_memory(500, 1000, "DATA")
