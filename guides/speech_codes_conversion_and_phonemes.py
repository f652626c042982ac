"""
Title: Speech: codes, speaker conversion and phonemes
Author: keras-vqvae contributors
Date created: 2026/12/02
Last modified: 2026/12/02
Description: Train the paper's speech VQ-VAE (strided encoder, WaveNet decoder conditioned on codes and speaker) on synthetic speech with phoneme timings, convert voices, and probe what the codes know about phonemes.
Accelerator: None
"""

"""
## Introduction

Section 4.3 of the VQ-VAE paper encodes raw speech with six strided 1-D
convolutions (64x fewer codes than samples) and decodes it with a WaveNet
that sees the codes and a one-hot speaker id. Because the speaker is given
to the decoder, the codes need not carry the voice: decoding one speaker's
codes as another speaker converts the voice and keeps the words. And with
few codes per second, each code comes to stand for a sound: mapping every
code to the phoneme it most often covers reads the phonemes back far better
than chance.

In this guide you will:

- write a small multi-speaker English corpus with eSpeak NG, which knows the
  exact time of every phoneme it speaks,
- train a `SpeechVQVAE` on random crops with `model.fit`,
- encode a clip to codes, regenerate it, and convert it to another voice
  (WAV files and spectrograms),
- measure the reconstruction against an 8-bit mu-law round trip, the
  conversion with a speaker classifier, and the phoneme probe.
"""

"""
## Setup

`KERAS_VQVAE_GUIDE_QUICK=1` writes 24 utterances and trains a tiny model for
a few steps: it only checks that everything runs, and its numbers mean
nothing. The normal mode writes 400 utterances of 4 voices and trains for
3,000 steps (about an hour on a 2-core CPU). eSpeak NG comes with the
`speech` extra: `pip install "keras-vqvae[speech]"`. Outputs go to
`GUIDE_OUTPUT_DIR`, or to a new temporary folder.
"""

import os
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras

from keras_vqvae.data.speech_corpus import default_speakers
from keras_vqvae.data.speech_corpus import generate_sentences
from keras_vqvae.data.speech_corpus import write_speech_corpus
from keras_vqvae.models import SpeechVQVAE
from keras_vqvae.speech import SpeakerClassifier
from keras_vqvae.speech import SpeechCrops
from keras_vqvae.speech import conversion_targets
from keras_vqvae.speech import load_speech_clips
from keras_vqvae.speech import measure_conversion
from keras_vqvae.speech import measure_reconstructions
from keras_vqvae.speech import phoneme_probe
from keras_vqvae.speech import write_speech_samples

QUICK = os.environ.get("KERAS_VQVAE_GUIDE_QUICK") == "1"
OUTPUT_DIR = Path(
    os.environ.get("GUIDE_OUTPUT_DIR")
    or tempfile.mkdtemp(prefix="speech_codes_conversion_and_phonemes_")
)
OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
UTTERANCES, VOICES = (24, 2) if QUICK else (400, 4)
MODEL_SIZE = (
    dict(
        num_embeddings=32,
        embedding_dim=16,
        encoder_dim=32,
        residual_dim=16,
        skip_dim=16,
        num_layers=4,
        dilation_cycle=4,
        conditioning_dim=16,
        speaker_dim=8,
    )
    if QUICK
    else dict(num_embeddings=128, num_layers=20, dilation_cycle=10)
)
STEPS = 6 if QUICK else 3000
EVAL_SECONDS = 0.25 if QUICK else 2.0
keras.utils.set_random_seed(0)
print("Outputs go to", OUTPUT_DIR)

"""
## A corpus with phoneme timings

`write_speech_corpus` speaks sentences from a small grammar of common words
in several eSpeak NG voices, at 16 kHz, and records which phoneme covers
every sample. `tools/make_espeak_corpus.py` is the same on the command line.
The split is by utterance; every voice is in both splits.
"""

corpus = OUTPUT_DIR / "corpus"
write_speech_corpus(
    corpus,
    generate_sentences(UTTERANCES, seed=0),
    default_speakers(VOICES),
    seed=0,
)
train = load_speech_clips(corpus, "train")
test = load_speech_clips(corpus, "test")
print(
    f"{len(train.audio)} training clips ({train.seconds / 60:.1f} min) and "
    f"{len(test.audio)} test clips; voices: {', '.join(train.speaker_names)}; "
    f"{len(train.phonemes)} phonemes"
)

"""
`load_speech_clips` also reads real recordings: any folder with a
`clips.tsv` of `file`, `speaker` and `split` columns (such as the Fish
Fillets NG dialogue that `speech_fillets/build.sh OUT` lays out). Stereo is
averaged to mono and other rates are resampled; `SpeechClips.conversions`
counts what was converted.

## The model

`SpeechVQVAE` is the paper's model: the encoder's stride-2 convolutions give
one code per 64 samples (250 codes/s at 16 kHz); the WaveNet decoder has
dilated causal convolutions with gated units, local conditioning on the
upsampled codes and global conditioning on a speaker embedding, and predicts
each sample's 8-bit mu-law level (a 256-way softmax).
"""

model = SpeechVQVAE(speakers=train.speaker_names, seed=0, **MODEL_SIZE)
print(
    f"{model.count_params():,} parameters; {model.hop_length} samples per "
    f"code, {model.sample_rate / model.hop_length:g} codes/s"
)

"""
## Training with `fit`

The decoder is trained with teacher forcing: each position sees the true
previous samples, so a whole crop is one parallel forward pass. `SpeechCrops`
is a `keras.utils.PyDataset` of random crops (clips drawn in proportion to
their length) with their speakers. The loss is the cross-entropy of the
mu-law levels in nats per sample plus the quantiser's codebook and
commitment terms.
"""

model.compile(optimizer=keras.optimizers.Adam(3e-4))
crops = SpeechCrops(train, crop_length=4096, batch_size=8, steps=STEPS, seed=0)
model.fit(crops, epochs=1, verbose=1 if not QUICK else 2)

"""
`keras-vqvae train-speech --data CORPUS --preset-dir DIR --work-dir WORK
--steps N` does the same with checkpoints (rerun it to resume), measures
everything below on the test clips, and writes a preset folder with a model
card, sound samples and spectrograms.

## Codes, reconstruction and a converted voice

`encode` takes float samples or int16 PCM at the model's rate (or says what
it resampled); `decode(codes, speaker)` runs the WaveNet one sample at a
time, with a cached queue per layer so each new sample costs one step of
every layer (Fast WaveNet). `convert(audio, speaker)` is the two together.
`write_speech_samples` writes the original, the reconstruction, each
conversion and their spectrograms.
"""

clip = test.audio[0][: int(EVAL_SECONDS * model.sample_rate)]
codes = model.encode(clip)
print(f"{len(clip) / model.sample_rate:.2f} s of audio -> {len(codes)} codes")
targets = conversion_targets(train)
files = write_speech_samples(
    model, OUTPUT_DIR, clip, int(test.speakers[0]), targets, seed=0
)
print("wrote", ", ".join(files))

"""
## How good is it?

The reconstruction is compared with the original by log-spectral distance
(dB), beside an 8-bit mu-law round trip of the original: a decoder that
outputs mu-law levels cannot do better than that floor.
"""

reconstruction, _ = measure_reconstructions(
    model, test, count=4, seconds=EVAL_SECONDS
)
print(
    f"log-spectral distance: {reconstruction['log_spectral_distance_db']:.2f} "
    f"dB (mu-law round trip: {reconstruction['mu_law_round_trip_lsd_db']:.2f} "
    f"dB); generation at {reconstruction['generation_real_time_factor']:.3f}x "
    "real time"
)

"""
A converted clip should sound like its target speaker and say the same
thing. A speaker classifier fitted on the training clips (softmax
regression on log-mel statistics) judges the voice, beside its accuracy on
the original clips; the content is kept when the converted clip encodes back
to the source's codes.
"""

classifier = SpeakerClassifier(len(train.speaker_names)).fit(
    train.audio, train.speakers
)
conversion, _ = measure_conversion(
    model, classifier, test, targets, count=4, seconds=EVAL_SECONDS
)
print(
    "speaker classifier on the originals: "
    f"{conversion['classifier_accuracy_on_originals']:.0%}; converted clips "
    f"heard as their target: {conversion['converted_heard_as_target']:.0%}; "
    f"codes kept: {conversion['codes_kept_by_conversion']:.0%}"
)

"""
## What the codes know about phonemes

The paper's probe: map every code to the phoneme it most often covers on
the training clips, then read the test clips' phonemes from their codes.
The baseline always answers the most frequent phoneme.
"""

probe = phoneme_probe(model, train, test)
print(
    f"phoneme probe: {probe['accuracy']:.1%} on {probe['test_codes']} test "
    f"codes, against {probe['most_frequent_phoneme_accuracy']:.1%} for "
    f"always {probe['most_frequent_phoneme']!r}"
)

"""
## Where next

- Train on real speech: `bash ../shared/datasets/speech_fillets/build.sh
  OUT`, then `keras-vqvae train-speech --data OUT ...`.
- Convert a file with a trained preset: `keras-vqvae convert-speaker
  --preset DIR --audio in.wav --speaker NAME --out out.wav`.
"""
