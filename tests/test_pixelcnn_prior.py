"""Tests for the gated PixelCNN prior (keras_vqvae.models.pixelcnn_prior)."""

import keras
import numpy as np
import pytest
from keras import ops

from keras_vqvae.layers.conv2d.gated_pixelcnn_block import GatedPixelCNNBlock
from keras_vqvae.models import VQVAE
from keras_vqvae.models.pixelcnn_prior import PixelCNNPrior
from keras_vqvae.workflows import measure_bits_per_dim

H = W = 6
K = 8


def _small(**kwargs):
    cfg = dict(
        num_embeddings=K, latent_shape=(H, W), hidden_dim=16, num_layers=3
    )
    cfg.update(kwargs)
    return PixelCNNPrior(**cfg)


def _np(x):
    return np.asarray(ops.convert_to_numpy(x))


def _dependency_matrix(model, seed=0):
    """dep[q, p] is True iff the logits at raster position q change when the
    code at raster position p is changed (one batched forward pass)."""
    length = H * W
    rng = np.random.default_rng(seed)
    base = rng.integers(0, K, size=(1, H, W))
    batch = np.repeat(base, length + 1, axis=0)
    for p in range(length):
        i, j = divmod(p, W)
        batch[p + 1, i, j] = (
            batch[p + 1, i, j] + 1 + rng.integers(0, K - 1)
        ) % K
    out = _np(model(batch.astype("int32")))
    diff = np.abs(out[1:] - out[:1]).max(axis=-1).reshape(length, length)
    return diff.T > 1e-6  # diff[p, q] -> dep[q, p]


def test_output_shape_and_dtype():
    model = _small()
    codes = (
        np.random.default_rng(0).integers(0, K, size=(2, H, W)).astype("int32")
    )
    logits = model(codes)
    assert tuple(logits.shape) == (2, H, W, K)
    assert "float32" in str(logits.dtype)
    # Built in __init__: all weights exist before the first call.
    assert len(_small().weights) == len(model.weights) > 0


def test_causal_and_no_blind_spot_k3():
    model = _small(kernel_size=3)
    dep = _dependency_matrix(model)
    for q in range(H * W):
        i, j = divmod(q, W)
        # Never depends on the current or any later raster position.
        assert not dep[q, q:].any(), f"position {(i, j)} sees the future"
        if j > 0:  # previous pixel
            assert dep[q, q - 1], f"{(i, j)} does not see {(i, j - 1)}"
        if i > 0:
            assert dep[q, q - W], f"{(i, j)} does not see {(i - 1, j)}"
            if j + 1 < W:  # above-right: the classic PixelCNN blind spot
                assert dep[q, q - W + 1], (
                    f"{(i, j)} does not see {(i - 1, j + 1)}"
                )
            if j > 0:
                assert dep[q, q - W - 1], (
                    f"{(i, j)} does not see {(i - 1, j - 1)}"
                )
    # Top-left position sees nothing at all.
    assert not dep[0].any()


def test_receptive_field_is_exactly_the_causal_past():
    # k=5, 3 layers covers the whole 6x6 past: the dependency pattern must be
    # exactly the strictly lower triangle in raster order (no blind spot, no
    # leak).
    model = _small(kernel_size=5)
    dep = _dependency_matrix(model, seed=1)
    expected = np.tril(np.ones((H * W, H * W), dtype=bool), k=-1)
    np.testing.assert_array_equal(dep, expected)


def test_class_conditional():
    model = _small(num_classes=3)
    codes = (
        np.random.default_rng(0).integers(0, K, size=(2, H, W)).astype("int32")
    )
    a = _np(model((codes, np.array([0, 0]))))
    b = _np(model((codes, np.array([2, 2]))))
    assert a.shape == (2, H, W, K)
    assert np.abs(a - b).max() > 1e-5
    # Dict input is equivalent to tuple input.
    c = _np(model({"codes": codes, "labels": np.array([2, 2])}))
    np.testing.assert_allclose(b, c, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError):
        model(codes)
    with pytest.raises(ValueError):
        _small()((codes, np.array([0, 0])))


def test_get_config_round_trip():
    model = _small(num_classes=4, kernel_size=3, head_dim=24, name="prior")
    config = model.get_config()
    clone = PixelCNNPrior.from_config(config)
    assert clone.get_config() == config
    assert clone.latent_shape == (H, W)
    assert [tuple(w.shape) for w in clone.weights] == [
        tuple(w.shape) for w in model.weights
    ]
    clone.set_weights(model.get_weights())
    codes = (
        np.random.default_rng(0).integers(0, K, size=(2, H, W)).astype("int32")
    )
    labels = np.array([1, 3])
    np.testing.assert_allclose(
        _np(model((codes, labels))),
        _np(clone((codes, labels))),
        rtol=1e-5,
        atol=1e-6,
    )
    # Registered: generic (de)serialization finds the class by name.
    revived = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(model)
    )
    assert isinstance(revived, PixelCNNPrior)
    assert revived.num_classes == 4

    block = GatedPixelCNNBlock(16, kernel_size=3, mask_type="A", num_classes=2)
    block_clone = GatedPixelCNNBlock.from_config(block.get_config())
    assert block_clone.get_config() == block.get_config()
    assert block_clone.residual is False
    with pytest.raises(ValueError):
        GatedPixelCNNBlock(16, mask_type="A", residual=True)


def test_weights_h5_round_trip(tmp_path):
    model = _small(num_classes=2)
    path = str(tmp_path / "prior.weights.h5")
    model.save_weights(path)
    fresh = _small(num_classes=2)  # load right after construction
    fresh.load_weights(path)
    codes = (
        np.random.default_rng(0).integers(0, K, size=(3, H, W)).astype("int32")
    )
    labels = np.array([0, 1, 1])
    np.testing.assert_array_equal(
        _np(model((codes, labels))), _np(fresh((codes, labels)))
    )


def test_keras_file_round_trip(tmp_path):
    model = _small()
    codes = (
        np.random.default_rng(0).integers(0, K, size=(8, H, W)).astype("int32")
    )
    model.compile()
    model.fit(codes, codes, batch_size=4, verbose=0)
    path = str(tmp_path / "prior.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, PixelCNNPrior)
    np.testing.assert_allclose(_np(model(codes)), _np(loaded(codes)), atol=1e-6)
    # Compiled with its optimizer state, so training resumes.
    assert int(loaded.optimizer.iterations) == 2
    loaded.fit(codes, codes, batch_size=4, verbose=0)


def _row_pattern_codes(n, seed=0):
    """Each code map repeats one of 4 fixed rows on every row."""
    rng = np.random.default_rng(seed)
    patterns = np.array(
        [
            [0, 1, 2, 3, 4, 5],
            [1, 1, 7, 7, 2, 2],
            [2, 6, 2, 6, 2, 6],
            [3, 0, 3, 5, 5, 0],
        ]
    )
    rows = patterns[rng.integers(0, len(patterns), size=n)]
    return np.repeat(rows[:, None, :], H, axis=1).astype("int32")


def test_fit_lowers_loss():
    keras.utils.set_random_seed(0)
    model = _small()
    model.compile(optimizer=keras.optimizers.Adam(1e-2))  # default loss
    codes = _row_pattern_codes(30 * 16)
    initial = model.evaluate(codes[:64], codes[:64], verbose=0)
    history = model.fit(codes, codes, batch_size=16, epochs=1, verbose=0)
    final = model.evaluate(codes[:64], codes[:64], verbose=0)
    assert np.isfinite(history.history["loss"][-1])
    assert initial > 1.9  # ~ln(8) at init
    assert final < 0.5 * initial, (initial, final)


def test_sample_shape_range_and_determinism():
    model = _small()
    a = model.sample(5, seed=123)
    b = model.sample(5, seed=123)
    c = model.sample(5, seed=7)
    assert a.shape == (5, H, W) and a.dtype == np.int32
    assert a.min() >= 0 and a.max() < K
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    # Chunked sampling (padded last chunk) gives the same draws.
    np.testing.assert_array_equal(a, model.sample(5, seed=123, batch_size=2))
    with pytest.raises(ValueError):
        model.sample(2, temperature=0.0)


def test_sampler_agrees_with_full_forward():
    """The incremental sampler (one row of the vertical stack, one position
    of the horizontal stack per step) must draw exactly what inverse-CDF
    sampling of the full model's logits gives, for a class-conditional model
    at temperature 0.5."""
    model = _small(num_classes=3)
    n, temperature, seed = 4, 0.5, 11
    labels = np.array([0, 1, 2, 1])
    samples = model.sample(n, labels=labels, temperature=temperature, seed=seed)
    logits = _np(model((samples, labels))).reshape(n, H * W, K) / temperature
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    cdf = np.cumsum(probs / probs.sum(-1, keepdims=True), axis=-1)
    u = model._draw_uniforms(n, seed).T  # (n, H*W)
    expected = np.minimum((cdf < u[..., None] * cdf[..., -1:]).sum(-1), K - 1)
    np.testing.assert_array_equal(samples.reshape(n, -1), expected)
    # A scalar label is broadcast.
    assert model.sample(2, labels=1, seed=0).shape == (2, H, W)


def _sharpened(model, scale=4.0):
    """`model` with its logits scaled up: peaked conditionals, so a wrong
    context (not just float rounding) changes the draws."""
    kernel = model.head_logits.kernel
    kernel.assign(ops.convert_to_numpy(kernel) * scale)
    return model


@pytest.mark.parametrize(
    "kernel_size, num_layers, num_classes, latent_shape",
    [
        (3, 4, None, (5, 7)),
        (5, 3, None, (6, 6)),
        (3, 2, 3, (4, 9)),
        (5, 5, 4, (7, 5)),
        (1, 2, None, (3, 4)),
    ],
)
def test_incremental_sampler_matches_reference(
    kernel_size, num_layers, num_classes, latent_shape
):
    """Same seed, same samples as the previous (`method="reference"`)
    sampler: both draw with the same uniforms from logits that agree to
    float rounding."""
    keras.utils.set_random_seed(kernel_size + num_layers)
    model = _sharpened(
        PixelCNNPrior(
            K,
            latent_shape,
            hidden_dim=8,
            num_layers=num_layers,
            kernel_size=kernel_size,
            num_classes=num_classes,
        )
    )
    n = 6
    labels = None if num_classes is None else np.arange(n) % num_classes
    for temperature, seed in ((1.0, 0), (0.3, 5)):
        kwargs = dict(labels=labels, temperature=temperature, seed=seed)
        fast = model.sample(n, **kwargs)
        np.testing.assert_array_equal(
            fast, model.sample(n, method="reference", **kwargs)
        )
        # Chunked (padded last chunk): the same draws again.
        np.testing.assert_array_equal(
            fast, model.sample(n, batch_size=4, **kwargs)
        )
    assert len(np.unique(fast)) > 1
    with pytest.raises(ValueError, match="method"):
        model.sample(1, labels=None if labels is None else 0, method="exact")


@pytest.mark.parametrize("kernel_size", [3, 5])
@pytest.mark.parametrize("mask_type", ["A", "B"])
def test_block_steps_reproduce_the_full_block(kernel_size, mask_type):
    """`vertical_row` / `horizontal_step` on windows of the (shifted,
    padded) inputs give every row / position of `vertical` / `horizontal`,
    with class labels and a condition map."""
    b, h, w, c = 3, 4, 5, 6
    p = kernel_size // 2
    block = GatedPixelCNNBlock(
        c,
        kernel_size=kernel_size,
        mask_type=mask_type,
        num_classes=2,
        condition_dim=3,
    )
    block.build((None, h, w, c))
    rng = np.random.default_rng(0)
    v = rng.normal(size=(b, h, w, c)).astype("float32")
    hx = rng.normal(size=(b, h, w, c)).astype("float32")
    labels = np.array([0, 1, 1])
    condition = rng.normal(size=(b, h, w, 3)).astype("float32")
    v_feat, v_out = block.vertical(ops.convert_to_tensor(v), labels, condition)
    h_out = _np(
        block.horizontal(ops.convert_to_tensor(hx), v_feat, labels, condition)
    )
    unconditioned = block.vertical(
        ops.convert_to_tensor(v), labels, condition * 0
    )
    assert np.abs(_np(unconditioned[1]) - _np(v_out)).max() > 1e-3
    v_out = _np(v_out)
    shift = 1 if mask_type == "A" else 0
    # Zeros above / left of the map (plus the type-A shift), p columns right.
    v_pad = np.pad(v, [(0, 0), (p + shift, 0), (p, p), (0, 0)])
    h_pad = np.pad(hx, [(0, 0), (0, 0), (p + shift, 0), (0, 0)])
    weights = block.step_weights(labels, condition)
    for i in range(h):
        window = ops.convert_to_tensor(v_pad[:, i : i + p + 1])
        v_h, v_row = block.vertical_row(window, weights, i)
        np.testing.assert_allclose(_np(v_row)[:, 0], v_out[:, i], atol=1e-5)
        for j in range(w):
            window = ops.convert_to_tensor(
                h_pad[:, i, j : j + p + 1].reshape(b, -1)
            )
            out = block.horizontal_step(window, v_h[:, j], weights)
            np.testing.assert_allclose(_np(out), h_out[:, i, j], atol=1e-5)


def test_incremental_sampler_under_mixed_precision():
    keras.config.set_dtype_policy("mixed_bfloat16")
    keras.utils.set_random_seed(2)
    model = _small(num_classes=2)
    labels = np.arange(6) % 2
    fast = model.sample(6, labels=labels, seed=4)
    assert fast.dtype == np.int32 and fast.min() >= 0 and fast.max() < K
    # bfloat16 rounding differs between the two, so only nearly all agree.
    reference = model.sample(6, labels=labels, seed=4, method="reference")
    assert (fast == reference).mean() > 0.9


def test_degenerate_distribution_samples_mostly_that_code():
    keras.utils.set_random_seed(1)
    model = _small()
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    codes = np.full((30 * 16, H, W), 3, dtype="int32")
    model.fit(codes, codes, batch_size=16, epochs=1, verbose=0)
    samples = model.sample(8, seed=0)
    assert (samples == 3).mean() > 0.9


def test_log_prob_matches_cross_entropy():
    model = _small(num_classes=2)
    rng = np.random.default_rng(0)
    codes = rng.integers(0, K, size=(5, H, W)).astype("int32")
    labels = np.array([0, 1, 0, 1, 1])
    lp = model.log_prob(codes, labels, batch_size=2)
    assert lp.shape == (5,) and lp.dtype == np.float32
    ce = keras.losses.SparseCategoricalCrossentropy(
        from_logits=True, reduction=None
    )
    per_pos = _np(ce(codes, model((codes, labels))))
    np.testing.assert_allclose(
        lp, -per_pos.sum(axis=(1, 2)), rtol=1e-5, atol=1e-4
    )
    bpd = model.bits_per_code(codes, labels)
    np.testing.assert_allclose(bpd, -lp.mean() / (H * W * np.log(2)), rtol=1e-5)


def test_preset_round_trip_beside_the_vqvae(tmp_path):
    model = VQVAE(
        image_shape=(24, 24, 1),
        num_embeddings=8,
        embedding_dim=4,
        hidden_dim=8,
        residual_hidden_dim=4,
        num_residual_layers=1,
    )
    prior = PixelCNNPrior(
        8, model.latent_shape, hidden_dim=16, num_layers=2, num_classes=2
    )
    model.save_to_preset(tmp_path)
    prior.save_to_preset(tmp_path)
    codes = np.random.default_rng(3).integers(0, 8, (2,) + model.latent_shape)
    labels = np.array([0, 1])
    loaded = PixelCNNPrior.from_preset(tmp_path)
    np.testing.assert_array_equal(
        loaded.log_prob(codes, labels), prior.log_prob(codes, labels)
    )
    assert VQVAE.from_preset(tmp_path).count_params() == model.count_params()

    images = np.random.default_rng(4).integers(0, 256, (3, 24, 24, 1), "uint8")
    train = np.random.default_rng(5).integers(0, 256, (4, 24, 24, 1), "uint8")
    metrics = measure_bits_per_dim(
        model, loaded, images, labels=np.array([0, 1, 0]), fit_images=train
    )
    with pytest.raises(ValueError, match="training images"):
        measure_bits_per_dim(model, loaded, images, labels=np.array([0, 1, 0]))
    assert metrics["bits_per_dim"] == pytest.approx(
        metrics["decoder_bits_per_dim"] + metrics["prior_bits_per_dim"]
    )
    assert (
        0 < metrics["prior_bits_per_code"] < 10
    )  # an untrained prior is near log2(8) = 3


def test_labels_and_counts_out_of_range_are_refused():
    from keras_vqvae.errors import DataError

    prior = PixelCNNPrior(8, (3, 3), hidden_dim=8, num_layers=2, num_classes=3)
    for labels in ([3, 3], [-1, 0]):
        with pytest.raises(DataError, match=r"in \[0, 3\)"):
            prior.sample(2, labels=labels, seed=0)
    with pytest.raises(DataError, match=r"in \[0, 3\)"):
        prior.log_prob(np.zeros((2, 3, 3), "int32"), labels=[0, 5])
    with pytest.raises(ValueError, match="n"):
        prior.sample(-3, labels=0)
    assert prior.sample(0, labels=0).shape == (0, 3, 3)
