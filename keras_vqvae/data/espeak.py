"""Speech from eSpeak NG, with the sample where every phoneme starts.

eSpeak NG (`libespeak-ng`, from the `espeakng-loader` wheel: the `speech`
extra) is driven through `ctypes`. It speaks at 22,050 Hz and reports a
phoneme event, with its sample position, at the start of every phoneme;
`synthesize` resamples the audio to 16 kHz, moves the positions with it,
and labels every sample: the audio before the first phoneme and eSpeak's
pauses (`_`, `_:`, `_!`, ...) are `"sil"`.

Labels are eSpeak's own phoneme mnemonics (Kirshenbaum-style ASCII, such
as `aI`, `3:`, `dZ`, `@2`) without the stress marks `'` and `,`; length
marks such as `:` stay, as they name other phonemes (`3` and `3:`).

eSpeak NG keeps synthesis state in C globals that no call resets (the pitch
flutter phase, the echo buffer, the noise generator), so one utterance
would depend on all those spoken before it. `Espeak` loads a private copy
of the library instead, and `synthesize` uses a fresh one for each
utterance, with its noise generator seeded (`espeak_Initialize` seeds it
with the clock): the same text, speaker and seed give the same samples, in
any order and in any process.

Example:

```python
speech = synthesize("The cat sat.", Speaker("en-us+f3", rate=160))
speech.audio  # int16 samples at 16 kHz
speech.phonemes  # ("sil", "D", "@2", "k", "a", "t", "s", "a", "t", "sil")
speech.boundaries  # phoneme i spans boundaries[i]:boundaries[i + 1]
```
"""

import _ctypes
import ctypes
import dataclasses
import difflib
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from keras_vqvae.errors import ConfigError

SAMPLE_RATE = 16000
ESPEAK_SAMPLE_RATE = 22050
# 16000 / 22050 = 320 / 441, the factors `resample_poly` takes.
_UP, _DOWN = 320, 441
SILENCE = "sil"
STRESS_MARKS = "',"
INSTALL_HINT = (
    'pip install "keras-vqvae[speech]" (or: pip install espeakng-loader)'
)

# Constants of espeak-ng 1.52's `speak_lib.h`.
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_PHONEME_EVENTS = 0x0001
_CHARS_UTF8 = 1
_POS_CHARACTER = 1
_EVENT_LIST_TERMINATED = 0
_EVENT_PHONEME = 7
_PARAMETERS = {"rate": 1, "pitch": 3, "pitch_range": 4}
_VOLUME_PARAMETER = 2
# eSpeak speaks close to full scale (peaks of 32,600 at volume 100); at 90
# the resampling's overshoot stays below it.
VOLUME = 90
_RANGES = {"rate": (80, 450), "pitch": (0, 100), "pitch_range": (0, 100)}


class _EventId(ctypes.Union):
    _fields_ = [
        ("number", ctypes.c_int),
        ("name", ctypes.c_char_p),
        ("string", ctypes.c_char * 8),  # phoneme mnemonic, NUL-padded
    ]


class _Event(ctypes.Structure):
    """`espeak_EVENT`."""

    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),  # milliseconds
        ("sample", ctypes.c_int),  # sample index from the utterance start
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int,
    ctypes.POINTER(ctypes.c_short),
    ctypes.c_int,
    ctypes.POINTER(_Event),
)


@dataclasses.dataclass(frozen=True)
class Speaker:
    """An eSpeak NG voice with fixed speaking rate and pitch.

    Args:
        voice: str. A language with an optional voice variant, such as
            `"en-us"`, `"en+f3"` or `"en-us+m1"` (see `known_voices`).
        rate: int. Words per minute, 80 to 450 (eSpeak's default is 175).
        pitch: int. Base pitch, 0 to 100 (default 50).
        pitch_range: int. Pitch range, 0 (monotone) to 100 (default 50).
    """

    voice: str
    rate: int = 175
    pitch: int = 50
    pitch_range: int = 50

    def __post_init__(self):
        for name, (low, high) in _RANGES.items():
            value = getattr(self, name)
            if not low <= value <= high:
                raise ConfigError(
                    f"Speaker {name} must be in [{low}, {high}]. "
                    f"Received: {name}={value}"
                )


@dataclasses.dataclass(frozen=True)
class Speech:
    """One synthesised utterance, labelled phoneme by phoneme.

    Attributes:
        audio: int16 array `(num_samples,)` at `SAMPLE_RATE`.
        phonemes: tuple of str, the labels in order (`"sil"` for silence);
            two silences never follow each other.
        boundaries: int64 array `(len(phonemes) + 1,)`, increasing from 0
            to `num_samples`: phoneme `i` spans
            `audio[boundaries[i]:boundaries[i + 1]]`.
    """

    audio: np.ndarray
    phonemes: tuple
    boundaries: np.ndarray


def synthesize(text, speaker, seed=0):
    """Speaks `text` with a fresh eSpeak NG instance; returns a `Speech`.

    Args:
        text: str, UTF-8 text (numbers and abbreviations are read out).
        speaker: `Speaker`.
        seed: int, of eSpeak's noise generator (breathy voices use it).
    """
    with Espeak(seed) as espeak:
        audio, events = espeak.speak(text, speaker)
    return _to_speech(audio, events)


def phoneme_label(mnemonic):
    """The label of an eSpeak phoneme mnemonic: no stress, pauses `"sil"`."""
    if mnemonic.startswith("_"):
        return SILENCE
    return mnemonic.lstrip(STRESS_MARKS)


def espeak_version():
    """The version of the bundled libespeak-ng, such as `"1.52.0"`."""
    with Espeak() as espeak:
        return espeak.version


def known_voices():
    """`(languages, variants)`: the names a `Speaker.voice` is made of.

    The languages are the names of the voice files in eSpeak's `lang/`
    folder (`en`, `en-us`, `en-gb-x-rp`, ...: the names
    `espeak_SetVoiceByName` looks up, in lower case); the variants are the
    files in `voices/!v` (`m1`, `f3`, `klatt`, ...).
    """
    data = Path(_loader().get_data_path())
    languages = {
        p.name.lower() for p in (data / "lang").rglob("*") if p.is_file()
    }
    variants = {p.name for p in (data / "voices" / "!v").iterdir()}
    return sorted(languages), sorted(variants)


def check_voice(voice):
    """Raises `ConfigError` unless `voice` is `language[+variant]`, known."""
    language, _, variant = voice.partition("+")
    languages, variants = known_voices()
    if language not in languages:
        english = [name for name in languages if name.startswith("en")]
        raise ConfigError(
            f"Unknown eSpeak NG language in voice {voice!r}. Received: "
            f"language={language!r}.{_did_you_mean(language, languages)} "
            f"English ones: {', '.join(english)}."
        )
    if variant and variant not in variants:
        raise ConfigError(
            f"Unknown eSpeak NG voice variant in voice {voice!r}. Received: "
            f"variant={variant!r}.{_did_you_mean(variant, variants)} Some "
            "variants: m1 ... m8, f1 ... f5, klatt, klatt2, "
            f"... ({len(variants)} in all)."
        )


def _did_you_mean(name, names):
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
    return f" Did you mean {', '.join(map(repr, close))}?" if close else ""


class Espeak:
    """A private instance of libespeak-ng, speaking into arrays.

    Each instance loads its own copy of the library, so it starts from the
    library's initial state. Close it (or use it as a context manager) to
    free the library.

    Args:
        seed: int, of eSpeak's noise generator, which `espeak_Initialize`
            seeds with the clock.
    """

    def __init__(self, seed=0):
        loader = _loader()
        self._library = _load_private_copy(loader.get_library_path())
        _declare_signatures(self._library)
        rate = self._library.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS,
            0,
            loader.get_data_path().encode(),
            _INITIALIZE_PHONEME_EVENTS,
        )
        if rate != ESPEAK_SAMPLE_RATE:
            self.close()
            raise RuntimeError(
                "libespeak-ng failed to initialise: expected sample rate "
                f"{ESPEAK_SAMPLE_RATE}. Received: rate={rate}. "
                f"Reinstall it: {INSTALL_HINT}"
            )
        self._library.espeak_ng_SetRandSeed(seed)
        self._chunks = []
        self._events = []
        # Kept on the instance: the library calls it until `close`.
        self._callback = _SynthCallback(self._receive)
        self._library.espeak_SetSynthCallback(self._callback)

    @property
    def version(self):
        return self._library.espeak_Info(None).decode()

    def speak(self, text, speaker):
        """Speaks `text` as `speaker`.

        Returns:
            `(audio, events)`: int16 samples at 22,050 Hz, and a list of
            `(mnemonic, sample)` for every phoneme, in order.
        """
        check_voice(speaker.voice)
        if self._library.espeak_SetVoiceByName(speaker.voice.encode()):
            raise ConfigError(
                f"eSpeak NG cannot load voice {speaker.voice!r}. Received: "
                f"voice={speaker.voice!r}"
            )
        for name, parameter in _PARAMETERS.items():
            self._library.espeak_SetParameter(
                parameter, getattr(speaker, name), 0
            )
        self._library.espeak_SetParameter(_VOLUME_PARAMETER, VOLUME, 0)
        self._chunks, self._events = [], []
        encoded = text.encode()
        status = self._library.espeak_Synth(
            encoded, len(encoded) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8,
            None, None,
        )  # fmt: skip
        if status:
            raise RuntimeError(
                f"espeak_Synth failed. Received: status={status}, text={text!r}"
            )
        audio = np.concatenate([np.zeros(0, np.int16), *self._chunks])
        return audio, self._events

    def _receive(self, samples, num_samples, events):
        if num_samples > 0:
            chunk = np.ctypeslib.as_array(samples, (num_samples,))
            self._chunks.append(chunk.copy())
        index = 0
        while events[index].type != _EVENT_LIST_TERMINATED:
            event = events[index]
            if event.type == _EVENT_PHONEME:
                mnemonic = event.id.string.decode("utf-8", "replace")
                self._events.append((mnemonic, event.sample))
            index += 1
        return 0  # continue

    def close(self):
        if self._library is None:
            return
        self._library.espeak_Terminate()
        _ctypes.dlclose(self._library._handle)
        self._library = None

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


def _loader():
    try:
        import espeakng_loader
    except ImportError as e:
        raise ImportError(
            f"Speech synthesis needs eSpeak NG: {INSTALL_HINT}"
        ) from e
    return espeakng_loader


def _load_private_copy(path):
    """Loads a copy of the shared library at `path`, with its own globals."""
    folder = tempfile.mkdtemp(prefix="espeak-ng-")
    copy = os.path.join(folder, os.path.basename(path))
    try:
        shutil.copyfile(path, copy)
        return ctypes.CDLL(copy)
    except OSError as e:
        raise RuntimeError(
            f"Cannot load libespeak-ng from {path}: {e}. Reinstall it: "
            f"{INSTALL_HINT}"
        ) from e
    finally:
        shutil.rmtree(folder)  # the loaded mapping stays valid


def _declare_signatures(library):
    library.espeak_Initialize.argtypes = [
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_int,
    ]
    library.espeak_SetSynthCallback.argtypes = [_SynthCallback]
    library.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    library.espeak_SetParameter.argtypes = [ctypes.c_int] * 3
    library.espeak_Synth.argtypes = [
        ctypes.c_char_p,
        ctypes.c_size_t,
        ctypes.c_uint,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.c_uint,
        ctypes.c_void_p,
        ctypes.c_void_p,
    ]
    library.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
    library.espeak_Info.argtypes = [ctypes.c_void_p]
    library.espeak_Info.restype = ctypes.c_char_p


def _to_speech(audio, events):
    """Resamples to 16 kHz and labels every sample (see `Speech`)."""
    from scipy import signal

    resampled = signal.resample_poly(audio.astype(np.float64), _UP, _DOWN)
    audio = np.clip(np.round(resampled), -32768, 32767).astype(np.int16)
    labels = [SILENCE] + [phoneme_label(mnemonic) for mnemonic, _ in events]
    starts = np.array([0] + [sample for _, sample in events], np.int64)
    # Rounded to the nearest output sample.
    starts = np.minimum((starts * _UP + _DOWN // 2) // _DOWN, len(audio))
    phonemes, boundaries = _merge_segments(labels, starts, len(audio))
    return Speech(audio, phonemes, boundaries)


def _merge_segments(labels, starts, length):
    """Drops empty segments and joins silences that follow each other."""
    ends = np.append(starts[1:], length)
    phonemes, boundaries = [], []
    for label, start, end in zip(labels, starts, ends):
        if end <= start:
            continue
        if not (phonemes and label == phonemes[-1] == SILENCE):
            phonemes.append(label)
            boundaries.append(int(start))
    return tuple(phonemes), np.array(boundaries + [length], np.int64)
