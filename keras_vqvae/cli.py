"""The `keras-vqvae` command.

    keras-vqvae presets
    keras-vqvae demo --data ../shared/datasets/mnist --out outputs
    keras-vqvae reconstruct --preset cifar10 --data DIR --out grid.png
    keras-vqvae encode --preset mnist --data DIR --out codes.npy
    keras-vqvae decode --preset mnist --codes codes.npy --out images.png
    keras-vqvae sample --preset mnist --n 64 --out samples.png
    keras-vqvae train | train-prior | evaluate | upload ...

Every subcommand has --help. Errors print one line and exit with status 1.
"""

import argparse
import json
import os
import shlex
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

DEFAULT_PRESET = "mnist"


class CommandError(Exception):
    """A user error: printed as one line, exit status 1."""


def _add_images_source(parser):
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", help="data folder/.npz/image folder or tfds:NAME")
    source.add_argument("--images", nargs="+", help="image files")
    parser.add_argument("--split", default="test", help="split of --data (default test)")
    parser.add_argument("--limit", type=int, default=64, help="use at most N images (default 64)")


def _load_images(args, model):
    from keras_vqvae import data

    size, channels = model.image_shape[:2], model.image_shape[2]
    if args.images:
        return data.load_image_files(args.images, image_size=size, channels=channels)
    images, _ = data.load_dataset(
        args.data, args.split, image_size=size, channels=channels, limit=args.limit
    )
    return images


def _load_model(preset):
    from keras_vqvae.models import VQVAE

    return VQVAE.from_preset(preset)


def _print_json(value):
    print(json.dumps(value, indent=2))


def cmd_presets(args):
    from keras_vqvae.presets import list_presets

    presets = list_presets()
    if args.json:
        _print_json(presets)
        return
    for name, metadata in presets.items():
        metrics = metadata.get("test_metrics", {})
        shape = tuple(metadata.get("image_shape", ()))
        print(
            f"{name:15s} {str(shape):15s} K={metadata.get('num_embeddings')} "
            f"PSNR {metrics.get('psnr_db', float('nan')):.2f} dB "
            f"MSE {metrics.get('mse', float('nan')):.5f}"
            f"{'  +prior' if metadata.get('prior') else ''}"
        )


def cmd_reconstruct(args):
    from keras_vqvae.evaluation import evaluate_reconstructions
    from keras_vqvae.visualization import reconstruction_rows
    from keras_vqvae.visualization import save_image_grid

    model = _load_model(args.preset)
    images = _load_images(args, model)
    metrics = evaluate_reconstructions(model, images, batch_size=args.batch_size)
    shown = images[: args.grid_images]
    rows = reconstruction_rows(shown, model.reconstruct(shown), min(8, len(shown)))
    path = save_image_grid(args.out, rows, scale=max(1, 64 // model.image_shape[0]))
    _print_json({**metrics, "images": int(len(images)), "grid": str(path)})


def cmd_encode(args):
    import numpy as np

    model = _load_model(args.preset)
    codes = model.encode(_load_images(args, model), batch_size=args.batch_size)
    np.save(args.out, codes)
    print(f"wrote {args.out}: codes {codes.shape} int32 in [0, {model.num_embeddings})")


def cmd_decode(args):
    import numpy as np

    from keras_vqvae.visualization import save_image_grid

    model = _load_model(args.preset)
    try:
        codes = np.load(args.codes)
    except (OSError, ValueError) as e:
        raise CommandError(f"cannot read codes from {args.codes}: {e}") from e
    images = model.decode_indices(codes, batch_size=args.batch_size)
    if args.npy:
        np.save(args.npy, images)
    save_image_grid(args.out, images, columns=8, scale=max(1, 64 // model.image_shape[0]))
    print(f"wrote {args.out}: {len(images)} images {images.shape[1:]}")


def cmd_sample(args):
    import time

    from keras_vqvae.models import PixelCNNPrior
    from keras_vqvae.visualization import save_image_grid

    model = _load_model(args.preset)
    prior = PixelCNNPrior.from_preset(args.preset)
    if prior.num_classes and args.label is None:
        labels = [i % prior.num_classes for i in range(args.n)]
    else:
        labels = args.label
    started = time.perf_counter()
    codes = prior.sample(args.n, labels=labels, temperature=args.temperature, seed=args.seed)
    images = model.decode_indices(codes)
    seconds = time.perf_counter() - started
    save_image_grid(args.out, images, columns=8, scale=max(1, 64 // model.image_shape[0]))
    _print_json({"samples": args.n, "seconds": round(seconds, 2),
                 "samples_per_s": round(args.n / seconds, 2), "grid": args.out})


def cmd_demo(args):
    """Reconstruct held-out images and sample with the default preset."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    recon = argparse.Namespace(
        preset=args.preset, data=args.data, images=None, split="test",
        limit=args.limit, batch_size=256, grid_images=32,
        out=str(out / "reconstructions.png"),
    )
    print(f"== reconstructing {args.limit} held-out images with preset {args.preset!r}")
    cmd_reconstruct(recon)
    from keras_vqvae.presets import resolve_preset

    if (resolve_preset(args.preset) / "prior_config.json").is_file():
        print("== sampling from the PixelCNN prior")
        cmd_sample(argparse.Namespace(
            preset=args.preset, n=args.samples, label=None, temperature=1.0,
            seed=0, out=str(out / "samples.png"),
        ))
    else:
        print(f"(preset {args.preset!r} has no prior; skipping samples)")


def cmd_train(args):
    from keras_vqvae.training import train

    overrides = {}
    for item in args.set:
        key, _, value = item.partition("=")
        overrides[key] = json.loads(value)
    metadata = train(
        args.preset, args.data, args.out, args.steps,
        work_dir=args.work_dir, batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        checkpoint_every=args.checkpoint_every, seed=args.seed,
        config_path=args.config, eval_limit=args.eval_limit,
        verbose=args.verbose, reproduce=args.command_line, **overrides,
    )
    _print_json(metadata["test_metrics"])


def cmd_train_prior(args):
    from keras_vqvae.prior_training import train_prior

    _print_json(train_prior(
        args.preset_dir, args.data, args.steps, batch_size=args.batch_size,
        learning_rate=args.learning_rate, hidden_dim=args.hidden_dim,
        num_layers=args.num_layers, conditional=not args.unconditional,
        seed=args.seed, eval_limit=args.eval_limit, verbose=args.verbose,
        reproduce=args.command_line,
    ))


def cmd_evaluate(args):
    from keras_vqvae.evaluation import evaluate_preset

    metrics = evaluate_preset(
        args.preset, args.data, split=args.split, limit=args.limit,
        grid_path=args.grid, grid_images=args.grid_images,
        batch_size=args.batch_size, bits_per_dim=args.bits_per_dim,
    )
    _print_json(metrics)
    if args.output:
        Path(args.output).write_text(json.dumps(metrics, indent=2) + "\n")


def cmd_upload(args):
    from keras_vqvae.upload import upload_preset

    upload_preset(
        args.folder, args.repo_id, token=args.token, private=args.private,
        revision=args.revision, commit_message=args.message,
        dry_run=args.dry_run, force=args.force,
    )


def add_train_arguments(parser):
    from keras_vqvae.training import ARCHITECTURES

    parser.add_argument("--preset", required=True, help=f"architecture: one of {sorted(ARCHITECTURES)} (or any name with --config)")
    parser.add_argument("--data", required=True, help="data folder/.npz/image folder or tfds:NAME")
    parser.add_argument("--steps", type=int, required=True, help="total optimizer steps")
    parser.add_argument("--out", required=True, help="preset folder to write")
    parser.add_argument("--work-dir", help="checkpoints and TensorBoard logs (default runs/<preset>); rerun to resume")
    parser.add_argument("--config", help="JSON config instead of the preset architecture")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=3e-4)
    parser.add_argument("--checkpoint-every", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-limit", type=int, help="evaluate on at most N test images")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=JSON", help="override a config value, e.g. --set num_hiddens=64")
    parser.add_argument("--verbose", type=int, default=1, help="Keras progress-bar verbosity (0, 1, 2)")


def add_evaluate_arguments(parser):
    parser.add_argument("--preset", required=True, help="bundled name, folder or hf://owner/repo")
    parser.add_argument("--data", required=True, help="data folder/.npz/image folder or tfds:NAME")
    parser.add_argument("--split", default="test")
    parser.add_argument("--limit", type=int, help="use at most N images")
    parser.add_argument("--grid", help="write originals vs reconstructions to this PNG")
    parser.add_argument("--grid-images", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--bits-per-dim", action="store_true", help="also report bits/dim with the preset's prior")
    parser.add_argument("--output", help="also write the metrics JSON to this file")


def add_upload_arguments(parser):
    parser.add_argument("folder", help="preset folder (config.json, metadata.json, weights)")
    parser.add_argument("repo_id", help="Hub repository, owner/name")
    parser.add_argument("--token", help="Hub token (default: HF_TOKEN or the login cache)")
    parser.add_argument("--private", action="store_true", help="create the repository as private")
    parser.add_argument("--revision", help="branch to commit to (default main)")
    parser.add_argument("--message", help="commit message")
    parser.add_argument("--dry-run", action="store_true", help="list the files; send nothing")
    parser.add_argument("--force", action="store_true", help="overwrite a repo holding a different architecture")


def build_parser():
    parser = argparse.ArgumentParser(
        prog="keras-vqvae",
        description="VQ-VAE presets: reconstruct, encode, decode, sample, train, evaluate, upload.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("presets", help="list the bundled presets and their measured metrics")
    p.add_argument("--json", action="store_true", help="print the metadata as JSON")
    p.set_defaults(func=cmd_presets)

    p = sub.add_parser("demo", help="reconstruct held-out images and sample (the main job)")
    p.add_argument("--preset", default=DEFAULT_PRESET)
    p.add_argument("--data", required=True, help="data with a test split, e.g. ../shared/datasets/mnist")
    p.add_argument("--limit", type=int, default=1000, help="held-out images to measure")
    p.add_argument("--samples", type=int, default=32)
    p.add_argument("--out", default="outputs")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("reconstruct", help="images to a PNG grid of originals vs reconstructions, with metrics")
    p.add_argument("--preset", default=DEFAULT_PRESET)
    _add_images_source(p)
    p.add_argument("--out", default="reconstructions.png")
    p.add_argument("--grid-images", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=256)
    p.set_defaults(func=cmd_reconstruct)

    p = sub.add_parser("encode", help="images to code maps (.npy, int32)")
    p.add_argument("--preset", default=DEFAULT_PRESET)
    _add_images_source(p)
    p.add_argument("--out", default="codes.npy")
    p.add_argument("--batch-size", type=int, default=256)
    p.set_defaults(func=cmd_encode)

    p = sub.add_parser("decode", help="code maps (.npy) to images (PNG grid, optional .npy)")
    p.add_argument("--preset", default=DEFAULT_PRESET)
    p.add_argument("--codes", required=True, help=".npy of int codes (N, h, w)")
    p.add_argument("--out", default="decoded.png")
    p.add_argument("--npy", help="also save the uint8 images to this .npy")
    p.add_argument("--batch-size", type=int, default=256)
    p.set_defaults(func=cmd_decode)

    p = sub.add_parser("sample", help="sample images from the preset's PixelCNN prior")
    p.add_argument("--preset", default=DEFAULT_PRESET)
    p.add_argument("--n", type=int, default=32)
    p.add_argument("--label", type=int, help="class label for a class-conditional prior")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="samples.png")
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("train", help="train a preset (checkpoints, resume, TensorBoard)")
    add_train_arguments(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("train-prior", help="train a PixelCNN prior on a preset's codes and add it to the preset")
    p.add_argument("--preset-dir", required=True, help="trained preset folder to extend")
    p.add_argument("--data", required=True, help="the preset's data (train and test splits)")
    p.add_argument("--steps", type=int, required=True, help="optimizer steps (rounded up to whole epochs)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--learning-rate", type=float, default=1e-3)
    p.add_argument("--hidden-dim", type=int, default=128)
    p.add_argument("--num-layers", type=int, default=12)
    p.add_argument("--unconditional", action="store_true", help="ignore class labels")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval-limit", type=int, help="evaluate on at most N test images")
    p.add_argument("--verbose", type=int, default=1)
    p.set_defaults(func=cmd_train_prior)

    p = sub.add_parser("evaluate", help="test-split MSE, PSNR, perplexity, usage (+ bits/dim)")
    add_evaluate_arguments(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("upload", help="publish a preset folder to the Hugging Face Hub")
    add_upload_arguments(p)
    p.set_defaults(func=cmd_upload)
    return parser


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.command_line = "keras-vqvae " + shlex.join(argv)
    from keras_vqvae.presets import PresetError
    from keras_vqvae.training import NaNLossError
    from keras_vqvae.upload import UploadError

    try:
        args.func(args)
    except (CommandError, PresetError, UploadError, NaNLossError,
            ValueError, TypeError, FileNotFoundError) as e:
        message = " ".join(str(e).split())
        print(f"keras-vqvae {args.command}: error: {message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
