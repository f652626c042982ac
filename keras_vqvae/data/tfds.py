"""TensorFlow Datasets (`tfds:NAME` sources), loaded into uint8 arrays."""

import os

from keras_vqvae.data.arrays import check_images
from keras_vqvae.data.arrays import check_labels
from keras_vqvae.errors import DataError


def load_tfds(name, split="train", data_dir=None, download=None, limit=None):
    """Loads an image dataset from TensorFlow Datasets into uint8 arrays.

    Needs the optional package `tensorflow-datasets`, imported only here.
    For offline use, prepare the dataset once where there is network access
    (`tfds build NAME --data_dir DIR`) and pass `data_dir=DIR`: with a
    `data_dir`, nothing is downloaded unless `download=True`.

    Args:
        name: TFDS name, e.g. `"mnist"`, `"fashion_mnist"`, `"cifar10"`.
        split: TFDS split, e.g. `"train"`, `"test"` or `"train[:10%]"`.
        data_dir: str or None. Folder of prepared TFDS data; None uses TFDS's
            default (`~/tensorflow_datasets` or `$TFDS_DATA_DIR`).
        download: bool or None. Whether TFDS may download and prepare the
            data. None means `data_dir is None`.
        limit: int or None. Load only the first `limit` examples.

    Returns:
        Tuple `(images, labels)`: uint8 `(N, H, W, C)` and int64 `(N,)`
        (-1 when the dataset has no `label` feature).

    Raises:
        ImportError: `tensorflow-datasets` is not installed.
        FileNotFoundError: `data_dir` does not exist, or the dataset is not
            prepared and downloading is off.

    Example:

    >>> images, labels = load_tfds(
    ...     "cifar10", "test", data_dir="~/tfds")  # doctest: +SKIP
    """
    tfds = _import_tfds()
    data_dir = _check_data_dir(data_dir)
    download = data_dir is None if download is None else bool(download)
    if limit is not None and "[" not in split:
        split = f"{split}[:{int(limit)}]"
    try:
        data = tfds.load(
            name,
            split=split,
            data_dir=data_dir,
            download=download,
            batch_size=-1,
        )
    except AssertionError as e:  # TFDS's "could not find data" error.
        raise FileNotFoundError(
            f"TFDS dataset '{name}' is not prepared in "
            f"{data_dir or 'the default TFDS data_dir'} and download is off. "
            f"Prepare it with `tfds build {name} --data_dir DIR` where there "
            f"is network access, then pass data_dir=DIR. ({e})"
        ) from e
    return _to_arrays(tfds.as_numpy(data), name, limit)


def _import_tfds():
    try:
        import tensorflow_datasets as tfds
    except ImportError as e:
        raise ImportError(
            "load_tfds() needs TensorFlow Datasets: `pip install "
            "tensorflow-datasets`. Without it, pass a local folder or .npz "
            "file to `load_split` instead."
        ) from e
    return tfds


def _check_data_dir(data_dir):
    if data_dir is None:
        return None
    data_dir = os.path.expanduser(str(data_dir))
    if not os.path.isdir(data_dir):
        raise FileNotFoundError(f"TFDS `data_dir` does not exist: {data_dir}")
    return data_dir


def _to_arrays(data, name, limit):
    """Checked `(images, labels)` from a TFDS dict of NumPy arrays."""
    if "image" not in data:
        raise DataError(
            f"TFDS dataset '{name}' has no 'image' feature: {sorted(data)}"
        )
    source = f"tfds:{name}"
    images = check_images(data["image"][:limit], source)
    labels = data["label"][:limit] if "label" in data else None
    return images, check_labels(labels, len(images), source)
