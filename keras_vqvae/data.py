"""Image data for keras-vqvae: loading, normalization and `tf.data` pipelines.

Every loader returns images as a `uint8` NumPy array of shape `(N, H, W, C)`
(`C` is 1 or 3) with values 0..255, and labels as an `int64` array of shape
`(N,)`; a label of -1 means the source carries no label for that image.
Models work on float32 images in [-0.5, 0.5]; `normalize` and `denormalize`
convert between the two, and `make_dataset` builds a batched, normalized
`tf.data.Dataset` ready for `model.fit(dataset)`.

Sources understood by `load_dataset`:

- a folder holding `{split}.npz` (`images`, `labels`) or `{split}_jpeg.npz`
  (`jpeg`, `offsets`, `labels`), as in the project's shared datasets;
- a single `.npz` file (`images`/`labels`, `jpeg`/`offsets`/`labels`, or the
  `keras.datasets` layout `x_{split}`/`y_{split}`);
- an MNIST-style idx folder (`train-images-idx3-ubyte[.gz]`,
  `t10k-images-idx3-ubyte[.gz]`, ...), e.g. Fashion-MNIST from the Debian
  package `dataset-fashion-mnist` in `/usr/share/datasets/fashion-mnist`;
- a folder of image files (png, jpg, jpeg, bmp, webp), labelled by subfolder;
- `"tfds:NAME"`: a TensorFlow Datasets dataset (needs `tensorflow-datasets`).
"""

import gzip
import io
import os
import struct
import warnings
from pathlib import Path

import keras
import numpy as np

DEFAULT_NORMALIZATION = {"scale": 1.0 / 255.0, "offset": -0.5}
"""Pixel normalization used by the models: `x = pixel * scale + offset`.

Presets record this dict in their config; `normalize` and `denormalize`
accept any dict with the keys `"scale"` and `"offset"`.
"""

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")

_IDX_PREFIXES = {"train": "train", "test": "t10k", "t10k": "t10k"}
_IDX_DTYPES = {
    0x08: ">u1",
    0x09: ">i1",
    0x0B: ">i2",
    0x0C: ">i4",
    0x0D: ">f4",
    0x0E: ">f8",
}


# ---------------------------------------------------------------------------
# Normalization.
# ---------------------------------------------------------------------------


def _scale_offset(normalization):
    normalization = (
        DEFAULT_NORMALIZATION if normalization is None else normalization
    )
    try:
        scale = float(normalization["scale"])
        offset = float(normalization["offset"])
    except (KeyError, TypeError) as e:
        raise ValueError(
            "`normalization` must be a dict with keys 'scale' and 'offset', "
            f"such as {DEFAULT_NORMALIZATION}. Received: {normalization!r}"
        ) from e
    if scale <= 0:
        raise ValueError(
            f"Normalization 'scale' must be > 0. Received: {scale}"
        )
    return scale, offset


def _is_numpy_like(x):
    return isinstance(x, (np.ndarray, np.generic, list, tuple, int, float))


def normalize(images, normalization=None):
    """Maps uint8 pixels (0..255) to the float32 range the models use.

    Computes `images * scale + offset`, by default `images / 255 - 0.5`, so
    0..255 maps to [-0.5, 0.5].

    Args:
        images: uint8 (or any numeric) array of pixel values 0..255: a NumPy
            array, or a backend tensor (then `keras.ops` is used).
        normalization: dict with keys `"scale"` and `"offset"`. Defaults to
            `DEFAULT_NORMALIZATION`.

    Returns:
        float32 array (NumPy in, NumPy out; tensor in, tensor out).

    Example:

    >>> normalize(np.array([0, 255], dtype="uint8"))
    array([-0.5,  0.5], dtype=float32)
    """
    scale, offset = _scale_offset(normalization)
    if _is_numpy_like(images):
        x = np.asarray(images, dtype=np.float32)
        return x * np.float32(scale) + np.float32(offset)
    x = keras.ops.cast(images, "float32")
    return x * scale + offset


def denormalize(images, normalization=None):
    """Maps model-range float images back to uint8 pixels.

    Inverts `normalize`: computes `(images - offset) / scale`, rounds to the
    nearest integer and clips to 0..255. `denormalize(normalize(x)) == x` for
    every uint8 `x`. NaNs become 0.

    Args:
        images: float array in the model range (by default [-0.5, 0.5]): a
            NumPy array, or a backend tensor (then `keras.ops` is used).
        normalization: dict with keys `"scale"` and `"offset"`. Defaults to
            `DEFAULT_NORMALIZATION`.

    Returns:
        uint8 array (NumPy in, NumPy out; tensor in, tensor out).

    Example:

    >>> denormalize(np.array([-0.5, 0.0, 0.5, 0.7]))
    array([  0, 128, 255, 255], dtype=uint8)
    """
    scale, offset = _scale_offset(normalization)
    if _is_numpy_like(images):
        x = (np.asarray(images, dtype=np.float64) - offset) / scale
        x = np.clip(np.rint(np.nan_to_num(x, nan=0.0)), 0, 255)
        return x.astype(np.uint8)
    ops = keras.ops
    x = (ops.cast(images, "float32") - offset) / scale
    x = ops.where(ops.isnan(x), ops.zeros_like(x), x)
    return ops.cast(ops.clip(ops.round(x), 0, 255), "uint8")


# ---------------------------------------------------------------------------
# Array checks and conversions.
# ---------------------------------------------------------------------------


def _check_images(images, source="images"):
    """Returns `images` as uint8 NHWC, or raises a clear ValueError."""
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(
            f"Expected images of shape (N, H, W), (N, H, W, 1) or (N, H, W, 3) "
            f"in {source}. Received shape: {images.shape}"
        )
    if images.dtype == np.uint8:
        return images
    if not np.issubdtype(images.dtype, np.integer):
        raise ValueError(
            f"Expected uint8 images (0..255) in {source}. Received dtype "
            f"{images.dtype}. Convert float images with `denormalize` or "
            "`np.clip(np.rint(x * 255), 0, 255).astype('uint8')` first."
        )
    if images.size and (images.min() < 0 or images.max() > 255):
        raise ValueError(
            f"Integer images in {source} must lie in 0..255. Received range "
            f"{images.min()}..{images.max()}."
        )
    return images.astype(np.uint8)


def _check_labels(labels, num_images, source="labels"):
    if labels is None:
        return np.full((num_images,), -1, dtype=np.int64)
    labels = np.asarray(labels).reshape(-1)
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"Expected integer labels in {source}; got {labels.dtype}."
        )
    if len(labels) != num_images:
        raise ValueError(
            f"{source}: {len(labels)} labels for {num_images} images."
        )
    return labels.astype(np.int64)


def _apply_value_range(images, value_range):
    """Rescales `images` from `value_range` to 0..255 (see `load_arrays`)."""
    if value_range is None:
        # Auto-detection: scikit-learn digits store counts 0..16.
        if images.size == 0 or images.max() > 16 or images.max() == 0:
            return images
        value_range = (0, 16)
    low, high = (float(v) for v in value_range)
    if high <= low:
        raise ValueError(
            f"`value_range` must be (low, high), low < high. Got {value_range}"
        )
    if (low, high) == (0.0, 255.0):
        return images
    x = (images.astype(np.float32) - low) * (255.0 / (high - low))
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def _to_size(image_size):
    if image_size is None:
        return None
    if isinstance(image_size, int):
        return (image_size, image_size)
    height, width = (int(v) for v in image_size)
    return (height, width)


def resize_images(images, image_size):
    """Resizes a uint8 image batch with PIL (bicubic, anti-aliased).

    Args:
        images: uint8 array `(N, H, W, C)`, C in (1, 3).
        image_size: int or `(height, width)`.

    Returns:
        uint8 array `(N, height, width, C)`; `images` itself when it already
        has that size.

    Example:

    >>> resize_images(np.zeros((2, 28, 28, 1), "uint8"), 32).shape
    (2, 32, 32, 1)
    """
    from PIL import Image

    images = _check_images(images)
    height, width = _to_size(image_size)
    if images.shape[1:3] == (height, width):
        return images
    out = np.empty((len(images), height, width, images.shape[-1]), np.uint8)
    for i, image in enumerate(images):
        pil = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
        pil = pil.resize((width, height), Image.Resampling.BICUBIC)
        out[i] = np.asarray(pil).reshape(out.shape[1:])
    return out


def convert_channels(images, channels):
    """Converts a uint8 batch between grayscale (1) and RGB (3) channels.

    Grayscale to RGB repeats the channel; RGB to grayscale uses ITU-R 601
    luma (`0.299 R + 0.587 G + 0.114 B`), as PIL's `convert("L")` does.

    Args:
        images: uint8 array `(N, H, W, C)`, C in (1, 3).
        channels: 1 or 3.

    Returns:
        uint8 array `(N, H, W, channels)`.

    Example:

    >>> convert_channels(np.zeros((2, 8, 8, 1), "uint8"), 3).shape
    (2, 8, 8, 3)
    """
    images = _check_images(images)
    if channels not in (1, 3):
        raise ValueError(f"`channels` must be 1 or 3. Received: {channels}")
    if images.shape[-1] == channels:
        return images
    if channels == 3:
        return np.repeat(images, 3, axis=-1)
    luma = images.astype(np.float32) @ np.array(
        [0.299, 0.587, 0.114], np.float32
    )
    return np.clip(np.rint(luma), 0, 255).astype(np.uint8)[..., None]


# ---------------------------------------------------------------------------
# Array files: .npz, JPEG .npz, idx.
# ---------------------------------------------------------------------------


def _decode_jpegs(jpeg, offsets, limit=None):
    """Decodes concatenated JPEG bytes (`jpeg[offsets[i]:offsets[i+1]]`)."""
    from PIL import Image

    offsets = np.asarray(offsets, dtype=np.int64)
    count = len(offsets) - 1
    if count < 0 or np.any(np.diff(offsets) < 0) or offsets[-1] > len(jpeg):
        raise ValueError(
            "Invalid JPEG `offsets`: must be N+1 increasing byte offsets."
        )
    count = count if limit is None else min(count, int(limit))
    buffer = memoryview(np.ascontiguousarray(jpeg, dtype=np.uint8))
    images = None
    for i in range(count):
        with Image.open(
            io.BytesIO(buffer[offsets[i] : offsets[i + 1]])
        ) as image:
            if images is None:
                mode = "L" if image.mode in ("L", "1", "I;16") else "RGB"
                shape = (
                    count,
                    image.height,
                    image.width,
                    1 if mode == "L" else 3,
                )
                images = np.empty(shape, np.uint8)
            if image.size != (shape[2], shape[1]):
                raise ValueError(
                    f"JPEG {i} is {image.width}x{image.height}; expected "
                    f"{shape[2]}x{shape[1]} like the first image."
                )
            if image.mode != mode:
                image = image.convert(mode)
            images[i] = np.asarray(image).reshape(shape[1:])
    if images is None:
        return np.zeros((0, 0, 0, 3), np.uint8)
    return images


def _load_npz(path, split, limit):
    with np.load(path, allow_pickle=False) as data:
        keys = set(data.files)
        labels = None
        if "images" in keys:
            images = data["images"][:limit]
            labels = data["labels"][:limit] if "labels" in keys else None
        elif {"jpeg", "offsets"} <= keys:
            images = _decode_jpegs(data["jpeg"], data["offsets"], limit)
            labels = data["labels"][:limit] if "labels" in keys else None
        elif f"x_{split}" in keys:
            images = data[f"x_{split}"][:limit]
            if f"y_{split}" in keys:
                labels = data[f"y_{split}"][:limit]
        else:
            raise ValueError(
                f"{path} has arrays {sorted(keys)}; expected 'images' (and "
                f"'labels'), 'jpeg' + 'offsets' (and 'labels'), or "
                f"'x_{split}' (and 'y_{split}')."
            )
    return images, labels


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
        raise ValueError(f"{path} is not an idx file (bad magic number).")
    ndim = data[3]
    header = 4 + 4 * ndim
    shape = struct.unpack(f">{ndim}I", data[4:header])
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    if len(data) - header != int(np.prod(shape)) * dtype.itemsize:
        raise ValueError(
            f"{path}: idx header shape {shape} does not match file size."
        )
    array = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    return array.astype(dtype.newbyteorder("="))


def _idx_file(folder, prefix, kind):
    """Finds `{prefix}-{kind}-idxN-ubyte[.gz]` (or `.idxN-ubyte`) in folder."""
    ndim = 3 if kind == "images" else 1
    for sep in ("-", "."):
        for ext in (".gz", ""):
            candidate = folder / f"{prefix}-{kind}{sep}idx{ndim}-ubyte{ext}"
            if candidate.is_file():
                return candidate
    return None


def _split_candidates(folder, split):
    prefix = _IDX_PREFIXES.get(split, split)
    return [
        folder / f"{split}.npz",
        folder / f"{split}_jpeg.npz",
        folder / f"{prefix}-images-idx3-ubyte[.gz]",
    ]


def _has_split(folder, split):
    npz = [c for c in _split_candidates(folder, split)[:2] if c.is_file()]
    return (
        bool(npz)
        or _idx_file(folder, _IDX_PREFIXES.get(split, split), "images")
        is not None
    )


def _listing(folder, max_entries=20):
    names = sorted(
        p.name + ("/" if p.is_dir() else "") for p in folder.iterdir()
    )
    more = (
        f", ... ({len(names) - max_entries} more)"
        if len(names) > max_entries
        else ""
    )
    return ", ".join(names[:max_entries]) + more if names else "(empty)"


def _load_folder_split(folder, split, limit):
    for candidate in _split_candidates(folder, split)[:2]:
        if candidate.is_file():
            return _load_npz(candidate, split, limit)
    prefix = _IDX_PREFIXES.get(split, split)
    images_file = _idx_file(folder, prefix, "images")
    if images_file is not None:
        images = read_idx(images_file)[:limit]
        labels_file = _idx_file(folder, prefix, "labels")
        labels = read_idx(labels_file)[:limit] if labels_file else None
        return images, labels
    looked_for = ", ".join(c.name for c in _split_candidates(folder, split))
    raise FileNotFoundError(
        f"No '{split}' split in {folder}: looked for {looked_for}. "
        f"The folder contains: {_listing(folder)}. For a folder of image "
        "files use `load_image_folder` or `load_dataset`."
    )


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
      has no per-split keys, `split` is ignored.

    Grayscale images get a trailing channel axis.

    Note on value ranges: scikit-learn's digits store counts 0..16. With
    `value_range=None`, images whose maximum is at most 16 are taken to be
    such data and rescaled to 0..255 (`round(v * 255 / 16)`). Pass
    `value_range=(0, 255)` to turn this off, or any `(low, high)` to rescale
    from that range explicitly.

    Args:
        path: str or `Path`: folder or `.npz` file, as above.
        split: `"train"` or `"test"` (any name with a matching file works).
        value_range: `None` (auto-detect, see above) or `(low, high)`: the
            range the stored values span, mapped linearly to 0..255.
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
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"No such file or folder: {path}")
    if path.is_dir():
        images, labels = _load_folder_split(path, split, limit)
    elif path.suffix == ".npz":
        images, labels = _load_npz(path, split, limit)
    else:
        raise ValueError(f"Expected a folder or a .npz file. Received: {path}")
    images = _apply_value_range(_check_images(images, str(path)), value_range)
    return images, _check_labels(labels, len(images), str(path))


# ---------------------------------------------------------------------------
# Folders of image files.
# ---------------------------------------------------------------------------


def _find_image_files(folder):
    files = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        files.extend(
            Path(root) / name
            for name in sorted(names)
            if not name.startswith(".")
            and name.lower().endswith(IMAGE_EXTENSIONS)
        )
    return sorted(files, key=lambda file: file.relative_to(folder).parts)


def _center_crop_box(width, height, target_width, target_height):
    """PIL box of the largest centered crop with the target aspect ratio."""
    crop_width = min(width, round(height * target_width / target_height))
    crop_height = min(height, round(width * target_height / target_width))
    left, top = (width - crop_width) // 2, (height - crop_height) // 2
    return (left, top, left + crop_width, top + crop_height)


def _read_image(file, size, mode, crop_to_aspect_ratio):
    from PIL import Image

    try:
        with Image.open(file) as image:
            image = image.convert(mode)
    except Exception as e:  # PIL raises several types for bad files.
        raise ValueError(f"Could not read image file {file}: {e}") from e
    if size is not None and image.size != (size[1], size[0]):
        box = None
        if crop_to_aspect_ratio:
            box = _center_crop_box(image.width, image.height, size[1], size[0])
        image = image.resize(
            (size[1], size[0]), Image.Resampling.BICUBIC, box=box
        )
    return np.asarray(image)


def load_image_folder(
    folder, image_size=None, channels=3, crop_to_aspect_ratio=False, limit=None
):
    """Loads a folder of image files (png, jpg, jpeg, bmp, webp) recursively.

    Files are read in sorted path order; hidden files and folders are
    skipped. The first-level subfolder of each file is its class, as in
    `keras.utils.image_dataset_from_directory`:

    ```
    folder/
        cats/001.png     -> label 0 ("cats")
        dogs/a/002.jpg   -> label 1 ("dogs")
        loose.png        -> label -1 (no class)
    ```

    Args:
        folder: str or `Path`.
        image_size: None, int or `(height, width)`. If set, every image is
            resized to it (bicubic, anti-aliased); if None, all images must
            share one size.
        channels: 1 (grayscale) or 3 (RGB). Images are converted with PIL.
        crop_to_aspect_ratio: bool. If True, center-crop each image to the
            aspect ratio of `image_size` before resizing (no distortion).
        limit: int or None. Load at most this many files.

    Returns:
        Tuple `(images, labels, class_names)`: uint8 `(N, H, W, channels)`,
        int64 `(N,)` indexing into `class_names` (-1 for files directly in
        `folder`), and the sorted list of subfolder names.

    Raises:
        FileNotFoundError: `folder` does not exist or holds no image file.
        ValueError: unreadable files, or differing sizes without
            `image_size`.

    Example:

    >>> images, labels, class_names = load_image_folder(
    ...     "my_photos", image_size=(64, 64))  # doctest: +SKIP
    """
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"No such folder: {folder}")
    if channels not in (1, 3):
        raise ValueError(f"`channels` must be 1 or 3. Received: {channels}")
    files = _find_image_files(folder)[:limit]
    if not files:
        raise FileNotFoundError(
            f"No image files ({', '.join(IMAGE_EXTENSIONS)}) found under "
            f"{folder}. It contains: {_listing(folder)}"
        )
    tops = [f.relative_to(folder).parts for f in files]
    class_names = sorted({parts[0] for parts in tops if len(parts) > 1})
    index = {name: i for i, name in enumerate(class_names)}
    labels = np.array(
        [index[parts[0]] if len(parts) > 1 else -1 for parts in tops], np.int64
    )
    images = _stack_images(
        files, _to_size(image_size), channels, crop_to_aspect_ratio
    )
    return images, labels, class_names


def _stack_images(files, size, channels, crop_to_aspect_ratio):
    mode = "L" if channels == 1 else "RGB"
    first = _read_image(files[0], size, mode, crop_to_aspect_ratio)
    images = np.empty((len(files),) + first.shape[:2] + (channels,), np.uint8)
    images[0] = first.reshape(images.shape[1:])
    for i, file in enumerate(files[1:], start=1):
        image = _read_image(file, size, mode, crop_to_aspect_ratio)
        if image.shape[:2] != images.shape[1:3]:
            raise ValueError(
                f"{file} is {image.shape[1]}x{image.shape[0]} but "
                f"{files[0]} is "
                f"{images.shape[2]}x{images.shape[1]}. Pass `image_size` to "
                "resize all images to one size."
            )
        images[i] = image.reshape(images.shape[1:])
    return images


# ---------------------------------------------------------------------------
# TensorFlow Datasets.
# ---------------------------------------------------------------------------


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
    try:
        import tensorflow_datasets as tfds
    except ImportError as e:
        raise ImportError(
            "load_tfds() needs TensorFlow Datasets: `pip install "
            "tensorflow-datasets`. Without it, pass a local folder or .npz "
            "file to `load_dataset` instead."
        ) from e
    if data_dir is not None:
        data_dir = os.path.expanduser(str(data_dir))
        if not os.path.isdir(data_dir):
            raise FileNotFoundError(
                f"TFDS `data_dir` does not exist: {data_dir}"
            )
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
    data = tfds.as_numpy(data)
    if "image" not in data:
        raise ValueError(
            f"TFDS dataset '{name}' has no 'image' feature: {sorted(data)}"
        )
    source = f"tfds:{name}"
    images = _check_images(data["image"][:limit], source)
    labels = data["label"][:limit] if "label" in data else None
    return images, _check_labels(labels, len(images), source)


# ---------------------------------------------------------------------------
# Single entry point.
# ---------------------------------------------------------------------------


def _load_image_folder_split(folder, split, image_size, channels, limit):
    if (folder / split).is_dir():
        folder = folder / split
    elif split not in (None, "train"):
        warnings.warn(
            f"{folder} has no '{split}' subfolder; loading all its images for "
            f"split '{split}'.",
            stacklevel=3,
        )
    images, labels, _ = load_image_folder(
        folder, image_size=image_size, channels=channels or 3, limit=limit
    )
    return images, labels


def load_dataset(
    spec,
    split="train",
    image_size=None,
    channels=None,
    value_range=None,
    limit=None,
    data_dir=None,
):
    """Loads images and labels from any supported source.

    `spec` is one of:

    - `"tfds:NAME"`: TensorFlow Datasets (see `load_tfds`; `data_dir` is
      passed on, and then nothing is downloaded);
    - a `.npz` file, or a folder with `{split}.npz`, `{split}_jpeg.npz` or
      idx files (see `load_arrays`, which also explains `value_range`);
    - a folder of image files (see `load_image_folder`). If it has a
      `{split}` subfolder, that subfolder is read; otherwise the whole
      folder is, whatever the split (with a warning unless split is
      `"train"`).

    Args:
        spec: str or `Path`, as above.
        split: split name, usually `"train"` or `"test"`.
        image_size: None, int or `(height, width)`. If set, images of another
            size are resized (bicubic, anti-aliased).
        channels: None (keep), 1 or 3. Converts grayscale to RGB by
            repetition, RGB to grayscale by luma. Image folders default to 3.
        value_range: see `load_arrays`. Not used for image files or TFDS.
        limit: int or None. Load only the first `limit` images.
        data_dir: TFDS data folder, for `"tfds:..."` specs only.

    Returns:
        Tuple `(images, labels)`: uint8 `(N, H, W, C)` and int64 `(N,)`,
        -1 where unlabelled.

    Example:

    >>> images, labels = load_dataset(
    ...     "../shared/datasets/cifar10_jpeg", split="test")  # doctest: +SKIP
    >>> dataset = make_dataset(images, batch_size=128, seed=0)  # doctest: +SKIP
    """
    if isinstance(spec, str) and spec.startswith("tfds:"):
        images, labels = load_tfds(
            spec[len("tfds:") :], split, data_dir, limit=limit
        )
    else:
        path = Path(spec).expanduser()
        if not path.exists():
            raise FileNotFoundError(
                f"No such file or folder: {path} (for TensorFlow Datasets, "
                "use 'tfds:NAME')"
            )
        if (
            path.is_dir()
            and not _has_split(path, split)
            and _find_image_files(path)
        ):
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


# ---------------------------------------------------------------------------
# tf.data pipeline.
# ---------------------------------------------------------------------------


def _gather_fn(images, labels, augment, seed):
    """Returns a NumPy function: batch of indices -> uint8 batch (+labels)."""
    rng = np.random.default_rng(seed)

    def gather(indices):
        batch = images[indices]
        if augment:
            flip = rng.random(len(indices)) < 0.5
            batch[flip] = batch[flip, :, ::-1]
        if labels is None:
            return batch
        return batch, labels[indices]

    return gather


def make_dataset(
    images,
    batch_size=32,
    *,
    labels=None,
    shuffle=True,
    seed=None,
    repeat=False,
    image_size=None,
    drop_remainder=False,
    augment=False,
    normalization=None,
):
    """Builds a batched `tf.data.Dataset` of normalized float32 images.

    The images stay in memory as uint8; the pipeline shuffles indices (each
    epoch anew), gathers batches with NumPy, then casts, optionally resizes,
    and normalizes them (by default to [-0.5, 0.5]) with TensorFlow ops, and
    prefetches (`AUTOTUNE`). It yields `x` only, for unsupervised training
    with `model.fit(dataset)`, or `(x, labels)` if `labels` is given (e.g.
    for a class-conditional prior). Works with every Keras backend; needs
    TensorFlow installed for `tf.data`.

    Args:
        images: uint8 array `(N, H, W, C)` (or `(N, H, W)`).
        batch_size: int. Images per batch.
        labels: optional int array `(N,)`. If given, batches are
            `(x, labels)` with int64 labels.
        shuffle: bool. Shuffle the order every epoch.
        seed: int or None. Seed for shuffling and augmentation; the same seed
            gives the same batches.
        repeat: bool. Repeat forever (then pass `steps_per_epoch` to `fit`).
        image_size: None, int or `(height, width)`. Resize batches on the fly
            (bilinear, anti-aliased) when the images have another size.
        drop_remainder: bool. Drop the last partial batch of each epoch, so
            all batches have static shape `batch_size`.
        augment: bool. Random horizontal flips. Suited to natural images,
            not to digits or text.
        normalization: dict with `"scale"` and `"offset"`. Defaults to
            `DEFAULT_NORMALIZATION`.

    Returns:
        `tf.data.Dataset` of float32 batches `(batch, H, W, C)`, or
        `(x, labels)` pairs.

    Example:

    >>> images = np.zeros((100, 28, 28, 1), "uint8")
    >>> dataset = make_dataset(images, batch_size=32, seed=0)
    >>> next(iter(dataset)).shape
    TensorShape([32, 28, 28, 1])
    """
    try:
        import tensorflow as tf
    except ImportError as e:
        raise ImportError(
            "make_dataset() needs TensorFlow for tf.data: `pip install "
            "tensorflow-cpu`."
        ) from e
    images = _check_images(images, "make_dataset images")
    if labels is not None:
        labels = _check_labels(labels, len(images), "make_dataset labels")
    if int(batch_size) < 1:
        raise ValueError(f"`batch_size` must be >= 1. Received: {batch_size}")
    if len(images) == 0:
        raise ValueError("make_dataset() received no images.")
    scale, offset = _scale_offset(normalization)
    size = _to_size(image_size)
    resize = size is not None and tuple(images.shape[1:3]) != size
    out_shape = [batch_size if drop_remainder else None]
    out_shape += list(size if size else images.shape[1:3]) + [images.shape[-1]]

    dataset = tf.data.Dataset.range(len(images))
    if shuffle:
        dataset = dataset.shuffle(
            len(images), seed=seed, reshuffle_each_iteration=True
        )
    if repeat:
        dataset = dataset.repeat()
    dataset = dataset.batch(int(batch_size), drop_remainder=drop_remainder)

    gather = _gather_fn(images, labels, augment, seed)
    tout = [tf.uint8] if labels is None else [tf.uint8, tf.int64]

    def load(indices):
        outputs = tf.numpy_function(gather, [indices], tout)
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        outputs[0].set_shape(out_shape[:1] + list(images.shape[1:]))
        if labels is not None:
            outputs[1].set_shape(out_shape[:1])
        return tuple(outputs)

    def to_float(x, *rest):
        x = tf.cast(x, tf.float32)
        if resize:
            x = tf.image.resize(x, size, method="bilinear", antialias=True)
            x = tf.clip_by_value(x, 0.0, 255.0)
        x = x * scale + offset
        x.set_shape(out_shape)
        return (x, *rest) if rest else x

    # Sequential gather keeps augmentation reproducible; the float
    # conversion runs in parallel (order is preserved).
    dataset = dataset.map(load)
    dataset = dataset.map(to_float, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)


def load_image_files(files, image_size=None, channels=3, crop_to_aspect_ratio=False):
    """Reads a list of image files into one uint8 array.

    Args:
        files: paths of PNG/JPEG/BMP/WebP files.
        image_size: `(height, width)` to resize to; required when the files
            differ in size.
        channels: 1 (grayscale) or 3 (RGB).
        crop_to_aspect_ratio: centre-crop to the target aspect ratio before
            resizing instead of stretching.

    Returns:
        uint8 array `(len(files), H, W, channels)`.

    Example:

    >>> images = load_image_files(["a.png", "b.jpg"], image_size=(32, 32))
    """
    files = [Path(file) for file in files]
    missing = [str(file) for file in files if not file.is_file()]
    if missing:
        raise FileNotFoundError(f"No such image file(s): {', '.join(missing)}")
    if not files:
        raise ValueError("No image files given.")
    return _stack_images(
        files, _to_size(image_size), channels, crop_to_aspect_ratio
    )
