"""Speech training workflow: clip folders, crops, measurements, the command."""

import json

import numpy as np
import pytest
from test_espeak_corpus import make_espeak_corpus
from test_espeak_corpus import require_espeak

from keras_vqvae.cli import main
from keras_vqvae.data.speech_corpus import frame_labels
from keras_vqvae.errors import DataError
from keras_vqvae.models import SpeechVQVAE
from keras_vqvae.speech import SpeakerClassifier
from keras_vqvae.speech import SpeechClips
from keras_vqvae.speech import SpeechCrops
from keras_vqvae.speech import conversion_targets
from keras_vqvae.speech import load_speech_clips
from keras_vqvae.speech import log_spectral_distance
from keras_vqvae.speech import mu_law_round_trip
from keras_vqvae.speech import phoneme_probe

TINY = [
    "--set",
    "num_embeddings=16",
    "--set",
    "embedding_dim=8",
    "--set",
    "encoder_dim=16",
    "--set",
    "residual_dim=8",
    "--set",
    "skip_dim=8",
    "--set",
    "num_layers=4",
    "--set",
    "dilation_cycle=2",
    "--set",
    "conditioning_dim=8",
    "--set",
    "speaker_dim=4",
]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    require_espeak()
    folder = tmp_path_factory.mktemp("corpus")
    make_espeak_corpus.main(
        ["--out", str(folder), "--utterances", "8", "--speakers", "2"]
    )
    return folder


def tone(seconds, rate, frequency=220.0, channels=1):
    t = np.arange(int(seconds * rate)) / rate
    wave = 0.5 * np.sin(2 * np.pi * frequency * t).astype("float32")
    return wave if channels == 1 else np.stack([wave, 0.5 * wave], axis=1)


@pytest.fixture
def clip_folder(tmp_path):
    import soundfile

    rows = ["file\tspeaker\tsplit"]
    clips = [  # file, speaker, split, rate, samples
        ("a.flac", "nl/font_big", "train", 16000, tone(0.5, 16000)),
        (
            "b.ogg",
            "cs/font_small",
            "train",
            22050,
            tone(0.7, 22050, channels=2),
        ),
        # float WAV keeps samples over full scale, as hot recordings have
        ("c.wav", "cs/font_small", "test", 44100, 2.2 * tone(0.3, 44100)),
    ]
    for name, speaker, split, rate, audio in clips:
        subtype = "FLOAT" if name.endswith(".wav") else None
        soundfile.write(str(tmp_path / name), audio, rate, subtype=subtype)
        rows.append(f"{name}\t{speaker}\t{split}")
    (tmp_path / "clips.tsv").write_text("\n".join(rows) + "\n")
    return tmp_path


def test_clip_folders_load_at_the_model_rate_and_say_what_was_converted(
    clip_folder,
):
    pytest.importorskip("soundfile")
    train = load_speech_clips(clip_folder, "train")
    test = load_speech_clips(clip_folder, "test")
    # Speaker ids come from both splits, so they agree between them.
    assert train.speaker_names == test.speaker_names
    assert train.speaker_names == ("cs/font_small", "nl/font_big")
    np.testing.assert_array_equal(train.speakers, [1, 0])
    assert [len(a) for a in train.audio] == [8000, 11200]
    assert train.conversions == {
        "downmixed to mono": 1,
        "resampled from 22050 Hz": 1,
    }
    assert test.conversions == {
        "resampled from 44100 Hz": 1,
        "clipped to [-1, 1]": 1,
    }
    assert np.abs(test.audio[0]).max() <= 1.0
    assert train.segments is None


def test_folders_that_are_not_speech_get_a_clear_error(tmp_path, clip_folder):
    with pytest.raises(DataError, match="neither corpus.json"):
        load_speech_clips(tmp_path / "missing")
    (clip_folder / "clips.tsv").write_text("path\tsplit\nx.wav\ttrain\n")
    with pytest.raises(DataError, match=r"lacks \['file', 'speaker'\]"):
        load_speech_clips(clip_folder)


def test_corpus_clips_keep_phoneme_timings(corpus):
    train = load_speech_clips(corpus, "train")
    assert len(train.speaker_names) == 2 and train.phonemes[0] == "sil"
    for audio, segments in zip(train.audio, train.segments):
        assert segments[-1, 2] == len(audio) and audio.dtype == np.float32


def test_crops_are_batches_of_equal_length_that_follow_the_seed():
    clips = SpeechClips(
        audio=[np.ones(100, "float32"), 2 * np.ones(3000, "float32")],
        speakers=np.array([0, 1]),
        speaker_names=("a", "b"),
        sample_rate=16000,
    )
    crops = SpeechCrops(clips, crop_length=256, batch_size=32, steps=5, seed=1)
    batch = crops[0]
    assert batch["audio"].shape == (32, 256, 1) and len(crops) == 5
    # The short clip is padded with silence; each crop is from one clip.
    for audio, speaker in zip(batch["audio"][..., 0], batch["speakers"]):
        if speaker == 0:
            assert audio[:100].tolist() == [1] * 100 and not audio[100:].any()
        else:
            assert (audio == 2).all()
    # Long clips are drawn in proportion to their length.
    assert (batch["speakers"] == 1).mean() > 0.8
    np.testing.assert_array_equal(batch["audio"], crops[0]["audio"])
    crops.on_epoch_end()
    assert not np.array_equal(batch["speakers"], crops[0]["speakers"]) or (
        not np.array_equal(batch["audio"], crops[0]["audio"])
    )


def test_log_spectral_distance():
    rng = np.random.default_rng(0)
    speech = tone(1.0, 16000) * (1 + np.sin(np.arange(16000) / 800))
    assert log_spectral_distance(speech, speech) == 0
    slightly = speech + 1e-3 * rng.standard_normal(16000).astype("float32")
    very = speech + 1e-1 * rng.standard_normal(16000).astype("float32")
    assert (
        0
        < log_spectral_distance(speech, slightly)
        < (log_spectral_distance(speech, very))
    )
    floor = log_spectral_distance(speech, mu_law_round_trip(speech))
    assert 0 < floor < log_spectral_distance(speech, very)


def test_speaker_classifier_tells_voices_apart():
    rng = np.random.default_rng(0)

    def voice(pitch):  # a buzz at the speaker's pitch, random length
        seconds = rng.uniform(0.3, 0.8)
        t = np.arange(int(seconds * 16000)) / 16000
        harmonics = sum(
            np.sin(2 * np.pi * k * pitch * t) / k for k in range(1, 8)
        )
        return (0.1 * harmonics).astype("float32")

    pitches = [110, 180, 260]
    speakers = np.arange(30) % 3
    clips = [voice(pitches[s]) for s in speakers]
    classifier = SpeakerClassifier(3, seed=0).fit(clips, speakers)
    held_out = np.array([2, 0, 1, 1, 0, 2])
    predicted = classifier.predict([voice(pitches[s]) for s in held_out])
    np.testing.assert_array_equal(predicted, held_out)


def test_conversion_targets_are_the_speakers_with_most_audio():
    clips = SpeechClips(
        audio=[np.zeros(n, "float32") for n in (10, 500, 300, 20, 400)],
        speakers=np.array([0, 1, 2, 3, 2]),
        speaker_names=("a", "b", "c", "d"),
        sample_rate=16000,
    )
    np.testing.assert_array_equal(conversion_targets(clips, 2), [2, 1])


class _PhonemeCodes:
    """A stand-in model whose code for each hop is a function of the
    phoneme under it: the probe must read those phonemes back."""

    num_embeddings = 64
    hop_length = 160
    sample_rate = 16000

    def __init__(self, segments_by_length, scramble):
        self.segments_by_length = segments_by_length
        self.scramble = scramble

    def encode(self, audio):
        labels = frame_labels(
            self.segments_by_length[len(audio)], 1, self.hop_length
        )
        return self.scramble[labels]


def test_phoneme_probe_reads_back_codes_that_name_phonemes(corpus):
    train = load_speech_clips(corpus, "train")
    test = load_speech_clips(corpus, "test")
    by_length = {
        len(a): s
        for clips in (train, test)
        for a, s in zip(clips.audio, clips.segments)
    }
    scramble = np.random.default_rng(0).permutation(64)
    probe = phoneme_probe(_PhonemeCodes(by_length, scramble), train, test)
    labels = np.concatenate([frame_labels(s, 1, 160) for s in test.segments])
    assert probe["test_codes"] == len(labels)
    seen = {p for s in train.segments for p in s[:, 0]}
    expected = np.mean([label in seen for label in labels])
    assert probe["accuracy"] == pytest.approx(expected)
    counts = np.bincount(
        np.concatenate([frame_labels(s, 1, 160) for s in train.segments])
    )
    assert probe["most_frequent_phoneme"] == train.phonemes[counts.argmax()]
    assert probe["most_frequent_phoneme_accuracy"] == pytest.approx(
        np.mean(labels == counts.argmax())
    )
    assert probe["accuracy"] > probe["most_frequent_phoneme_accuracy"]


def test_probe_needs_phoneme_timings(clip_folder):
    clips = load_speech_clips(clip_folder, "train")
    with pytest.raises(DataError, match="needs phoneme timings"):
        phoneme_probe(None, clips, clips)


def _first_test_speaker(corpus):
    return load_speech_clips(corpus, "test").speakers[0]


def test_train_speech_writes_a_measured_preset_and_resumes(
    corpus, tmp_path, capsys
):
    preset, work = tmp_path / "preset", tmp_path / "work"
    argv = [
        "train-speech",
        "--data",
        str(corpus),
        "--preset-dir",
        str(preset),
        "--work-dir",
        str(work),
        "--steps",
        "4",
        "--checkpoint-every",
        "2",
        "--batch-size",
        "2",
        "--crop-seconds",
        "0.05",
        "--eval-clips",
        "2",
        "--eval-seconds",
        "0.1",
        "--precision",
        "float32",
        "--verbose",
        "0",
        *TINY,
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "train: 6 clips" in out and "precision: float32" in out
    printed = json.loads(out[out.rindex("\n{\n") :])  # after the log lines
    metadata = json.loads((preset / "metadata.json").read_text())
    assert metadata["test_metrics"] == printed
    reconstruction = printed["reconstruction"]
    assert (
        reconstruction["log_spectral_distance_db"]
        > (reconstruction["mu_law_round_trip_lsd_db"])
    )
    assert reconstruction["generation_real_time_factor"] > 0
    assert 0 <= printed["phoneme_probe"]["accuracy"] <= 1
    conversion = printed["speaker_conversion"]
    assert len(conversion["target_speakers"]) == 2
    for key in (
        "converted_heard_as_target",
        "codes_kept_by_conversion",
        "phoneme_probe_on_originals",
        "phoneme_probe_on_converted",
    ):
        assert 0 <= conversion[key] <= 1
    assert metadata["training"]["steps"] == 4
    assert len(metadata["speakers"]) == 2
    model = SpeechVQVAE.from_preset(preset)
    assert model.speakers == metadata["speakers"] and model.num_layers == 4
    card = (preset / "README.md").read_text()
    assert "Phoneme probe" in card and "mu-law round trip" in card
    assert "Speaker conversion" in card
    import soundfile
    from PIL import Image

    other = metadata["speakers"][1 - int(_first_test_speaker(corpus))]
    samples = ["original.wav", "reconstruction.wav"]
    samples.append(
        "converted_to_" + other.replace("-", "_").replace("+", "_") + ".wav"
    )
    for name in samples:
        audio, rate = soundfile.read(str(preset / name))
        assert rate == 16000 and len(audio) == 1600  # --eval-seconds 0.1
        assert f"[{name}]({name})" in card
    with Image.open(preset / "spectrograms.png") as picture:
        assert picture.height > 3 * 128  # one row per sample
    # The same command with more steps resumes from the checkpoint.
    steps = argv.index("--steps") + 1
    argv[steps] = "6"
    assert main(argv) == 0
    capsys.readouterr()
    log = [json.loads(line) for line in (work / "train_log.jsonl").open()]
    assert [record["step"] for record in log] == [2, 4, 6]
