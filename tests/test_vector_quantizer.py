import keras
import numpy as np
import pytest
from keras import ops

from keras_vqvae.layers import VectorQuantizer
from keras_vqvae.layers import VectorQuantizerEMA

needs_tf = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="gradients are taken with tf.GradientTape",
)


# VectorQuantizer refuses k-means and restarts on JAX (they assign its
# trainable codebook); its EMA subclass is the one to use there.
QUANTIZERS_WITH_UPDATES = [
    pytest.param(
        VectorQuantizer,
        marks=pytest.mark.skipif(
            keras.backend.backend() == "jax",
            reason="VectorQuantizer raises for kmeans_init and "
            "dead_code_threshold on JAX",
        ),
    ),
    VectorQuantizerEMA,
]


def nearest_numpy(z, codebook):
    flat = z.reshape(-1, z.shape[-1])
    distances = ((flat[:, None, :] - codebook[None]) ** 2).sum(-1)
    return distances.argmin(1).reshape(z.shape[:-1])


@pytest.mark.parametrize("shape", [(2, 4, 4, 8), (3, 5, 8), (6, 8)])
def test_quantizes_to_nearest_code_for_any_leading_shape(shape):
    layer = VectorQuantizer(num_embeddings=16, embedding_dim=8, seed=1)
    z = np.random.default_rng(0).normal(size=shape).astype("float32")
    quantized, indices = layer(z, return_indices=True)
    codebook = ops.convert_to_numpy(layer.codebook)
    expected = nearest_numpy(z, codebook)
    np.testing.assert_array_equal(ops.convert_to_numpy(indices), expected)
    assert ops.convert_to_numpy(indices).dtype == np.int32
    np.testing.assert_allclose(
        ops.convert_to_numpy(quantized), codebook[expected], atol=1e-6
    )
    np.testing.assert_allclose(
        ops.convert_to_numpy(layer.lookup(indices)), codebook[expected]
    )
    np.testing.assert_array_equal(
        ops.convert_to_numpy(layer.get_indices(z)), expected
    )


def test_loss_is_codebook_plus_beta_commitment():
    layer = VectorQuantizer(16, 8, commitment_cost=0.25, seed=2)
    z = np.random.default_rng(1).normal(size=(4, 3, 8)).astype("float32")
    quantized = ops.convert_to_numpy(layer(z))
    squared_error = np.mean((z - quantized) ** 2)
    (loss,) = layer.losses
    np.testing.assert_allclose(
        ops.convert_to_numpy(loss), 1.25 * squared_error, rtol=1e-5
    )


@needs_tf
def test_straight_through_gradient_is_identity():
    import tensorflow as tf

    layer = VectorQuantizer(16, 8, seed=3)
    z = tf.constant(np.random.default_rng(2).normal(size=(2, 3, 8)), "float32")
    upstream = tf.constant(
        np.random.default_rng(3).normal(size=(2, 3, 8)), "float32"
    )
    with tf.GradientTape() as tape:
        tape.watch(z)
        out = layer(z)
        objective = tf.reduce_sum(out * upstream)
    np.testing.assert_allclose(tape.gradient(objective, z), upstream)


@needs_tf
def test_encoder_learns_only_through_straight_through_path():
    """With the VQ loss removed, the encoder's gradient equals the gradient
    of the objective at the quantized output, passed through unchanged."""
    import tensorflow as tf

    encoder = keras.layers.Dense(8)
    layer = VectorQuantizer(16, 8, seed=4)
    x = tf.constant(np.random.default_rng(4).normal(size=(5, 6)), "float32")
    encoder.build(x.shape)
    with tf.GradientTape(persistent=True) as tape:
        z = encoder(x)
        quantized = layer(z)
        objective = tf.reduce_sum(tf.square(quantized - 1.0))
    kernel_grad = tape.gradient(objective, encoder.kernel)
    # d objective / d quantized = 2 (q - 1), copied to z by straight-through.
    expected = tf.matmul(x, 2.0 * (quantized - 1.0), transpose_a=True)
    np.testing.assert_allclose(kernel_grad, expected, rtol=1e-5, atol=1e-5)
    assert tape.gradient(objective, layer.codebook) is None or np.allclose(
        tape.gradient(objective, layer.codebook), 0.0
    )


@needs_tf
def test_codebook_loss_moves_only_codebook_commitment_only_encoder():
    import tensorflow as tf

    layer = VectorQuantizer(16, 8, seed=5)
    z = tf.constant(np.random.default_rng(5).normal(size=(10, 8)), "float32")
    layer.build(z.shape)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(z)
        indices = layer.get_indices(z)
        quantized = tf.gather(layer.codebook.value, indices)
        codebook_loss = layer.codebook_loss(z, quantized)
        commitment_loss = layer.commitment_loss(z, quantized)
    grad_z_codebook = tape.gradient(codebook_loss, z)
    grad_e_codebook = tape.gradient(codebook_loss, layer.codebook)
    grad_z_commit = tape.gradient(commitment_loss, z)
    grad_e_commit = tape.gradient(commitment_loss, layer.codebook)
    assert grad_z_codebook is None or np.allclose(grad_z_codebook, 0.0)
    assert grad_e_commit is None or np.allclose(
        tf.convert_to_tensor(grad_e_commit), 0.0
    )
    np.testing.assert_allclose(
        grad_z_commit,
        2.0 * (z - quantized) / tf.size(z, out_type=tf.float32),
        rtol=1e-5,
    )
    assert np.abs(tf.convert_to_tensor(grad_e_codebook)).sum() > 0


def test_ema_update_matches_hand_computation():
    layer = VectorQuantizerEMA(3, 2, decay=0.9, epsilon=1e-5)
    layer.build((None, 2))
    codebook = np.array([[0.0, 0.0], [1.0, 1.0], [5.0, 5.0]], "float32")
    layer.codebook.assign(codebook)
    layer.ema_dw.assign(codebook)
    z = np.array([[0.1, -0.1], [0.2, 0.0], [0.9, 1.2]], "float32")
    layer(z, training=True)

    counts = np.array([2.0, 1.0, 0.0])
    sums = np.array([[0.3, -0.1], [0.9, 1.2], [0.0, 0.0]])
    cluster_size = 0.9 * 1.0 + 0.1 * counts
    dw = 0.9 * codebook + 0.1 * sums
    total = cluster_size.sum()
    smoothed = (cluster_size + 1e-5) / (total + 3 * 1e-5) * total
    np.testing.assert_allclose(layer.ema_cluster_size.numpy(), cluster_size)
    np.testing.assert_allclose(layer.ema_dw.numpy(), dw, rtol=1e-6)
    np.testing.assert_allclose(
        layer.codebook.numpy(), dw / smoothed[:, None], rtol=1e-5
    )
    # The unused code keeps its value (up to the smoothing's 1e-5 shift).
    np.testing.assert_allclose(layer.codebook.numpy()[2], [5.0, 5.0], rtol=1e-4)


def test_ema_codebook_changes_only_in_training():
    layer = VectorQuantizerEMA(8, 4, seed=6)
    z = np.random.default_rng(6).normal(size=(16, 4)).astype("float32")
    layer(z)
    before = layer.codebook.numpy().copy()
    layer(z, training=False)
    np.testing.assert_array_equal(layer.codebook.numpy(), before)
    layer(z, training=True)
    assert not np.allclose(layer.codebook.numpy(), before)
    assert layer.trainable_weights == []


@pytest.mark.parametrize("layer_class", QUANTIZERS_WITH_UPDATES)
def test_frozen_quantizer_keeps_its_state_in_training(layer_class):
    layer = layer_class(8, 4, kmeans_init=True, dead_code_threshold=0.5, seed=6)
    z = np.random.default_rng(6).normal(size=(16, 4)).astype("float32")
    layer(z)
    before = [w.numpy().copy() for w in layer.weights if "batch_" not in w.name]
    layer.trainable = False
    layer(z, training=True)
    after = [w.numpy() for w in layer.weights if "batch_" not in w.name]
    for old, new in zip(before, after):
        np.testing.assert_array_equal(new, old)
    layer.trainable = True
    layer(z, training=True)
    assert not np.array_equal(layer.codebook.numpy(), before[0])


def test_ema_loss_is_commitment_only():
    layer = VectorQuantizerEMA(8, 4, commitment_cost=0.25, seed=7)
    z = np.random.default_rng(7).normal(size=(16, 4)).astype("float32")
    quantized = ops.convert_to_numpy(layer(z))
    np.testing.assert_allclose(
        ops.convert_to_numpy(layer.losses[0]),
        0.25 * np.mean((z - quantized) ** 2),
        rtol=1e-5,
    )


def test_perplexity_and_usage_statistics():
    layer = VectorQuantizer(4, 2)
    layer.build((None, 2))
    codebook = np.array([[0, 0], [0, 9], [9, 0], [9, 9]], "float32")
    layer.codebook.assign(codebook)
    layer(codebook)  # each code used once: perplexity K, usage 1
    np.testing.assert_allclose(layer.batch_perplexity.numpy(), 4.0, rtol=1e-5)
    np.testing.assert_allclose(layer.batch_codebook_usage.numpy(), 1.0)
    layer(codebook[:1].repeat(5, axis=0))
    np.testing.assert_allclose(layer.batch_perplexity.numpy(), 1.0, rtol=1e-5)
    np.testing.assert_allclose(layer.batch_codebook_usage.numpy(), 0.25)


@pytest.mark.parametrize("layer_class", QUANTIZERS_WITH_UPDATES)
def test_kmeans_init_finds_clusters_once(layer_class):
    rng = np.random.default_rng(8)
    centers = np.array([[-5, -5], [-5, 5], [5, -5], [5, 5]], "float32")
    z = (centers.repeat(50, axis=0) + rng.normal(0, 0.1, (200, 2))).astype(
        "float32"
    )
    layer = layer_class(16, 2, kmeans_init=True, seed=0)
    layer(z, training=True)
    codebook = layer.codebook.numpy()
    distances = np.abs(codebook[:, None] - centers[None]).max(-1)
    assert distances.min(0).max() < 0.5, codebook  # every cluster has a code
    assert distances.min(1).max() < 1.0, codebook  # every code is in one
    layer(z + 100.0, training=False)
    layer(np.zeros_like(z), training=True)  # not re-initialised
    assert np.abs(layer.codebook.numpy()).max() > 4.0


@pytest.mark.parametrize("layer_class", QUANTIZERS_WITH_UPDATES)
def test_dead_codes_restart_at_batch_vectors(layer_class):
    layer = layer_class(8, 2, dead_code_threshold=0.5, usage_decay=0.5, seed=0)
    layer.build((None, 2))
    far_away = np.full((8, 2), 100.0, "float32")
    far_away[0] = 0.0
    layer.codebook.assign(far_away)
    if layer_class is VectorQuantizerEMA:
        layer.ema_dw.assign(far_away)
    z = np.random.default_rng(9).normal(size=(64, 2)).astype("float32")
    for _ in range(3):
        layer(z, training=True)
    codebook = layer.codebook.numpy()
    assert np.abs(codebook).max() < 10.0, codebook
    assert np.unique(codebook.round(4), axis=0).shape[0] > 1


def clustered_batch_with_a_dead_code(layer_class, **kwargs):
    """8 tight, far-apart clusters of 8 vectors; codes 1-7 on clusters
    1-7 and code 0 far away, unused for long (usage and, for EMA, cluster
    size 0)."""
    rng = np.random.default_rng(11)
    centers = 10.0 * np.stack(
        [np.arange(8) % 4, np.arange(8) // 4], axis=1
    ).astype("float32")
    z = (centers.repeat(8, axis=0) + rng.normal(0, 0.05, (64, 2))).astype(
        "float32"
    )
    layer = layer_class(8, 2, seed=3, **kwargs)
    layer.build((None, 2))
    codebook = centers.copy()
    codebook[0] = 100.0
    layer.codebook.assign(codebook)
    usage = np.ones(8, "float32")
    usage[0] = 0.0
    layer.code_usage.assign(usage)
    if layer_class is VectorQuantizerEMA:
        layer.ema_dw.assign(codebook)
        layer.ema_cluster_size.assign(usage)
    return layer, z


@pytest.mark.parametrize("layer_class", QUANTIZERS_WITH_UPDATES)
def test_restarted_code_is_not_restarted_while_used(layer_class):
    layer, z = clustered_batch_with_a_dead_code(
        layer_class, dead_code_threshold=1.0, usage_decay=0.99
    )
    layer(z, training=True)
    restarted_at = layer.codebook.numpy()[0].copy()
    # Restarted onto a batch vector (the EMA update ran before).
    assert np.abs(z - restarted_at).max(1).min() < 1e-6, restarted_at
    for _ in range(5):
        _, indices = layer(z, training=True, return_indices=True)
        # Used by every batch, so kept where it is: the non-EMA codebook
        # has no optimizer here, the EMA one moves within its cluster.
        assert np.sum(ops.convert_to_numpy(indices) == 0) >= 1
        moved = np.abs(layer.codebook.numpy()[0] - restarted_at).max()
        assert moved < 1.0, (restarted_at, layer.codebook.numpy()[0])
    assert layer.code_usage.numpy()[0] >= 1.0


@pytest.mark.parametrize("layer_class", QUANTIZERS_WITH_UPDATES)
def test_unused_restarted_code_is_restarted_again(layer_class):
    layer, z = clustered_batch_with_a_dead_code(
        layer_class, dead_code_threshold=1.0, usage_decay=0.99
    )
    layer(z, training=True)
    restarted_at = layer.codebook.numpy()[0].copy()
    # The next batch lies elsewhere: the code gets nothing and is redrawn.
    elsewhere = z + 1000.0
    layer(elsewhere, training=True)
    assert np.abs(elsewhere - layer.codebook.numpy()[0]).max(1).min() < 1e-3
    assert np.abs(layer.codebook.numpy()[0] - restarted_at).max() > 100.0


def smoothed_numpy(cluster_size, epsilon, num_embeddings):
    total = cluster_size.sum()
    return (cluster_size + epsilon) / (total + num_embeddings * epsilon) * total


def test_ema_restart_resets_statistics_consistently():
    layer, z = clustered_batch_with_a_dead_code(
        VectorQuantizerEMA,
        dead_code_threshold=1.0,
        usage_decay=0.99,
        decay=0.99,
        epsilon=1e-5,
    )
    layer(z, training=True)
    codebook = layer.codebook.numpy()
    cluster_size = layer.ema_cluster_size.numpy()
    ema_dw = layer.ema_dw.numpy()
    assert np.abs(z - codebook[0]).max(1).min() < 1e-6  # restarted
    # The restarted code starts as a cluster of threshold size at its new
    # vector, and its usage starts at the threshold too.
    np.testing.assert_allclose(cluster_size[0], 1.0)
    np.testing.assert_allclose(layer.code_usage.numpy()[0], 1.0)
    smoothed = smoothed_numpy(cluster_size, 1e-5, 8)
    np.testing.assert_allclose(
        ema_dw / smoothed[:, None], codebook, rtol=1e-6, atol=1e-6
    )
    # The next update moves it from there towards its new assignments.
    _, indices = layer(z, training=True, return_indices=True)
    mine = ops.convert_to_numpy(indices) == 0
    counts = mine.sum()
    assert counts >= 1
    expected_n = 0.99 * 1.0 + 0.01 * counts
    expected_m = 0.99 * ema_dw[0] + 0.01 * z[mine].sum(0)
    np.testing.assert_allclose(
        layer.ema_cluster_size.numpy()[0], expected_n, rtol=1e-6
    )
    np.testing.assert_allclose(layer.ema_dw.numpy()[0], expected_m, rtol=1e-5)
    new_smoothed = smoothed_numpy(layer.ema_cluster_size.numpy(), 1e-5, 8)
    np.testing.assert_allclose(
        layer.codebook.numpy()[0], expected_m / new_smoothed[0], rtol=1e-5
    )


def test_bad_inputs_raise_clear_errors():
    layer = VectorQuantizer(16, 8)
    with pytest.raises(
        ValueError, match=r"expects inputs of shape \(\.\.\., 8\)"
    ):
        layer(np.zeros((2, 4, 4, 3), "float32"))
    with pytest.raises(ValueError, match="at least one leading axis"):
        VectorQuantizer(16, 8)(np.zeros((8,), "float32"))
    with pytest.raises(TypeError, match="floating-point"):
        VectorQuantizer(16, 8)(np.zeros((2, 8), "int32"))
    with pytest.raises(TypeError, match="integer code indices"):
        layer.lookup(np.zeros((2,), "float32"))


def test_distances_in_float32_under_mixed_precision():
    keras.config.set_dtype_policy("mixed_float16")
    layer = VectorQuantizerEMA(32, 8, seed=10)
    z = np.random.default_rng(10).normal(size=(4, 4, 8)).astype("float32")
    quantized, indices = layer(z, return_indices=True)
    assert keras.backend.standardize_dtype(quantized.dtype) == "float16"
    assert keras.backend.standardize_dtype(layer.codebook.dtype) == "float32"
    np.testing.assert_array_equal(
        ops.convert_to_numpy(indices),
        nearest_numpy(
            z.astype("float16").astype("float32"), layer.codebook.numpy()
        ),
    )


@pytest.mark.parametrize("layer_class", [VectorQuantizer, VectorQuantizerEMA])
def test_config_round_trip(layer_class):
    layer = layer_class(32, 8, commitment_cost=0.5, dead_code_threshold=1.0)
    clone = layer_class.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()


def test_symbolic_call_in_functional_model():
    inputs = keras.Input((4, 4, 8))
    quantized, indices = VectorQuantizerEMA(16, 8)(inputs, return_indices=True)
    assert tuple(quantized.shape) == (None, 4, 4, 8)
    assert tuple(indices.shape) == (None, 4, 4)
