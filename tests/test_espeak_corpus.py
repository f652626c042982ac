"""The eSpeak NG speech corpus: synthesis, alignment, files and the tool.

Needs the `speech` extra (`espeakng-loader`, `scipy`); without it the tests
that speak are skipped, or fail when `CI` is set.
"""

import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from keras_vqvae.data import espeak
from keras_vqvae.data.speech_corpus import SPEAKERS
from keras_vqvae.data.speech_corpus import frame_labels
from keras_vqvae.data.speech_corpus import generate_sentences
from keras_vqvae.data.speech_corpus import load_speech_corpus
from keras_vqvae.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "tools"))
import make_espeak_corpus  # noqa: E402

MS = espeak.SAMPLE_RATE // 1000
TOLERANCE = 30 * MS
TOOL_ARGS = ["--utterances", "8", "--speakers", "2", "--seed", "3"]


def require_espeak():
    """Skips the test without `espeakng-loader`, or fails it under CI."""
    reason = (
        'espeakng-loader is not installed (pip install "keras-vqvae[speech]")'
    )
    if not os.environ.get("CI"):
        pytest.importorskip("espeakng_loader", reason=reason)
        pytest.importorskip("scipy", reason=reason)
        return
    try:
        import espeakng_loader  # noqa: F401
        import scipy  # noqa: F401
    except ImportError as e:
        pytest.fail(f"{reason}; CI is set, so this is an error: {e}")


@pytest.fixture(scope="module")
def corpora(tmp_path_factory):
    """The same small corpus, written twice by the tool."""
    require_espeak()
    folders = [tmp_path_factory.mktemp(f"corpus{i}") for i in range(2)]
    for folder in folders:
        make_espeak_corpus.main(["--out", str(folder), *TOOL_ARGS])
    return folders


def envelope(audio):
    """RMS over 5 ms windows, one value per sample."""
    window = np.ones(5 * MS) / (5 * MS)
    return np.sqrt(np.convolve(audio.astype(float) ** 2, window, "same"))


def test_same_arguments_give_identical_files(corpora):
    for name in ("train.npz", "test.npz"):
        first, second = ((folder / name).read_bytes() for folder in corpora)
        assert first == second


def test_corpus_json(corpora):
    info = json.loads((corpora[0] / "corpus.json").read_text())
    assert info["sample_rate"] == 16000
    assert info["utterances"] == 8
    assert info["phonemes"][0] == "sil"
    assert info["espeak_ng_version"].startswith("1.52")
    assert [s["voice"] for s in info["speakers"]] == ["en-us+m1", "en+f3"]
    assert info["command"].endswith(" ".join(TOOL_ARGS))
    assert sum(s["utterances"] for s in info["splits"].values()) == 8


def test_splits_hold_every_speaker_and_the_sentences(corpora):
    train, test = (load_speech_corpus(corpora[0], s) for s in ("train", "test"))
    assert len(train) + len(test) == 8
    assert {u.speaker for u in train} == {u.speaker for u in test} == {0, 1}
    texts = sorted(u.text for u in train + test)
    assert texts == sorted(generate_sentences(8, seed=3))


def test_segments_cover_the_audio_in_order(corpora):
    info = json.loads((corpora[0] / "corpus.json").read_text())
    for utterance in load_speech_corpus(corpora[0], "train"):
        phonemes, starts, ends = utterance.segments.T
        assert starts[0] == 0 and ends[-1] == len(utterance.audio)
        np.testing.assert_array_equal(starts[1:], ends[:-1])
        assert np.all(ends > starts)
        assert np.all((0 <= phonemes) & (phonemes < len(info["phonemes"])))


def test_resampled_to_16_khz():
    require_espeak()
    speaker = SPEAKERS[0]
    with espeak.Espeak() as engine:
        raw, events = engine.speak("Zoe found a coin.", speaker)
    speech = espeak.synthesize("Zoe found a coin.", speaker)
    assert len(speech.audio) == math.ceil(len(raw) * 16000 / 22050)
    assert speech.audio.dtype == np.int16
    # The phoneme positions moved with the audio: compare the last phoneme.
    last = max(i for i, p in enumerate(speech.phonemes) if p != "sil")
    sample = [s for m, s in events if espeak.phoneme_label(m) != "sil"][-1]
    expected = round(sample * 16000 / 22050)
    assert abs(int(speech.boundaries[last]) - expected) <= 1


@pytest.mark.parametrize("speaker", SPEAKERS[:4], ids=lambda s: s.voice)
def test_first_phoneme_starts_with_the_sound(speaker):
    require_espeak()
    speech = espeak.synthesize("Zoe found a coin.", speaker)
    first = next(i for i, p in enumerate(speech.phonemes) if p != "sil")
    energy = envelope(speech.audio)
    onset = np.argmax(energy > 0.05 * energy.max())
    assert abs(int(speech.boundaries[first]) - onset) <= TOLERANCE


@pytest.mark.parametrize("speaker", SPEAKERS[:4], ids=lambda s: s.voice)
def test_sound_resumes_where_a_pause_ends(speaker):
    require_espeak()
    speech = espeak.synthesize("Well, Anna ate eight apples.", speaker)
    energy = envelope(speech.audio)
    threshold = 0.05 * energy.max()
    pause = speech.phonemes.index("sil", 1)
    start, end = speech.boundaries[pause : pause + 2]
    assert end - start > 2 * TOLERANCE
    quiet = start + np.argmax(energy[start:] < threshold)
    resume = quiet + np.argmax(energy[quiet:] > threshold)
    assert quiet < end and abs(int(resume) - int(end)) <= TOLERANCE


def test_speech_depends_on_the_speaker_not_on_what_came_before():
    require_espeak()
    text = "The quiet farmer found three coins."
    first = espeak.synthesize(text, SPEAKERS[0])
    other = espeak.synthesize(text, SPEAKERS[1])
    again = espeak.synthesize(text, SPEAKERS[0])
    assert not np.array_equal(first.audio[:1000], other.audio[:1000])
    np.testing.assert_array_equal(first.audio, again.audio)


def test_noise_follows_the_seed_not_the_clock():
    require_espeak()
    breathy = espeak.Speaker("en+f3")  # its breath noise is random
    first = espeak.synthesize("Hello there.", breathy, seed=0)
    time.sleep(1.1)  # `espeak_Initialize` seeds with the time in seconds
    again = espeak.synthesize("Hello there.", breathy, seed=0)
    other = espeak.synthesize("Hello there.", breathy, seed=1)
    np.testing.assert_array_equal(first.audio, again.audio)
    assert not np.array_equal(first.audio, other.audio)


def test_frame_labels_take_the_majority_phoneme():
    segments = np.array([[0, 0, 1000], [5, 1000, 1300]])
    # 640 samples a frame: 0..639 all 0; 640..1279 360 of 0, 280 of 5.
    np.testing.assert_array_equal(frame_labels(segments, 25), [0, 0, 5])


def test_frame_labels_length(corpora):
    for utterance in load_speech_corpus(corpora[0], "test"):
        labels = frame_labels(utterance.segments, frame_rate=25)
        assert len(labels) == math.ceil(len(utterance.audio) / 640)


@pytest.mark.parametrize(
    "voice, hint",
    [("en-uss+m1", "Did you mean 'en-us'"), ("en+m33", "Did you mean 'm3'")],
)
def test_unknown_voice_is_a_clear_error(voice, hint):
    require_espeak()
    with pytest.raises(ConfigError, match=hint):
        espeak.synthesize("Hello.", espeak.Speaker(voice))


def test_tool_refuses_to_write_inside_the_repository(capsys):
    with pytest.raises(SystemExit):
        make_espeak_corpus.main(["--out", str(REPO_ROOT / "speech")])
    assert "outside the repository" in capsys.readouterr().err
    assert not (REPO_ROOT / "speech").exists()
