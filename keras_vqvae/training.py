"""Training a VQ-VAE preset: data, callbacks, checkpoints, resume."""

import json
import math
import time
from pathlib import Path

import keras
import numpy as np

from keras_vqvae import data
from keras_vqvae.evaluation import evaluate_reconstructions
from keras_vqvae.model_card import write_model_card
from keras_vqvae.models import VQVAE

_MNIST_LIKE = dict(
    image_shape=(28, 28, 1),
    num_embeddings=128,
    embedding_dim=32,
    num_hiddens=64,
    num_residual_layers=2,
    num_residual_hiddens=32,
    num_downsamples=2,
    quantizer="ema",
    kmeans_init=True,
    dead_code_threshold=1.0,
)

# Architectures of the bundled presets. cifar10 follows the paper and
# DeepMind's Sonnet example; imagenet_128 has the paper's shapes (128x128x3
# to 32x32 codes, K = 512) with the cifar10 widths instead of the paper's
# 256 hidden units, to be trainable on a CPU. k-means initialisation and
# dead-code restarts are our additions, recorded in each config.
_CIFAR10 = dict(
    image_shape=(32, 32, 3),
    num_embeddings=512,
    embedding_dim=64,
    num_hiddens=128,
    num_residual_layers=2,
    num_residual_hiddens=32,
    num_downsamples=2,
    quantizer="ema",
    kmeans_init=True,
    dead_code_threshold=1.0,
)

ARCHITECTURES = {
    "mnist": _MNIST_LIKE,
    "fashion_mnist": _MNIST_LIKE,
    "cifar10": _CIFAR10,
    "imagenet_128": {**_CIFAR10, "image_shape": (128, 128, 3)},
}


class NaNLossError(RuntimeError):
    """Training stopped because the loss became NaN or infinite."""


class _StepLogger(keras.callbacks.Callback):
    """Writes each epoch's logs (one line of JSON) to a file, appending."""

    def __init__(self, path, steps_per_epoch):
        super().__init__()
        self.path = Path(path)
        self.steps_per_epoch = steps_per_epoch

    def on_epoch_end(self, epoch, logs=None):
        record = {"step": (epoch + 1) * self.steps_per_epoch, "time": time.time()}
        record.update({k: float(v) for k, v in (logs or {}).items()})
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")


def architecture_config(preset=None, config_path=None, **overrides):
    """Constructor arguments from a preset architecture name or a JSON file."""
    if config_path:
        config = json.loads(Path(config_path).read_text())
        config = config.get("config", config)
    elif preset in ARCHITECTURES:
        config = dict(ARCHITECTURES[preset])
    else:
        raise ValueError(
            f"No architecture named {preset!r}; choose one of "
            f"{sorted(ARCHITECTURES)} or pass a config JSON file."
        )
    config.update(overrides)
    return config


def train(
    preset,
    data_spec,
    out_dir,
    steps,
    work_dir=None,
    batch_size=32,
    learning_rate=3e-4,
    checkpoint_every=500,
    seed=0,
    config_path=None,
    eval_limit=None,
    verbose=1,
    reproduce=None,
    **overrides,
):
    """Trains a VQ-VAE and writes a preset folder with measured metadata.

    Checkpoints (weights, optimizer and step) go to `work_dir/backup` every
    `checkpoint_every` steps; running the same command again resumes from the
    last one. TensorBoard logs go to `work_dir/logs`. Training stops with
    `NaNLossError` (and writes no preset) if the loss becomes NaN.

    Args:
        preset: architecture name (see `ARCHITECTURES`), used as the preset
            name in the metadata.
        data_spec: data source for `keras_vqvae.data.load_dataset`: a folder
            with `train`/`test` splits, a `.npz`, an image folder or
            `tfds:NAME`.
        out_dir: preset folder to write.
        steps: total number of optimizer steps.
        work_dir: folder for checkpoints and logs (default `runs/<preset>`).
        batch_size: int.
        learning_rate: Adam learning rate.
        checkpoint_every: steps between checkpoints (and log lines).
        seed: seed for weights, shuffling and the quantiser.
        config_path: JSON config to use instead of the preset architecture.
        eval_limit: evaluate on at most this many test images.
        verbose: Keras progress-bar verbosity.
        reproduce: the command line that runs this training, for the
            metadata.
        **overrides: constructor arguments that replace the architecture's.

    Returns:
        The metadata dict written to the preset.
    """
    started = time.time()
    keras.utils.set_random_seed(seed)
    work_dir = Path(work_dir or Path("runs") / preset)
    work_dir.mkdir(parents=True, exist_ok=True)
    config = architecture_config(preset, config_path, seed=seed, **overrides)
    image_size = tuple(config["image_shape"][:2])
    channels = config["image_shape"][2]
    train_images, _ = data.load_dataset(
        data_spec, "train", image_size=image_size, channels=channels
    )
    test_images, _ = data.load_dataset(
        data_spec, "test", image_size=image_size, channels=channels,
        limit=eval_limit,
    )
    config.setdefault(
        "data_variance", float(np.var(data.normalize(train_images[:10000])))
    )
    model = VQVAE(**config)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate))
    dataset = data.make_dataset(
        train_images, batch_size, shuffle=True, seed=seed, repeat=True,
        drop_remainder=True,
    )
    epochs = math.ceil(steps / checkpoint_every)
    history = model.fit(
        dataset,
        epochs=epochs,
        steps_per_epoch=checkpoint_every,
        shuffle=False,  # the pipeline shuffles
        verbose=verbose,
        callbacks=[
            keras.callbacks.BackupAndRestore(
                str(work_dir / "backup"), delete_checkpoint=False
            ),
            keras.callbacks.TerminateOnNaN(),
            keras.callbacks.TensorBoard(str(work_dir / "logs")),
            _StepLogger(work_dir / "train_log.jsonl", checkpoint_every),
        ],
    )
    losses = history.history.get("loss", [])
    if losses and not np.isfinite(losses[-1]):
        raise NaNLossError(
            f"The loss became {losses[-1]} at epoch {len(losses)}; no preset "
            f"was written. Checkpoints before it are in {work_dir / 'backup'}."
        )
    metrics = evaluate_reconstructions(model, test_images)
    metadata = {
        "preset": preset,
        "dataset": str(data_spec),
        "image_shape": list(model.image_shape),
        "latent_shape": list(model.latent_shape),
        "num_embeddings": model.num_embeddings,
        "embedding_dim": model.embedding_dim,
        "training": {
            "steps": epochs * checkpoint_every,
            "batch_size": batch_size,
            "learning_rate": learning_rate,
            "seed": seed,
            "train_images": int(len(train_images)),
            "wall_time_s_this_run": round(time.time() - started, 1),
            "backend": keras.backend.backend(),
        },
        "test_metrics": {**metrics, "test_images": int(len(test_images))},
        "reproduce": reproduce,
    }
    model.save_to_preset(out_dir, metadata=metadata)
    write_model_card(out_dir)
    return metadata
