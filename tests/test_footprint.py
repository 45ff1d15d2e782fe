"""The memory a run's decoded images need, estimated from headers before any decode, and the
refusal of a run that cannot fit."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hyperfcn import data as data_mod
from hyperfcn import prepare as prepare_mod
from hyperfcn.errors import DataError
from hyperfcn.footprint import PADDING, PEAK_COPIES, available_bytes, check_fits, estimate


def _photos(root: Path, w: int, h: int, n: int = 3) -> Path:
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(np.full((h, w, 3), 40 * i, np.uint8)).save(root / c / f"{i}.png")
    return root


def test_a_4_by_3_photo_takes_119_kb_at_the_default_sizes(tmp_path):
    """Short side = the size, long side 4/3 of it, 3 bytes a pixel, at 64, 96 and 128 px."""
    data = _photos(tmp_path / "d", 400, 300)
    files = data_mod.scan_folder(data).files
    fp = estimate(files, [64, 96, 128])
    assert fp.per_image == {64: 3 * 64 * 85, 96: 3 * 96 * 128, 128: 3 * 128 * 171}
    assert sum(fp.per_image.values()) == pytest.approx(119_000, rel=0.01)
    assert fp.peak_bytes() == pytest.approx(PEAK_COPIES * PADDING * 6 * 119_000, rel=0.01)
    assert fp.peak_bytes([64]) < fp.peak_bytes() / 5


def test_available_memory_is_the_machines_or_less_where_a_container_limits_it():
    meminfo = "MemTotal: 100 kB\nMemAvailable:   2048 kB\n"
    no_limit = ("max\n", "123\n")  # cgroup v2 without a limit
    assert available_bytes(meminfo, no_limit) == 2048 * 1024
    assert available_bytes(meminfo, ("9223372036854771712\n", "100\n")) == 2048 * 1024
    assert available_bytes(meminfo, ("1000000\n", "400000\n")) == 600_000  # the container's
    assert available_bytes(meminfo, ("", "")) == 2048 * 1024  # no cgroup files
    assert available_bytes("nothing", no_limit) is None


def test_a_run_that_cannot_fit_is_refused_before_any_decode_with_the_numbers(tmp_path,
                                                                           monkeypatch):
    data = _photos(tmp_path / "d", 400, 300)
    fp = estimate(data_mod.scan_folder(data).files, [64, 96, 128])
    # room for one size, not three: the way out names that size
    monkeypatch.setattr(prepare_mod, "available_bytes", lambda: int(fp.peak_bytes([64])
                                                                    * 1.5))
    before = data_mod.DECODES[0]
    with pytest.raises(DataError) as e:
        prepare_mod.prepare(data, [64, 96, 128], val_split=0.5)
    msg = str(e.value)
    assert str(data) in msg and "6 images decoded at 64, 96, 128 px need" in msg
    assert "GiB" in msg and "nothing was decoded" in msg
    assert "Give --image-size 64" in msg
    assert data_mod.DECODES[0] == before
    monkeypatch.setattr(prepare_mod, "available_bytes", lambda: 10 * 2**30)
    prepare_mod.prepare(data, [64, 96, 128], val_split=0.5)  # fits: decoded
    assert data_mod.DECODES[0] == before + 6


def test_no_estimate_means_no_refusal():
    check_fits(None, 1, "DATA")  # no readable header: the decode reports the files
    check_fits(estimate([Path("/no/such.png")], [64]), 1, "DATA")
