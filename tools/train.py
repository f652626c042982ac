"""Train a VQ-VAE preset and write its preset folder.

    python tools/train.py --preset mnist --data ../shared/datasets/mnist \
        --steps 3000 --out presets/mnist

Running the same command again after an interruption resumes from the last
checkpoint in --work-dir (default runs/<preset>).
"""

import argparse
import json
import sys

from keras_vqvae.training import ARCHITECTURES
from keras_vqvae.training import NaNLossError
from keras_vqvae.training import train


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", required=True, help=f"one of {sorted(ARCHITECTURES)} (or any name with --config)")
    parser.add_argument("--data", required=True, help="data folder/.npz/image folder or tfds:NAME")
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--out", required=True, help="preset folder to write")
    parser.add_argument("--work-dir", help="checkpoints and logs (default runs/<preset>)")
    parser.add_argument("--config", help="JSON config instead of the preset architecture")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=3e-4)
    parser.add_argument("--checkpoint-every", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-limit", type=int, help="evaluate on at most N test images")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=JSON", help="override a config value, e.g. --set num_hiddens=64")
    parser.add_argument("--verbose", type=int, default=1, help="Keras progress-bar verbosity (0, 1, 2)")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    overrides = {}
    for item in args.set:
        key, _, value = item.partition("=")
        overrides[key] = json.loads(value)
    try:
        metadata = train(
            args.preset, args.data, args.out, args.steps,
            work_dir=args.work_dir, batch_size=args.batch_size,
            learning_rate=args.learning_rate,
            checkpoint_every=args.checkpoint_every, seed=args.seed,
            config_path=args.config, eval_limit=args.eval_limit,
            verbose=args.verbose, **overrides,
        )
    except (NaNLossError, ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(json.dumps(metadata["test_metrics"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
