import keras
import numpy as np
import pytest

from keras_vqvae.evaluation import bits_per_dim_of
from keras_vqvae.models import VQVAE
from keras_vqvae.models import PixelCNNPrior

SHAPE = (6, 6)


def small_prior(**kwargs):
    return PixelCNNPrior(8, SHAPE, hidden_dim=16, num_layers=3, **kwargs)


def logits_of(prior, codes, labels=None):
    inputs = codes if labels is None else (codes, labels)
    return np.asarray(keras.ops.convert_to_numpy(prior(inputs)))


def test_logits_depend_only_on_earlier_positions_with_no_blind_spot():
    prior = small_prior()
    codes = np.random.default_rng(0).integers(0, 8, (1,) + SHAPE)
    base = logits_of(prior, codes)
    height, width = SHAPE
    for i in range(height):
        for j in range(width):
            changed = codes.copy()
            changed[0, i, j] = (changed[0, i, j] + 1) % 8
            moved = np.abs(logits_of(prior, changed) - base).max(-1)[0] > 1e-6
            # 3 layers of kernel 5 see the whole 6x6 past of each position.
            later = np.array(
                [[(r, c) > (i, j) for c in range(width)] for r in range(height)]
            )
            np.testing.assert_array_equal(moved, later, err_msg=str((i, j)))


def test_previous_pixel_and_pixels_above_are_seen():
    prior = small_prior()
    codes = np.random.default_rng(1).integers(0, 8, (1,) + SHAPE)
    base = logits_of(prior, codes)
    for source, target in [((2, 2), (2, 3)), ((2, 3), (3, 3)), ((2, 4), (3, 3)), ((2, 2), (3, 3))]:
        changed = codes.copy()
        changed[(0,) + source] = (changed[(0,) + source] + 1) % 8
        assert np.abs(logits_of(prior, changed) - base)[(0,) + target].max() > 1e-6, (source, target)


def test_class_conditioning_changes_logits():
    prior = small_prior(num_classes=3)
    codes = np.zeros((2,) + SHAPE, "int32")
    a = logits_of(prior, codes, np.array([0, 0]))
    b = logits_of(prior, codes, np.array([1, 2]))
    assert not np.allclose(a, b)
    with pytest.raises(ValueError, match="class conditional"):
        prior(codes)


def test_fit_learns_a_simple_distribution_and_sampling_is_seeded():
    codes = np.full((128,) + SHAPE, 3, "int32")
    prior = small_prior()
    prior.compile(optimizer=keras.optimizers.Adam(1e-2))
    history = prior.fit(codes, codes, batch_size=32, epochs=4, verbose=0).history
    assert history["loss"][-1] < 0.2 * history["loss"][0]
    samples = prior.sample(6, seed=1)
    assert samples.shape == (6,) + SHAPE and samples.dtype == np.int32
    assert (samples == 3).mean() > 0.9
    np.testing.assert_array_equal(samples, prior.sample(6, seed=1))


def test_log_prob_is_minus_summed_cross_entropy():
    prior = small_prior()
    codes = np.random.default_rng(2).integers(0, 8, (4,) + SHAPE)
    logits = logits_of(prior, codes)
    log_softmax = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    expected = np.take_along_axis(log_softmax, codes[..., None], -1).sum((1, 2, 3))
    np.testing.assert_allclose(prior.log_prob(codes), expected, rtol=1e-4)


def test_preset_round_trip_beside_the_vqvae(tmp_path):
    model = VQVAE(image_shape=(24, 24, 1), num_embeddings=8, embedding_dim=4,
                  num_hiddens=8, num_residual_hiddens=4, num_residual_layers=1)
    prior = PixelCNNPrior(8, model.latent_shape, hidden_dim=16, num_layers=2,
                          num_classes=2)
    model.save_to_preset(tmp_path)
    prior.save_to_preset(tmp_path)
    codes = np.random.default_rng(3).integers(0, 8, (2,) + model.latent_shape)
    labels = np.array([0, 1])
    loaded = PixelCNNPrior.from_preset(tmp_path)
    np.testing.assert_array_equal(loaded.log_prob(codes, labels), prior.log_prob(codes, labels))
    assert VQVAE.from_preset(tmp_path).count_params() == model.count_params()

    images = np.random.default_rng(4).integers(0, 256, (3, 24, 24, 1), "uint8")
    metrics = bits_per_dim_of(model, loaded, images, labels=np.array([0, 1, 0]))
    assert metrics["bits_per_dim"] == pytest.approx(
        metrics["decoder_bits_per_dim"] + metrics["prior_bits_per_dim"]
    )
    assert 0 < metrics["prior_bits_per_code"] < 10  # an untrained prior is near log2(8) = 3
