import keras
import numpy as np
import pytest
from keras import ops

from keras_vqvae.layers import AudioEncoder
from keras_vqvae.layers import WaveNetDecoder


def small_decoder(**overrides):
    config = dict(
        num_layers=6,
        dilation_cycle=3,
        residual_dim=8,
        skip_dim=12,
        conditioning_dim=10,
        upsampling_factor=4,
        num_speakers=3,
        speaker_dim=5,
    )
    return WaveNetDecoder(**{**config, **overrides})


def inputs(seed=0, batch=2, length=32, codes_dim=6):
    rng = np.random.default_rng(seed)
    previous = rng.integers(0, 256, (batch, length)).astype("int32")
    codes = rng.normal(size=(batch, length // 4, codes_dim)).astype("float32")
    speakers = np.array([0, 2], "int32")[:batch]
    return previous, codes, speakers


def test_audio_encoder_downsamples_by_64():
    encoder = AudioEncoder(16)
    assert encoder(ops.zeros((2, 1024, 1))).shape == (2, 16, 16)
    assert encoder.compute_output_shape((2, 1024, 1)) == (2, 16, 16)
    restored = AudioEncoder.from_config(encoder.get_config())
    assert restored.num_downsamples == 6 and restored.kernel_size == 4
    with pytest.raises(ValueError, match="num_downsamples"):
        AudioEncoder(16, num_downsamples=0)


def test_wavenet_shapes_receptive_field_and_config():
    decoder = small_decoder()
    previous, codes, speakers = inputs()
    assert decoder(previous, codes, speakers).shape == (2, 32, 256)
    # Dilations 1, 2, 4, 1, 2, 4.
    assert decoder.receptive_field == 1 + 2 * (1 + 2 + 4)
    restored = WaveNetDecoder.from_config(decoder.get_config())
    assert restored.get_config() == decoder.get_config()
    with pytest.raises(ValueError, match="pass `speakers`"):
        decoder(previous, codes)
    with pytest.raises(ValueError, match="num_layers"):
        WaveNetDecoder(num_layers=0)


def test_wavenet_is_causal():
    decoder = small_decoder()
    previous, codes, speakers = inputs()
    logits = ops.convert_to_numpy(decoder(previous, codes, speakers))
    changed = previous.copy()
    changed[:, 20:] = (changed[:, 20:] + 17) % 256
    changed_logits = ops.convert_to_numpy(decoder(changed, codes, speakers))
    np.testing.assert_allclose(
        changed_logits[:, :20], logits[:, :20], atol=1e-5
    )
    assert np.abs(changed_logits[:, 20:] - logits[:, 20:]).max() > 1e-3


def test_fast_generation_steps_give_the_teacher_forced_logits():
    decoder = small_decoder()
    previous, codes, speakers = inputs(length=40)
    expected = ops.convert_to_numpy(decoder(previous, codes, speakers))
    conditioning = decoder.layer_conditioning(
        ops.convert_to_tensor(codes), speakers
    )
    weights = decoder.step_weights()
    queues = decoder.initial_queues(2)
    for t in range(40):
        logits, queues = decoder.step(
            ops.convert_to_tensor(t, "int32"),
            ops.convert_to_tensor(previous[:, t]),
            conditioning,
            queues,
            weights,
        )
        np.testing.assert_allclose(
            ops.convert_to_numpy(logits),
            expected[:, t],
            atol=2e-5,
            err_msg=f"t={t}",
        )


def test_speaker_changes_the_output():
    decoder = small_decoder()
    previous, codes, _ = inputs()
    first = decoder(previous, codes, np.array([0, 0], "int32"))
    second = decoder(previous, codes, np.array([1, 1], "int32"))
    assert np.abs(ops.convert_to_numpy(first - second)).max() > 1e-4


def test_unconditional_wavenet_trains_through_fit():
    previous = keras.Input((32,), dtype="int32")
    codes = keras.Input((8, 6))
    logits = WaveNetDecoder(
        num_layers=3,
        residual_dim=8,
        skip_dim=8,
        conditioning_dim=8,
        upsampling_factor=4,
    )(previous, codes)
    model = keras.Model([previous, codes], logits)
    model.compile(
        "adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    x, c, _ = inputs(batch=2)
    history = model.fit([x, c], x, epochs=3, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert history.history["loss"][-1] < history.history["loss"][0]
