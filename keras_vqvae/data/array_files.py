"""Array files: `.npz` (plain or JPEG-compressed) and MNIST-format idx."""

import gzip
import io
import struct
from pathlib import Path

import numpy as np

from keras_vqvae.data.arrays import apply_value_range
from keras_vqvae.data.arrays import check_images
from keras_vqvae.data.arrays import check_labels
from keras_vqvae.data.image_files import folder_listing
from keras_vqvae.errors import DataError

_IDX_PREFIXES = {"train": "train", "test": "t10k", "t10k": "t10k"}
_IDX_DTYPES = {
    0x08: ">u1",
    0x09: ">i1",
    0x0B: ">i2",
    0x0C: ">i4",
    0x0D: ">f4",
    0x0E: ">f8",
}


def load_arrays(path, split="train", value_range=None, limit=None):
    """Loads an image array dataset from a `.npz` file or a data folder.

    `path` may be:

    - a folder holding `{split}.npz` (arrays `images`, `labels`) or
      `{split}_jpeg.npz` (concatenated JPEG bytes `jpeg`, byte `offsets` of
      length N+1, `labels`; decoded with PIL, nothing is cached to disk);
    - a folder of MNIST-format idx files (`train-images-idx3-ubyte.gz`,
      `train-labels-idx1-ubyte.gz`; split `"test"` reads the `t10k-*`
      files), such as MNIST or Fashion-MNIST
      (`/usr/share/datasets/fashion-mnist` from the Debian package
      `dataset-fashion-mnist`);
    - a single `.npz` file with `images`/`labels`, `jpeg`/`offsets`/`labels`,
      or `x_{split}`/`y_{split}` (the `keras.datasets` layout). When the file
      has no per-split keys, `split` is ignored;
    - an episode folder of `keras_vqvae.data.crafter_episodes` (its
      `frames`, unlabelled).

    Grayscale images get a trailing channel axis.

    Args:
        path: str or `Path`: folder or `.npz` file, as above.
        split: `"train"` or `"test"` (any name with a matching file works).
        value_range: None or `(low, high)`. None means the stored values are
            pixels 0..255 and nothing is rescaled. `(low, high)` is the range
            the stored values span, mapped linearly to 0..255: pass `(0, 16)`
            for scikit-learn's digits, which store counts 0..16.
        limit: int or None. If set, load only the first `limit` images (in
            file order: some sources, like `cifar10_jpeg`, are grouped by
            class).

    Returns:
        Tuple `(images, labels)`: uint8 `(N, H, W, C)` and int64 `(N,)`
        (-1 where the source has no labels).

    Raises:
        FileNotFoundError: `path` does not exist or holds no file for
            `split`; the message lists what was looked for and what exists.
        ValueError: the arrays have an unexpected shape, dtype or layout.

    Example:

    >>> images, labels = load_arrays(
    ...     "../shared/datasets/mnist", "test")  # doctest: +SKIP
    >>> images.shape, images.dtype  # doctest: +SKIP
    ((10000, 28, 28, 1), dtype('uint8'))
    >>> digits, _ = load_arrays(
    ...     "../shared/datasets/sklearn_digits", "test",
    ...     value_range=(0, 16))  # doctest: +SKIP
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"No such file or folder: {path}")
    if path.is_dir():
        images, labels = _load_folder_split(path, split, limit)
    elif path.suffix == ".npz":
        images, labels = _load_npz(path, split, limit)
    else:
        raise DataError(f"Expected a folder or a .npz file. Received: {path}")
    images = apply_value_range(check_images(images, str(path)), value_range)
    return images, check_labels(labels, len(images), str(path))


def read_idx(path):
    """Reads an idx file (the MNIST format), optionally gzip-compressed.

    Args:
        path: path to e.g. `t10k-images-idx3-ubyte.gz`.

    Returns:
        NumPy array with the file's shape and dtype (uint8 for MNIST).

    Example:

    >>> labels = read_idx("/usr/share/datasets/fashion-mnist/"
    ...                   "t10k-labels-idx1-ubyte.gz")  # doctest: +SKIP
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[:2] != b"\x00\x00" or data[2] not in _IDX_DTYPES:
        raise DataError(f"{path} is not an idx file (bad magic number).")
    ndim = data[3]
    header = 4 + 4 * ndim
    shape = struct.unpack(f">{ndim}I", data[4:header])
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    if len(data) - header != int(np.prod(shape)) * dtype.itemsize:
        raise DataError(
            f"{path}: idx header shape {shape} does not match file size."
        )
    array = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    return array.astype(dtype.newbyteorder("="))


def has_split(folder, split):
    """Whether `folder` holds a `.npz` or idx file for `split`."""
    return (
        _npz_file(folder, split) is not None
        or _idx_file(folder, _idx_prefix(split), "images") is not None
    )


def _npz_names(split):
    return (f"{split}.npz", f"{split}_jpeg.npz")


def _npz_file(folder, split):
    """The first of `{split}.npz`, `{split}_jpeg.npz` in folder, or None."""
    for name in _npz_names(split):
        if (folder / name).is_file():
            return folder / name
    return None


def _idx_prefix(split):
    return _IDX_PREFIXES.get(split, split)


def _idx_file(folder, prefix, kind):
    """Finds `{prefix}-{kind}-idxN-ubyte[.gz]` (or `.idxN-ubyte`) in folder."""
    ndim = 3 if kind == "images" else 1
    for sep in ("-", "."):
        for ext in (".gz", ""):
            candidate = folder / f"{prefix}-{kind}{sep}idx{ndim}-ubyte{ext}"
            if candidate.is_file():
                return candidate
    return None


def _load_folder_split(folder, split, limit):
    npz = _npz_file(folder, split)
    if npz is not None:
        return _load_npz(npz, split, limit)
    prefix = _idx_prefix(split)
    images_file = _idx_file(folder, prefix, "images")
    if images_file is None:
        looked_for = ", ".join(
            _npz_names(split) + (f"{prefix}-images-idx3-ubyte[.gz]",)
        )
        raise FileNotFoundError(
            f"No '{split}' split in {folder}: looked for {looked_for}. "
            f"The folder contains: {folder_listing(folder)}. For a folder "
            "of image files use `load_image_folder` or `load_split`."
        )
    labels_file = _idx_file(folder, prefix, "labels")
    labels = read_idx(labels_file)[:limit] if labels_file else None
    return read_idx(images_file)[:limit], labels


def _load_npz(path, split, limit):
    with np.load(path, allow_pickle=False) as data:
        keys = set(data.files)
        if "images" in keys:
            images, labels_key = data["images"][:limit], "labels"
        elif {"jpeg", "offsets"} <= keys:
            images = _decode_jpegs(data["jpeg"], data["offsets"], limit)
            labels_key = "labels"
        elif f"x_{split}" in keys:
            images, labels_key = data[f"x_{split}"][:limit], f"y_{split}"
        elif "frames" in keys:  # Crafter episodes: every frame, no labels
            images, labels_key = data["frames"][:limit], None
        else:
            raise DataError(
                f"{path} has arrays {sorted(keys)}; expected 'images' (and "
                f"'labels'), 'jpeg' + 'offsets' (and 'labels'), "
                f"'x_{split}' (and 'y_{split}') or 'frames' (episodes)."
            )
        labels = data[labels_key][:limit] if labels_key in keys else None
    return images, labels


def _decode_jpegs(jpeg, offsets, limit=None):
    """Decodes concatenated JPEG bytes (`jpeg[offsets[i]:offsets[i+1]]`)."""
    from PIL import Image

    offsets = np.asarray(offsets, dtype=np.int64)
    count = len(offsets) - 1
    if count < 0 or np.any(np.diff(offsets) < 0) or offsets[-1] > len(jpeg):
        raise DataError(
            "Invalid JPEG `offsets`: must be N+1 increasing byte offsets."
        )
    count = count if limit is None else min(count, int(limit))
    if count <= 0:
        return np.zeros((0, 0, 0, 3), np.uint8)
    buffer = memoryview(np.ascontiguousarray(jpeg, dtype=np.uint8))
    images = None
    for i in range(count):
        with Image.open(io.BytesIO(buffer[offsets[i] : offsets[i + 1]])) as im:
            if images is None:
                channels = 1 if im.mode in ("L", "1", "I;16") else 3
                shape = (count, im.height, im.width, channels)
                images = np.empty(shape, np.uint8)
            images[i] = _jpeg_pixels(im, i, images.shape)
    return images


def _jpeg_pixels(image, index, shape):
    """The pixels of JPEG `index` as `shape[1:]`, like the first image's."""
    if image.size != (shape[2], shape[1]):
        raise DataError(
            f"JPEG {index} is {image.width}x{image.height}; expected "
            f"{shape[2]}x{shape[1]} like the first image."
        )
    mode = "L" if shape[-1] == 1 else "RGB"
    if image.mode != mode:
        image = image.convert(mode)
    return np.asarray(image).reshape(shape[1:])
