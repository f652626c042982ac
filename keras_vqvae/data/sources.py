"""`load_split`: the one entry point that loads a split of any source."""

import json
import warnings
from pathlib import Path

from keras_vqvae.data.array_files import has_split
from keras_vqvae.data.array_files import load_arrays
from keras_vqvae.data.arrays import convert_channels
from keras_vqvae.data.arrays import resize_images
from keras_vqvae.data.image_files import find_image_files
from keras_vqvae.data.image_files import image_folder_classes
from keras_vqvae.data.image_files import load_image_folder
from keras_vqvae.data.tfds import load_tfds
from keras_vqvae.data.tfds import tfds_class_names
from keras_vqvae.errors import DataError

TFDS_PREFIX = "tfds:"
CLASSES_FILE = "classes.json"


def load_split(
    source,
    split="train",
    *,
    model=None,
    image_size=None,
    channels=None,
    value_range=None,
    limit=None,
    data_dir=None,
):
    """Loads the images and labels of one split of any supported source.

    `source` is one of:

    - `"tfds:NAME"`: TensorFlow Datasets (see `load_tfds`; `data_dir`, else
      `$TFDS_DATA_DIR`, is where the prepared data is read, and then nothing
      is downloaded);
    - a `.npz` file, or a folder with `{split}.npz`, `{split}_jpeg.npz` or
      idx files (see `load_arrays`);
    - a folder of image files (see `load_image_folder`). If it has a
      `{split}` subfolder, that subfolder is read; otherwise the whole
      folder is, whatever the split (with a warning unless split is
      `"train"`).

    Args:
        source: str or `Path`, as above.
        split: split name, usually `"train"` or `"test"`.
        model: None, or a model with an `image_shape` `(height, width,
            channels)`, such as a `VQVAE`: the images are made to fit it
            (sets `image_size` and `channels`; pass neither with it).
        image_size: None, int or `(height, width)`. If set, images of another
            size are resized (bicubic, anti-aliased).
        channels: None (keep), 1 or 3. Converts grayscale to RGB by
            repetition, RGB to grayscale by luma. Image folders default to 3.
        value_range: None (the stored values are pixels 0..255: nothing is
            rescaled) or `(low, high)`, the range of the stored values,
            mapped linearly to 0..255; `(0, 16)` for scikit-learn's digits.
            Used for array files only, not for image files or TFDS.
        limit: int or None. Load only the first `limit` images.
        data_dir: TFDS data folder, for `"tfds:..."` sources only; None
            means `$TFDS_DATA_DIR` if set (how the CLI is pointed at one).

    Returns:
        Tuple `(images, labels)`: uint8 `(N, H, W, C)` and int64 `(N,)`,
        -1 where unlabelled.

    Raises:
        FileNotFoundError: `source` does not exist, or holds no `split`.
        ValueError: `model` lacks an `image_shape`, or is passed with
            `image_size` or `channels`; or the data is malformed.

    Example:

    >>> images, labels = load_split(
    ...     "../shared/datasets/cifar10_jpeg", split="test")  # doctest: +SKIP
    >>> images, labels = load_split(
    ...     "../shared/datasets/mnist", model=model)  # doctest: +SKIP
    >>> dataset = make_dataset(images, batch_size=128, seed=0)  # doctest: +SKIP
    """
    if model is not None:
        image_size, channels = _model_image_shape(model, image_size, channels)
    if isinstance(source, str) and source.startswith(TFDS_PREFIX):
        name = source[len(TFDS_PREFIX) :]
        images, labels = load_tfds(name, split, data_dir, limit=limit)
    else:
        path = _existing_path(source)
        if _is_image_folder(path, split):
            return _load_image_folder_split(
                path, split, image_size, channels, limit
            )
        images, labels = load_arrays(
            path, split, value_range=value_range, limit=limit
        )
    if channels is not None:
        images = convert_channels(images, channels)
    if image_size is not None:
        images = resize_images(images, image_size)
    return images, labels


def _model_image_shape(model, image_size, channels):
    """`(image_size, channels)` from `model.image_shape`."""
    if image_size is not None or channels is not None:
        raise DataError(
            "Pass either `model` or `image_size`/`channels`, not both: "
            "`model` sets them from its `image_shape`. Received: "
            f"image_size={image_size!r}, channels={channels!r}"
        )
    image_shape = getattr(model, "image_shape", None)
    if image_shape is None or len(image_shape) != 3:
        raise DataError(
            "`model` must have an `image_shape` (height, width, channels), "
            f"as a `VQVAE` does. Received: model={model!r}"
        )
    height, width, channels = (int(v) for v in image_shape)
    return (height, width), channels


def _existing_path(source):
    path = Path(source).expanduser()
    if not path.exists():
        raise FileNotFoundError(
            f"No such file or folder: {path} (for TensorFlow Datasets, "
            f"use '{TFDS_PREFIX}NAME')"
        )
    return path


def _is_image_folder(path, split):
    """Whether `path` is a folder of image files rather than array files."""
    return (
        path.is_dir()
        and not has_split(path, split)
        and bool(find_image_files(path))
    )


def _load_image_folder_split(folder, split, image_size, channels, limit):
    if (folder / split).is_dir():
        folder = folder / split
    elif split != "train":
        warnings.warn(
            f"{folder} has no '{split}' subfolder; loading all its images for "
            f"split '{split}'.",
            stacklevel=3,
        )
    return load_image_folder(
        folder, image_size=image_size, channels=channels or 3, limit=limit
    )


def load_classes(source, data_dir=None):
    """Returns the classes of a source's labels, or None if it names none.

    Label `i` of `load_split(source, ...)` is class `load_classes(source)[i]`.
    Where the names come from:

    - a data folder with a `classes.json`: a JSON list with one entry per
      label, each a name, an `[id, name, ...]` list (as in the shared
      ImageNet subsets: WordNet id, name, subset) or an `{"id", "name"}`
      object;
    - a folder of image files: its class subfolders (the id and the name);
    - `"tfds:NAME"`: the `label` feature's names.

    Args:
        source: as for `load_split`.
        data_dir: TFDS data folder, for `"tfds:..."` sources only.

    Returns:
        None, or a list of `{"id": str, "name": str}` dicts in label order.

    Raises:
        DataError: `classes.json` is not such a list.

    Example:

    >>> load_classes("../shared/datasets/imagenet_subsets_128")[0]  # doctest: +SKIP
    {'id': 'n01440764', 'name': 'tench'}
    """
    if isinstance(source, str) and source.startswith(TFDS_PREFIX):
        names = tfds_class_names(source[len(TFDS_PREFIX) :], data_dir)
        return None if names is None else _classes(names, "TFDS")
    path = _existing_path(source)
    if not path.is_dir():
        return None
    if (path / CLASSES_FILE).is_file():
        return _read_classes_file(path / CLASSES_FILE)
    if not has_split(path, "train") and find_image_files(path):
        folder = path / "train" if (path / "train").is_dir() else path
        return _classes(image_folder_classes(folder), folder) or None
    return None


def _read_classes_file(path):
    try:
        entries = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise DataError(f"Cannot read {path} as JSON: {e}") from e
    return _classes(entries, path)


def _classes(entries, source):
    if not isinstance(entries, list):
        raise DataError(
            f"{source}: expected a JSON list of classes in label order, "
            f"received {type(entries).__name__}."
        )
    return [_class_entry(entry, source) for entry in entries]


def _class_entry(entry, source):
    if isinstance(entry, str):
        return {"id": entry, "name": entry}
    if isinstance(entry, list) and len(entry) >= 2:
        return {"id": str(entry[0]), "name": str(entry[1])}
    if isinstance(entry, dict) and "name" in entry:
        return {
            "id": str(entry.get("id", entry["name"])),
            "name": entry["name"],
        }
    raise DataError(
        f"{source}: each class must be a name, an [id, name, ...] list or an "
        f'{{"id": ..., "name": ...}} object; received {entry!r}.'
    )
