"""Workflows over presets: train, train a prior, evaluate, reconstruct, sample.

Each is a plain function (the CLI parses arguments and calls them; the
tools and guides call them too). Data goes one way: a source is loaded for
the model (`data.load_split(..., model=model)`), the model is fitted or
measured (`measure_*`), and the numbers go to the preset's metadata and
model card.
"""

import contextlib
import json
import math
import time
from pathlib import Path

import keras
import numpy as np

from keras_vqvae import data
from keras_vqvae import metrics
from keras_vqvae.errors import CheckpointError
from keras_vqvae.errors import ConfigError
from keras_vqvae.errors import DataError
from keras_vqvae.errors import NaNLossError
from keras_vqvae.errors import PresetError
from keras_vqvae.models import PIXELCNN_PRIOR_PRESETS
from keras_vqvae.models import VQVAE
from keras_vqvae.models import VQVAE_PRESETS
from keras_vqvae.models import PixelCNNPrior
from keras_vqvae.precision import training_policy
from keras_vqvae.presets import PresetFolder
from keras_vqvae.visualization import class_grid_columns
from keras_vqvae.visualization import class_labels_for_columns
from keras_vqvae.visualization import reconstruction_row_labels
from keras_vqvae.visualization import reconstruction_rows
from keras_vqvae.visualization import save_image_grid
from keras_vqvae.visualization import save_images

# --- Measurements -----------------------------------------------------------


def measure_reconstructions(model, images, batch_size=256, verbose=0):
    """Reconstruction metrics of `model` on uint8 `images`.

    Args:
        model: a `VQVAE`.
        images: uint8 array `(N, H, W, C)`.
        batch_size: images per forward pass.
        verbose: 0 or 1. 1 shows progress bars.

    Returns:
        dict with `mse` (mean squared error on the 0..1 scale over all
        pixels), `psnr_db` (from that MSE, i.e. the data set's PSNR, not a
        mean of per-image PSNRs), `mean_image_psnr_db`, and the codebook
        `perplexity`, `codebook_usage` and `codes_used` over the whole set.
    """
    codes = model.encode(images, batch_size=batch_size, verbose=verbose)
    reconstructions = model.decode_indices(
        codes, batch_size=batch_size, verbose=verbose
    )
    return {
        "mse": metrics.mse01(images, reconstructions),
        "psnr_db": metrics.psnr(images, reconstructions),
        "mean_image_psnr_db": float(
            np.mean(metrics.psnr(images, reconstructions, per_image=True))
        ),
        **metrics.code_statistics(codes, model.num_embeddings),
    }


def _decoded_means(model, images, batch_size):
    codes = model.encode(images, batch_size=batch_size)
    means = model.decode_indices(codes, batch_size=batch_size, as_uint8=False)
    return codes, means.astype("float64")


# The decoder scale is fitted on at most this many training images and
# pixel values (5,000 CIFAR-10 images; 341 at 128x128x3, 2 GB less memory).
SCALE_FIT_IMAGES = 5000
SCALE_FIT_VALUES = 2**24


def evenly_spaced(images, count):
    """At most `count` images spread over the array (splits are often
    grouped by class)."""
    if len(images) <= count:
        return images
    return images[np.linspace(0, len(images) - 1, count).astype(int)]


def scale_fit_images(train_images):
    """The training images `fit_decoder_scale` uses: evenly spaced, within
    `SCALE_FIT_IMAGES` images and `SCALE_FIT_VALUES` values."""
    per_image = max(1, int(np.prod(train_images.shape[1:])))
    count = min(SCALE_FIT_IMAGES, max(1, SCALE_FIT_VALUES // per_image))
    return evenly_spaced(train_images, count)


def fit_decoder_scale(model, images, batch_size=256):
    """The decoder's discretised-Gaussian scale, fitted by maximum
    likelihood on uint8 `images` (use training images)."""
    _, means = _decoded_means(model, images, batch_size)
    return metrics.fit_discretized_gaussian_scale(
        images, means, model.normalization
    )


def measure_bits_per_dim(
    model, prior, images, labels=None, fit_images=None, batch_size=256
):
    """The VQ-VAE's bits/dim on uint8 `images`, as in the paper.

    The decoder's likelihood is a Gaussian around the reconstruction,
    discretised to the 256 pixel values, with one standard deviation fitted
    by maximum likelihood on `fit_images` (training images: a bound fitted
    on the test images themselves would not be one). The prior adds its
    negative log-likelihood of the codes.

    Args:
        model: a `VQVAE`.
        prior: its `PixelCNNPrior`.
        images: uint8 test images.
        labels: their labels, for a class-conditional prior.
        fit_images: uint8 training images for the decoder's scale.
        batch_size: images per forward pass.

    Returns:
        dict with `bits_per_dim` (the bound), `decoder_bits_per_dim`,
        `prior_bits_per_dim` (both per pixel dimension),
        `prior_bits_per_code`, `decoder_scale` and `decoder_scale_fit`.
    """
    if fit_images is None or not len(fit_images):
        raise ValueError(
            "`fit_images` (training images) are needed to fit the decoder's "
            "scale."
        )
    scale = fit_decoder_scale(model, fit_images, batch_size)
    codes, means = _decoded_means(model, images, batch_size)
    decoder_nll = metrics.discretized_gaussian_nll(
        images, means, scale, model.normalization
    )
    prior_nll = -prior.log_prob(codes, labels=labels, batch_size=batch_size)
    return {
        **metrics.bits_per_dim(
            decoder_nll, prior_nll, int(np.prod(images.shape[1:]))
        ),
        "prior_bits_per_code": float(
            np.mean(prior_nll) / (codes[0].size * math.log(2.0))
        ),
        "decoder_scale": scale,
        "decoder_scale_fit": (
            f"maximum likelihood on {len(fit_images)} training images"
        ),
    }


# --- Pictures ----------------------------------------------------------------


def _grid_scale(model):
    return max(1, 64 // model.image_shape[0])


def write_reconstruction_grid(model, images, path, grid_images=32):
    """PNG of evenly spaced originals above their reconstructions, rows
    labelled "original" and "reconstruction".

    Evenly spaced, because test splits are often grouped by class.
    """
    count = min(grid_images, len(images))
    shown = images[np.linspace(0, len(images) - 1, count).astype(int)]
    rows = reconstruction_rows(shown, model.reconstruct(shown), min(8, count))
    return save_image_grid(
        path,
        rows,
        scale=_grid_scale(model),
        row_labels=reconstruction_row_labels(len(rows)),
    )


def sample_images(
    model, prior, count, labels=None, temperature=1.0, seed=0, verbose=0
):
    """Samples `count` code maps from `prior` and decodes them with `model`.

    For a class-conditional prior without `labels`, the samples cycle
    through the classes. `verbose=1` shows a progress bar.
    """
    if prior.num_classes and labels is None:
        labels = np.arange(count) % prior.num_classes
    codes = prior.sample(
        count,
        labels=labels,
        temperature=temperature,
        seed=seed,
        batch_size=16,  # progress per chunk; the samples do not change
        verbose=verbose,
    )
    return model.decode_indices(codes)


def class_label(label, classes=None):
    """The integer label of a class given by label, name or id.

    Args:
        label: None, an int, or a string: an integer, or (with `classes`)
            a class's name or id, matched without regard to case.
        classes: None or a prior's `classes` metadata (dicts with `label`,
            `id` and `name`).

    Returns:
        None (for None) or an int. Range checks are the prior's.

    Raises:
        DataError: a string that is neither an integer nor a known class.
    """
    if label is None or isinstance(label, (int, np.integer)):
        return label
    text = str(label).strip()
    try:
        return int(text)
    except ValueError:
        pass
    for entry in classes or ():
        if text.lower() in (entry["name"].lower(), entry["id"].lower()):
            return int(entry["label"])
    known = ", ".join(
        f"{c['label']}: {c['name']} ({c['id']})" for c in classes or ()
    )
    raise DataError(
        f"Unknown class {label!r}. "
        + (
            f"Known classes: {known}."
            if known
            else "This prior names no classes: pass an integer label."
        )
    )


def write_sample_grid(
    model, images, path, num_classes=None, title=None, class_names=None
):
    """PNG of sampled or decoded images.

    With `num_classes` (images that cycle through the classes, as
    `sample_images` makes them), one column per class, labelled with
    `class_names` (default: "class k").
    """
    if not num_classes:
        return save_image_grid(
            path, images, columns=8, scale=_grid_scale(model), title=title
        )
    columns = class_grid_columns(num_classes, len(images))
    return save_image_grid(
        path,
        images,
        columns=columns,
        scale=_grid_scale(model),
        column_labels=class_labels_for_columns(
            num_classes, columns, class_names=class_names, count=len(images)
        ),
        title=title,
    )


# --- Evaluation --------------------------------------------------------------


def evaluate_preset(
    preset,
    source,
    split="test",
    limit=None,
    grid_path=None,
    grid_images=32,
    batch_size=256,
    bits_per_dim=False,
    verbose=0,
):
    """Loads a preset, measures it on a data split, optionally draws a grid.

    Args:
        preset: bundled name, folder or `hf://owner/repo`.
        source: data source for `keras_vqvae.data.load_split`.
        split: data split to evaluate.
        limit: evaluate on at most this many images.
        grid_path: if set, write a PNG of originals above their
            reconstructions (`write_reconstruction_grid`).
        grid_images: number of images in the grid.
        batch_size: images per forward pass.
        bits_per_dim: also compute bits/dim with the preset's prior.
        verbose: 0 or 1. 1 shows progress bars.

    Returns:
        dict of metrics (see `measure_reconstructions`) plus `images`.
    """
    folder = PresetFolder.resolve(preset)
    model = VQVAE.from_preset(folder.path)
    images, labels = data.load_split(source, split, model=model, limit=limit)
    results = measure_reconstructions(
        model, images, batch_size=batch_size, verbose=verbose
    )
    results["images"] = int(len(images))
    if grid_path:
        write_reconstruction_grid(model, images, grid_path, grid_images)
    if bits_per_dim:
        prior = PixelCNNPrior.from_preset(folder.path)
        train_images, _ = data.load_split(source, "train", model=model)
        results.update(
            measure_bits_per_dim(
                model,
                prior,
                images,
                labels=labels if prior.num_classes else None,
                fit_images=scale_fit_images(train_images),
                batch_size=batch_size,
            )
        )
    return results


def demo(preset, source, out_dir, limit=1000, samples=32, verbose=1, log=print):
    """Reconstructs held-out images and samples from the preset's prior.

    Writes `reconstructions.png` (and `samples.png` when the preset has a
    prior) into `out_dir`, and 8 of the held-out images as
    `test_images/<i>.png` for the README's examples. `verbose=1` shows
    progress bars.

    Returns:
        dict with the reconstruction metrics and the paths written.
    """
    out_dir = Path(out_dir)
    folder = PresetFolder.resolve(preset)
    model = VQVAE.from_preset(folder.path)
    log(f"== reconstructing {limit} held-out images with preset {preset!r}")
    images, _ = data.load_split(source, "test", model=model, limit=limit)
    results = measure_reconstructions(model, images, verbose=verbose)
    results["images"] = int(len(images))
    results["grid"] = str(
        write_reconstruction_grid(
            model, images, out_dir / "reconstructions.png"
        )
    )
    save_images(out_dir / "test_images", images[:8])
    results["test_images"] = str(out_dir / "test_images")
    if folder.has("prior", PixelCNNPrior):
        log("== sampling from the PixelCNN prior")
        prior = PixelCNNPrior.from_preset(folder.path)
        sampled = sample_images(model, prior, samples, verbose=verbose)
        results["samples"] = str(
            write_sample_grid(
                model,
                sampled,
                out_dir / "samples.png",
                num_classes=prior.num_classes,
            )
        )
    else:
        log(f"(preset {preset!r} has no prior; skipping samples)")
    return results


# --- Training ----------------------------------------------------------------


class FiniteBackupAndRestore(keras.callbacks.BackupAndRestore):
    """`BackupAndRestore` that never saves non-finite weights.

    After a NaN step the checkpoint keeps the last finite weights, so a
    rerun (with a lower learning rate, say) resumes from them; a damaged
    checkpoint is a `CheckpointError` that says how to start over. The
    optimizer's state comes back from the checkpoint except its learning
    rate: the rerun's own learning rate is the one used.
    """

    def __init__(self, backup_dir, log=print, **kwargs):
        super().__init__(backup_dir, **kwargs)
        self.log = log

    def _save_model(self):
        weights = self.model.get_weights()
        if all(np.isfinite(w).all() for w in weights if w.dtype.kind == "f"):
            self._save_atomically()

    def _save_atomically(self):
        # Written beside the checkpoint, then renamed over it: a process
        # killed while saving leaves the previous checkpoint readable.
        backup_dir = Path(self.backup_dir)
        backup_dir.mkdir(parents=True, exist_ok=True)
        weights = backup_dir / "partial.weights.h5"
        metadata = backup_dir / "partial_training_metadata.json"
        self.model.save_weights(str(weights), overwrite=True)
        position = {
            "epoch": self._current_epoch,
            "batch": self._last_batch_seen,
        }
        metadata.write_text(json.dumps(position))
        weights.replace(self._weights_path)
        metadata.replace(self._training_metadata_path)

    def _load_model(self):
        requested = _constant_learning_rate(self.model.optimizer)
        try:
            super()._load_model()
        except (OSError, ValueError, KeyError) as e:
            raise CheckpointError(
                f"The checkpoint in {self.backup_dir} cannot be read "
                f"(damaged or half-written: {e}). Delete that folder to "
                "start the training over, or pass another --work-dir."
            ) from e
        restored = _constant_learning_rate(self.model.optimizer)
        if requested is not None and restored != requested:
            self.model.optimizer.learning_rate = requested
            self.log(
                f"resuming with learning rate {requested:g} "
                f"(the checkpoint's was {restored:g})"
            )


def check_final_loss(history, work_dir):
    """Raises `NaNLossError` if the training run's last loss is not finite
    (`TerminateOnNaN` stopped it), naming the checkpoints before it."""
    losses = history.history.get("loss", [])
    if losses and not np.isfinite(losses[-1]):
        raise NaNLossError(
            f"The loss became {losses[-1]} at epoch {len(losses)}; no preset "
            f"was written. Checkpoints before it are in {work_dir / 'backup'}."
        )


def _constant_learning_rate(optimizer):
    """The optimizer's learning rate as a float; None for a schedule."""
    if isinstance(
        optimizer._learning_rate,
        keras.optimizers.schedules.LearningRateSchedule,
    ):
        return None
    return float(keras.ops.convert_to_numpy(optimizer.learning_rate))


class _StepLogger(keras.callbacks.Callback):
    """Writes each epoch's logs (one line of JSON) to a file, appending."""

    def __init__(self, path, steps_per_epoch):
        super().__init__()
        self.path = Path(path)
        self.steps_per_epoch = steps_per_epoch

    def on_epoch_end(self, epoch, logs=None):
        record = {
            "step": (epoch + 1) * self.steps_per_epoch,
            "time": time.time(),
            "learning_rate": _constant_learning_rate(self.model.optimizer),
        }
        record.update({k: float(v) for k, v in (logs or {}).items()})
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")


def _learning_rate_history(log_path):
    """`{"learning_rate_by_step": [[last_step, rate], ...]}` from the step
    log when a resumed run changed the learning rate, else `{}`."""
    spans = []
    for line in log_path.read_text().splitlines():
        record = json.loads(line)
        rate = record.get("learning_rate")
        if spans and spans[-1][1] == rate:
            spans[-1][0] = record["step"]
        else:
            spans.append([record["step"], rate])
    return {"learning_rate_by_step": spans} if len(spans) > 1 else {}


def architecture_config(architecture=None, config_path=None, **overrides):
    """Constructor arguments from a named architecture or a JSON file.

    Args:
        architecture: a name in `VQVAE_PRESETS`.
        config_path: a JSON file with constructor arguments (or a preset
            `config.json`, whose `config` object is used).
        **overrides: arguments that replace the architecture's.
    """
    if config_path:
        try:
            config = json.loads(Path(config_path).read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ConfigError(
                f"--config {config_path}: not a readable JSON file of "
                f"constructor arguments ({e})."
            ) from e
        if not isinstance(config, dict):
            raise ConfigError(
                f"--config {config_path}: expected a JSON object of "
                f"constructor arguments. Received: {type(config).__name__}"
            )
        config = config.get("config", config)
    elif architecture in VQVAE_PRESETS:
        config = dict(VQVAE_PRESETS[architecture]["config"])
    else:
        raise ConfigError(
            f"No architecture named {architecture!r}; choose one of "
            f"{sorted(VQVAE_PRESETS)} or pass a config JSON file."
        )
    return {**config, **overrides}


def _steps_per_execution(requested, checkpoint_every, log):
    """A divisor of `checkpoint_every`; 1 on PyTorch, whose Keras trainer
    runs one step per call (it refuses more)."""
    if keras.backend.backend() == "torch" and requested > 1:
        log(
            f"steps per execution: 1 (the torch backend runs one step per call; {requested} requested)"
        )
        return 1
    return math.gcd(int(requested), checkpoint_every)


def train_vqvae(
    architecture,
    source,
    preset_dir,
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
    precision="auto",
    augment=False,
    steps_per_execution=8,
    log=print,
    **overrides,
):
    """Trains a VQ-VAE and writes a preset folder with measured metadata.

    Checkpoints (weights, optimizer and step) go to `work_dir/backup` every
    `checkpoint_every` steps; running the same command again resumes from
    the last one. TensorBoard logs go to `work_dir/logs`. Training stops
    with `NaNLossError` (and writes no preset) if the loss becomes NaN.

    Args:
        architecture: a name in `VQVAE_PRESETS` (with `config_path`, any
            name: it names the preset in the metadata).
        source: data source for `keras_vqvae.data.load_split` with `train`
            and `test` splits.
        preset_dir: preset folder to write.
        steps: total number of optimizer steps.
        work_dir: folder for checkpoints and logs (default
            `runs/<architecture>`).
        batch_size: int.
        learning_rate: Adam learning rate.
        checkpoint_every: steps between checkpoints (and log lines).
        seed: seed for weights, shuffling and the quantiser.
        config_path: JSON config to use instead of a named architecture.
        eval_limit: evaluate on at most this many test images.
        verbose: Keras progress-bar verbosity.
        reproduce: the command line that runs this training, for the
            metadata.
        precision: `"auto"` (bfloat16 where the hardware has units for
            it), `"float32"` or `"mixed_bfloat16"`; see
            `keras_vqvae.precision`. The preset is saved in float32.
        augment: bool. Random horizontal flips (natural images only).
        steps_per_execution: int. Training steps per compiled call (fewer
            host round trips); rounded down to a divisor of
            `checkpoint_every`.
        log: function that prints progress lines.
        **overrides: constructor arguments that replace the architecture's.

    Returns:
        The metadata dict written to the preset.
    """
    started = time.time()
    keras.utils.set_random_seed(seed)
    work_dir = Path(work_dir or Path("runs") / architecture)
    work_dir.mkdir(parents=True, exist_ok=True)
    config = architecture_config(
        architecture, config_path, seed=seed, **overrides
    )
    policy, reason = training_policy(precision)
    log(f"precision: {policy} ({reason})")
    try:
        model = VQVAE(**config, dtype=policy)
    except (TypeError, ValueError) as e:
        origin = f"--config {config_path}" if config_path else "the config"
        raise ConfigError(f"{origin} (with any --set values): {e}") from e
    train_images, _ = data.load_split(source, "train", model=model)
    test_images, _ = data.load_split(
        source, "test", model=model, limit=eval_limit
    )
    if "data_variance" not in config:
        model.data_variance = float(
            np.var(model.preprocess(train_images[:10000]))
        )
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        steps_per_execution=_steps_per_execution(
            steps_per_execution, checkpoint_every, log
        ),
    )
    dataset = data.make_dataset(
        train_images,
        batch_size,
        shuffle=True,
        seed=seed,
        repeat=True,
        drop_remainder=True,
        augment=augment,
        normalization=model.normalization,
    )
    epochs = math.ceil(steps / checkpoint_every)
    history = model.fit(
        dataset,
        epochs=epochs,
        steps_per_epoch=checkpoint_every,
        shuffle=False,  # the pipeline shuffles
        verbose=verbose,
        callbacks=[
            FiniteBackupAndRestore(
                str(work_dir / "backup"), log=log, delete_checkpoint=False
            ),
            keras.callbacks.TerminateOnNaN(),
            keras.callbacks.TensorBoard(str(work_dir / "logs")),
            _StepLogger(work_dir / "train_log.jsonl", checkpoint_every),
        ],
    )
    check_final_loss(history, work_dir)
    model = _float32_copy(model)
    results = measure_reconstructions(model, test_images)
    metadata = {
        "preset": architecture,
        "dataset": str(source),
        "image_shape": list(model.image_shape),
        "latent_shape": list(model.latent_shape),
        "num_embeddings": model.num_embeddings,
        "embedding_dim": model.embedding_dim,
        "training": {
            "steps": epochs * checkpoint_every,
            "batch_size": batch_size,
            "learning_rate": learning_rate,
            **_learning_rate_history(work_dir / "train_log.jsonl"),
            "seed": seed,
            "precision": policy,
            "augment": augment,
            "train_images": int(len(train_images)),
            "wall_time_s_this_run": round(time.time() - started, 1),
            "backend": keras.backend.backend(),
        },
        "test_metrics": {**results, "test_images": int(len(test_images))},
        "reproduce": reproduce,
    }
    model.save_to_preset(preset_dir, metadata=metadata)
    PresetFolder(preset_dir).write_model_card()
    return metadata


@contextlib.contextmanager
def _global_dtype_policy(policy):
    # PixelCNNPrior's sublayers follow the global policy.
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def _float32_copy(model):
    """The trained model with float32 compute, for evaluation and presets
    (mixed-precision variables are float32 already)."""
    if model.dtype_policy.name == "float32":
        return model
    config = {**model.get_config(), "dtype": "float32"}
    copy = model.__class__.from_config(config)
    copy.set_weights(model.get_weights())
    return copy


def _encode_split(model, source, split, limit=None):
    """Images, codes and labels of a split (labels None if any is missing)."""
    images, labels = data.load_split(source, split, model=model, limit=limit)
    labels = None if (labels < 0).any() else labels
    return images, model.encode(images), labels


def _prior_classes(source, num_classes):
    """The source's classes with their labels, or None if it names none."""
    classes = data.load_classes(source)
    if classes is None:
        return None
    if len(classes) < num_classes:
        raise DataError(
            f"{source} names {len(classes)} classes but its labels go up to "
            f"{num_classes - 1}: fix its class list (e.g. classes.json) to "
            "give one class per label."
        )
    return [{"label": i, **c} for i, c in enumerate(classes[:num_classes])]


def trained_vqvae(preset_dir):
    """`(PresetFolder, VQVAE)` of a preset folder a prior is trained on, or
    a `PresetError` that says to train the VQ-VAE first."""
    folder = PresetFolder(preset_dir)
    if not folder.has("model"):
        raise PresetError(
            f"--preset-dir {preset_dir}: no trained VQ-VAE there (no "
            "config.json). Train one first with `keras-vqvae train`."
        )
    return folder, VQVAE.from_preset(folder.path)


def prior_architecture(preset_dir, hidden_dim=None, num_layers=None):
    """The prior's constructor arguments: the bundled table's entry for the
    preset's name (128 x 12 for other names), then the given overrides."""
    name = PresetFolder(preset_dir).metadata.get(
        "preset", Path(preset_dir).name
    )
    entry = PIXELCNN_PRIOR_PRESETS.get(name, {"config": {}})
    config = {"hidden_dim": 128, "num_layers": 12, **entry["config"]}
    if hidden_dim is not None:
        config["hidden_dim"] = hidden_dim
    if num_layers is not None:
        config["num_layers"] = num_layers
    return config


def train_prior(
    preset_dir,
    source,
    steps,
    batch_size=32,
    learning_rate=1e-3,
    hidden_dim=None,
    num_layers=None,
    conditional=True,
    samples=64,
    seed=0,
    eval_limit=None,
    verbose=1,
    reproduce=None,
    precision="auto",
    log=print,
):
    """Trains a PixelCNN prior on a preset's codes and adds it to the preset.

    Writes `prior_config.json`, `prior.weights.h5` and `samples.png` into the
    preset folder and records the test bits/dim (prior alone, per code, and
    the VQ-VAE bound per pixel dimension) in `metadata.json`.

    Args:
        preset_dir: the trained VQ-VAE preset folder to extend.
        source: data with `train` and `test` splits.
        steps: optimizer steps (rounded up to whole epochs).
        batch_size: code maps per step.
        learning_rate: Adam learning rate.
        hidden_dim: PixelCNN channels (None: `prior_architecture`).
        num_layers: gated blocks (None: `prior_architecture`).
        conditional: condition on class labels when the data has them.
        samples: number of images in `samples.png`.
        seed: seed of the weights, shuffling and samples.
        eval_limit: evaluate on at most this many test images.
        verbose: Keras progress-bar verbosity.
        reproduce: the command line that runs this training, for the
            metadata.
        precision: as for `train_vqvae`; the prior is saved in float32.
        log: function that prints progress lines.

    Returns:
        the prior's metadata dict.
    """
    started = time.time()
    keras.utils.set_random_seed(seed)
    folder, model = trained_vqvae(preset_dir)
    train_images, train_codes, train_labels = _encode_split(
        model, source, "train"
    )
    test_images, test_codes, test_labels = _encode_split(
        model, source, "test", limit=eval_limit
    )
    conditional = conditional and train_labels is not None
    num_classes = int(train_labels.max()) + 1 if conditional else None
    classes = _prior_classes(source, num_classes) if conditional else None
    architecture = prior_architecture(folder.path, hidden_dim, num_layers)
    policy, reason = training_policy(precision)
    log(f"precision: {policy} ({reason})")
    with _global_dtype_policy(policy):
        prior = PixelCNNPrior(
            model.num_embeddings,
            model.latent_shape,
            num_classes=num_classes,
            **architecture,
        )
    prior.compile(optimizer=keras.optimizers.Adam(learning_rate))
    inputs = (train_codes, train_labels) if conditional else train_codes
    epochs = max(1, math.ceil(steps * batch_size / len(train_codes)))
    prior.fit(
        inputs,
        train_codes,
        batch_size=batch_size,
        epochs=epochs,
        verbose=verbose,
        callbacks=[keras.callbacks.TerminateOnNaN()],
    )
    prior = _float32_copy(prior)
    results = measure_bits_per_dim(
        model,
        prior,
        test_images,
        labels=test_labels if conditional else None,
        fit_images=scale_fit_images(train_images),
    )
    write_sample_grid(
        model,
        sample_images(model, prior, samples, seed=seed),
        folder.path / "samples.png",
        num_classes=prior.num_classes,
        class_names=[c["name"] for c in classes] if classes else None,
    )
    prior_metadata = {
        "class_conditional": conditional,
        **({"classes": classes} if classes else {}),
        "hidden_dim": prior.hidden_dim,
        "num_layers": prior.num_layers,
        "steps": epochs * math.ceil(len(train_codes) / batch_size),
        "epochs": epochs,
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "precision": policy,
        "wall_time_s": round(time.time() - started, 1),
        "test_metrics": {**results, "test_images": int(len(test_images))},
        "reproduce": reproduce,
    }
    prior.save_to_preset(folder.path, metadata={"prior": prior_metadata})
    folder.write_model_card()
    return prior_metadata
