"""Training a PixelCNN prior on the codes of a trained VQ-VAE preset."""

import math
import time
from pathlib import Path

import keras
import numpy as np

from keras_vqvae import data
from keras_vqvae.evaluation import bits_per_dim_of
from keras_vqvae.model_card import write_model_card
from keras_vqvae.models import VQVAE
from keras_vqvae.models import PixelCNNPrior
from keras_vqvae.visualization import save_image_grid


def encode_split(model, data_spec, split, limit=None):
    """Codes and labels of a data split (labels None if the data has none)."""
    images, labels = data.load_dataset(
        data_spec, split, image_size=model.image_shape[:2],
        channels=model.image_shape[2], limit=limit,
    )
    labels = None if labels is None or (labels < 0).any() else labels
    return images, model.encode(images), labels


def train_prior(
    preset_dir,
    data_spec,
    steps,
    batch_size=32,
    learning_rate=1e-3,
    hidden_dim=128,
    num_layers=12,
    conditional=True,
    samples=64,
    seed=0,
    eval_limit=None,
    verbose=1,
    reproduce=None,
):
    """Trains a PixelCNN prior on a preset's codes and adds it to the preset.

    Writes `prior_config.json`, `prior.weights.h5` and `samples.png` into the
    preset folder and records the test bits/dim (prior alone, per code, and
    the VQ-VAE bound per pixel dimension) in `metadata.json`.

    Args:
        preset_dir: the trained VQ-VAE preset folder to extend.
        data_spec: data with `train` and `test` splits.
        steps: optimizer steps.
        batch_size: code maps per step.
        learning_rate: Adam learning rate.
        hidden_dim: PixelCNN channels.
        num_layers: gated blocks.
        conditional: condition on class labels when the data has them.
        samples: number of images in `samples.png`.
        seed: seed of the weights, shuffling and samples.
        eval_limit: evaluate on at most this many test images.
        verbose: Keras progress-bar verbosity.
        reproduce: the command line that runs this training, for the
            metadata.

    Returns:
        the prior's metadata dict.
    """
    started = time.time()
    keras.utils.set_random_seed(seed)
    preset_dir = Path(preset_dir)
    model = VQVAE.from_preset(preset_dir)
    _, train_codes, train_labels = encode_split(model, data_spec, "train")
    test_images, test_codes, test_labels = encode_split(
        model, data_spec, "test", limit=eval_limit
    )
    conditional = conditional and train_labels is not None
    num_classes = int(train_labels.max()) + 1 if conditional else None
    prior = PixelCNNPrior(
        model.num_embeddings, model.latent_shape, hidden_dim=hidden_dim,
        num_layers=num_layers, num_classes=num_classes,
    )
    prior.compile(optimizer=keras.optimizers.Adam(learning_rate))
    inputs = (train_codes, train_labels) if conditional else train_codes
    epochs = max(1, math.ceil(steps * batch_size / len(train_codes)))
    prior.fit(
        inputs, train_codes, batch_size=batch_size, epochs=epochs,
        verbose=verbose, callbacks=[keras.callbacks.TerminateOnNaN()],
    )
    test_labels = test_labels if conditional else None
    metrics = bits_per_dim_of(model, prior, test_images, labels=test_labels)
    sample_labels = (
        np.arange(samples) % num_classes if conditional else None
    )
    codes = prior.sample(samples, labels=sample_labels, seed=seed)
    images = model.decode_indices(codes)
    save_image_grid(
        preset_dir / "samples.png", images, columns=8,
        scale=max(1, 64 // model.image_shape[0]),
    )
    prior_metadata = {
        "class_conditional": conditional,
        "hidden_dim": hidden_dim,
        "num_layers": num_layers,
        "steps": epochs * math.ceil(len(train_codes) / batch_size),
        "epochs": epochs,
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "wall_time_s": round(time.time() - started, 1),
        "test_metrics": {**metrics, "test_images": int(len(test_images))},
        "reproduce": reproduce,
    }
    prior.save_to_preset(preset_dir, metadata={"prior": prior_metadata})
    write_model_card(preset_dir)
    return prior_metadata
