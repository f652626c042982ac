"""Writes a synthetic multi-speaker English speech corpus with eSpeak NG.

    python tools/make_espeak_corpus.py --out ../shared/datasets/espeak_speech

Sentences come from a small built-in grammar (the same for a seed) or from
`--text FILE` (one per line); utterance `i` is spoken by speaker
`i % --speakers`, each a fixed eSpeak voice, rate and pitch. The folder
gets `train.npz`, `test.npz` and `corpus.json`, laid out as
`keras_vqvae/data/speech_corpus.py` describes; the same arguments give
byte-identical `.npz` files. It needs the `speech` extra
(`pip install "keras-vqvae[speech]"`).
"""

import argparse
import shlex
import sys
import time

from output_folder import output_folder

from keras_vqvae.data.speech_corpus import default_speakers
from keras_vqvae.data.speech_corpus import generate_sentences
from keras_vqvae.data.speech_corpus import read_sentences
from keras_vqvae.data.speech_corpus import write_speech_corpus
from keras_vqvae.errors import ConfigError
from keras_vqvae.errors import DataError

DEFAULT_UTTERANCES = 1000


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out",
        required=True,
        help="corpus folder to write, outside the repository",
    )
    parser.add_argument(
        "--utterances",
        type=int,
        help=f"number of utterances (default: {DEFAULT_UTTERANCES}, or with "
        "--text one per line, the lines repeating if there are fewer)",
    )
    parser.add_argument(
        "--speakers",
        type=int,
        default=8,
        help="number of speakers, 1 to 16 (default: %(default)s)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the sentences and the split (default: %(default)s)",
    )
    parser.add_argument(
        "--text",
        help="text file with one sentence per line, instead of the grammar",
    )
    parser.add_argument(
        "--test-fraction",
        type=float,
        default=0.1,
        help="share of each speaker's utterances in the test split "
        "(default: %(default)s)",
    )
    return parser


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    out = output_folder(parser, args.out)
    start = time.perf_counter()
    try:
        info = write_speech_corpus(
            out,
            texts(args),
            default_speakers(args.speakers),
            seed=args.seed,
            test_fraction=args.test_fraction,
            command=shlex.join(
                ["python", "tools/make_espeak_corpus.py", *argv]
            ),
        )
    except (ConfigError, DataError, ImportError) as e:
        sys.exit(f"error: {e}")
    print(summary(out, info, time.perf_counter() - start))
    return 0


def texts(args):
    """The sentences to speak, one per utterance."""
    if args.text is None:
        return generate_sentences(
            args.utterances or DEFAULT_UTTERANCES, args.seed
        )
    lines = read_sentences(args.text)
    count = args.utterances or len(lines)
    return [lines[i % len(lines)] for i in range(count)]


def summary(out, info, seconds):
    splits = info["splits"]
    return (
        f"Wrote {out}: {info['hours']:.3f} hours of audio, "
        f"{info['utterances']} utterances ({splits['train']['utterances']} "
        f"train, {splits['test']['utterances']} test), "
        f"{len(info['speakers'])} speakers, {len(info['phonemes'])} "
        f"phonemes, in {seconds:.0f} s"
    )


if __name__ == "__main__":
    sys.exit(main())
