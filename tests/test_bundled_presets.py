"""The bundled presets give the outputs they gave when they were trained.

`data/bundled_preset_outputs.npz` was written at commit 1c80812 (before the
package was restructured) from smooth random images: each preset's codes,
reconstructions, decoded codes, the prior's log-likelihood of those codes
and two prior samples (seed 0). Any change in layout, naming or config
format must leave all of them unchanged. A retrained preset's entries are
rewritten (the others kept) with
`python tests/test_bundled_presets.py --update NAME`.
"""

import sys
from pathlib import Path

import numpy as np
import pytest

from keras_vqvae.models import VQVAE
from keras_vqvae.models import PixelCNNPrior

GOLDEN = Path(__file__).parent / "data" / "bundled_preset_outputs.npz"
PRESETS = ["mnist", "fashion_mnist", "cifar10", "imagenet_128"]


@pytest.fixture(scope="module")
def golden():
    with np.load(GOLDEN) as arrays:
        return {key: arrays[key] for key in arrays.files}


@pytest.mark.parametrize("name", PRESETS)
def test_codes_and_reconstructions_are_unchanged(golden, name):
    model = VQVAE.from_preset(name)
    images = golden[f"{name}/images"]
    codes = model.encode(images)
    np.testing.assert_array_equal(codes, golden[f"{name}/codes"])
    np.testing.assert_array_equal(
        model.reconstruct(images), golden[f"{name}/reconstructions"]
    )
    np.testing.assert_array_equal(
        model.decode_indices(codes), golden[f"{name}/decoded"]
    )


@pytest.mark.parametrize("name", PRESETS)
def test_prior_likelihoods_and_samples_are_unchanged(golden, name):
    prior = PixelCNNPrior.from_preset(name)
    codes = golden[f"{name}/codes"].astype("int32")
    labels = golden.get(f"{name}/labels")
    np.testing.assert_allclose(
        prior.log_prob(codes, labels=labels),
        golden[f"{name}/log_prob"],
        rtol=1e-5,
    )
    sample_labels = None if labels is None else labels[:2]
    samples = prior.sample(2, labels=sample_labels, seed=0)
    np.testing.assert_array_equal(samples, golden[f"{name}/samples"])


@pytest.mark.parametrize("name", PRESETS)
def test_bundled_configs_hold_their_table_entries(name):
    from keras_vqvae.models import PIXELCNN_PRIOR_PRESETS
    from keras_vqvae.models import VQVAE_PRESETS
    from keras_vqvae.presets import PresetFolder

    folder = PresetFolder.resolve(name)
    saved = folder.saved_config("model")["config"]
    for key, value in VQVAE_PRESETS[name]["config"].items():
        assert saved[key] == (
            list(value) if isinstance(value, tuple) else value
        ), key
    saved_prior = folder.saved_config("prior")["config"]
    for key, value in PIXELCNN_PRIOR_PRESETS[name]["config"].items():
        assert saved_prior[key] == value, key
    assert set(VQVAE.presets) == set(VQVAE_PRESETS)
    assert set(PixelCNNPrior.presets) == set(PIXELCNN_PRIOR_PRESETS)


def golden_outputs(name, images, labels=None):
    """The golden entries of preset `name` for uint8 `images`."""
    model = VQVAE.from_preset(name)
    prior = PixelCNNPrior.from_preset(name)
    codes = model.encode(images)
    if prior.num_classes and labels is None:
        labels = np.arange(len(images)) % prior.num_classes
    outputs = {
        "images": images,
        "codes": codes,
        "reconstructions": model.reconstruct(images),
        "decoded": model.decode_indices(codes),
        "log_prob": prior.log_prob(codes.astype("int32"), labels=labels),
        "samples": prior.sample(
            2, labels=None if labels is None else labels[:2], seed=0
        ),
    }
    if labels is not None:
        outputs["labels"] = np.asarray(labels)
    return {f"{name}/{key}": value for key, value in outputs.items()}


def update_golden(names):
    """Rewrites the entries of the presets `names`, on their old images."""
    with np.load(GOLDEN) as arrays:
        entries = {key: arrays[key] for key in arrays.files}
    for name in names:
        images = entries[f"{name}/images"]
        entries = {
            k: v for k, v in entries.items() if not k.startswith(name + "/")
        }
        entries.update(golden_outputs(name, images))
    np.savez_compressed(GOLDEN, **entries)


if __name__ == "__main__":
    if sys.argv[1:2] != ["--update"] or len(sys.argv) < 3:
        sys.exit("usage: python tests/test_bundled_presets.py --update NAME...")
    update_golden(sys.argv[2:])
