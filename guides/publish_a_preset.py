"""
Title: Publish a VQ-VAE preset on the Hugging Face Hub
Author: keras-vqvae contributors
Date created: 2026/11/25
Last modified: 2026/11/25
Description: Save a model as a preset folder, write its model card, upload it, and load it back with `from_preset("hf://...")`.
Accelerator: None
"""

"""
## Introduction

A preset is a plain folder: `config.json` (the constructor arguments),
`model.weights.h5` (the weights), `metadata.json` (data, metrics, SHA-256 of
the weights) and a model card `README.md`. Anything in such a folder can be
loaded with `VQVAE.from_preset(folder)`, and once the folder is in a Hugging
Face Hub model repository, with `VQVAE.from_preset("hf://owner/repo")`.
Loading reads JSON and HDF5 only, so no code from a preset ever runs.

This guide:

- saves a model with `save_to_preset`, with measured metrics in its metadata,
- writes the model card with `PresetFolder.write_model_card`,
- checks what would be uploaded with `upload_preset(..., dry_run=True)`,
- uploads the folder and loads the model back from the Hub.
"""

"""
## Setup

The upload needs a Hub to talk to. The guide uploads only when the
environment says so, and otherwise stops after the dry run:

- `HF_ENDPOINT` set: upload to that endpoint (a private Hub, or the local
  test server of `tests/hub_server.py`, which is how the test suite runs
  this guide);
- `KERAS_VQVAE_GUIDE_UPLOAD=1`: upload to huggingface.co. Log in first
  (`hf auth login`, or set `HF_TOKEN` to a token with write access).

As in the other guides, `KERAS_VQVAE_GUIDE_QUICK=1` evaluates on a few images
only, and `GUIDE_OUTPUT_DIR` chooses the output folder.
"""

import os
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

from keras_vqvae.data import load_split
from keras_vqvae.models import VQVAE
from keras_vqvae.presets import PresetFolder
from keras_vqvae.presets import resolve_preset
from keras_vqvae.upload import upload_preset
from keras_vqvae.visualization import reconstruction_rows
from keras_vqvae.visualization import save_image_grid
from keras_vqvae.workflows import measure_reconstructions

QUICK = os.environ.get("KERAS_VQVAE_GUIDE_QUICK") == "1"
OUTPUT_DIR = Path(
    os.environ.get("GUIDE_OUTPUT_DIR") or tempfile.mkdtemp(prefix="publish_a_preset_")
)
OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
DATA = Path(os.environ.get("KERAS_VQVAE_DATA", "../shared/datasets"))
MNIST = str(DATA / "mnist") if (DATA / "mnist").is_dir() else "tfds:mnist"
NUM_TEST = 64 if QUICK else 10_000
print("Outputs go to", OUTPUT_DIR)

"""
## The model to publish

Any trained `VQVAE` will do, e.g. the one from
`guides/fit_on_your_own_images.py`. To keep this guide short we republish the
bundled `mnist` model, and measure it on held-out images: a model card should
report numbers measured on data the model was not trained on.
"""

model = VQVAE.from_preset("mnist")
test_images, _ = load_split(MNIST, "test", limit=NUM_TEST)
metrics = measure_reconstructions(model, test_images)
print(f"test PSNR {metrics['psnr_db']:.2f} dB on {len(test_images)} images")

"""
## Save the preset folder

`save_to_preset` writes the config, the weights and `metadata.json`. The
metadata is free-form JSON, but the model card uses a few keys when present:
`preset` (the name), `dataset_description`, `training` (a dict),
`test_metrics` (a dict; `mse`, `psnr_db` and `perplexity` also go into the
card's machine-readable header), `latent_shape`, `notes` and `reproduce`.
Any PNG file in the folder is shown in the card and uploaded.
"""

preset_dir = OUTPUT_DIR / "vqvae-demo"
model.save_to_preset(
    preset_dir,
    metadata={
        "preset": "mnist-demo",
        "dataset_description": (
            f"MNIST (60,000 training images); test metrics on the first "
            f"{len(test_images)} test images"
        ),
        "image_shape": list(model.image_shape),
        "latent_shape": list(model.latent_shape),
        "num_embeddings": model.num_embeddings,
        "embedding_dim": model.embedding_dim,
        "test_metrics": {**metrics, "test_images": len(test_images)},
        "notes": "A copy of the bundled `mnist` preset, published by a guide.",
    },
)
shown = test_images[:16]
save_image_grid(
    preset_dir / "reconstructions.png",
    reconstruction_rows(shown, model.reconstruct(shown)),
    scale=2,
)

"""
## The model card

`PresetFolder(preset_dir).write_model_card()` renders `README.md` from the folder's config and metadata:
YAML front matter for the Hub (library, tags, metrics), then the usage,
architecture, training data and measured metrics.
"""

card = PresetFolder(preset_dir).write_model_card()
print("\n".join(card.read_text().splitlines()[:24]))
print("...")
print("preset files:", sorted(p.name for p in preset_dir.iterdir()))

"""
Before uploading, make sure the folder loads and gives the model you meant
to publish.
"""

local = VQVAE.from_preset(preset_dir)
assert np.array_equal(local.encode(test_images), model.encode(test_images))

"""
## Dry run

`upload_preset` validates the folder (config and weights present, weights
matching the SHA-256 in the metadata) and lists what it would send. With
`dry_run=True` it contacts nothing.
"""

dry_run = upload_preset(preset_dir, "you/vqvae-demo", dry_run=True)

"""
## Upload

Without an endpoint or an explicit opt-in, the guide stops here.
"""

if not (os.environ.get("HF_ENDPOINT") or os.environ.get("KERAS_VQVAE_GUIDE_UPLOAD") == "1"):
    print(
        "\nStopping after the dry run: no Hub to upload to. Set HF_ENDPOINT to "
        "a Hub endpoint, or KERAS_VQVAE_GUIDE_UPLOAD=1 to upload to "
        "huggingface.co (after `hf auth login`), and run this guide again."
    )
    raise SystemExit(0)

"""
The repository is named after the logged-in user. `upload_preset` creates it
if needed and uploads the files in a single commit. It refuses to overwrite a
repository that holds a different architecture unless you pass `force=True`
(`--force` on the command line: `keras-vqvae upload`).
"""

from huggingface_hub import HfApi

owner = HfApi().whoami()["name"]
repo_id = f"{owner}/vqvae-demo"
result = upload_preset(
    preset_dir, repo_id, commit_message="Upload vqvae-demo from a keras-vqvae guide"
)
print("repository:", result["url"], "commit:", result["commit"])

"""
## Load it back from the Hub

`from_preset("hf://owner/repo")` downloads the files into the Hugging Face
cache (`HF_HOME`) and loads them; later calls read the cache. Pin a revision
with `@`, a branch, tag or commit, for reproducible results: a commit never
changes, while `main` moves with every upload.
"""

hub_model = VQVAE.from_preset(f"hf://{repo_id}")
pinned = VQVAE.from_preset(f"hf://{repo_id}@{result['commit']}")
print("downloaded to", resolve_preset(f"hf://{repo_id}@{result['commit']}"))

for name, candidate in (("hf://" + repo_id, hub_model), ("pinned commit", pinned)):
    same = np.array_equal(candidate.reconstruct(test_images), model.reconstruct(test_images))
    print(f"{name}: reconstructions identical to the local model: {same}")
    assert same

"""
The repository now also shows the model card, with the reconstructions
picture, on the Hub.
"""
