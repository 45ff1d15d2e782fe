"""The precision trials train in (chosen per machine) and the float32 model that ships."""

from __future__ import annotations

import pytest

from hyperfcn.errors import UserError
from hyperfcn.precision import PRECISION_ENV, as_float32, chosen, cpu_flags, describe

CPUINFO = "processor\t: 0\nmodel name\t: X\nflags\t\t: fpu sse avx2 {extra}\n\nprocessor\t: 1\n"
NATIVE = frozenset({"avx2", "avx512_bf16"})
AMX = frozenset({"avx2", "amx_bf16", "amx_tile"})
NONE = frozenset({"avx2", "avx512f"})


def test_the_cpus_flags_are_read_from_cpuinfo():
    assert cpu_flags(CPUINFO.format(extra="avx512_bf16")) == {"fpu", "sse", "avx2",
                                                              "avx512_bf16"}
    assert cpu_flags("no flags here") == frozenset()


@pytest.mark.parametrize("backend,gpu,flags,want", [
    ("tensorflow", False, NATIVE, "bfloat16"),  # native bfloat16: faster (bf16_probe)
    ("tensorflow", False, AMX, "bfloat16"),
    ("tensorflow", False, NONE, "float32"),  # converted, not native: slower
    ("tensorflow", True, NATIVE, "float32"),  # a GPU: unmeasured
    ("jax", False, NATIVE, "float32"),  # JAX on a CPU: unmeasured
])
def test_bfloat16_only_where_the_cpu_computes_it_natively(backend, gpu, flags, want):
    assert chosen(env="auto", backend=backend, gpu=gpu, flags=flags) == want
    assert chosen(env="", backend=backend, gpu=gpu, flags=flags) == want


def test_the_environment_overrides_the_choice_and_a_bad_value_names_the_variable(
        monkeypatch):
    assert chosen(env="float32", backend="tensorflow", flags=NATIVE) == "float32"
    assert chosen(env="bfloat16", backend="jax", flags=NONE) == "bfloat16"
    with pytest.raises(UserError, match=f"{PRECISION_ENV}='fp16': must be one of auto, "
                                        "float32, bfloat16"):
        chosen(env="fp16", backend="tensorflow")
    monkeypatch.setenv(PRECISION_ENV, "float32")
    assert describe("tensorflow", False) == f"float32 ({PRECISION_ENV})"


def test_a_model_built_in_bfloat16_is_saved_in_float32_with_the_same_weights(tmp_path):
    import keras
    import numpy as np

    from hyperfcn.config import ModelConfig
    from hyperfcn.model import build_core

    cfg = ModelConfig.from_dict({"image_size": 16, "blocks": 2, "filters": 8, "head": "conv",
                                 "conv_head_filters": 16})
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        mixed = build_core(cfg, 3)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert "mixed_bfloat16" in {layer.dtype_policy.name for layer in mixed.layers}
    plain = as_float32(mixed)
    assert {layer.dtype_policy.name for layer in plain.layers} == {"float32"}
    assert plain.name == mixed.name == "hyperfcn"
    for a, b in zip(plain.get_weights(), mixed.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    x = np.random.default_rng(0).uniform(0, 255, (2, 16, 16, 3)).astype("float32")
    # bfloat16 keeps 8 bits of mantissa: the two agree to its rounding
    np.testing.assert_allclose(plain.predict(x, verbose=0), mixed.predict(x, verbose=0),
                               atol=0.02)
    plain.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert {layer.dtype_policy.name for layer in loaded.layers} == {"float32"}
    assert as_float32(plain) is plain  # already float32: nothing to do


def test_a_run_trained_in_bfloat16_ships_a_float32_model_scored_as_saved(tiny_data,
                                                                        monkeypatch):
    """The trial trains in mixed bfloat16; the final step saves float32 and the score it
    reports is the saved file's."""
    import io
    import zipfile

    from hyperfcn.final import make_final, plan_final
    from hyperfcn.trial import TrialSettings

    monkeypatch.setenv(PRECISION_ENV, "bfloat16")
    seen = []

    def on_epoch(metrics):
        import keras

        seen.append(keras.mixed_precision.global_policy().name)

    cfg = {"image_size": 16, "batch_size": 4, "blocks": 2, "filters": 8, "dense_units": 16,
           "learning_rate": 0.01}
    try:
        final = make_final(cfg, tiny_data, TrialSettings(max_epochs=1), plan_final(None, 1),
                           on_epoch=on_epoch)
    finally:
        import keras

        keras.mixed_precision.set_global_policy("float32")
    assert seen == ["mixed_bfloat16"]
    config = zipfile.ZipFile(io.BytesIO(final.model)).read("config.json").decode()
    assert "mixed_bfloat16" not in config
    assert 0.0 <= final.checked["val_accuracy"] <= 1.0
