import keras
import numpy as np
import pytest

from keras_vqvae.layers import Decoder
from keras_vqvae.layers import Encoder
from keras_vqvae.layers import ResidualStack
from keras_vqvae.models import VQVAE

TINY = dict(
    num_embeddings=32,
    embedding_dim=8,
    hidden_dim=16,
    num_residual_layers=1,
    residual_hidden_dim=8,
)


def tiny_model(image_shape=(28, 28, 1), **overrides):
    return VQVAE(image_shape=image_shape, **{**TINY, "seed": 0, **overrides})


def test_blocks_follow_the_paper_shapes():
    encoder = Encoder(128, 2, 32, num_downsamples=2)
    decoder = Decoder(128, 2, 32, output_channels=3, num_upsamples=2)
    x = np.zeros((2, 32, 32, 3), "float32")
    assert tuple(encoder(x).shape) == (2, 8, 8, 128)
    assert tuple(decoder(np.zeros((2, 8, 8, 64), "float32")).shape) == x.shape
    kernels = [conv.kernel.shape for conv in encoder.downsamples]
    assert kernels == [(4, 4, 3, 64), (4, 4, 64, 128)]
    stack = ResidualStack(16, 2, 4)
    assert tuple(stack(np.ones((1, 4, 4, 16), "float32")).shape) == (
        1,
        4,
        4,
        16,
    )
    with pytest.raises(ValueError, match=r"\(batch, height, width, 16\)"):
        ResidualStack(16, 2, 4)(np.ones((1, 4, 4, 8), "float32"))


def test_model_shapes_and_high_level_methods(mnist_slice):
    model = tiny_model()
    images = mnist_slice[:5]
    assert model.latent_shape == (7, 7)
    out = model(model.preprocess(images))
    assert tuple(out.shape) == (5, 28, 28, 1)
    codes = model.encode(images, batch_size=2)
    assert codes.shape == (5, 7, 7) and codes.dtype == np.int32
    assert codes.min() >= 0 and codes.max() < 32
    decoded = model.decode_indices(codes)
    assert decoded.shape == images.shape and decoded.dtype == np.uint8
    reconstructed = model.reconstruct(images)
    np.testing.assert_array_equal(reconstructed, decoded)
    floats = model.reconstruct(model.preprocess(images).numpy())
    assert floats.dtype == np.float32


def test_compiled_encode_and_decode_follow_the_current_weights(mnist_slice):
    model = tiny_model()
    images = mnist_slice[:6]
    model.encode(images), model.decode_codes(np.zeros((2, 7, 7), "int32"))
    # New weights after the first (compiling) call, as training gives.
    model.quantizer.codebook.assign(model.quantizer.codebook * -3.0 + 0.1)
    kernel = model.decoder.weights[0]
    kernel.assign(kernel * 2.0)

    x = model.preprocess(images)
    z = model.pre_quantization(model.encoder(x))
    eager_codes = keras.ops.convert_to_numpy(model.quantizer.get_indices(z))
    codes = model.encode(images, batch_size=4)  # a full and a partial batch
    np.testing.assert_array_equal(codes, eager_codes)
    eager_images = model.decoder(model.quantizer.lookup(codes))
    np.testing.assert_allclose(
        model.decode_codes(codes, batch_size=4),
        keras.ops.convert_to_numpy(eager_images),
        atol=1e-5,
    )


def test_fit_lowers_loss_on_real_mnist_and_logs_metrics(mnist_slice):
    model = tiny_model(kmeans_init=True)
    model.compile(optimizer=keras.optimizers.Adam(2e-3))
    x = model.preprocess(mnist_slice).numpy()
    before = model.evaluate(x, batch_size=128, verbose=0, return_dict=True)
    history = model.fit(x, batch_size=64, epochs=3, verbose=0).history
    after = model.evaluate(x, batch_size=128, verbose=0, return_dict=True)
    for key in (
        "loss",
        "reconstruction_loss",
        "vq_loss",
        "perplexity",
        "codebook_usage",
        "epoch_codebook_usage",
    ):
        assert key in history, history.keys()
    assert after["reconstruction_loss"] < 0.5 * before["reconstruction_loss"]
    assert history["loss"][-1] < history["loss"][0]
    assert after["perplexity"] > 4.0
    assert 0.0 < after["codebook_usage"] <= 1.0


def test_fit_on_tf_data_pipeline(mnist_slice):
    import tensorflow as tf

    model = tiny_model()
    model.compile()
    dataset = (
        tf.data.Dataset.from_tensor_slices(mnist_slice[:256])
        .batch(64)
        .map(model.preprocess)
    )
    history = model.fit(dataset, epochs=1, verbose=0).history
    assert np.isfinite(history["loss"][0])


def test_keras_and_weights_round_trips_give_identical_outputs(
    tmp_path, mnist_slice
):
    model = tiny_model(quantizer="vq")
    model.compile()
    x = model.preprocess(mnist_slice[:128]).numpy()
    model.fit(x, batch_size=32, epochs=1, verbose=0)
    expected = model.predict(x[:8], verbose=0)
    codes = model.encode(x[:8])

    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras", safe_mode=True)
    assert isinstance(loaded, VQVAE)
    np.testing.assert_array_equal(loaded.predict(x[:8], verbose=0), expected)
    np.testing.assert_array_equal(loaded.encode(x[:8]), codes)
    # The optimizer comes back too, so training resumes where it stopped.
    assert (
        int(loaded.optimizer.iterations) == int(model.optimizer.iterations) > 0
    )
    for saved, restored in zip(
        model.optimizer.variables, loaded.optimizer.variables
    ):
        np.testing.assert_array_equal(saved, restored)
    loaded.fit(x, batch_size=32, epochs=1, verbose=0)

    model.save_weights(tmp_path / "model.weights.h5")
    fresh = VQVAE.from_config(model.get_config())
    fresh.load_weights(tmp_path / "model.weights.h5")
    np.testing.assert_array_equal(fresh.predict(x[:8], verbose=0), expected)


def test_config_round_trip():
    model = tiny_model(quantizer="vq", dead_code_threshold=1.0)
    clone = VQVAE.from_config(model.get_config())
    assert clone.get_config() == model.get_config()
    assert clone.count_params() == model.count_params()


def test_bad_inputs_raise_clear_errors():
    model = tiny_model()
    with pytest.raises(ValueError, match=r"\(batch, height, width, 1\)"):
        model(np.zeros((2, 28, 28, 3), "float32"))
    with pytest.raises(ValueError, match=r"\(batch, height, width, 1\)"):
        model(np.zeros((28, 28, 1), "float32"))
    with pytest.raises(TypeError, match="preprocess"):
        model(np.zeros((2, 28, 28, 1), "uint8"))
    with pytest.raises(ValueError, match="multiples of 4"):
        model(np.zeros((2, 30, 30, 1), "float32"))
    with pytest.raises(ValueError, match=r"in \[0, 32\)"):
        model.decode_indices(np.full((1, 7, 7), 32))
    with pytest.raises(ValueError, match="quantizer"):
        tiny_model(quantizer="gumbel")


def test_mixed_precision_training_step(mnist_slice):
    keras.config.set_dtype_policy("mixed_float16")
    model = tiny_model()
    model.compile()
    x = model.preprocess(mnist_slice[:64]).numpy()
    history = model.fit(x, batch_size=32, epochs=1, verbose=0).history
    assert np.isfinite(history["loss"][0])
    assert model.quantizer.codebook.dtype == "float32"


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["tensorflow", "jax", "torch"])
def test_fit_and_save_on_each_backend(backend, tmp_path):
    import os
    import subprocess
    import sys

    script = f"""
import numpy as np, keras
from keras_vqvae.models import VQVAE
assert keras.backend.backend() == {backend!r}
rng = np.random.default_rng(0)
x = rng.uniform(-0.5, 0.5, (64, 16, 16, 3)).astype("float32")
for quantizer in ("ema", "vq"):
    model = VQVAE(image_shape=(16, 16, 3), num_embeddings=16, embedding_dim=4,
                  hidden_dim=8, residual_hidden_dim=4, quantizer=quantizer,
                  kmeans_init=quantizer == "ema")
    model.compile()
    codebook = np.array(model.quantizer.codebook.numpy())
    model.encode(x[:4])  # compiled before training changes the weights
    history = model.fit(x, batch_size=16, epochs=2, verbose=0).history
    assert np.isfinite(history["loss"]).all(), history
    assert history["loss"][-1] < history["loss"][0], history
    assert not np.allclose(model.quantizer.codebook.numpy(), codebook)
    z = model.pre_quantization(model.encoder(x))
    eager = keras.ops.convert_to_numpy(model.quantizer.get_indices(z))
    np.testing.assert_array_equal(model.encode(x, batch_size=48), eager)
    model.save({str(tmp_path)!r} + f"/{{quantizer}}.keras")
    loaded = keras.saving.load_model({str(tmp_path)!r} + f"/{{quantizer}}.keras")
    np.testing.assert_allclose(loaded.predict(x, verbose=0),
                               model.predict(x, verbose=0), atol=1e-6)
print("ok")
"""
    env = {**os.environ, "KERAS_BACKEND": backend}
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr[-4000:]


@pytest.mark.slow
def test_jax_conv_transpose_gradients_match_keras():
    import os
    import subprocess
    import sys

    script = """
import jax, numpy as np, keras
from keras_vqvae.layers import Conv2DTranspose
rng = np.random.default_rng(0)
x = rng.normal(size=(2, 5, 5, 6)).astype("float32")
g = rng.normal(size=(2, 10, 10, 4)).astype("float32")
ours = Conv2DTranspose(4, 4, strides=2, padding="same")
ref = keras.layers.Conv2DTranspose(4, 4, strides=2, padding="same")
ours.build(x.shape); ref.build(x.shape); ref.set_weights(ours.get_weights())
def objective(layer):
    def f(weights, inputs):
        out, _ = layer.stateless_call(weights, [], inputs)
        return (out * g).sum()
    weights = [v.value for v in layer.trainable_variables]
    return jax.grad(f, argnums=(0, 1))(weights, x)
(ours_w, ours_x), (ref_w, ref_x) = objective(ours), objective(ref)
np.testing.assert_allclose(ours_x, ref_x, rtol=1e-4, atol=1e-4)
for a, b in zip(ours_w, ref_w):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
np.testing.assert_allclose(ours(x), ref(x), rtol=1e-5, atol=1e-5)
print("ok")
"""
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr[-4000:]


def test_bad_inputs_are_refused_with_the_fix():
    from keras_vqvae.errors import DataError

    model = tiny_model()
    images = np.random.default_rng(0).integers(0, 256, (3, 28, 28, 1))
    with pytest.raises(DataError, match="NaN or infinite"):
        model.encode(np.full((2, 28, 28, 1), np.nan, "float32"))
    with pytest.raises(DataError, match="model's range"):
        model.reconstruct(images.astype("float32"))  # 0..255 as floats
    with pytest.raises(DataError, match=r"raw values in \[0, 255\]"):
        model.encode(images * 4)
    with pytest.raises(DataError, match="integers"):
        model.decode_indices(np.array([["a"] * 7] * 7)[None])
    assert model.encode(images[:0]).shape == (0, 7, 7)
    assert model.decode_indices(np.zeros((0, 7, 7), "int32")).shape == (
        0,
        28,
        28,
        1,
    )
    np.testing.assert_array_equal(
        model.encode(images.astype("int32")),
        model.encode(images.astype("uint8")),
    )


def test_epoch_usage_counts_codes_over_the_whole_epoch():
    from keras_vqvae.models.vqvae_base import EpochCodebookUsage

    metric = EpochCodebookUsage(4)
    metric.update_state(np.array([3.0, 0.0, 0.0, 0.0]))
    metric.update_state(np.array([0.0, 1.0, 0.0, 0.0]))
    assert float(metric.result()) == 0.5  # each batch alone: 0.25
    metric.reset_state()
    assert float(metric.result()) == 0.0


def test_tensorflow_keeps_its_graph_fusions_in_residual_stacks():
    # A residual stack of two or more blocks written with `ops.relu` made
    # TensorFlow's oneDNN remapper fail on every compiled graph: an error
    # in the log, and every convolution fusion of the graph dropped.
    import os
    import subprocess
    import sys

    script = """
import numpy as np
from keras_vqvae.models import ActionConditionalPrior, VQVAE
rng = np.random.default_rng(0)
x = rng.uniform(-0.5, 0.5, (32, 16, 16, 3)).astype("float32")
model = VQVAE(image_shape=(16, 16, 3), num_embeddings=16, embedding_dim=4,
              hidden_dim=8, num_residual_layers=2, residual_hidden_dim=4)
model.compile()
model.fit(x, batch_size=16, verbose=0)
model.decode_codes(model.encode(x))
prior = ActionConditionalPrior(
    num_embeddings=6, latent_shape=(4, 4), num_actions=3, context_frames=2,
    context_dim=8, context_layers=2, context_embedding_dim=4, hidden_dim=8,
    num_layers=2)
prior.compile()
codes = rng.integers(0, 6, (16, 4, 4)).astype("int32")
prior.fit({"codes": codes, "context": np.stack([codes, codes], 1),
           "actions": rng.integers(0, 3, (16,)).astype("int32")},
          codes, batch_size=8, verbose=0)
print("ok")
"""
    env = {**os.environ, "KERAS_BACKEND": "tensorflow"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "0"  # the Makefile hides errors
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True
    )
    assert result.stdout.strip().endswith("ok"), result.stderr[-4000:]
    assert "remapper failed" not in result.stderr, result.stderr[-4000:]
