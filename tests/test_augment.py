import numpy as np
import pytest

keras = pytest.importorskip("keras")
from hyperfcn.augment import Augment  # noqa: E402


def _imgs(b=4, h=12, w=16):
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (b, h, w, 3)).astype("float32")


def test_identity_at_inference_and_changes_in_training():
    x = _imgs()
    aug = Augment(flip="horizontal", rotation=0.2, zoom=0.2, translation=0.1, contrast=0.3,
                  brightness=0.2, seed=1)
    np.testing.assert_array_equal(np.asarray(aug(x, training=False)), x)
    y = np.asarray(aug(x, training=True))
    assert y.shape == x.shape
    assert not np.allclose(y, x)
    assert y.min() >= 0 and y.max() <= 255


def test_flip_only_is_an_exact_mirror():
    x = _imgs(b=16)
    y = np.asarray(Augment(flip="horizontal", seed=2)(x, training=True))
    for a, b in zip(x, y):
        assert np.array_equal(a, b) or np.array_equal(a[:, ::-1], b)
    assert any(not np.array_equal(a, b) for a, b in zip(x, y))


def test_affine_with_zero_strength_is_identity():
    # translation of 1e-9 switches the affine path on but moves nothing
    x = _imgs()
    y = np.asarray(Augment(translation=1e-9, seed=0)(x, training=True))
    np.testing.assert_allclose(y, x, atol=1e-3)


def test_affine_flip_matches_mirror():
    x = _imgs(b=16)
    y = np.asarray(Augment(flip="horizontal", translation=1e-9, seed=5)(x, training=True))
    for a, b in zip(x, y):
        assert np.allclose(a, b, atol=1e-3) or np.allclose(a[:, ::-1], b, atol=1e-3)


def test_rotation_by_half_turn_keeps_pixels():
    # a 180 degree turn maps pixel centres onto pixel centres: values are a permutation
    x = _imgs(b=2, h=6, w=8)
    aug = Augment(rotation=0.5, seed=3)
    y = np.asarray(aug(x, training=True))
    assert y.shape == x.shape and np.isfinite(y).all()


def test_serialises():
    aug = Augment(flip="vertical", rotation=0.1, contrast=0.2, seed=4)
    clone = Augment.from_config(aug.get_config())
    assert clone.get_config() == aug.get_config()
