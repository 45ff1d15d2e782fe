"""Image sizes from the data's own resolution: a searched size past the images' short side
only upsamples them, so it is dropped; a size the user fixed stays."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hyperfcn.data.sizing import Sizing, fit_sizes, native_size
from hyperfcn.options import TuneOptions
from hyperfcn.space_setup import fit_sizes_to_data, resolve_space, sizes


def _photos(root: Path, w: int, h: int, n: int = 3) -> Path:
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(np.zeros((h, w, 3), np.uint8)).save(root / c / f"{i}.png")
    return root


@pytest.mark.parametrize("native, want", [
    (128, [64, 96, 128]),
    (120, [64, 96, 128]),  # 128 upsamples 120 by 7%: within the slack
    (100, [64, 96]),
    (32, [32]),  # every size would upsample: the data's own
    (37, [32]),  # ... rounded down to a multiple of 8
    (5, [8]),  # ... never below the least size a model takes
    (0, [64, 96, 128]),  # nothing readable: the decode reports the files, sizes stay
])
def test_sizes_past_the_datas_short_side_are_dropped(native, want):
    assert fit_sizes([96, 64, 128], native) == want


def test_the_native_size_is_the_median_short_side_of_a_seeded_sample(tmp_path):
    files = []
    for i, (w, h) in enumerate([(40, 30), (30, 50), (100, 80), (64, 64), (20, 10)]):
        files.append(tmp_path / f"{i}.png")
        Image.fromarray(np.zeros((h, w, 3), np.uint8)).save(files[-1])
    (tmp_path / "bad.png").write_bytes(b"not a png")
    assert native_size([*files, tmp_path / "bad.png"]) == (30, 5)
    assert native_size(files, n=3) == native_size(files, n=3)  # seeded
    assert native_size([]) == (0, 0)


def test_small_images_search_their_own_size_and_the_recipe_follows(tmp_path):
    data = _photos(tmp_path / "d", 32, 32)
    space, found = fit_sizes_to_data(resolve_space(TuneOptions(data=data)), data, 0)
    assert sizes(space) == [32] and all(pt["image_size"] == 32 for pt in space.points)
    assert found == Sizing(native=32, probed=6, asked=(64, 96, 128), kept=(32,))
    assert "64, 96, 128 px would only upsample it: searching 32 px" in found.describe()


def test_photos_keep_the_sizes_below_them_and_the_recipe_its_own(tmp_path):
    data = _photos(tmp_path / "d", 133, 100)
    space, found = fit_sizes_to_data(resolve_space(TuneOptions(data=data)), data, 0)
    assert sizes(space) == [64, 96] and found.changed
    assert [pt["image_size"] for pt in space.points] == [64]
    big = _photos(tmp_path / "big", 200, 150)
    space, found = fit_sizes_to_data(resolve_space(TuneOptions(data=big)), big, 0)
    assert sizes(space) == [64, 96, 128] and not found.changed


def test_a_size_the_user_fixed_is_kept_even_past_the_data(tmp_path):
    data = _photos(tmp_path / "d", 32, 32)
    space, found = fit_sizes_to_data(resolve_space(TuneOptions(data=data, image_size=64)),
                                     data, 0)
    assert sizes(space) == [64] and found is None
