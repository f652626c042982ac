import pytest

from keras_vqvae import precision


def test_auto_picks_bfloat16_only_where_the_hardware_has_units(monkeypatch):
    monkeypatch.setattr(precision, "_has_gpu", lambda: False)
    monkeypatch.setattr(
        precision, "_cpu_flags", lambda: {"avx2", "avx512_bf16"}
    )
    policy, reason = precision.training_policy("auto")
    assert policy == "mixed_bfloat16" and "AVX512-BF16" in reason
    monkeypatch.setattr(precision, "_cpu_flags", lambda: {"avx2"})
    assert precision.training_policy("auto")[0] == "float32"
    assert precision.training_policy("float32") == ("float32", "as asked")
    with pytest.raises(ValueError, match="precision"):
        precision.training_policy("fp8")


def test_auto_keeps_float32_for_jax_on_cpu(monkeypatch):
    monkeypatch.setattr(precision, "_has_gpu", lambda: False)
    monkeypatch.setattr(precision, "_cpu_flags", lambda: {"avx512_bf16"})
    monkeypatch.setattr(precision.keras.backend, "backend", lambda: "jax")
    policy, reason = precision.training_policy("auto")
    assert policy == "float32" and "JAX" in reason
    monkeypatch.setattr(precision, "_has_gpu", lambda: True)
    assert precision.training_policy("auto")[0] == "mixed_bfloat16"
    monkeypatch.setattr(precision.keras.backend, "backend", lambda: "torch")
    monkeypatch.setattr(precision, "_has_gpu", lambda: False)
    assert precision.training_policy("auto")[0] == "mixed_bfloat16"
