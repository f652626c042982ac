"""
Title: Train a VQ-VAE on your own images
Author: keras-vqvae contributors
Date created: 2026/11/25
Last modified: 2026/11/25
Description: From a folder of image files to a trained, checkpointed VQ-VAE saved as a preset.
Accelerator: GPU
"""

"""
## Introduction

This guide trains a VQ-VAE from scratch on a folder of image files, the way
you would on your own photos:

- read a folder of PNG/JPEG files (one subfolder per class) with
  `load_image_folder`,
- build a `tf.data` pipeline with `make_dataset`,
- configure and `fit` a `VQVAE` with standard Keras callbacks: checkpoints in
  the `.weights.h5` and `.keras` formats, and a custom callback that writes a
  grid of reconstructions after every epoch,
- reload the best checkpoint with `keras.saving.load_model`,
- save the result as a preset folder that `VQVAE.from_preset` can load.

To stay self-contained (and offline), the guide first writes a small folder of
PNG files from CIFAR-10 images. Point `IMAGE_FOLDER` at your own folder
instead.
"""

"""
## Setup

`KERAS_VQVAE_GUIDE_QUICK=1` trains a tiny model on 64 images for two epochs
(a smoke test, as the test suite runs it); without it the guide trains a
paper-sized model on 3,000 images, which takes a while on a CPU. Outputs go to
`GUIDE_OUTPUT_DIR`, or to a new temporary folder.
"""

import os
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np
from PIL import Image

from keras_vqvae.data import image_folder_classes
from keras_vqvae.data import load_image_folder
from keras_vqvae.data import load_split
from keras_vqvae.data import make_dataset
from keras_vqvae.data import normalize
from keras_vqvae.models import VQVAE
from keras_vqvae.visualization import reconstruction_rows
from keras_vqvae.visualization import save_image_grid
from keras_vqvae.workflows import measure_reconstructions

QUICK = os.environ.get("KERAS_VQVAE_GUIDE_QUICK") == "1"
OUTPUT_DIR = Path(
    os.environ.get("GUIDE_OUTPUT_DIR")
    or tempfile.mkdtemp(prefix="fit_on_your_own_images_")
)
OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
DATA = Path(os.environ.get("KERAS_VQVAE_DATA", "../shared/datasets"))
CIFAR10 = (
    str(DATA / "cifar10_lossless_4k")
    if (DATA / "cifar10_lossless_4k").is_dir()
    else "tfds:cifar10"
)

NUM_FILES = 64 if QUICK else 3_000
BATCH_SIZE = 16 if QUICK else 64
EPOCHS = 2 if QUICK else 20
ARCHITECTURE = (
    dict(num_embeddings=32, embedding_dim=8, hidden_dim=16,
         num_residual_layers=1, residual_hidden_dim=8)
    if QUICK
    # The paper's CIFAR-10 model (as in the bundled `cifar10` preset).
    else dict(num_embeddings=512, embedding_dim=64, hidden_dim=128,
              num_residual_layers=2, residual_hidden_dim=32)
)
keras.utils.set_random_seed(0)
print("Outputs go to", OUTPUT_DIR)

"""
## Make a folder of images

Image folders are commonly organised with one subfolder per class. The VQ-VAE
does not need labels, but `load_image_folder` returns them anyway (derived from
the subfolder names, as `keras.utils.image_dataset_from_directory` does), and
they are handy later, e.g. to train a class-conditional prior.
"""

CLASS_NAMES = ["airplane", "automobile", "bird", "cat", "deer",
               "dog", "frog", "horse", "ship", "truck"]

IMAGE_FOLDER = OUTPUT_DIR / "my_images"
cifar_images, cifar_labels = load_split(CIFAR10, split="train", limit=NUM_FILES)
for i, (image, label) in enumerate(zip(cifar_images, cifar_labels)):
    class_folder = IMAGE_FOLDER / CLASS_NAMES[label]
    class_folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(class_folder / f"{i:05d}.png")
print(f"wrote {len(cifar_images)} PNG files under {IMAGE_FOLDER}")

"""
## Load the folder

`load_image_folder` reads every image below the folder (sorted, hidden files
skipped) into one uint8 array. Pass `image_size=(height, width)` if your files
differ in size (add `crop_to_aspect_ratio=True` to crop instead of
stretching); the height and width must be multiples of 4 for the default
model, which downsamples twice.
"""

images, labels = load_image_folder(IMAGE_FOLDER, image_size=(32, 32))
class_names = image_folder_classes(IMAGE_FOLDER)
print("images:", images.shape, images.dtype)
print("classes:", dict(zip(class_names, np.bincount(labels).tolist())))

"""
Hold out some images to measure how well the model generalises.
"""

order = np.random.default_rng(0).permutation(len(images))
num_val = max(BATCH_SIZE, len(images) // 10)
val_images, train_images = images[order[:num_val]], images[order[num_val:]]
print(f"{len(train_images)} training and {len(val_images)} validation images")

"""
## A `tf.data` pipeline

`make_dataset` keeps the uint8 images in memory and yields batches of float32
images normalised to [-0.5, 0.5], the range the model works in. `augment=True`
adds random horizontal flips, which suit natural images (not digits or text).
"""

train_ds = make_dataset(train_images, batch_size=BATCH_SIZE, seed=0, augment=True)
val_ds = make_dataset(val_images, batch_size=BATCH_SIZE, shuffle=False)
print(train_ds.element_spec)

"""
## Configure the model

`data_variance` divides the reconstruction loss, as in the reference
implementation: the variance of the normalised training pixels. With it, a
reconstruction loss of 1 is what predicting the mean pixel value everywhere
scores, whatever the data, which keeps the balance with the commitment loss
the same across data sets.

`kmeans_init=True` initialises the codebook by k-means on the first batch and
`dead_code_threshold=1.0` restarts codes that fall out of use, two common
remedies for codebook collapse.
"""

data_variance = float(np.var(normalize(train_images)))
model = VQVAE(
    image_shape=(32, 32, 3),
    data_variance=data_variance,
    kmeans_init=True,
    dead_code_threshold=1.0,
    seed=0,
    **ARCHITECTURE,
)
model.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-3 if QUICK else 3e-4))
print(f"data variance {data_variance:.4f}, {model.count_params():,} parameters")

"""
## Callbacks

- `ModelCheckpoint` with a `.weights.h5` file name saves the weights only (the
  `{epoch:02d}` pattern keeps one file per epoch).
- `ModelCheckpoint` with a `.keras` file name saves the whole model, config
  and weights, here only when the validation reconstruction loss improves.
- A custom callback writes a grid of validation images above their
  reconstructions at the end of every epoch, so you can watch the model learn.
"""


class ReconstructionGrid(keras.callbacks.Callback):
    """Writes originals above reconstructions to `folder/epoch_NN.png`."""

    def __init__(self, images, folder, scale=2):
        super().__init__()
        self.images = images
        self.folder = Path(folder)
        self.scale = scale

    def on_epoch_end(self, epoch, logs=None):
        reconstructions = self.model.reconstruct(self.images)
        path = save_image_grid(
            self.folder / f"epoch_{epoch + 1:02d}.png",
            reconstruction_rows(self.images, reconstructions, per_row=8),
            scale=self.scale,
        )
        print(f"\nepoch {epoch + 1}: wrote {path}")


callbacks = [
    keras.callbacks.ModelCheckpoint(
        OUTPUT_DIR / "checkpoints" / "epoch_{epoch:02d}.weights.h5",
        save_weights_only=True,
    ),
    keras.callbacks.ModelCheckpoint(
        OUTPUT_DIR / "best.keras",
        monitor="val_reconstruction_loss",
        mode="min",
        save_best_only=True,
    ),
    ReconstructionGrid(val_images[:16], OUTPUT_DIR / "progress"),
    keras.callbacks.TerminateOnNaN(),
]
(OUTPUT_DIR / "checkpoints").mkdir(exist_ok=True)

"""
## Train

The model needs no targets: `fit` reconstructs its input. Besides the total
`loss`, the logs show the `reconstruction_loss`, the `vq_loss` (commitment),
and two codebook health metrics: `perplexity` (the effective number of codes
used by a batch) and `codebook_usage` (the fraction of codes used).
"""

history = model.fit(
    train_ds,
    validation_data=val_ds,
    epochs=EPOCHS,
    callbacks=callbacks,
    shuffle=False,  # `make_dataset` already reshuffles every epoch
    verbose=2,
)
reconstruction_losses = history.history["reconstruction_loss"]
print(
    f"reconstruction loss: {reconstruction_losses[0]:.4f} (epoch 1) -> "
    f"{reconstruction_losses[-1]:.4f} (epoch {EPOCHS})"
)

"""
## Reload the checkpoints

The `.keras` file holds everything needed to rebuild the model, so
`keras.saving.load_model` returns a ready `VQVAE`. It comes back uncompiled
(`compile=False` skips a warning about the custom `compile`): call
`compile()` again to continue training.
"""

best = keras.saving.load_model(OUTPUT_DIR / "best.keras", compile=False)
print(type(best).__name__, best.image_shape, best.latent_shape)
metrics = measure_reconstructions(best, val_images)
print(
    f"best checkpoint on the validation images: PSNR {metrics['psnr_db']:.2f} dB, "
    f"perplexity {metrics['perplexity']:.1f}, "
    f"{metrics['codes_used']}/{best.num_embeddings} codes used"
)

"""
A `.weights.h5` file holds the weights only: rebuild the architecture from the
config and load them into it.
"""

first_epoch = VQVAE.from_config(model.get_config())
first_epoch.load_weights(OUTPUT_DIR / "checkpoints" / "epoch_01.weights.h5")
first_metrics = measure_reconstructions(first_epoch, val_images)
print(
    f"after epoch 1: PSNR {first_metrics['psnr_db']:.2f} dB; "
    f"best: {metrics['psnr_db']:.2f} dB"
)

"""
## Save as a preset

A preset folder is what `VQVAE.from_preset` loads: `config.json`,
`model.weights.h5` and `metadata.json` (with a SHA-256 of the weights, so a
damaged download is detected). Record what the model was trained on and how
well it does; `guides/publish_a_preset.py` shows how to add a model card and
upload the folder to the Hugging Face Hub.
"""

preset_dir = OUTPUT_DIR / "my_vqvae_preset"
best.save_to_preset(
    preset_dir,
    metadata={
        "preset": "my_vqvae_preset",
        "dataset": str(IMAGE_FOLDER),
        "image_shape": list(best.image_shape),
        "latent_shape": list(best.latent_shape),
        "num_embeddings": best.num_embeddings,
        "embedding_dim": best.embedding_dim,
        "training": {"epochs": EPOCHS, "batch_size": BATCH_SIZE,
                     "train_images": len(train_images)},
        "test_metrics": {**metrics, "test_images": len(val_images)},
    },
)
save_image_grid(
    preset_dir / "reconstructions.png",
    reconstruction_rows(val_images[:16], best.reconstruct(val_images[:16])),
    scale=2,
)
print("preset files:", sorted(p.name for p in preset_dir.iterdir()))

reloaded = VQVAE.from_preset(preset_dir)
assert np.array_equal(reloaded.encode(val_images), best.encode(val_images))
print("VQVAE.from_preset(folder) gives the same codes as the saved model")

"""
## Data from TensorFlow Datasets

Instead of a folder, any source can be a TensorFlow Datasets name,
`"tfds:NAME"` (`pip install "keras-vqvae[tfds]"`). With network access TFDS
downloads and prepares the dataset on first use (in `~/tensorflow_datasets`);
`model=model` fits the images to the model's input shape:

```
from keras_vqvae import data

images, labels = data.load_split("tfds:cifar10", "train", model=model)
```

The CLI takes the same source:

```
keras-vqvae train --architecture cifar10 --data tfds:cifar10 \\
    --steps 25000 --preset-dir my_cifar10
```

Offline, prepare a copy once where there is network access
(`tfds build cifar10 --data_dir DIR`) and point at it with
`TFDS_DATA_DIR=DIR` (or `data_dir=DIR` in `load_split`): nothing is
downloaded then. Each bundled preset's `metadata.json` names its TFDS builder
under `"tfds"`.
"""

"""
## Next steps

- Train a prior over the codes and sample new images:
  `guides/train_a_prior_and_sample.py`.
- Share the preset: `guides/publish_a_preset.py`.
- Use more than one device: `guides/distributed_training.py`.
"""
