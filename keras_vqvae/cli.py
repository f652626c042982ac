"""The `keras-vqvae` command.

    keras-vqvae presets
    keras-vqvae demo --data ../shared/datasets/mnist --out outputs
    keras-vqvae reconstruct --preset cifar10 --data DIR --out grid.png
    keras-vqvae encode --preset mnist --data DIR --out codes.npy
    keras-vqvae decode --preset mnist --codes codes.npy --out images.png
    keras-vqvae sample --preset mnist --n 64 --out samples.png
    keras-vqvae rollout --preset crafter_84 --data EPISODES --out rollout.gif
    keras-vqvae train | train-prior | train-video-prior | train-speech | evaluate | upload ...

Every subcommand has --help. Each handler parses its arguments and calls
plain functions (`keras_vqvae.workflows`, the models, `upload_preset`).
The package's error types (`keras_vqvae.errors`) print as one line with
exit status 1; any other exception is a bug and keeps its traceback.
"""

import argparse
import contextlib
import json
import os
import shlex
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from keras_vqvae.native_logs import filtered_stderr  # noqa: E402

DEFAULT_PRESET = "mnist"


class CommandError(Exception):
    """A user error found by the CLI itself."""


# Results go to standard output; progress bars (Keras writes them to
# stdout) go to standard error while a command runs, so `> out.json` works.
_results = sys.stdout


def _say(*values):
    print(*values, file=_results, flush=True)


def _print_json(value):
    _say(json.dumps(value, indent=2))


def _load_images(args, model):
    from keras_vqvae import data

    if args.images:
        return data.load_image_files(
            args.images,
            image_size=model.image_shape[:2],
            channels=model.image_shape[2],
        )
    images, _ = data.load_split(
        args.data, args.split, model=model, limit=args.limit
    )
    return images


def cmd_presets(args):
    from keras_vqvae.presets import list_presets

    presets = list_presets()
    if args.json:
        _print_json(presets)
        return
    for name, metadata in presets.items():
        metrics = metadata.get("test_metrics", {})
        shape = tuple(metadata.get("image_shape", ()))
        _say(
            f"{name:15s} {str(shape):15s} K={metadata.get('num_embeddings')} "
            f"PSNR {metrics.get('psnr_db', float('nan')):.2f} dB "
            f"MSE {metrics.get('mse', float('nan')):.5f}"
            f"{'  +prior' if metadata.get('prior') else ''}"
        )


def cmd_reconstruct(args):
    from keras_vqvae import workflows
    from keras_vqvae.models import VQVAE

    model = VQVAE.from_preset(args.preset)
    images = _load_images(args, model)
    results = workflows.measure_reconstructions(
        model, images, batch_size=args.batch_size, verbose=args.progress
    )
    path = workflows.write_reconstruction_grid(
        model, images, args.out, args.grid_images
    )
    _print_json({**results, "images": int(len(images)), "grid": str(path)})


def cmd_encode(args):
    import numpy as np

    from keras_vqvae.models import VQVAE

    model = VQVAE.from_preset(args.preset)
    codes = model.encode(
        _load_images(args, model),
        batch_size=args.batch_size,
        verbose=args.progress,
    )
    np.save(args.out, codes)
    _say(
        f"wrote {args.out}: codes {codes.shape} int32 in "
        f"[0, {model.num_embeddings})"
    )


def _read_codes(path):
    import numpy as np

    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise CommandError(f"cannot read codes from {path}: {e}") from e


def cmd_decode(args):
    import numpy as np

    from keras_vqvae import workflows
    from keras_vqvae.models import VQVAE

    model = VQVAE.from_preset(args.preset)
    codes = _read_codes(args.codes)
    if codes.ndim and not len(codes):
        raise CommandError(f"--codes {args.codes} holds no code maps.")
    try:
        images = model.decode_indices(
            codes, batch_size=args.batch_size, verbose=args.progress
        )
    except ValueError as e:
        raise CommandError(f"--codes {args.codes}: {e}") from e
    if args.npy:
        np.save(args.npy, images)
    workflows.write_sample_grid(
        model, images, args.out, title=f"decoded from {Path(args.codes).name}"
    )
    _say(f"wrote {args.out}: {len(images)} images {images.shape[1:]}")


def cmd_sample(args):
    import time

    from keras_vqvae import workflows
    from keras_vqvae.models import VQVAE
    from keras_vqvae.models import PixelCNNPrior
    from keras_vqvae.presets import PresetFolder

    model = VQVAE.from_preset(args.preset)
    prior = PixelCNNPrior.from_preset(args.preset)
    classes = PresetFolder.resolve(args.preset).metadata.get("prior", {})
    classes = classes.get("classes")
    label = workflows.class_label(args.label, classes)
    started = time.perf_counter()
    images = workflows.sample_images(
        model,
        prior,
        args.n,
        labels=label,
        temperature=args.temperature,
        seed=args.seed,
        verbose=args.progress,
    )
    seconds = time.perf_counter() - started
    if label is None:
        workflows.write_sample_grid(
            model,
            images,
            args.out,
            num_classes=prior.num_classes,
            class_names=[c["name"] for c in classes] if classes else None,
        )
    else:
        name = classes[label]["name"] if classes else label
        workflows.write_sample_grid(
            model, images, args.out, title=f"samples of class {name}"
        )
    _print_json(
        {
            "samples": args.n,
            "seconds": round(seconds, 2),
            "samples_per_s": round(args.n / seconds, 2),
            "grid": args.out,
        }
    )


def cmd_demo(args):
    from keras_vqvae import workflows

    _print_json(
        workflows.demo(
            args.preset,
            args.data,
            args.out,
            limit=args.limit,
            samples=args.samples,
            verbose=args.progress,
            log=_say,
        )
    )


def _parse_overrides(items):
    overrides = {}
    for item in items:
        key, separator, value = item.partition("=")
        try:
            if not separator or not key:
                raise ValueError("expected KEY=JSON")
            overrides[key] = json.loads(value)
        except ValueError as e:
            raise CommandError(
                f"--set {item}: expected KEY=JSON, e.g. --set hidden_dim=64 "
                f"or --set quantizer='\"vq\"' ({e})."
            ) from e
    return overrides


def cmd_train(args):
    from keras_vqvae import workflows

    metadata = workflows.train_vqvae(
        args.architecture,
        args.data,
        args.preset_dir,
        args.steps,
        work_dir=args.work_dir,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        checkpoint_every=args.checkpoint_every,
        seed=args.seed,
        config_path=args.config,
        eval_limit=args.eval_limit,
        verbose=args.verbose,
        reproduce=args.command_line,
        precision=args.precision,
        augment=args.augment,
        steps_per_execution=args.steps_per_execution,
        log=_say,
        **_parse_overrides(args.set),
    )
    _print_json(metadata["test_metrics"])


def cmd_train_prior(args):
    from keras_vqvae import workflows

    _print_json(
        workflows.train_prior(
            args.preset_dir,
            args.data,
            args.steps,
            batch_size=args.batch_size,
            learning_rate=args.learning_rate,
            hidden_dim=args.hidden_dim,
            num_layers=args.num_layers,
            conditional=not args.unconditional,
            samples=args.samples,
            seed=args.seed,
            eval_limit=args.eval_limit,
            verbose=args.verbose,
            reproduce=args.command_line,
            precision=args.precision,
            log=_say,
        )
    )


def cmd_train_video_prior(args):
    from keras_vqvae import video

    _print_json(
        video.train_video_prior(
            args.preset_dir,
            args.data,
            args.steps,
            batch_size=args.batch_size,
            learning_rate=args.learning_rate,
            context_frames=args.context_frames,
            hidden_dim=args.hidden_dim,
            num_layers=args.num_layers,
            context_dim=args.context_dim,
            context_layers=args.context_layers,
            rollouts=args.rollouts,
            seed=args.seed,
            verbose=args.verbose,
            reproduce=args.command_line,
            precision=args.precision,
            log=_say,
        )
    )


def cmd_train_speech(args):
    from keras_vqvae import speech

    metadata = speech.train_speech_vqvae(
        args.data,
        args.preset_dir,
        args.steps,
        work_dir=args.work_dir,
        crop_seconds=args.crop_seconds,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        checkpoint_every=args.checkpoint_every,
        seed=args.seed,
        eval_clips=args.eval_clips,
        eval_seconds=args.eval_seconds,
        precision=args.precision,
        verbose=args.verbose,
        reproduce=args.command_line,
        log=_say,
        **_parse_overrides(args.set),
    )
    _print_json(metadata["test_metrics"])


def _action_list(text):
    """`--actions`: comma-separated action ids or names."""
    from keras_vqvae.data.crafter_episodes import ACTION_NAMES
    from keras_vqvae.errors import DataError

    actions = []
    for item in (part.strip() for part in text.split(",")):
        if item in ACTION_NAMES:
            actions.append(ACTION_NAMES.index(item))
        elif item.isdigit() and int(item) < len(ACTION_NAMES):
            actions.append(int(item))
        else:
            raise DataError(
                f"--actions: {item!r} is not an action; use ids 0.."
                f"{len(ACTION_NAMES) - 1} or names: {', '.join(ACTION_NAMES)}"
            )
    return actions


def _rollout_clip(args, episodes):
    """The context frames and actions of `--episode` from `--start`."""
    from keras_vqvae.errors import DataError
    from keras_vqvae.video import ROLLOUT_CONTEXT

    offsets = episodes.episode_offsets
    if not 0 <= args.episode < len(offsets) - 1:
        raise DataError(
            f"--episode {args.episode}: the {args.split} split has episodes "
            f"0..{len(offsets) - 2}."
        )
    first, end = int(offsets[args.episode]), int(offsets[args.episode + 1])
    begin = first + args.start
    context_end = begin + ROLLOUT_CONTEXT
    if args.actions is not None:
        actions = _action_list(args.actions)
    else:
        actions = episodes.actions[
            context_end - 1 : context_end - 1 + args.steps
        ]
        actions = [int(a) for a in actions if a >= 0]
    if args.start < 0 or context_end > end:
        raise DataError(
            f"--start {args.start}: episode {args.episode} has {end - first} "
            f"frames; {ROLLOUT_CONTEXT} context frames must fit from --start."
        )
    real = episodes.frames[context_end : context_end + len(actions)]
    return episodes.frames[begin:context_end], actions, real


def cmd_rollout(args):
    import time

    import numpy as np

    from keras_vqvae.data.crafter_episodes import ACTION_NAMES
    from keras_vqvae.data.crafter_episodes import load_crafter_episodes
    from keras_vqvae.models import VQVAE
    from keras_vqvae.models import ActionConditionalPrior
    from keras_vqvae.presets import PresetFolder
    from keras_vqvae.video import rollout
    from keras_vqvae.video import write_rollout_pictures

    folder = PresetFolder.resolve(args.preset)
    model = VQVAE.from_preset(folder.path)
    prior = ActionConditionalPrior.from_preset(folder.path)
    temperature = args.temperature
    if temperature is None:
        prior_metadata = folder.metadata.get("prior", {})
        temperature = prior_metadata.get("rollout_temperature", 1.0)
    episodes = load_crafter_episodes(args.data, args.split)
    context, actions, real = _rollout_clip(args, episodes)
    started = time.perf_counter()
    generated = rollout(
        model,
        prior,
        context[None],
        np.asarray(actions, "int64")[None],
        temperature,
        args.seed,
    )[0]
    seconds = time.perf_counter() - started
    if len(real) < len(generated):  # past the episode's end: blank frames
        real = np.concatenate([real, np.full_like(generated[len(real) :], 255)])
    gif = Path(args.out)
    strip = Path(args.strip) if args.strip else gif.with_suffix(".png")
    write_rollout_pictures(
        context, real, generated, strip, gif, actions=actions
    )
    print(  # standard error while the command runs
        f"{len(generated)} frames generated in {seconds:.1f} s at "
        f"temperature {temperature} (actions: "
        f"{', '.join(ACTION_NAMES[a] for a in actions)})"
    )
    _print_json(
        {"gif": str(gif), "strip": str(strip), "seconds": round(seconds, 2)}
    )


def cmd_evaluate(args):
    from keras_vqvae import workflows

    results = workflows.evaluate_preset(
        args.preset,
        args.data,
        split=args.split,
        limit=args.limit,
        grid_path=args.grid,
        grid_images=args.grid_images,
        batch_size=args.batch_size,
        bits_per_dim=args.bits_per_dim,
        verbose=args.progress,
    )
    _print_json(results)
    if args.output:
        Path(args.output).write_text(json.dumps(results, indent=2) + "\n")


def _speech_model(preset):
    from keras_vqvae.models import SpeechVQVAE

    return SpeechVQVAE.from_preset(preset)


def cmd_encode_audio(args):
    import numpy as np

    from keras_vqvae.audio import read_audio

    model = _speech_model(args.preset)
    codes = model.encode(read_audio(args.audio, model.sample_rate))
    np.save(args.out, codes)
    _say(
        f"wrote {args.out}: {len(codes)} codes ({len(codes) / model.sample_rate * model.hop_length:.2f} s "
        f"of audio at {model.sample_rate / model.hop_length:g} codes/s)"
    )


def _write_generated(model, codes, speaker, out, seed):
    import time

    from keras_vqvae.audio import write_wav

    started = time.perf_counter()
    audio = model.decode(codes, speaker, seed=seed)
    seconds = time.perf_counter() - started
    write_wav(out, audio, model.sample_rate)
    duration = len(audio) / model.sample_rate
    _print_json(
        {
            "out": str(out),
            "speaker": model.speakers[model.speaker_id(speaker)]
            if model.speakers
            else None,
            "audio_s": round(duration, 3),
            "generation_s": round(seconds, 2),
            "real_time_factor": round(duration / seconds, 3),
        }
    )


def _speaker_argument(model, speaker):
    """An integer-looking --speaker is an id unless it is also a name."""
    if speaker is None or speaker in model.speakers:
        return speaker
    return int(speaker) if speaker.lstrip("-").isdigit() else speaker


def cmd_decode_audio(args):
    model = _speech_model(args.preset)
    codes = _read_codes(args.codes)
    if codes.ndim != 1 or not len(codes):
        raise CommandError(
            f"--codes {args.codes}: expected one clip's codes (T,), received "
            f"shape {codes.shape}."
        )
    speaker = _speaker_argument(model, args.speaker)
    _write_generated(model, codes, speaker, args.out, args.seed)


def cmd_convert_speaker(args):
    from keras_vqvae.audio import read_audio

    model = _speech_model(args.preset)
    speaker = _speaker_argument(model, args.speaker)
    model.speaker_id(speaker)  # an unknown speaker fails before encoding
    codes = model.encode(read_audio(args.audio, model.sample_rate))
    _write_generated(model, codes, speaker, args.out, args.seed)


def cmd_upload(args):
    from keras_vqvae.upload import upload_preset

    upload_preset(
        args.preset_dir,
        args.repo_id,
        token=args.token,
        private=args.private,
        revision=args.revision,
        commit_message=args.message,
        dry_run=args.dry_run,
        force=args.force,
        log=_say,
    )


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(
            f"expected an integer >= 1, received {text!r}"
        )
    return value


def _add_images_source(parser):
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--data", help="data folder/.npz/image folder or tfds:NAME"
    )
    source.add_argument("--images", nargs="+", help="image files")
    parser.add_argument(
        "--split", default="test", help="split of --data (default test)"
    )
    parser.add_argument(
        "--limit",
        type=_positive_int,
        default=64,
        help="use at most N images (default 64)",
    )


def add_train_arguments(parser):
    from keras_vqvae.models import VQVAE_PRESETS

    parser.add_argument(
        "--architecture",
        required=True,
        help=f"one of {sorted(VQVAE_PRESETS)} (or any name with --config)",
    )
    parser.add_argument(
        "--data",
        required=True,
        help="data folder/.npz/image folder or tfds:NAME",
    )
    parser.add_argument(
        "--steps",
        type=_positive_int,
        required=True,
        help="total optimizer steps",
    )
    parser.add_argument(
        "--preset-dir", required=True, help="preset folder to write"
    )
    parser.add_argument(
        "--work-dir",
        help="checkpoints and TensorBoard logs (default runs/<architecture>); rerun to resume",
    )
    parser.add_argument(
        "--config",
        help="JSON file of constructor arguments instead of --architecture's",
    )
    parser.add_argument("--batch-size", type=_positive_int, default=32)
    parser.add_argument("--learning-rate", type=float, default=3e-4)
    parser.add_argument("--checkpoint-every", type=_positive_int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--eval-limit",
        type=_positive_int,
        help="evaluate on at most N test images",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=JSON",
        help="override a config value, e.g. --set hidden_dim=64",
    )
    parser.add_argument(
        "--verbose",
        type=int,
        default=1,
        help="Keras progress-bar verbosity (0, 1, 2)",
    )
    parser.add_argument(
        "--augment",
        action="store_true",
        help="random horizontal flips (natural images)",
    )
    parser.add_argument(
        "--steps-per-execution",
        type=_positive_int,
        default=8,
        help="training steps per compiled call (default 8)",
    )
    _add_precision_argument(parser)


def _add_precision_argument(parser):
    from keras_vqvae.precision import PRECISIONS

    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="auto",
        help="auto (default): mixed_bfloat16 where the CPU or GPU has "
        "bfloat16 units (not for JAX on a CPU), else float32",
    )


def _add_prior_training_arguments(parser, preset_help, data_help):
    """The arguments `train-prior` and `train-video-prior` share."""
    parser.add_argument("--preset-dir", required=True, help=preset_help)
    parser.add_argument("--data", required=True, help=data_help)
    parser.add_argument(
        "--steps",
        type=_positive_int,
        required=True,
        help="optimizer steps (rounded up to whole epochs)",
    )
    parser.add_argument("--batch-size", type=_positive_int, default=32)
    parser.add_argument("--learning-rate", type=float, default=1e-3)


def add_train_prior_arguments(parser):
    _add_prior_training_arguments(
        parser,
        "trained preset folder to extend",
        "the preset's data (train and test splits)",
    )
    parser.add_argument(
        "--hidden-dim",
        type=_positive_int,
        help="PixelCNN channels (default: the preset's table entry, else 128)",
    )
    parser.add_argument(
        "--num-layers",
        type=_positive_int,
        help="gated blocks (default: the preset's table entry, else 12)",
    )
    parser.add_argument(
        "--unconditional", action="store_true", help="ignore class labels"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--eval-limit",
        type=_positive_int,
        help="evaluate on at most N test images",
    )
    parser.add_argument(
        "--samples",
        type=_positive_int,
        default=64,
        help="images in samples.png (they cycle through the classes)",
    )
    parser.add_argument("--verbose", type=int, default=1)
    _add_precision_argument(parser)


def add_train_video_prior_arguments(parser):
    _add_prior_training_arguments(
        parser,
        "trained frame preset to extend",
        "episode folder (tools/make_crafter_episodes.py)",
    )
    parser.add_argument(
        "--context-frames",
        type=_positive_int,
        default=2,
        help="previous frames each prediction sees",
    )
    parser.add_argument("--hidden-dim", type=_positive_int, default=64)
    parser.add_argument("--num-layers", type=_positive_int, default=8)
    parser.add_argument(
        "--context-dim",
        type=_positive_int,
        default=64,
        help="channels of the context network over the previous frames",
    )
    parser.add_argument(
        "--context-layers",
        type=_positive_int,
        default=4,
        help="residual 3x3 convolutions of the context network",
    )
    parser.add_argument(
        "--rollouts",
        type=_positive_int,
        default=32,
        help="test rollouts to measure",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--verbose", type=int, default=1)
    _add_precision_argument(parser)


def add_train_speech_arguments(parser):
    parser.add_argument(
        "--data",
        required=True,
        help="speech folder: an eSpeak corpus (tools/make_espeak_corpus.py) "
        "or clips with a clips.tsv (speech_fillets/build.sh OUT)",
    )
    parser.add_argument(
        "--preset-dir", required=True, help="preset folder to write"
    )
    parser.add_argument(
        "--work-dir", required=True, help="checkpoints; rerun to resume"
    )
    parser.add_argument(
        "--steps",
        type=_positive_int,
        required=True,
        help="optimizer steps (rounded up to whole checkpoints)",
    )
    parser.add_argument(
        "--crop-seconds",
        type=float,
        default=0.5,
        help="length of each training crop",
    )
    parser.add_argument("--batch-size", type=_positive_int, default=8)
    parser.add_argument("--learning-rate", type=float, default=3e-4)
    parser.add_argument("--checkpoint-every", type=_positive_int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--eval-clips",
        type=_positive_int,
        default=16,
        help="test clips regenerated for the reconstruction metrics",
    )
    parser.add_argument(
        "--eval-seconds",
        type=float,
        default=2.0,
        help="seconds of each regenerated test clip",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=JSON",
        help="a SpeechVQVAE argument, e.g. --set num_layers=20",
    )
    parser.add_argument("--verbose", type=int, default=1)
    _add_precision_argument(parser)


def add_rollout_arguments(parser):
    from keras_vqvae.video import ROLLOUT_CONTEXT
    from keras_vqvae.video import ROLLOUT_STEPS

    parser.add_argument("--preset", required=True, help="e.g. crafter_84")
    parser.add_argument(
        "--data", required=True, help="episode folder with the real frames"
    )
    parser.add_argument("--split", default="test", choices=["train", "test"])
    parser.add_argument("--episode", type=int, default=0)
    parser.add_argument(
        "--start",
        type=int,
        default=0,
        help=f"first of the {ROLLOUT_CONTEXT} real context frames",
    )
    parser.add_argument(
        "--steps",
        type=_positive_int,
        default=ROLLOUT_STEPS,
        help="frames to generate (with the episode's own actions)",
    )
    parser.add_argument(
        "--actions",
        help="comma-separated actions (ids or names) instead of the episode's",
    )
    parser.add_argument(
        "--temperature",
        type=float,
        help="softmax temperature of the draws (default: the one the "
        "preset's rollouts were measured at, else 1.0)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="rollout.gif", help="animated GIF")
    parser.add_argument(
        "--strip",
        help="PNG strip, real above generated (default: --out as .png)",
    )


def add_evaluate_arguments(parser):
    parser.add_argument(
        "--preset",
        required=True,
        help="bundled name, folder or hf://owner/repo",
    )
    parser.add_argument(
        "--data",
        required=True,
        help="data folder/.npz/image folder or tfds:NAME",
    )
    parser.add_argument("--split", default="test")
    parser.add_argument(
        "--limit", type=_positive_int, help="use at most N images"
    )
    parser.add_argument(
        "--grid", help="write originals vs reconstructions to this PNG"
    )
    parser.add_argument("--grid-images", type=_positive_int, default=32)
    parser.add_argument("--batch-size", type=_positive_int, default=256)
    parser.add_argument(
        "--bits-per-dim",
        action="store_true",
        help="also report bits/dim with the preset's prior",
    )
    parser.add_argument(
        "--output", help="also write the metrics JSON to this file"
    )


def add_upload_arguments(parser):
    parser.add_argument(
        "preset_dir", help="preset folder (config.json, metadata.json, weights)"
    )
    parser.add_argument("repo_id", help="Hub repository, owner/name")
    parser.add_argument(
        "--token", help="Hub token (default: HF_TOKEN or the login cache)"
    )
    parser.add_argument(
        "--private",
        action="store_true",
        help="create the repository as private",
    )
    parser.add_argument("--revision", help="branch to commit to (default main)")
    parser.add_argument("--message", help="commit message")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="list the files; write and send nothing",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="overwrite a repo holding a different architecture",
    )


def build_parser():
    parser = argparse.ArgumentParser(
        prog="keras-vqvae",
        description="VQ-VAE presets: reconstruct, encode, decode, sample, train, evaluate, upload.",
    )
    parser.add_argument(
        "--verbose",
        dest="native_logs",
        action="store_true",
        help="show the backend's native start-up logs (hidden by default)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND"
    )

    p = sub.add_parser(
        "presets", help="list the bundled presets and their measured metrics"
    )
    p.add_argument(
        "--json", action="store_true", help="print the metadata as JSON"
    )
    p.set_defaults(func=cmd_presets)

    p = sub.add_parser(
        "demo", help="reconstruct held-out images and sample (the main job)"
    )
    p.add_argument("--preset", default=DEFAULT_PRESET)
    p.add_argument(
        "--data",
        required=True,
        help="data with a test split, e.g. ../shared/datasets/mnist",
    )
    p.add_argument(
        "--limit",
        type=_positive_int,
        default=1000,
        help="held-out images to measure",
    )
    p.add_argument("--samples", type=_positive_int, default=32)
    p.add_argument("--out", default="outputs")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser(
        "reconstruct",
        help="images to a PNG grid of originals vs reconstructions, with metrics",
    )
    p.add_argument("--preset", default=DEFAULT_PRESET)
    _add_images_source(p)
    p.add_argument("--out", default="reconstructions.png")
    p.add_argument("--grid-images", type=_positive_int, default=32)
    p.add_argument("--batch-size", type=_positive_int, default=256)
    p.set_defaults(func=cmd_reconstruct)

    p = sub.add_parser("encode", help="images to code maps (.npy, int32)")
    p.add_argument("--preset", default=DEFAULT_PRESET)
    _add_images_source(p)
    p.add_argument("--out", default="codes.npy")
    p.add_argument("--batch-size", type=_positive_int, default=256)
    p.set_defaults(func=cmd_encode)

    p = sub.add_parser(
        "decode", help="code maps (.npy) to images (PNG grid, optional .npy)"
    )
    p.add_argument("--preset", default=DEFAULT_PRESET)
    p.add_argument("--codes", required=True, help=".npy of int codes (N, h, w)")
    p.add_argument("--out", default="decoded.png")
    p.add_argument("--npy", help="also save the uint8 images to this .npy")
    p.add_argument("--batch-size", type=_positive_int, default=256)
    p.set_defaults(func=cmd_decode)

    p = sub.add_parser(
        "sample", help="sample images from the preset's PixelCNN prior"
    )
    p.add_argument("--preset", default=DEFAULT_PRESET)
    p.add_argument("--n", type=_positive_int, default=32)
    p.add_argument(
        "--label",
        help="class for a class-conditional prior: its label (an integer), "
        "or its name or id (the preset's metadata.json, prior.classes)",
    )
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="samples.png")
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser(
        "train", help="train a VQ-VAE preset (checkpoints, resume, TensorBoard)"
    )
    add_train_arguments(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "train-prior",
        help="train a PixelCNN prior on a preset's codes and add it to the preset",
    )
    add_train_prior_arguments(p)
    p.set_defaults(func=cmd_train_prior)

    p = sub.add_parser(
        "train-video-prior",
        help="train an action-conditional next-frame prior on a frame preset",
    )
    add_train_video_prior_arguments(p)
    p.set_defaults(func=cmd_train_video_prior)

    p = sub.add_parser(
        "rollout",
        help="generate frames from real ones and actions (GIF and PNG strip)",
    )
    add_rollout_arguments(p)
    p.set_defaults(func=cmd_rollout)

    p = sub.add_parser(
        "evaluate", help="test-split MSE, PSNR, perplexity, usage (+ bits/dim)"
    )
    add_evaluate_arguments(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser(
        "train-speech",
        help="train a speech VQ-VAE with a WaveNet decoder (checkpoints, resume)",
    )
    add_train_speech_arguments(p)
    p.set_defaults(func=cmd_train_speech)

    p = sub.add_parser(
        "encode-audio",
        help="a WAV/FLAC/Ogg file to codes (.npy) with a speech preset",
    )
    p.add_argument("--preset", required=True)
    p.add_argument("--audio", required=True, help="WAV, FLAC or Ogg file")
    p.add_argument("--out", default="codes.npy")
    p.set_defaults(func=cmd_encode_audio)

    p = sub.add_parser(
        "decode-audio", help="codes (.npy) to a WAV file, in a speaker's voice"
    )
    p.add_argument("--preset", required=True)
    p.add_argument("--codes", required=True, help=".npy of int codes (T,)")
    p.add_argument("--speaker", help="speaker name or id")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="decoded.wav")
    p.set_defaults(func=cmd_decode_audio)

    p = sub.add_parser(
        "convert-speaker",
        help="say an audio file's content in another speaker's voice",
    )
    p.add_argument("--preset", required=True)
    p.add_argument("--audio", required=True, help="WAV, FLAC or Ogg file")
    p.add_argument("--speaker", required=True, help="target speaker name or id")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="converted.wav")
    p.set_defaults(func=cmd_convert_speaker)

    p = sub.add_parser(
        "upload", help="publish a preset folder to the Hugging Face Hub"
    )
    add_upload_arguments(p)
    p.set_defaults(func=cmd_upload)
    return parser


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.command_line = "keras-vqvae " + shlex.join(argv)
    if args.native_logs and os.environ.get("KERAS_VQVAE_NATIVE_LOGS") != "1":
        # The backend was imported (quietly) with the package: start again.
        os.environ["KERAS_VQVAE_NATIVE_LOGS"] = "1"
        os.execv(
            sys.executable, [sys.executable, "-m", "keras_vqvae.cli", *argv]
        )
    args.progress = 0 if args.quiet else 1
    with filtered_stderr(enabled=not args.native_logs):
        return _run(args)


def _run(args):
    from keras_vqvae import errors

    global _results
    _results = sys.stdout
    try:
        with contextlib.redirect_stdout(sys.stderr):
            args.func(args)
    except (
        CommandError,
        errors.PresetError,
        errors.DataError,
        errors.ConfigError,
        errors.UploadError,
        errors.NaNLossError,
        errors.CheckpointError,
        FileNotFoundError,
    ) as e:
        message = " ".join(str(e).split())
        print(f"keras-vqvae {args.command}: error: {message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
