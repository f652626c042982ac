"""Speech in latent space (paper section 4.3): clips from a corpus folder,
training the `SpeechVQVAE` on random crops, and its measurements.

Two kinds of folder hold speech:

- an eSpeak NG corpus (`tools/make_espeak_corpus.py`, with `corpus.json`):
  synthetic English with the phoneme of every sample, so the phoneme
  probe can be measured;
- a clip folder with a `clips.tsv` (`file`, `speaker` and `split` columns,
  as `../shared/datasets/speech_fillets/build.sh OUT` writes): real
  recordings in WAV, FLAC or Ogg Vorbis at any rate, mono or stereo.

Either loads as `SpeechClips` at the model's rate: stereo clips are
averaged to mono, other rates resampled, and samples clipped to [-1, 1]
(the Fish Fillets recordings are hot and go a little over full scale);
`load_speech_clips` counts what it converted in `SpeechClips.conversions`.
"""

import collections
import csv
import dataclasses
import json
import math
import time
from pathlib import Path

import keras
import numpy as np

from keras_vqvae.audio import mu_law_decode
from keras_vqvae.audio import mu_law_encode
from keras_vqvae.audio import resample
from keras_vqvae.audio import write_wav
from keras_vqvae.data.speech_corpus import CORPUS_FILE
from keras_vqvae.data.speech_corpus import frame_labels
from keras_vqvae.data.speech_corpus import load_speech_corpus
from keras_vqvae.errors import DataError
from keras_vqvae.models import SpeechVQVAE
from keras_vqvae.precision import training_policy
from keras_vqvae.presets import PresetFolder
from keras_vqvae.visualization import save_spectrograms

SAMPLE_RATE = 16000
CLIPS_FILE = "clips.tsv"


@dataclasses.dataclass(frozen=True)
class SpeechClips:
    """The clips of one split of a speech folder.

    Attributes:
        audio: list of float32 `(T,)` arrays in [-1, 1] at `sample_rate`.
        speakers: int array `(N,)`: indices into `speaker_names`.
        speaker_names: tuple of str, the folder's speakers (both splits,
            so ids agree between splits).
        sample_rate: int.
        segments: None, or one int array `(num_segments, 3)` per clip of
            phoneme id, start and end sample (eSpeak corpora).
        phonemes: None, or the names of the phoneme ids.
        conversions: dict counting the clips that were downmixed,
            resampled (by original rate) or clipped.
    """

    audio: list
    speakers: np.ndarray
    speaker_names: tuple
    sample_rate: int
    segments: list = None
    phonemes: tuple = None
    conversions: dict = dataclasses.field(default_factory=dict)

    @property
    def seconds(self):
        return sum(len(a) for a in self.audio) / self.sample_rate

    def subset(self, indices):
        """The clips at `indices`, same speakers and rate."""
        indices = np.asarray(indices, int)
        return dataclasses.replace(
            self,
            audio=[self.audio[i] for i in indices],
            speakers=self.speakers[indices],
            segments=(
                None
                if self.segments is None
                else [self.segments[i] for i in indices]
            ),
        )


def load_speech_clips(source, split="train", sample_rate=SAMPLE_RATE):
    """Reads one split of an eSpeak corpus or a `clips.tsv` folder.

    Args:
        source: str or `Path`, the folder.
        split: `"train"` or `"test"`.
        sample_rate: the rate to return the audio at.

    Returns:
        `SpeechClips`.
    """
    folder = Path(source)
    if (folder / CORPUS_FILE).is_file():
        return _corpus_clips(folder, split, sample_rate)
    if (folder / CLIPS_FILE).is_file():
        return _listed_clips(folder, split, sample_rate)
    raise DataError(
        f"{source} is not a speech folder: it has neither {CORPUS_FILE} (an "
        "eSpeak corpus: tools/make_espeak_corpus.py) nor "
        f"{CLIPS_FILE} (clips with file, speaker and split columns: "
        "bash ../shared/datasets/speech_fillets/build.sh OUT)."
    )


def _corpus_clips(folder, split, sample_rate):
    info = _read_json(folder / CORPUS_FILE)
    names = [speaker["voice"] for speaker in info["speakers"]]
    if len(set(names)) != len(names):  # one voice at several pitches
        names = [f"{name}#{i}" for i, name in enumerate(names)]
    utterances = load_speech_corpus(folder, split)
    rate = int(info["sample_rate"])
    scale = sample_rate / rate
    return SpeechClips(
        audio=[
            resample(u.audio.astype("float32") / 32768.0, rate, sample_rate)
            for u in utterances
        ],
        speakers=np.array([u.speaker for u in utterances], int),
        speaker_names=tuple(names),
        sample_rate=sample_rate,
        segments=[_scaled_segments(u.segments, scale) for u in utterances],
        phonemes=tuple(info["phonemes"]),
        conversions=(
            {f"resampled from {rate} Hz": len(utterances)}
            if rate != sample_rate
            else {}
        ),
    )


def _scaled_segments(segments, scale):
    if scale == 1:
        return segments
    scaled = segments.copy()
    scaled[:, 1:] = np.round(segments[:, 1:] * scale)
    return scaled


def _read_json(path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"Cannot read {path} as JSON: {e}") from e


def _listed_clips(folder, split, sample_rate):
    import soundfile

    rows = _clip_rows(folder / CLIPS_FILE)
    names = sorted({row["speaker"] for row in rows})
    chosen = [row for row in rows if row["split"] == split]
    if not chosen:
        raise DataError(
            f"{folder / CLIPS_FILE} lists no clips of the {split!r} split "
            f"(splits found: {sorted({row['split'] for row in rows})})."
        )
    conversions = collections.Counter()
    audio = []
    for row in chosen:
        path = folder / row["file"]
        try:
            samples, rate = soundfile.read(str(path), dtype="float32")
        except (RuntimeError, OSError, soundfile.LibsndfileError) as e:
            raise DataError(f"Cannot read {path} as audio: {e}") from e
        if samples.ndim == 2:
            samples = samples.mean(axis=1)
            conversions["downmixed to mono"] += 1
        if rate != sample_rate:
            samples = resample(samples, rate, sample_rate)
            conversions[f"resampled from {rate} Hz"] += 1
        if np.abs(samples).max(initial=0) > 1:
            samples = np.clip(samples, -1, 1)
            conversions["clipped to [-1, 1]"] += 1
        if not np.isfinite(samples).all():
            raise DataError(f"{path} holds NaN or infinite samples.")
        audio.append(samples.astype("float32"))
    return SpeechClips(
        audio=audio,
        speakers=np.array([names.index(r["speaker"]) for r in chosen], int),
        speaker_names=tuple(names),
        sample_rate=sample_rate,
        conversions=dict(conversions),
    )


def _clip_rows(path):
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    missing = {"file", "speaker", "split"} - set(rows[0] if rows else ())
    if missing:
        raise DataError(
            f"{path} needs the columns file, speaker and split; it lacks "
            f"{sorted(missing)}."
        )
    return rows


class SpeechCrops(keras.utils.PyDataset):
    """Batches of random crops of `clips` for `SpeechVQVAE.fit`.

    A clip is drawn with probability proportional to its length, then a
    crop of `crop_length` samples at a uniform offset (clips shorter than
    that are padded with silence after their end). Batch `i` of epoch `e`
    depends only on `(seed, e, i)`.
    """

    def __init__(self, clips, crop_length, batch_size, steps, seed=0):
        super().__init__()
        self.clips = clips
        self.crop_length = int(crop_length)
        self.batch_size = int(batch_size)
        self.steps = int(steps)
        self.seed = seed
        self.epoch = 0
        lengths = np.array([len(a) for a in clips.audio], float)
        self.weights = lengths / lengths.sum()

    def __len__(self):
        return self.steps

    def on_epoch_end(self):
        self.epoch += 1

    def __getitem__(self, index):
        rng = np.random.default_rng([self.seed, self.epoch, index])
        picks = rng.choice(len(self.weights), self.batch_size, p=self.weights)
        batch = np.zeros((self.batch_size, self.crop_length, 1), "float32")
        for row, pick in enumerate(picks):
            clip = self.clips.audio[pick]
            start = rng.integers(0, max(len(clip) - self.crop_length, 0) + 1)
            crop = clip[start : start + self.crop_length]
            batch[row, : len(crop), 0] = crop
        return {"audio": batch, "speakers": self.clips.speakers[picks]}


# --- Measurements ------------------------------------------------------------


def log_spectral_distance(reference, estimate, sample_rate=SAMPLE_RATE):
    """Log-spectral distance in dB between two clips of equal length.

    Power spectra over 32 ms Hann windows every 8 ms; per frame, the RMS
    over frequency of `10 log10` of their ratio (with 1e-8 added to both
    powers, about -80 dB of a full-scale sine per bin, so that silence
    against silence is 0), averaged over frames.
    """
    from scipy.signal import stft

    window = int(0.032 * sample_rate)
    kwargs = dict(nperseg=window, noverlap=window - window // 4)
    _, _, ref = stft(np.asarray(reference, "float64"), **kwargs)
    _, _, est = stft(np.asarray(estimate, "float64"), **kwargs)
    ratio = 10 * np.log10((np.abs(ref) ** 2 + 1e-8) / (np.abs(est) ** 2 + 1e-8))
    return float(np.sqrt(np.mean(ratio**2, axis=0)).mean())


def mu_law_round_trip(audio):
    """The audio through 8-bit mu-law and back: the decoder's floor."""
    return mu_law_decode(mu_law_encode(np.asarray(audio, "float32")))


def evaluation_batch(clips, count, seconds):
    """The first `seconds` of `count` clips spread over the split, as one
    equal-length batch (shorter clips padded with silence), with their
    speakers and the number of real samples of each."""
    picks = np.round(np.linspace(0, len(clips.audio) - 1, count)).astype(int)
    picks = np.unique(picks)
    length = int(seconds * clips.sample_rate)
    batch = np.zeros((len(picks), length), "float32")
    lengths = []
    for row, pick in enumerate(picks):
        clip = clips.audio[pick][:length]
        batch[row, : len(clip)] = clip
        lengths.append(len(clip))
    return batch, clips.speakers[picks], np.array(lengths), picks


def measure_reconstructions(model, clips, count=16, seconds=2.0, seed=0):
    """Encodes and regenerates (with each clip's own speaker) the start of
    `count` test clips; their log-spectral distance to the originals beside
    the 8-bit mu-law round trip's, and the generation speed.

    Returns:
        `(metrics, (originals, reconstructions, speakers))`.
    """
    batch, speakers, lengths, _ = evaluation_batch(clips, count, seconds)
    codes = model.encode(batch)
    started = time.perf_counter()
    generated = _decode_per_speaker(model, codes, speakers, seed)
    elapsed = time.perf_counter() - started
    generated = generated[:, : batch.shape[1]]

    def mean_distance(estimates):
        return float(
            np.mean(
                [
                    log_spectral_distance(r[:n], e[:n], model.sample_rate)
                    for r, e, n in zip(batch, estimates, lengths)
                ]
            )
        )

    metrics = {
        "log_spectral_distance_db": round(mean_distance(generated), 3),
        "mu_law_round_trip_lsd_db": round(
            mean_distance([mu_law_round_trip(a) for a in batch]), 3
        ),
        "clips": int(len(batch)),
        "seconds_per_clip": seconds,
        "generation_real_time_factor": round(
            batch.size / model.sample_rate / elapsed, 4
        ),
    }
    return metrics, (batch, generated, speakers)


def _decode_per_speaker(model, codes, speakers, seed):
    """`model.decode` takes one speaker per call: one call per speaker."""
    out = np.zeros((len(codes), codes.shape[1] * model.hop_length), "float32")
    for speaker in np.unique(speakers):
        rows = np.flatnonzero(speakers == speaker)
        out[rows] = model.decode(codes[rows], int(speaker), seed=seed)
    return out


def log_mel_features(audio, sample_rate=SAMPLE_RATE, bands=40):
    """A clip's speaker features: the mean and standard deviation over
    time of its log-mel spectrum (25 ms windows every 10 ms), `(2 * bands,)`.
    """
    from scipy.signal import stft

    window = int(0.025 * sample_rate)
    _, _, spectrum = stft(
        np.asarray(audio, "float64"),
        nperseg=window,
        noverlap=window - int(0.010 * sample_rate),
        nfft=512,
    )
    mel = _mel_filters(sample_rate, 512, bands) @ np.abs(spectrum) ** 2
    log_mel = np.log(mel + 1e-8)
    return np.concatenate([log_mel.mean(1), log_mel.std(1)]).astype("float32")


def _mel_filters(sample_rate, fft_size, bands):
    """Triangular filters on the mel scale, `(bands, fft_size // 2 + 1)`."""

    def mel(hz):
        return 2595 * np.log10(1 + hz / 700)

    edges = 700 * (
        10 ** (np.linspace(0, mel(sample_rate / 2), bands + 2) / 2595) - 1
    )
    bins = np.linspace(0, sample_rate / 2, fft_size // 2 + 1)
    low, centre, high = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins - low) / (centre - low)
    falling = (high - bins) / (high - centre)
    return np.maximum(0, np.minimum(rising, falling))


class SpeakerClassifier:
    """Who is speaking: softmax regression on `log_mel_features`, fitted on
    training clips (standardised features, Adam, weight decay). Used to
    judge speaker conversion: a converted clip should be heard as its
    target speaker."""

    def __init__(self, num_speakers, sample_rate=SAMPLE_RATE, seed=0):
        self.num_speakers = num_speakers
        self.sample_rate = sample_rate
        self.seed = seed

    def features(self, clips):
        return np.stack([log_mel_features(a, self.sample_rate) for a in clips])

    def fit(self, clips, speakers, epochs=200):
        x = self.features(clips)
        self.mean, self.scale = x.mean(0), x.std(0) + 1e-6
        keras.utils.set_random_seed(self.seed)
        self.model = keras.Sequential(
            [
                keras.Input((x.shape[1],)),
                keras.layers.Dense(
                    self.num_speakers,
                    kernel_regularizer=keras.regularizers.L2(1e-3),
                ),
            ]
        )
        self.model.compile(
            keras.optimizers.Adam(1e-2),
            keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        self.model.fit(
            (x - self.mean) / self.scale,
            np.asarray(speakers),
            epochs=epochs,
            batch_size=256,
            verbose=0,
        )
        return self

    def predict(self, clips):
        x = (self.features(clips) - self.mean) / self.scale
        return self.model.predict(x, verbose=0).argmax(1)


def conversion_targets(clips, count=4):
    """The `count` speakers with the most training audio: the targets of
    the conversion measurements (minor voices have too little to learn)."""
    seconds = np.zeros(len(clips.speaker_names))
    np.add.at(seconds, clips.speakers, [len(a) for a in clips.audio])
    return np.argsort(-seconds, kind="stable")[:count]


def measure_conversion(
    model,
    classifier,
    clips,
    targets,
    count=16,
    seconds=2.0,
    seed=0,
    probe=None,
):
    """Converts the start of `count` test clips to another of `targets`
    (the next one after the clip's own speaker, cyclically) and measures:

    * identity: the share of converted clips the speaker classifier hears
      as their target, beside its accuracy on the originals and on the
      reconstructions (each clip's own speaker);
    * content: the share of codes the converted clip re-encodes to, that
      equal the source clip's codes; with a `PhonemeProbe` (clips with
      phoneme timings), its accuracy on the converted clips' codes beside
      the originals'.

    Returns:
        `(metrics, (converted, target ids, picks))`; `picks` are the clips'
        indices in `clips`.
    """
    batch, speakers, lengths, picks = evaluation_batch(clips, count, seconds)
    codes = model.encode(batch)
    targets = np.asarray(targets)
    position = {int(t): i for i, t in enumerate(targets)}
    chosen = np.array(
        [
            targets[(position.get(int(s), -1) + 1) % len(targets)]
            for s in speakers
        ]
    )
    converted = _decode_per_speaker(model, codes, chosen, seed)
    reconstructed = _decode_per_speaker(model, codes, speakers, seed)

    def heard(audio):
        return classifier.predict([a[:n] for a, n in zip(audio, lengths)])

    converted_codes = model.encode(converted)
    kept = converted_codes == codes
    metrics = {
        "target_speakers": [clips.speaker_names[t] for t in targets],
        "classifier_accuracy_on_originals": float(
            np.mean(heard(batch) == speakers)
        ),
        "classifier_accuracy_on_reconstructions": float(
            np.mean(heard(reconstructed) == speakers)
        ),
        "converted_heard_as_target": float(np.mean(heard(converted) == chosen)),
        "converted_heard_as_source": float(
            np.mean(heard(converted) == speakers)
        ),
        "codes_kept_by_conversion": float(kept.mean()),
        "clips": int(len(batch)),
        "seconds_per_clip": seconds,
    }
    if probe is not None:
        labels = [
            frame_labels(clips.segments[pick], 1, model.hop_length)
            for pick in picks
        ]
        valid = -(-lengths // model.hop_length)  # codes of real samples

        def probed(all_codes):
            return probe.accuracy(
                np.concatenate([c[:n] for c, n in zip(all_codes, valid)]),
                np.concatenate([label[:n] for label, n in zip(labels, valid)]),
            )

        metrics["phoneme_probe_on_originals"] = probed(codes)
        metrics["phoneme_probe_on_converted"] = probed(converted_codes)
    return metrics, (converted, chosen, picks)


def code_phonemes(model, clips):
    """Per clip: its codes and the phoneme covering most of each code's
    samples (`frame_labels` with one frame per `hop_length` samples)."""
    pairs = []
    for audio, segments in zip(clips.audio, clips.segments):
        codes = model.encode(audio)
        labels = frame_labels(segments, 1, sample_rate=model.hop_length)
        size = min(len(codes), len(labels))
        pairs.append((codes[:size], labels[:size]))
    return pairs


class PhonemeProbe:
    """The paper's probe: each code is mapped to the phoneme it most often
    covers on the training clips (codes never seen there answer the most
    frequent phoneme)."""

    def __init__(self, model, train):
        _check_timings(train)
        self.phonemes = train.phonemes
        self.counts = np.zeros((model.num_embeddings, len(train.phonemes)), int)
        for codes, labels in code_phonemes(model, train):
            np.add.at(self.counts, (codes, labels), 1)
        self.most_frequent = int(self.counts.sum(0).argmax())
        seen = self.counts.sum(1) > 0
        self.mapping = np.where(seen, self.counts.argmax(1), self.most_frequent)

    def accuracy(self, codes, labels):
        return float(np.mean(self.mapping[codes] == labels))


def _check_timings(clips):
    if clips.segments is None:
        raise DataError(
            "The phoneme probe needs phoneme timings: an eSpeak corpus "
            "(tools/make_espeak_corpus.py); this folder has none."
        )


def phoneme_probe(model, train, test, probe=None):
    """`PhonemeProbe` fitted on `train` (or `probe`, fitted already),
    measured on `test` against always answering the most frequent
    training phoneme.

    Returns:
        dict of the accuracy, the baseline, the phonemes present in the
        test labels and the codes used on the training clips.
    """
    probe = probe or PhonemeProbe(model, train)
    _check_timings(test)
    pairs = code_phonemes(model, test)
    codes = np.concatenate([c for c, _ in pairs])
    labels = np.concatenate([label for _, label in pairs])
    return {
        "accuracy": probe.accuracy(codes, labels),
        "most_frequent_phoneme_accuracy": float(
            np.mean(labels == probe.most_frequent)
        ),
        "most_frequent_phoneme": probe.phonemes[probe.most_frequent],
        "phonemes_in_test_labels": int(len(np.unique(labels))),
        "codes_used_on_training_clips": int((probe.counts.sum(1) > 0).sum()),
        "test_codes": int(len(codes)),
        "codes_per_second": model.sample_rate / model.hop_length,
    }


def _file_name(speaker):
    return "".join(c if c.isalnum() else "_" for c in speaker)


def write_speech_samples(model, folder, audio, speaker, targets, seed=0):
    """The model card's sound samples for one clip: `original.wav`,
    `reconstruction.wav` (its own speaker), `converted_to_<speaker>.wav` for
    each other target, and `spectrograms.png` of all of them.

    Returns:
        the names of the files written.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    codes = model.encode(audio)
    clips = {"original": np.asarray(audio, "float32")}
    clips[f"reconstruction ({model.speakers[speaker]})"] = model.decode(
        codes, speaker, seed=seed
    )
    for target in targets:
        if target != speaker:
            clips[f"converted to {model.speakers[target]}"] = model.decode(
                codes, int(target), seed=seed
            )
    names = []
    for label, clip in clips.items():
        name = label.split(" (")[0]
        if label.startswith("converted"):
            name = "converted_to_" + _file_name(label[len("converted to ") :])
        write_wav(folder / f"{name}.wav", clip[: len(audio)], model.sample_rate)
        names.append(f"{name}.wav")
    save_spectrograms(
        folder / "spectrograms.png",
        [clip[: len(audio)] for clip in clips.values()],
        list(clips),
        model.sample_rate,
    )
    return names + ["spectrograms.png"]


def _write_samples(model, folder, clips, targets, seconds, seed):
    batch, speakers, lengths, _ = evaluation_batch(clips, 1, seconds)
    write_speech_samples(
        model, folder, batch[0][: lengths[0]], int(speakers[0]), targets, seed
    )


# --- Training ----------------------------------------------------------------


def train_speech_vqvae(
    source,
    preset_dir,
    steps,
    work_dir,
    crop_seconds=0.5,
    batch_size=8,
    learning_rate=3e-4,
    checkpoint_every=500,
    seed=0,
    eval_clips=16,
    eval_seconds=2.0,
    precision="auto",
    verbose=1,
    reproduce=None,
    log=print,
    **config,
):
    """Trains a `SpeechVQVAE` on a speech folder and writes a preset.

    Trains on random crops of the train clips (`SpeechCrops`) with the
    speakers as the decoder's global condition; checkpoints to
    `work_dir/backup` every `checkpoint_every` steps, and the same command
    resumes from the last one. Then measures on the test clips:
    `measure_reconstructions`, and on eSpeak corpora the `phoneme_probe`;
    writes them to the preset's `metadata.json` (`test_metrics`).

    Args:
        source: a speech folder (see the module).
        preset_dir: the preset folder to write.
        steps: optimizer steps (rounded up to whole checkpoints).
        work_dir: folder of checkpoints and the step log.
        crop_seconds: length of each training crop.
        batch_size, learning_rate: of Adam.
        checkpoint_every: steps between checkpoints.
        seed: of the weights, crops and draws.
        eval_clips, eval_seconds: test clips regenerated, and the seconds
            of each (WaveNet generation is slow on a CPU).
        precision: as for `keras_vqvae.workflows.train_vqvae`.
        verbose: Keras progress-bar verbosity.
        reproduce: the command line, for the metadata.
        log: function that prints progress lines.
        **config: `SpeechVQVAE` arguments (the speakers come from the data).

    Returns:
        the metadata dict written to the preset.
    """
    from keras_vqvae.workflows import FiniteBackupAndRestore
    from keras_vqvae.workflows import _float32_copy
    from keras_vqvae.workflows import _learning_rate_history
    from keras_vqvae.workflows import _StepLogger
    from keras_vqvae.workflows import check_final_loss

    started = time.time()
    keras.utils.set_random_seed(seed)
    rate = config.pop("sample_rate", SAMPLE_RATE)
    train, test = (
        load_speech_clips(source, s, rate) for s in ("train", "test")
    )
    for split, clips in (("train", train), ("test", test)):
        log(
            f"{split}: {len(clips.audio)} clips, {clips.seconds / 3600:.2f} h"
            + "".join(f"; {n} {what}" for what, n in clips.conversions.items())
        )
    policy, reason = training_policy(precision)
    log(f"precision: {policy} ({reason})")
    model = SpeechVQVAE(
        sample_rate=rate,
        speakers=train.speaker_names,
        seed=seed,
        dtype=policy,
        **config,
    )
    crop = model.hop_length * max(
        1, round(crop_seconds * rate / model.hop_length)
    )
    model.compile(optimizer=keras.optimizers.Adam(learning_rate))
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    epochs = math.ceil(steps / checkpoint_every)
    history = model.fit(
        SpeechCrops(train, crop, batch_size, checkpoint_every, seed),
        epochs=epochs,
        verbose=verbose,
        callbacks=[
            FiniteBackupAndRestore(
                str(work_dir / "backup"), log=log, delete_checkpoint=False
            ),
            keras.callbacks.TerminateOnNaN(),
            _StepLogger(work_dir / "train_log.jsonl", checkpoint_every),
        ],
    )
    check_final_loss(history, work_dir)
    model = _float32_copy(model)
    reconstruction, _ = measure_reconstructions(
        model, test, eval_clips, eval_seconds, seed
    )
    log(f"reconstruction (test): {reconstruction}")
    test_metrics = {"reconstruction": reconstruction}
    probe = None
    if train.segments is not None:
        probe = PhonemeProbe(model, train)
        test_metrics["phoneme_probe"] = phoneme_probe(model, train, test, probe)
        log(f"phoneme probe (test): {test_metrics['phoneme_probe']}")
    targets = conversion_targets(train) if len(train.speaker_names) > 1 else []
    if len(targets):
        classifier = SpeakerClassifier(len(train.speaker_names), rate, seed)
        classifier.fit(train.audio, train.speakers)
        test_metrics["speaker_conversion"], _ = measure_conversion(
            model,
            classifier,
            test,
            targets,
            eval_clips,
            eval_seconds,
            seed,
            probe,
        )
        log(f"speaker conversion (test): {test_metrics['speaker_conversion']}")
    _write_samples(model, preset_dir, test, targets, eval_seconds, seed)
    metadata = {
        "modality": "speech",
        "dataset": Path(source).name,
        "sample_rate": rate,
        "speakers": list(train.speaker_names),
        "codes_per_second": rate / model.hop_length,
        "num_embeddings": model.num_embeddings,
        "training": {
            "steps": epochs * checkpoint_every,
            "batch_size": batch_size,
            "crop_samples": crop,
            "learning_rate": learning_rate,
            **_learning_rate_history(work_dir / "train_log.jsonl"),
            "seed": seed,
            "precision": policy,
            "train_clips": len(train.audio),
            "train_hours": round(train.seconds / 3600, 3),
            "wall_time_s_this_run": round(time.time() - started, 1),
            "backend": keras.backend.backend(),
        },
        "test_metrics": test_metrics,
        "reproduce": reproduce,
    }
    model.save_to_preset(preset_dir, metadata=metadata)
    PresetFolder(preset_dir).write_model_card()
    return metadata
