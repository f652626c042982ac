"""Writes Crafter episodes for action-conditional video models.

    python tools/make_crafter_episodes.py --out ../shared/datasets/crafter

Episode `i` is played in a new Crafter world seeded from `(--seed, i)` by a
`RepeatedActionPolicy` (random actions held for random numbers of steps,
mostly movements) seeded with `--policy-seed`; it ends where the player
dies or after `--steps-per-episode` steps. The folder gets `train.npz`,
`test.npz` (split by episode) and `episodes.json`, laid out as
`keras_vqvae/data/crafter_episodes.py` describes; the same arguments give
byte-identical `.npz` files. It needs the `video` extra
(`pip install "keras-vqvae[video]"`).
"""

import argparse
import shlex
import sys
import time

from output_folder import output_folder

from keras_vqvae.data.crafter_episodes import RepeatedActionPolicy
from keras_vqvae.data.crafter_episodes import write_crafter_episodes
from keras_vqvae.errors import ConfigError

DEFAULT_POLICY = RepeatedActionPolicy()


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out",
        required=True,
        help="episode folder to write, outside the repository",
    )
    parser.add_argument(
        "--episodes",
        type=int,
        default=100,
        help="number of episodes (default: %(default)s)",
    )
    parser.add_argument(
        "--steps-per-episode",
        type=int,
        default=500,
        help="most steps of an episode; it ends earlier where the player "
        "dies (default: %(default)s)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the worlds and the split (default: %(default)s)",
    )
    parser.add_argument(
        "--policy-seed",
        type=int,
        help="seed of the policy's actions (default: --seed)",
    )
    parser.add_argument(
        "--move-probability",
        type=float,
        default=DEFAULT_POLICY.move_probability,
        help="chance that a held action is a movement (default: %(default)s)",
    )
    parser.add_argument(
        "--max-repeat",
        type=int,
        default=DEFAULT_POLICY.max_repeat,
        help="most steps an action is held (default: %(default)s)",
    )
    parser.add_argument(
        "--test-fraction",
        type=float,
        default=0.1,
        help="share of the episodes in the test split (default: %(default)s)",
    )
    parser.add_argument(
        "--size",
        type=int,
        default=84,
        help="frame height and width in pixels (default: %(default)s)",
    )
    return parser


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    out = output_folder(parser, args.out)
    start = time.perf_counter()
    try:
        info = write_crafter_episodes(
            out,
            args.episodes,
            args.steps_per_episode,
            seed=args.seed,
            policy=policy(args),
            test_fraction=args.test_fraction,
            size=args.size,
            command=shlex.join(
                ["python", "tools/make_crafter_episodes.py", *argv]
            ),
        )
    except (ConfigError, ImportError) as e:
        sys.exit(f"error: {e}")
    print(summary(out, info, time.perf_counter() - start))
    return 0


def policy(args):
    return RepeatedActionPolicy(
        seed=args.seed if args.policy_seed is None else args.policy_seed,
        move_probability=args.move_probability,
        max_repeat=args.max_repeat,
    )


def summary(out, info, seconds):
    splits = info["splits"]
    return (
        f"Wrote {out}: {info['frames']} frames, {info['episodes']} episodes "
        f"({splits['train']['episodes']} train, {splits['test']['episodes']} "
        f"test), in {seconds:.1f} s ({info['frames'] / seconds:.0f} frames/s)"
    )


if __name__ == "__main__":
    sys.exit(main())
