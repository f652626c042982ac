"""
Title: Use a pretrained VQ-VAE preset
Author: keras-vqvae contributors
Date created: 2026/11/25
Last modified: 2026/11/25
Description: Load a bundled preset, reconstruct held-out images, and look inside the discrete code maps.
Accelerator: None
"""

"""
## Introduction

A VQ-VAE (van den Oord, Vinyals and Kavukcuoglu, 2017) compresses an image
into a small grid of *integers*: an encoder maps the image to a grid of
vectors, and every vector is replaced by the index of its nearest entry in a
learned codebook. A decoder turns the grid of indices back into an image.

keras-vqvae ships trained models as *presets*. In this guide you will:

- list the bundled presets and load one with `VQVAE.from_preset`,
- reconstruct MNIST test images the model never saw during training,
- encode images to code maps, inspect them, and decode them again,
- edit code maps by hand to see what individual codes mean,
- save image grids as PNG files and measure MSE and PSNR.

Everything runs on a CPU in well under a minute.
"""

"""
## Setup

Set `KERAS_VQVAE_GUIDE_QUICK=1` to run on a handful of images (this is how the
test suite runs every guide), and `GUIDE_OUTPUT_DIR` to choose where the PNG
files go (by default, a new temporary folder). The MNIST test split is read
from `../shared/datasets/mnist` (the project's converted data, relative to the
repository root); elsewhere, the guide falls back to TensorFlow Datasets
(`"tfds:mnist"`, which needs `pip install tensorflow-datasets`).
"""

import os
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

from keras_vqvae.data import load_split
from keras_vqvae.metrics import code_statistics
from keras_vqvae.metrics import mse01
from keras_vqvae.metrics import psnr
from keras_vqvae.models import VQVAE
from keras_vqvae.visualization import reconstruction_rows
from keras_vqvae.visualization import save_image_grid
from keras_vqvae.workflows import measure_reconstructions

QUICK = os.environ.get("KERAS_VQVAE_GUIDE_QUICK") == "1"
OUTPUT_DIR = Path(
    os.environ.get("GUIDE_OUTPUT_DIR")
    or tempfile.mkdtemp(prefix="use_a_pretrained_preset_")
)
OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
DATA = Path(os.environ.get("KERAS_VQVAE_DATA", "../shared/datasets"))
MNIST = str(DATA / "mnist") if (DATA / "mnist").is_dir() else "tfds:mnist"
NUM_IMAGES = 16 if QUICK else 10_000  # the whole MNIST test split

print("Outputs go to", OUTPUT_DIR)

"""
## The bundled presets

`VQVAE.presets` maps every bundled preset name to its metadata: the data it was
trained on, the shapes, and the test metrics measured when it was saved.
"""

for name, metadata in VQVAE.presets.items():
    metrics = metadata.get("test_metrics", {})
    print(
        f"{name:>14}: images {tuple(metadata['image_shape'])} -> codes "
        f"{tuple(metadata['latent_shape'])}, K={metadata['num_embeddings']}, "
        f"test PSNR {metrics.get('psnr_db', float('nan')):.2f} dB"
    )

"""
A preset is also just a folder (`config.json`, `model.weights.h5`,
`metadata.json`, a model card), so `from_preset` equally accepts a path to
such a folder or a Hugging Face Hub handle such as `"hf://owner/repo"`. Loading
reads JSON and HDF5 weights only: no code from a preset ever runs.
"""

model = VQVAE.from_preset("mnist")
print(
    f"image shape {model.image_shape}, code map {model.latent_shape}, "
    f"codebook {model.num_embeddings} x {model.embedding_dim}, "
    f"{model.count_params():,} parameters"
)

"""
## Reconstruct held-out images

`load_dataset` returns uint8 images `(N, H, W, C)` and int64 labels. The
`mnist` preset was trained on the 60,000 training images, so the test split is
held out. `reconstruct` accepts uint8 images and returns uint8 images; it
batches internally, so you can pass the whole array.
"""

images, labels = load_split(MNIST, split="test", limit=NUM_IMAGES)
print("test images:", images.shape, images.dtype)

reconstructions = model.reconstruct(images)
print("reconstructions:", reconstructions.shape, reconstructions.dtype)

"""
Save the first images (odd rows) above their reconstructions (even rows).
`scale` enlarges the tiny 28x28 digits with nearest-neighbour upsampling.
"""

shown = 16
grid_path = save_image_grid(
    OUTPUT_DIR / "reconstructions.png",
    reconstruction_rows(images[:shown], reconstructions[:shown], per_row=8),
    scale=3,
)
print("wrote", grid_path)

"""
## Encode to codes, decode from codes

`encode` gives one integer per 4x4 block of pixels: a 28x28 digit becomes a 7x7
grid of indices into the 128-entry codebook. That is 49 * 7 = 343 bits, against
28 * 28 * 8 = 6,272 bits for the pixels.
"""

codes = model.encode(images)
print("codes:", codes.shape, codes.dtype, "values in", codes.min(), "..", codes.max())
print(f"code map of the first test image (a {labels[0]}):")
print(codes[0])

"""
Code indices are labels, not intensities: code 12 is no more like code 13 than
like code 100, and several different codes may paint almost the same patch
(on MNIST, many of them paint black background). Over the whole set,
`code_statistics` measures how evenly the codebook is used: the perplexity is
the effective number of codes in use.
"""

stats = code_statistics(codes, model.num_embeddings)
print(
    f"perplexity {stats['perplexity']:.1f}, {stats['codes_used']} of "
    f"{model.num_embeddings} codes used"
)
values, counts = np.unique(codes, return_counts=True)
most_common = values[np.argsort(counts)[::-1][:5]]
print("most frequent codes:", most_common.tolist())

"""
`decode_indices` maps code maps back to images. Encoding and then decoding is
exactly what `reconstruct` does, so the two agree to the last pixel.
"""

decoded = model.decode_indices(codes)
assert np.array_equal(decoded, reconstructions)
print("decode_indices(encode(x)) == reconstruct(x)")

"""
## What do the codes mean?

Since the decoder only sees integers, you can write code maps by hand. Three
experiments:

1. **One code everywhere.** Fill a whole 7x7 map with a single code and decode
   it: this shows the texture each code paints on its own.
2. **Change one position.** Change a single entry of a real code map: the
   decoder is convolutional, so the change stays mostly near that position.
3. **Swap halves.** Take the top half of one digit's code map and the bottom
   half of another's: the decoder stitches them into a plausible hybrid.
"""

# 1. Constant code maps for the most frequent codes and a few others.
shown_codes = np.unique(
    np.concatenate([most_common, np.linspace(0, model.num_embeddings - 1, 8, dtype=int)])
)[:8]
constant_maps = np.broadcast_to(
    shown_codes[:, None, None], (len(shown_codes),) + model.latent_shape
)
constant_images = model.decode_indices(constant_maps)
print("codes painted on their own:", shown_codes.tolist())

# 2. Change the code at the centre of the first map to each of those codes.
row, col = model.latent_shape[0] // 2, model.latent_shape[1] // 2
edited = np.repeat(codes[:1], len(shown_codes), axis=0)
edited[:, row, col] = shown_codes
edited_images = model.decode_indices(edited)
change = np.abs(edited_images.astype(float) - decoded[:1].astype(float)).sum(axis=0)
factor = 2**model.num_downsamples  # pixels per code position
near = change[factor * (row - 1) : factor * (row + 2), factor * (col - 1) : factor * (col + 2)]
print(
    f"{near.sum() / max(change.sum(), 1):.0%} of the pixel change lies within "
    f"one code position of the edited code ({row}, {col}), a "
    f"{near.shape[0]}x{near.shape[1]} window of the {model.image_shape[0]}x"
    f"{model.image_shape[1]} image"
)

# 3. Top half of image 0 with the bottom half of each other image.
half = model.latent_shape[0] // 2
hybrids = codes[:8].copy()
hybrids[:, :half] = codes[0, :half]
hybrid_images = model.decode_indices(hybrids)

save_image_grid(
    OUTPUT_DIR / "code_experiments.png",
    [
        constant_images,
        edited_images,
        decoded[:8],
        hybrid_images,
    ],
    scale=3,
)
print("wrote", OUTPUT_DIR / "code_experiments.png")

"""
In `code_experiments.png`, the first row shows single codes painted
everywhere; the second row shows the first digit with its centre code replaced;
the third row shows eight decoded digits, and the fourth row the same digits
with the top half of the first one.
"""

"""
## Measure the reconstruction error

`keras_vqvae.metrics` compares uint8 images on the 0..1 scale: `mse01` is
the mean squared error over all pixels, and `psnr` is `10 log10(1 / MSE)`. The
data set's PSNR (from the mean MSE) and the mean of per-image PSNRs are
different numbers; say which one you report.
"""

mse = mse01(images, reconstructions)
print(f"MSE {mse:.5f}, PSNR {psnr(images, reconstructions):.2f} dB")
per_image = psnr(images, reconstructions, per_image=True)
print(f"per-image PSNR: mean {per_image.mean():.2f} dB, worst {per_image.min():.2f} dB")

"""
`evaluate_reconstructions` bundles these with the codebook statistics; on the
full test split (normal mode) it reproduces the metrics stored in the preset's
metadata.
"""

metrics = measure_reconstructions(model, images)
print({key: round(value, 4) for key, value in metrics.items()})
stored = VQVAE.presets["mnist"]["test_metrics"]
print(f"stored in the preset: PSNR {stored['psnr_db']:.2f} dB on {stored['test_images']} images")

"""
## Next steps

- `guides/fit_on_your_own_images.py` trains a VQ-VAE on a folder of your own
  images and saves it as a preset.
- `guides/train_a_prior_and_sample.py` fits a PixelCNN prior over the code maps
  to generate new images.
"""
