"""
Title: Train a PixelCNN prior over VQ-VAE codes and sample new images
Author: keras-vqvae contributors
Date created: 2026/11/25
Last modified: 2026/11/25
Description: Fit a class-conditional gated PixelCNN on the code maps of a pretrained VQ-VAE, sample digits per class, and measure bits/dim.
Accelerator: GPU
"""

"""
## Introduction

A VQ-VAE on its own is an autoencoder: it compresses images to grids of
integers and back, but it cannot *generate* images. The VQ-VAE paper adds a
second stage: an autoregressive model, a PixelCNN, fitted to the code maps of
the training images. Sampling a new code map from the PixelCNN and decoding it
with the VQ-VAE decoder gives a new image.

Because a code map is much smaller than the image (7x7 codes for a 28x28 MNIST
digit), the prior is cheap to train and to sample from.

In this guide you will:

- encode MNIST with the bundled `mnist` preset,
- train a small class-conditional `PixelCNNPrior` on the codes,
- sample code maps for each digit class and decode them to images,
- measure the model's likelihood in bits per dimension, as in the paper,
- use the conditional prior as a classifier.
"""

"""
## Setup

`KERAS_VQVAE_GUIDE_QUICK=1` trains a tiny prior on 512 code maps for one epoch
(the samples will look like noise: it only checks that everything runs); the
normal mode trains a 12-layer prior on all 60,000 training images. Outputs go to
`GUIDE_OUTPUT_DIR`, or to a new temporary folder.
"""

import os
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np

from keras_vqvae.data import load_split
from keras_vqvae.models import VQVAE
from keras_vqvae.models.pixelcnn_prior import PixelCNNPrior
from keras_vqvae.visualization import save_image_grid
from keras_vqvae.workflows import measure_bits_per_dim

QUICK = os.environ.get("KERAS_VQVAE_GUIDE_QUICK") == "1"
OUTPUT_DIR = Path(
    os.environ.get("GUIDE_OUTPUT_DIR")
    or tempfile.mkdtemp(prefix="train_a_prior_and_sample_")
)
OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
DATA = Path(os.environ.get("KERAS_VQVAE_DATA", "../shared/datasets"))
MNIST = str(DATA / "mnist") if (DATA / "mnist").is_dir() else "tfds:mnist"

NUM_TRAIN = 512 if QUICK else None  # None: all 60,000
NUM_TEST = 128 if QUICK else None  # None: all 10,000
PRIOR_SIZE = (
    dict(hidden_dim=16, num_layers=2) if QUICK else dict(hidden_dim=128, num_layers=12)
)
EPOCHS = 1 if QUICK else 10
SAMPLES_PER_CLASS = 2 if QUICK else 10
keras.utils.set_random_seed(0)
print("Outputs go to", OUTPUT_DIR)

"""
## Encode the data set

The prior never sees pixels: it is trained on the code maps. Encoding the data
once up front is much cheaper than encoding in every epoch.
"""

vqvae = VQVAE.from_preset("mnist")
train_images, train_labels = load_split(MNIST, "train", limit=NUM_TRAIN)
test_images, test_labels = load_split(MNIST, "test", limit=NUM_TEST)
train_codes = vqvae.encode(train_images)
test_codes = vqvae.encode(test_images)
print(
    f"{len(train_codes)} training and {len(test_codes)} test code maps of shape "
    f"{train_codes.shape[1:]}, values in [0, {vqvae.num_embeddings})"
)

"""
## The prior

`PixelCNNPrior` is a gated PixelCNN (van den Oord et al. 2016, "Conditional
Image Generation with PixelCNN Decoders"). It factorises the probability of a
code map in raster order,

`p(z | y) = prod_i p(z_i | z_1, ..., z_{i-1}, y)`,

and outputs the logits of all `H * W` conditionals in one pass: masked
convolutions make sure position `i` only sees the positions before it. With
`num_classes` set, every layer is also conditioned on the class label `y`.
"""

prior = PixelCNNPrior(
    num_embeddings=vqvae.num_embeddings,
    latent_shape=vqvae.latent_shape,
    num_classes=10,
    **PRIOR_SIZE,
)
print(f"prior: {prior.count_params():,} parameters")

"""
Training is plain classification: the inputs are `(codes, labels)`, the
targets are the codes themselves, and `compile` defaults to sparse categorical
cross-entropy on the logits. Each position's loss is `-log p(z_i | z_<i, y)`,
so the loss is the negative log-likelihood per code, in nats.
"""

prior.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-3))
history = prior.fit(
    (train_codes, train_labels),
    train_codes,
    validation_data=((test_codes, test_labels), test_codes),
    batch_size=32 if QUICK else 64,
    epochs=EPOCHS,
    verbose=2,
)

"""
A uniform guess costs `log(K)` nats per code; the prior must do better.
"""

uniform = np.log(vqvae.num_embeddings)
print(
    f"test NLL {history.history['val_loss'][-1]:.3f} nats per code "
    f"(uniform guess: {uniform:.3f})"
)

"""
## Sample new digits

`sample` draws code maps one position at a time in raster order, each from
`softmax(logits / temperature)`; the whole loop runs as one compiled function.
Pass one label per sample (or a single int for all), and a `seed` for
reproducible samples. Decoding the sampled codes gives new images.
"""

sample_labels = np.repeat(np.arange(10), SAMPLES_PER_CLASS)
sampled_codes = prior.sample(len(sample_labels), labels=sample_labels, seed=0)
sampled_images = vqvae.decode_indices(sampled_codes)
print("sampled codes:", sampled_codes.shape, "-> images:", sampled_images.shape)

# One row per class.
rows = [sampled_images[sample_labels == digit] for digit in range(10)]
path = save_image_grid(OUTPUT_DIR / "samples_per_class.png", rows, scale=2)
print("wrote", path)

"""
Lower temperatures trade diversity for cleaner samples.
"""

temperature_rows = [
    vqvae.decode_indices(
        prior.sample(SAMPLES_PER_CLASS, labels=7, temperature=t, seed=1)
    )
    for t in (1.0, 0.7, 0.4)
]
path = save_image_grid(OUTPUT_DIR / "temperatures.png", temperature_rows, scale=2)
print("wrote", path, "(class 7 at temperatures 1.0, 0.7, 0.4)")

"""
## Bits per dimension

The paper reports the likelihood of the whole model in bits per pixel
dimension. Since the code map is a deterministic function of the image,

`-log p(x) <= -log p(x | z) - log p(z)`:

the decoder's likelihood of the pixels given the codes (a discretised
Gaussian around the decoded image), plus the prior's likelihood of the codes.
`measure_bits_per_dim` computes this bound and its two parts; with the
class-conditional prior, pass the labels. The Gaussian's scale is fitted by
maximum likelihood on training images (`fit_images`), so that the number on
the test images is a bound, not a fit.
"""

bpd = measure_bits_per_dim(
    vqvae, prior, test_images, labels=test_labels, fit_images=train_images
)
print(
    f"bits/dim {bpd['bits_per_dim']:.3f} = decoder {bpd['decoder_bits_per_dim']:.3f}"
    f" + prior {bpd['prior_bits_per_dim']:.3f}"
    f" ({bpd['prior_bits_per_code']:.2f} bits per code)"
)

"""
`prior.log_prob` gives each code map's log-likelihood in nats, and
`prior.bits_per_code` the mean cost per code position in bits.
"""

print(f"prior alone: {prior.bits_per_code(test_codes, labels=test_labels):.3f} bits per code")

"""
## The prior as a classifier

A class-conditional density model is also a classifier: by Bayes' rule with
equal class priors, the most likely class of a code map is the one under which
its likelihood is highest, `argmax_y log p(z | y)`.
"""

log_likelihoods = np.stack(
    [
        prior.log_prob(test_codes, labels=np.full(len(test_codes), digit))
        for digit in range(10)
    ],
    axis=1,
)
accuracy = np.mean(log_likelihoods.argmax(axis=1) == test_labels)
print(f"test accuracy of argmax_y log p(z | y): {accuracy:.1%} (chance: 10%)")

"""
## The bundled prior

The `mnist` preset ships with a prior trained the same way on all 60,000
training maps (its size, steps and test bits/dim are in the preset's
`metadata.json` and model card). `PixelCNNPrior.from_preset` loads it from
the same preset folder as the VQ-VAE.
"""

bundled = PixelCNNPrior.from_preset("mnist")
bundled_samples = vqvae.decode_indices(
    bundled.sample(10, labels=np.arange(10), seed=0)
)
path = save_image_grid(OUTPUT_DIR / "bundled_prior_samples.png", [bundled_samples], scale=2)
print(
    f"bundled prior: {bundled.count_params():,} parameters, "
    f"{bundled.bits_per_code(test_codes, labels=test_labels):.3f} bits per code "
    f"on these test maps; wrote {path}"
)

"""
## Next steps

- Save the prior with the VQ-VAE: `prior.save_to_preset(preset_folder)` writes
  `prior_config.json` and `prior.weights.h5` beside the VQ-VAE's files, and
  `PixelCNNPrior.from_preset(preset_folder)` loads it back.
- `guides/publish_a_preset.py` shows how to share a preset on the Hugging Face
  Hub.
"""
