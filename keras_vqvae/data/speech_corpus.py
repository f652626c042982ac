"""A synthetic multi-speaker English speech corpus with exact phoneme times.

`write_speech_corpus` speaks sentences with eSpeak NG (see `espeak`) in
several voices and writes a corpus folder:

- `corpus.json`: `sample_rate` (16000), the `speakers` (voice, rate,
  pitch, pitch range; all at `espeak_volume`), the `phonemes` inventory (phoneme id = index; id 0
  is `"sil"`), the `seed`, per-split counts and durations, `hours`, the
  `command` that wrote it and the `espeak_ng_version`;
- `train.npz` and `test.npz`: every utterance's int16 samples concatenated
  in `audio`, with `offsets` (N + 1: utterance `i` is
  `audio[offsets[i]:offsets[i + 1]]`), `speakers` (N), `texts` (N), and its
  phoneme `segments` concatenated (int32 rows of phoneme id, start, end,
  in samples from the utterance start), with `segment_offsets` (N + 1).

The split is by utterance and every speaker is in both. The same sentences,
speakers and seed give byte-identical files. `load_speech_corpus` reads a
split back; `frame_labels` turns segments into one phoneme per frame.

Example:

```python
texts = generate_sentences(200, seed=0)
write_speech_corpus("speech_corpus", texts, default_speakers(8), seed=0)
utterances = load_speech_corpus("speech_corpus", "train")
labels = frame_labels(utterances[0].segments, frame_rate=25)
```
"""

import dataclasses
import re
from pathlib import Path

import numpy as np

from keras_vqvae.data.arrays import concatenation_offsets
from keras_vqvae.data.espeak import SAMPLE_RATE
from keras_vqvae.data.espeak import SILENCE
from keras_vqvae.data.espeak import VOLUME
from keras_vqvae.data.espeak import Speaker
from keras_vqvae.data.espeak import espeak_version
from keras_vqvae.data.espeak import synthesize
from keras_vqvae.errors import ConfigError
from keras_vqvae.errors import DataError
from keras_vqvae.files import write_json
from keras_vqvae.files import write_npz

SPLITS = ("train", "test")
CORPUS_FILE = "corpus.json"

# The phonemes eSpeak NG's `en` and `en-us` voices speak in the built-in
# sentences, as `espeak.phoneme_label` names them; ids are the indices.
# Phonemes other texts bring in get the ids after these, in sorted order.
PHONEMES = (
    SILENCE,
    *(
        "0 3 3: ; @ @2 @L A: A@ D E I I# I2 N O2 O: O@ OI S T U V Z a a# aI "
        "aI@ aU aa b d dZ e@ eI f g h i i: i@3 j k l m n o@ oU p r r- s t "
        "t# t2 tS u: v w z"
    ).split(),
)

SPEAKERS = (
    Speaker("en-us+m1", rate=165, pitch=45, pitch_range=50),
    Speaker("en+f3", rate=175, pitch=60, pitch_range=55),
    Speaker("en-us+f1", rate=185, pitch=55, pitch_range=45),
    Speaker("en+m3", rate=155, pitch=40, pitch_range=60),
    Speaker("en-us+m7", rate=170, pitch=35, pitch_range=40),
    Speaker("en+f4", rate=190, pitch=65, pitch_range=50),
    Speaker("en-us+f2", rate=160, pitch=50, pitch_range=65),
    Speaker("en+m2", rate=180, pitch=45, pitch_range=45),
    Speaker("en-us+m4", rate=195, pitch=40, pitch_range=55),
    Speaker("en+f1", rate=165, pitch=55, pitch_range=60),
    Speaker("en-us+f4", rate=150, pitch=60, pitch_range=50),
    Speaker("en+m5", rate=185, pitch=50, pitch_range=40),
    Speaker("en-us+m2", rate=175, pitch=55, pitch_range=60),
    Speaker("en+f2", rate=160, pitch=45, pitch_range=55),
    Speaker("en-us+f5", rate=170, pitch=65, pitch_range=45),
    Speaker("en+m6", rate=190, pitch=35, pitch_range=50),
)

# A small grammar of common words, chosen to give every English phoneme.
TEMPLATES = (
    "the {adjective} {noun} {past} the {noun} {preposition} the {noun}.",
    "{name} {past} {number} {adjective} {plural} {time}.",
    "did the {noun} {verb} the {adjective} {noun}?",
    "{pronoun} {modal} {verb} the {plural} {adverb}.",
    "please {verb} the {adjective} {noun} {preposition} the {noun}.",
    "my {noun} and {name} {past} the {plural} {time}.",
    "why did {name} {verb} the {noun} {preposition} the {noun}?",
    "the {plural} were {adjective} {time}, but the {noun} was {adjective}.",
    "{name} thinks that the {noun} is {adjective}.",
    "there are {number} {adjective} {plural} {preposition} the {noun}.",
)
WORDS = {
    "name": "Anna Peter Maria John Lucy George Oliver Sophie Charles Judy "
    "Victor Rachel Thomas Helen Zoe Martin Grace Joshua Nora Hugo",
    "noun": "dog cat house garden teacher window bridge river mountain "
    "church book chair table doctor farmer village kitchen bottle orange "
    "picture boat horse machine letter engine garage treasure jacket "
    "mother brother father sister baby bird flower tree road train cup "
    "shoe clock key king queen judge voice coin island cloud fish wheel "
    "television cushion beach",
    "plural": "dogs cats houses children apples boxes shoes birds flowers "
    "cars stories friends students windows mountains questions pictures "
    "teachers noises leaves women toys thoughts sheep pages",
    "adjective": "big small old young happy quiet loud bright dark green "
    "yellow purple warm cold heavy clever lazy strange beautiful tiny huge "
    "soft smooth rough thick thin usual pleasant angry careful busy "
    "famous fresh clean empty",
    "past": "saw found bought took washed painted carried watched pushed "
    "pulled opened closed cleaned fixed visited measured enjoyed caught "
    "kept chose brought drew loved moved changed joined reached followed "
    "threw showed",
    "verb": "see find buy take wash paint carry watch push pull open close "
    "clean fix visit measure enjoy catch keep choose bring draw love move "
    "change join reach follow throw show",
    "adverb": "quickly slowly quietly happily often again together "
    "carefully outside yesterday today",
    "preposition": "in on near behind under above beside through across "
    "into over around with",
    "time": "this morning|last night|every Thursday|in the evening|on "
    "Sunday|at noon|after lunch|before dawn|in June|next year",
    "number": "two three four five six seven eight nine ten twelve twenty",
    "pronoun": "I you we they he she",
    "modal": "can could will would should might must",
}
_SLOT = re.compile(r"\{(\w+)\}")


@dataclasses.dataclass(frozen=True)
class CorpusUtterance:
    """One utterance of a speech corpus split.

    Attributes:
        audio: int16 array `(num_samples,)` at 16 kHz.
        speaker: int, the index into `corpus.json`'s `speakers`.
        text: str, what was spoken.
        segments: int32 array `(num_segments, 3)`: phoneme id, start and end
            sample of each phoneme, in order, covering `audio` exactly.
    """

    audio: np.ndarray
    speaker: int
    text: str
    segments: np.ndarray


def default_speakers(count=8):
    """The first `count` of the built-in `SPEAKERS` (16 in all)."""
    if not 1 <= count <= len(SPEAKERS):
        raise ConfigError(
            f"The number of speakers must be in [1, {len(SPEAKERS)}]. "
            f"Received: count={count}"
        )
    return list(SPEAKERS[:count])


def generate_sentences(count, seed=0):
    """`count` sentences from the built-in grammar, the same for a seed."""
    rng = np.random.default_rng([seed, 0])
    words = {slot: _slot_words(text) for slot, text in WORDS.items()}

    def fill(match):
        choices = words[match.group(1)]
        return choices[rng.integers(len(choices))]

    sentences = []
    for _ in range(count):
        template = TEMPLATES[rng.integers(len(TEMPLATES))]
        sentence = _SLOT.sub(fill, template)
        sentences.append(sentence[0].upper() + sentence[1:])
    return sentences


def _slot_words(text):
    return text.split("|") if "|" in text else text.split()


def read_sentences(path):
    """The non-empty lines of the text file `path`, stripped."""
    if not Path(path).is_file():
        raise DataError(f"No text file {path}: it does not exist.")
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    sentences = [line.strip() for line in lines if line.strip()]
    if not sentences:
        raise DataError(f"No sentences in {path}: it holds no text lines.")
    return sentences


def write_speech_corpus(
    out, texts, speakers, seed=0, test_fraction=0.1, command=None
):
    """Speaks `texts` and writes the corpus folder `out` (see the module).

    Utterance `i` is `texts[i]` spoken by `speakers[i % len(speakers)]`,
    with eSpeak's noise generator seeded with `i`; the test split takes `test_fraction` of each speaker's utterances
    (at least one), drawn with `seed`.

    Args:
        out: str or `Path`, the folder to write (created if needed).
        texts: list of str, one utterance each.
        speakers: list of `espeak.Speaker`.
        seed: int, for the split.
        test_fraction: float in (0, 1).
        command: None or str, the command line to record in `corpus.json`.

    Returns:
        The `corpus.json` content, a dict.
    """
    speaker_ids = np.arange(len(texts)) % len(speakers)
    is_test = _test_mask(speaker_ids, len(speakers), test_fraction, seed)
    speeches = [
        synthesize(text, speakers[speaker], seed=index)
        for index, (text, speaker) in enumerate(zip(texts, speaker_ids))
    ]
    phonemes = _inventory(speeches)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    splits = {}
    for split, mask in zip(SPLITS, (~is_test, is_test)):
        chosen = np.flatnonzero(mask)
        arrays = _split_arrays(
            [speeches[i] for i in chosen],
            speaker_ids[chosen],
            [texts[i] for i in chosen],
            phonemes,
        )
        write_npz(out / f"{split}.npz", arrays)
        splits[split] = _split_summary(arrays)
    info = {
        "sample_rate": SAMPLE_RATE,
        "speakers": [dataclasses.asdict(speaker) for speaker in speakers],
        "phonemes": phonemes,
        "seed": seed,
        "test_fraction": test_fraction,
        "utterances": len(texts),
        "hours": sum(s["seconds"] for s in splits.values()) / 3600,
        "splits": splits,
        "command": command,
        "espeak_ng_version": espeak_version(),
        "espeak_volume": VOLUME,
    }
    write_json(out / CORPUS_FILE, info)
    return info


def _test_mask(speaker_ids, num_speakers, test_fraction, seed):
    """Marks `test_fraction` of each speaker's utterances for testing."""
    if not 0 < test_fraction < 1:
        raise ConfigError(
            "test_fraction must be in (0, 1). "
            f"Received: test_fraction={test_fraction}"
        )
    if len(speaker_ids) < 2 * num_speakers:
        raise ConfigError(
            "Every speaker needs an utterance in each split: give at least "
            f"2 * speakers = {2 * num_speakers} utterances. Received: "
            f"utterances={len(speaker_ids)}, speakers={num_speakers}"
        )
    rng = np.random.default_rng([seed, 1])
    is_test = np.zeros(len(speaker_ids), bool)
    for speaker in range(num_speakers):
        own = rng.permutation(np.flatnonzero(speaker_ids == speaker))
        count = min(max(round(test_fraction * len(own)), 1), len(own) - 1)
        is_test[own[:count]] = True
    return is_test


def _inventory(speeches):
    """`PHONEMES`, then any other phonemes `speeches` hold, sorted."""
    spoken = {label for speech in speeches for label in speech.phonemes}
    return list(PHONEMES) + sorted(spoken - set(PHONEMES))


def _split_arrays(speeches, speaker_ids, texts, phonemes):
    ids = {name: index for index, name in enumerate(phonemes)}
    segments = [
        np.stack(
            [
                [ids[label] for label in speech.phonemes],
                speech.boundaries[:-1],
                speech.boundaries[1:],
            ],
            axis=1,
        ).astype(np.int32)
        for speech in speeches
    ]
    empty = np.zeros((0, 3), np.int32)
    return {
        "audio": np.concatenate(
            [np.zeros(0, np.int16)] + [s.audio for s in speeches]
        ),
        "offsets": concatenation_offsets([len(s.audio) for s in speeches]),
        "speakers": np.asarray(speaker_ids, np.int32),
        "texts": np.array(texts, dtype=str),
        "segments": np.concatenate([empty] + segments),
        "segment_offsets": concatenation_offsets([len(s) for s in segments]),
    }


def _split_summary(arrays):
    return {
        "utterances": len(arrays["speakers"]),
        "seconds": len(arrays["audio"]) / SAMPLE_RATE,
        "segments": len(arrays["segments"]),
    }


def load_speech_corpus(path, split="train"):
    """Reads a split of a corpus folder that `write_speech_corpus` wrote.

    Args:
        path: str or `Path`, the corpus folder.
        split: `"train"` or `"test"`.

    Returns:
        A list of `CorpusUtterance`; phoneme ids index `corpus.json`'s
        `phonemes`.
    """
    file = Path(path) / f"{split}.npz"
    if not file.is_file():
        raise DataError(
            f"No speech corpus split {split!r} in {path}: {file} does not "
            "exist. Write one with tools/make_espeak_corpus.py."
        )
    with np.load(file, allow_pickle=False) as arrays:
        arrays = dict(arrays)
    offsets, segment_offsets = arrays["offsets"], arrays["segment_offsets"]
    return [
        CorpusUtterance(
            audio=arrays["audio"][offsets[i] : offsets[i + 1]],
            speaker=int(arrays["speakers"][i]),
            text=str(arrays["texts"][i]),
            segments=arrays["segments"][
                segment_offsets[i] : segment_offsets[i + 1]
            ],
        )
        for i in range(len(arrays["speakers"]))
    ]


def frame_labels(segments, frame_rate, sample_rate=SAMPLE_RATE):
    """The phoneme of each frame: the one covering most of its samples.

    Frame `j` holds the samples `n` with `n * frame_rate // sample_rate ==
    j`; there are `ceil(num_samples * frame_rate / sample_rate)` frames, the
    last one possibly shorter. Ties go to the lower phoneme id.

    Args:
        segments: int array `(num_segments, 3)` of phoneme id, start, end,
            covering samples `0` to `segments[-1, 2]` in order (as in
            `CorpusUtterance.segments`).
        frame_rate: int, frames per second, such as 25 (40 ms frames).
        sample_rate: int, the samples' rate.

    Returns:
        int32 array `(num_frames,)` of phoneme ids.
    """
    segments = np.asarray(segments)
    samples = np.repeat(segments[:, 0], segments[:, 2] - segments[:, 1])
    frames = np.arange(len(samples)) * frame_rate // sample_rate
    num_frames = -(-len(samples) * frame_rate // sample_rate)
    num_phonemes = int(samples.max(initial=0)) + 1
    counts = np.bincount(
        frames * num_phonemes + samples, minlength=num_frames * num_phonemes
    )
    return counts.reshape(num_frames, num_phonemes).argmax(1).astype(np.int32)
