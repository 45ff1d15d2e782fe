"""init: airbench: the first conv whitens the data's patches, later 3x3 convs start as
identities, and a trial with it trains and saves a plain Keras model."""

import numpy as np

from hyperfcn.weights_init import dirac, sample_patches, whitening_kernel


def _images(seed=0):
    rng = np.random.default_rng(seed)
    # correlated channels and neighbours: far from white
    base = rng.normal(120, 40, (20, 18, 22, 1))
    return [np.clip(base + rng.normal(0, 5, (20, 18, 22, 3)), 0, 255).astype(np.uint8),
            np.clip(rng.normal(60, 10, (6, 16, 16, 3)), 0, 255).astype(np.uint8)]


def test_patches_come_from_every_batch_in_keras_kernel_order():
    imgs = _images()
    p = sample_patches(imgs, 3, n=500)
    assert p.shape == (500, 27) and p.min() >= 0 and p.max() <= 1
    one = [np.arange(27, dtype=np.uint8).reshape(1, 3, 3, 3)]
    assert np.allclose(sample_patches(one, 3, n=2)[0] * 255, np.arange(27))


def test_every_patch_is_a_window_of_an_image_and_each_array_gives_its_share():
    a = np.arange(90, dtype=np.uint8).reshape(1, 5, 6, 3)
    b = (np.arange(4 * 4 * 4 * 3) % 50 + 150).astype(np.uint8).reshape(4, 4, 4, 3)
    windows = {tuple(x[i, r:r + 3, c:c + 3].reshape(-1)) for x in (a, b)
               for i in range(len(x)) for r in range(x.shape[1] - 2)
               for c in range(x.shape[2] - 2)}
    p = np.rint(sample_patches([a, b], 3, n=1000) * 255).astype(int)
    assert all(tuple(row) in windows for row in p)
    from_a = (p.max(1) < 100).sum()  # a's values are below 90, b's from 150
    assert 140 < from_a < 260  # 1 image in 5: ~200


def test_the_whitening_filters_give_unit_variance_uncorrelated_outputs():
    p = sample_patches(_images(), 3, n=5000)
    w = whitening_kernel(p, 3, 16)
    assert w.shape == (3, 3, 3, 16)
    out = (p - p.mean(0)) @ w.reshape(27, 16)
    cov = np.cov(out[:, :8], rowvar=False)
    assert np.allclose(np.diag(cov), 1.0, atol=0.05)  # EPS shrinks them a little
    assert np.abs(cov - np.diag(np.diag(cov))).max() < 0.05
    assert np.allclose(out[:, 8:], -out[:, :8])  # each direction in both signs
    wide = whitening_kernel(p, 3, 64)  # more filters than 2 x 27 directions
    assert np.count_nonzero(np.any(wide != 0, axis=(0, 1, 2))) == 54


def test_dirac_passes_the_first_channels_through_and_keeps_the_rest():
    k = np.random.default_rng(0).normal(size=(3, 3, 4, 6)).astype(np.float32)
    d = dirac(k)
    x = np.random.default_rng(1).normal(size=(3, 3, 4))
    out = np.einsum("hwc,hwco->o", x, d)
    assert np.allclose(out[:4], x[1, 1, :4]) and np.allclose(d[..., 4:], k[..., 4:])


def test_a_trial_with_airbench_init_starts_from_it_and_trains(tiny_data, monkeypatch):
    from hyperfcn import weights_init
    from hyperfcn.trial import LocalReporter, TrialSettings, run_trial

    seen = []
    real = weights_init.airbench_init

    def spy(core, images, seed=0):
        real(core, images, seed)
        seen.append(np.asarray(core.get_layer("block2_conv1").kernel))

    monkeypatch.setattr(weights_init, "airbench_init", spy)

    cfg = {"image_size": 16, "batch_size": 4, "blocks": 2, "filters": 8, "dense_units": 16,
           "learning_rate": 0.01, "init": "airbench"}
    rep = LocalReporter()
    run_trial(cfg, tiny_data, TrialSettings(max_epochs=1), rep)
    assert len(rep.history) == 1 and np.isfinite(rep.history[0]["val_loss"])
    assert len(seen) == 1 and seen[0][1, 1, 0, 0] == 1.0 and seen[0][0, 0, 0, 0] == 0.0


def test_airbench_init_works_where_the_backend_hands_read_only_arrays(monkeypatch):
    """JAX's arrays convert to read-only NumPy arrays: the kernels are copied before they
    are changed (the JAX end-to-end test runs it for real)."""
    import keras

    from hyperfcn.config import ModelConfig
    from hyperfcn.model import build_core
    from hyperfcn.weights_init import FIRST_CONV, airbench_init

    real, real_asarray = keras.ops.convert_to_numpy, np.asarray

    def read_only(convert):
        def to_numpy(x, *args, **kwargs):
            out = real_asarray(convert(x), *args, **kwargs)
            out = out.view()
            out.flags.writeable = False
            return out
        return to_numpy

    core = build_core(ModelConfig.from_dict({"image_size": 16, "blocks": 2, "filters": 8}), 2)
    images = [np.random.default_rng(0).integers(0, 256, (4, 16, 16, 3), dtype=np.uint8)]
    with monkeypatch.context() as m:  # both ways a kernel can be read, as JAX gives them
        m.setattr(keras.ops, "convert_to_numpy", read_only(real))
        m.setattr(np, "asarray", read_only(lambda x: x))
        airbench_init(core, images)
    first = np.asarray(real(core.get_layer(FIRST_CONV).kernel))
    assert np.allclose(first[..., :4], -first[..., 4:])  # whitening filters in +/- pairs
