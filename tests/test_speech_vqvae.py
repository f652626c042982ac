import keras
import numpy as np
import pytest

from keras_vqvae.audio import mu_law_decode
from keras_vqvae.audio import mu_law_encode
from keras_vqvae.errors import DataError
from keras_vqvae.models import SpeechVQVAE

SMALL = dict(
    speakers=["anna", "ben"],
    num_embeddings=16,
    embedding_dim=8,
    encoder_dim=16,
    residual_dim=8,
    skip_dim=8,
    num_layers=4,
    dilation_cycle=2,
    conditioning_dim=8,
    speaker_dim=4,
    seed=0,
)


def tones(count=4, length=512):
    t = np.arange(length) / 16000
    freqs = 200 + 60 * np.arange(count)[:, None]
    return (0.4 * np.sin(2 * np.pi * freqs * t)).astype("float32")


def test_mu_law_round_trip_and_levels():
    x = np.linspace(-1, 1, 1001, dtype="float32")
    levels = mu_law_encode(x)
    assert levels.min() == 0 and levels.max() == 255
    assert mu_law_encode(np.zeros(1, "float32"))[0] == 128
    # 8-bit mu-law: small errors near 0, larger near +-1.
    error = np.abs(mu_law_decode(levels) - x)
    assert error[np.abs(x) < 0.01].max() < 2e-4 and error.max() < 0.025
    tensor = keras.ops.convert_to_numpy(
        mu_law_encode(keras.ops.convert_to_tensor(x))
    )
    np.testing.assert_array_equal(tensor, levels)


def test_fit_trains_encoder_and_decoder_through_the_codes():
    model = SpeechVQVAE(**SMALL)
    audio = tones()[..., None]
    encoder_before = keras.ops.convert_to_numpy(
        model.encoder.downsamples[0].kernel
    )
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    history = model.fit(
        {"audio": audio, "speakers": np.array([0, 1, 0, 1])},
        epochs=4,
        batch_size=2,
        verbose=0,
    )
    losses = history.history["reconstruction_loss"]
    assert np.isfinite(history.history["loss"]).all()
    assert losses[-1] < losses[0] < np.log(256) + 0.1  # nats per sample
    encoder_after = keras.ops.convert_to_numpy(
        model.encoder.downsamples[0].kernel
    )
    assert np.abs(encoder_after - encoder_before).max() > 0  # straight-through


def test_encode_decode_convert_shapes_and_seed():
    keras.utils.set_random_seed(0)
    model = SpeechVQVAE(**SMALL)
    # Untrained, the small speaker embedding can change no draw at all:
    # make the speakers far apart, so that decoding depends on them.
    speakers = model.decoder.speaker_embedding.embeddings
    speakers.assign(10 * np.eye(*speakers.shape, dtype="float32"))
    clip = tones(1, 500)[0]  # padded to 512 = 8 codes
    codes = model.encode(clip)
    assert codes.shape == (8,) and codes.dtype == np.int32
    assert model.encode(tones(3, 512)).shape == (3, 8)
    audio = model.decode(codes, "ben", seed=1)
    assert audio.shape == (512,) and audio.dtype == np.float32
    assert np.abs(audio).max() <= 1.0
    np.testing.assert_array_equal(audio, model.decode(codes, 1, seed=1))
    assert not np.array_equal(audio, model.decode(codes, "anna", seed=1))
    assert model.convert(clip, "anna", seed=0).shape == (512,)
    pcm = (clip * 32767).astype("int16")
    np.testing.assert_array_equal(model.encode(pcm), codes)


def test_config_and_keras_file_round_trip(tmp_path):
    model = SpeechVQVAE(**SMALL)
    clip = tones(1, 512)[0]
    path = tmp_path / "speech.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    assert restored.speakers == ["anna", "ben"]
    np.testing.assert_array_equal(restored.encode(clip), model.encode(clip))
    np.testing.assert_array_equal(
        restored.decode(model.encode(clip), "ben", seed=0),
        model.decode(model.encode(clip), "ben", seed=0),
    )
    assert (
        SpeechVQVAE.from_config(model.get_config()).get_config()
        == model.get_config()
    )


def test_bad_audio_gets_clear_errors_or_stated_conversions():
    model = SpeechVQVAE(**SMALL)
    with pytest.raises(DataError, match="empty"):
        model.encode(np.zeros(0, "float32"))
    with pytest.raises(DataError, match="too short.*at least 64"):
        model.encode(np.zeros(10, "float32"))
    with pytest.raises(DataError, match="NaN"):
        model.encode(np.full(128, np.nan, "float32"))
    with pytest.raises(DataError, match=r"\[-1, 1\]"):
        model.encode(np.full(128, 3.0, "float32"))
    with pytest.raises(
        DataError, match="Unknown speaker 'carl'.*0: anna, 1: ben"
    ):
        model.decode(np.zeros(2, "int32"), "carl")
    with pytest.raises(ValueError, match=r"\[0, 16\)"):
        model.decode(np.full(2, 99), "anna")
    with pytest.warns(UserWarning, match="22050 Hz: resampled"):
        clip = model.prepare_audio(tones(1, 2205)[0], sample_rate=22050)
    assert clip.shape == (1600, 1)
    with pytest.warns(UserWarning, match="2 channels: downmixed"):
        assert model.prepare_audio(np.zeros((128, 2), "float32")).shape == (
            128,
            1,
        )
    with pytest.raises(ValueError, match="multiple of 64"):
        model(
            {"audio": np.zeros((1, 100, 1), "float32"), "speakers": np.zeros(1)}
        )


def test_preset_round_trip(tmp_path):
    model = SpeechVQVAE(**SMALL)
    clip = tones(1, 512)[0]
    model.save_to_preset(tmp_path / "speech")
    restored = SpeechVQVAE.from_preset(tmp_path / "speech")
    assert restored.speakers == model.speakers
    np.testing.assert_array_equal(restored.encode(clip), model.encode(clip))


def test_cli_converts_encodes_and_decodes_audio_files(tmp_path, capsys):
    import json

    import soundfile

    from keras_vqvae.cli import main

    preset = tmp_path / "speech"
    SpeechVQVAE(**SMALL).save_to_preset(preset)
    stereo = np.stack([tones(1, 2205)[0]] * 2, axis=1)
    soundfile.write(tmp_path / "in.wav", stereo, 22050)
    out = tmp_path / "out.wav"
    with pytest.warns(UserWarning) as warned:
        status = main(
            [
                "convert-speaker",
                "--preset",
                str(preset),
                "--audio",
                str(tmp_path / "in.wav"),
                "--speaker",
                "ben",
                "--out",
                str(out),
            ]
        )
    assert status == 0
    said = " ".join(str(w.message) for w in warned)
    assert "downmixed" in said and "resampled" in said
    result = json.loads(capsys.readouterr().out)
    assert result["speaker"] == "ben" and result["audio_s"] == 0.1
    audio, rate = soundfile.read(out)
    assert rate == 16000 and audio.shape == (1600,)

    codes = tmp_path / "codes.npy"
    soundfile.write(tmp_path / "mono.wav", tones(1, 640)[0], 16000)
    assert (
        main(
            [
                "encode-audio",
                "--preset",
                str(preset),
                "--audio",
                str(tmp_path / "mono.wav"),
                "--out",
                str(codes),
            ]
        )
        == 0
    )
    assert np.load(codes).shape == (10,)
    assert (
        main(
            [
                "decode-audio",
                "--preset",
                str(preset),
                "--codes",
                str(codes),
                "--speaker",
                "1",
                "--out",
                str(tmp_path / "dec.wav"),
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert (
        main(
            [
                "convert-speaker",
                "--preset",
                str(preset),
                "--audio",
                str(tmp_path / "mono.wav"),
                "--speaker",
                "carl",
            ]
        )
        == 1
    )
    assert (
        "Known speakers (id: name): 0: anna, 1: ben" in capsys.readouterr().err
    )
    (tmp_path / "bad.wav").write_bytes(b"not audio")
    assert (
        main(
            [
                "encode-audio",
                "--preset",
                str(preset),
                "--audio",
                str(tmp_path / "bad.wav"),
            ]
        )
        == 1
    )
    assert "Cannot read" in capsys.readouterr().err


def test_a_final_stride_gives_code_rates_between_powers_of_two():
    # 3 stride-2 convolutions and one of stride 5: one code per 40 samples
    # (at 16 kHz, 7 and 5 give the paper's 25 Hz).
    model = SpeechVQVAE(**{**SMALL, "num_downsamples": 3, "final_stride": 5})
    assert model.hop_length == 40
    audio = tones(2, 400)
    assert model.encode(audio).shape == (2, 10)
    assert model.encode(audio[0, :390]).shape == (10,)  # padded to 400
    assert model.decode(model.encode(audio[0]), "ben", seed=0).shape == (400,)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    history = model.fit(
        {"audio": audio[..., None], "speakers": np.array([0, 1])},
        epochs=1,
        verbose=0,
    )
    assert np.isfinite(history.history["loss"]).all()
    again = SpeechVQVAE.from_config(model.get_config())
    assert again.hop_length == 40 and again.encoder.final_stride == 5
    with pytest.raises(ValueError, match="final_stride"):
        SpeechVQVAE(**{**SMALL, "final_stride": 0})


SPEECH_HUB_LOAD = """
import sys, keras, numpy as np
import keras_vqvae
from keras_vqvae.models import SpeechVQVAE
audio = np.load(sys.argv[2])
by_preset = SpeechVQVAE.from_preset(sys.argv[1]).encode(audio)
by_keras = keras.saving.load_model(sys.argv[1]).encode(audio)
np.save(sys.argv[3], np.stack([by_preset, by_keras]))
"""


@pytest.mark.slow
def test_speech_preset_through_the_hub_client(tmp_path):
    from test_presets import upload_and_run

    model = SpeechVQVAE(**SMALL)
    preset = tmp_path / "preset"
    model.save_to_preset(preset)
    audio = tones(2, 1024)
    np.save(tmp_path / "audio.npy", audio)
    upload_and_run(
        tmp_path,
        preset,
        "user/speech-tiny",
        SPEECH_HUB_LOAD,
        tmp_path / "audio.npy",
        tmp_path / "codes.npy",
    )
    codes = np.load(tmp_path / "codes.npy")
    np.testing.assert_array_equal(codes[0], model.encode(audio))
    np.testing.assert_array_equal(codes[1], codes[0])


def test_decode_handles_clips_of_several_lengths():
    # TensorFlow's compiled loop is retraced with an unknown length from
    # the second length on: each must still decode.
    model = SpeechVQVAE(**SMALL)
    for length in (3, 5, 2):
        codes = np.arange(length) % 16
        assert model.decode(codes, seed=0).shape == (length * model.hop_length,)
