"""`tfds:NAME` sources, offline.

TFDS cannot download here, so a small TFDS data_dir is written from the
shared MNIST arrays with TFDS's own API (`store_as_tfds_dataset`), under the
registered name `mnist` and its builder's version: `tfds.load("mnist")` then
reads it exactly as it reads a copy prepared with `tfds build mnist`.
"""

import json
import os
import types
from pathlib import Path

import numpy as np
import pytest
from real_data import dataset

from keras_vqvae import data
from keras_vqvae.cli import main

PRESETS = Path(__file__).resolve().parents[1] / "presets"
TRAIN_IMAGES = 512
TEST_IMAGES = 128


def import_tfds():
    """`tensorflow_datasets`; skips without it, or fails the test under CI."""
    if not os.environ.get("CI"):
        return pytest.importorskip(
            "tensorflow_datasets",
            reason="tensorflow-datasets is not installed "
            '(pip install "keras-vqvae[tfds]")',
        )
    try:
        import tensorflow_datasets
    except ImportError as e:
        pytest.fail(
            "tensorflow-datasets is not installed (CI is set, so this is an "
            f'error; pip install "keras-vqvae[tfds]"): {e}'
        )
    return tensorflow_datasets


def npz_slice(split, count):
    with np.load(dataset("mnist") / f"{split}.npz") as arrays:
        return arrays["images"][:count], arrays["labels"][:count]


@pytest.fixture(scope="module")
def tfds_dir(tmp_path_factory):
    """A TFDS data_dir holding `mnist` train/test slices, and the slices."""
    tfds = import_tfds()
    data_dir = tmp_path_factory.mktemp("tfds")
    slices = {
        "train": npz_slice("train", TRAIN_IMAGES),
        "test": npz_slice("test", TEST_IMAGES),
    }
    features = tfds.features.FeaturesDict(
        {
            "image": tfds.features.Image(shape=(28, 28, 1)),
            "label": tfds.features.ClassLabel(num_classes=10),
        }
    )
    tfds.dataset_builders.store_as_tfds_dataset(
        name="mnist",
        version=str(tfds.builder_cls("mnist").VERSION),
        features=features,
        split_datasets={
            split: [
                (i, {"image": image, "label": int(label)})
                for i, (image, label) in enumerate(zip(*arrays))
            ]
            for split, arrays in slices.items()
        },
        data_dir=str(data_dir),
        disable_shuffling=True,  # keep the npz order, to compare
    )
    return data_dir, slices


@pytest.fixture
def load_calls(monkeypatch):
    """The keyword arguments of every `tfds.load` call (still calls it)."""
    tfds = import_tfds()
    calls = []
    load = tfds.load

    def recording_load(name, **kwargs):
        calls.append(kwargs)
        return load(name, **kwargs)

    monkeypatch.setattr(tfds, "load", recording_load)
    return calls


def test_load_split_reads_an_offline_tfds_data_dir(
    tfds_dir, load_calls, monkeypatch
):
    data_dir, slices = tfds_dir
    monkeypatch.delenv("TFDS_DATA_DIR", raising=False)
    images, labels = data.load_split("tfds:mnist", "test", data_dir=data_dir)
    assert images.dtype == np.uint8 and images.shape == (TEST_IMAGES, 28, 28, 1)
    assert labels.dtype == np.int64
    np.testing.assert_array_equal(images, slices["test"][0])
    np.testing.assert_array_equal(labels, slices["test"][1])
    classes = data.load_classes("tfds:mnist", data_dir=data_dir)
    assert classes == [{"id": str(i), "name": str(i)} for i in range(10)]

    # $TFDS_DATA_DIR stands for data_dir (how the CLI is pointed at one).
    monkeypatch.setenv("TFDS_DATA_DIR", str(data_dir))
    model = types.SimpleNamespace(image_shape=(32, 32, 3))
    images, labels = data.load_split(
        "tfds:mnist", "train", model=model, limit=8
    )
    assert images.shape == (8, 32, 32, 3)
    np.testing.assert_array_equal(labels, slices["train"][1][:8])
    assert [call["data_dir"] for call in load_calls] == [str(data_dir)] * 2
    assert [call["download"] for call in load_calls] == [False, False]
    assert load_calls[1]["split"] == "train[:8]"


def test_offline_tfds_errors_say_how_to_prepare(tfds_dir, monkeypatch):
    data_dir, _ = tfds_dir
    monkeypatch.delenv("TFDS_DATA_DIR", raising=False)
    # A registered builder whose data is not in the folder: no download.
    with pytest.raises(FileNotFoundError, match="tfds build fashion_mnist"):
        data.load_split("tfds:fashion_mnist", "test", data_dir=data_dir)
    with pytest.raises(FileNotFoundError, match="no_such_dataset.*not found"):
        data.load_split("tfds:no_such_dataset", "test", data_dir=data_dir)
    monkeypatch.setenv("TFDS_DATA_DIR", str(data_dir / "missing"))
    with pytest.raises(FileNotFoundError, match=r"\$TFDS_DATA_DIR does not"):
        data.load_split("tfds:mnist", "test")


def test_preset_tfds_builders_are_registered():
    tfds = import_tfds()
    builders = {}
    for metadata_file in sorted(PRESETS.glob("*/metadata.json")):
        metadata = json.loads(metadata_file.read_text())
        if "tfds" in metadata:  # not crafter_84: Crafter is not in TFDS
            builders[metadata_file.parent.name] = metadata["tfds"]["builder"]
    assert builders == {
        "cifar10": "cifar10",
        "fashion_mnist": "fashion_mnist",
        "imagenet_128": "imagenet2012",
        "mnist": "mnist",
    }
    for builder in builders.values():
        tfds.builder_cls(builder)  # raises for an unknown name


@pytest.mark.slow
def test_cli_trains_from_tfds(tfds_dir, tmp_path, monkeypatch, capsys):
    data_dir, _ = tfds_dir
    monkeypatch.setenv("TFDS_DATA_DIR", str(data_dir))
    preset = tmp_path / "preset"
    status = main(
        [
            "train", "--architecture", "mnist", "--data", "tfds:mnist",
            "--steps", "4", "--checkpoint-every", "2",
            "--steps-per-execution", "2", "--batch-size", "16",
            "--eval-limit", "64", "--precision", "float32", "--verbose", "0",
            "--work-dir", str(tmp_path / "run"), "--preset-dir", str(preset),
        ]
    )  # fmt: skip
    assert status == 0, capsys.readouterr().err[-2000:]
    for name in ("config.json", "metadata.json", "model.weights.h5"):
        assert (preset / name).is_file(), name
    metadata = json.loads((preset / "metadata.json").read_text())
    assert metadata["dataset"] == "tfds:mnist"
    assert metadata["training"]["steps"] == 4
    assert metadata["training"]["train_images"] == TRAIN_IMAGES
    assert metadata["test_metrics"]["test_images"] == 64
    assert 0 < metadata["test_metrics"]["mse"] < 1
