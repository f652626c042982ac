"""TensorFlow Datasets (`tfds:NAME` sources), loaded into uint8 arrays."""

import os

from keras_vqvae.data.arrays import check_images
from keras_vqvae.data.arrays import check_labels
from keras_vqvae.errors import DataError

DATA_DIR_ENV = "TFDS_DATA_DIR"


def load_tfds(name, split="train", data_dir=None, download=None, limit=None):
    """Loads an image dataset from TensorFlow Datasets into uint8 arrays.

    Needs the optional package `tensorflow-datasets` (`pip install
    "keras-vqvae[tfds]"`), imported only here. Online, with neither
    `data_dir` nor `$TFDS_DATA_DIR`, TFDS downloads and prepares the
    dataset in `~/tensorflow_datasets` on first use. For offline use,
    prepare it once where there is network access (`tfds build NAME
    --data_dir DIR`) and pass `data_dir=DIR`, or set `TFDS_DATA_DIR=DIR`
    (how the CLI's `--data tfds:NAME` finds it): with either, nothing is
    downloaded unless `download=True`.

    Args:
        name: TFDS name, e.g. `"mnist"`, `"fashion_mnist"`, `"cifar10"`.
        split: TFDS split, e.g. `"train"`, `"test"` or `"train[:10%]"`.
        data_dir: str or None. Folder of prepared TFDS data. None means
            `$TFDS_DATA_DIR` if set, else TFDS's default
            (`~/tensorflow_datasets`).
        download: bool or None. Whether TFDS may download and prepare the
            data. None means only when there is no `data_dir` and no
            `$TFDS_DATA_DIR`.
        limit: int or None. Load only the first `limit` examples.

    Returns:
        Tuple `(images, labels)`: uint8 `(N, H, W, C)` and int64 `(N,)`
        (-1 when the dataset has no `label` feature).

    Raises:
        ImportError: `tensorflow-datasets` is not installed.
        FileNotFoundError: `data_dir` (or `$TFDS_DATA_DIR`) does not exist,
            or the dataset is not prepared and downloading is off.

    Example:

    >>> images, labels = load_tfds("cifar10", "test")  # doctest: +SKIP
    >>> images, labels = load_tfds(
    ...     "cifar10", "test", data_dir="~/tfds")  # doctest: +SKIP
    """
    tfds = _import_tfds()
    data_dir = _check_data_dir(data_dir)
    download = data_dir is None if download is None else bool(download)
    not_found = (AssertionError,) + _dataset_not_found_errors(tfds)
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
    except not_found as e:  # "could not find data" / unknown name.
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise FileNotFoundError(
            f"TFDS dataset '{name}' is not prepared in "
            f"{data_dir or 'the default TFDS data_dir'} and download is off. "
            f"Prepare it with `tfds build {name} --data_dir DIR` where there "
            f"is network access, then pass data_dir=DIR or set "
            f"{DATA_DIR_ENV}=DIR. ({reason})"
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


def _dataset_not_found_errors(tfds):
    """TFDS's error for a name it knows neither as a builder nor on disk."""
    registered = getattr(getattr(tfds, "core", None), "registered", None)
    error = getattr(registered, "DatasetNotFoundError", None)
    return (error,) if isinstance(error, type) else ()


def _check_data_dir(data_dir):
    """`data_dir`, else `$TFDS_DATA_DIR`, else None; must exist if set."""
    what = "TFDS `data_dir`"
    if data_dir is None:
        data_dir = os.environ.get(DATA_DIR_ENV) or None
        what = f"${DATA_DIR_ENV}"
    if data_dir is None:
        return None
    data_dir = os.path.expanduser(str(data_dir))
    if not os.path.isdir(data_dir):
        raise FileNotFoundError(f"{what} does not exist: {data_dir}")
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


def tfds_class_names(name, data_dir=None):
    """The names of a TFDS dataset's `label` classes, or None.

    Reads the prepared dataset's metadata only (nothing is downloaded).
    """
    tfds = _import_tfds()
    builder = tfds.builder(name, data_dir=_check_data_dir(data_dir))
    features = builder.info.features
    label = features["label"] if features and "label" in features else None
    names = getattr(label, "names", None)
    return list(names) if names else None
