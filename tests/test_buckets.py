import numpy as np
import pytest

from hyperfcn.data.buckets import batch_plan, batches, fit_to, pack, plan_buckets, steps
from hyperfcn.data.folder import target_shape


def test_plan_respects_max_buckets_and_covers_every_shape():
    rng = np.random.default_rng(0)
    shapes = [target_shape(int(w), int(h), 64) for w, h in
              zip(rng.integers(100, 500, 500), rng.integers(100, 500, 500))]
    for k in (1, 2, 3, 4):
        plan = plan_buckets(shapes, k)
        assert 1 <= len(plan.shapes) <= k
        for h, w in shapes:
            bh, bw = plan.shapes[plan.assign(h, w)]
            assert bh >= h and bw >= w


def test_more_buckets_less_padding():
    shapes = [(64, 64)] * 10 + [(64, 85)] * 50 + [(64, 96)] * 30 + [(85, 64)] * 10
    imgs = [np.zeros((h, w, 3), np.uint8) for h, w in shapes]
    waste = [pack(imgs, None, plan_buckets(shapes, k)).padded_fraction for k in (1, 2, 4)]
    assert waste[0] > waste[1] > waste[2] >= 0
    assert waste[2] == pytest.approx(0.0)  # 4 distinct shapes, 4 buckets


def test_fit_to_pads_by_mirroring_and_crops_centrally():
    img = np.arange(2 * 3 * 1).reshape(2, 3, 1).astype(np.uint8).repeat(3, axis=2)
    out = fit_to(img, 4, 3)
    assert out.shape == (4, 3, 3)
    np.testing.assert_array_equal(out[1:3], img)  # original in the middle
    np.testing.assert_array_equal(out[0], img[0])  # mirrored row
    crop = fit_to(np.zeros((10, 20, 3), np.uint8), 10, 10)
    assert crop.shape == (10, 10, 3)


def test_batches_have_one_size_and_cover_every_item():
    shapes = [(8, 8)] * 13 + [(8, 12)] * 7
    imgs = [np.full((h, w, 3), i, np.uint8) for i, (h, w) in enumerate(shapes)]
    packed = pack(imgs, list(range(20)), plan_buckets(shapes, 4))
    bs = 5
    seen = []
    got_shapes = set()
    for x, y, n_real in batches(packed, bs, None):
        assert x.shape[0] == bs and len(y) == bs
        got_shapes.add(x.shape)
        seen += list(y[:n_real])
    assert sorted(seen) == list(range(20))  # evaluation: each item exactly once
    assert len(got_shapes) == 2
    assert len(batch_plan(packed, bs, None)) == steps(packed, bs) == 3 + 2
    rng = np.random.default_rng(0)
    train = [y for _, y, _ in batches(packed, bs, rng)]
    assert all(len(y) == bs for y in train)
    assert set(np.concatenate(train)) == set(range(20))
