"""Checks and conversions of in-memory image and label arrays.

Images are uint8 arrays `(N, H, W, C)` with `C` in (1, 3) and values
0..255; labels are int64 arrays `(N,)`, -1 meaning unlabelled.
"""

import numpy as np

from keras_vqvae.errors import DataError


def check_images(images, source="images"):
    """Returns `images` as uint8 `(N, H, W, C)`, or raises a clear error.

    Args:
        images: integer array `(N, H, W)`, `(N, H, W, 1)` or `(N, H, W, 3)`
            with values 0..255. A grayscale batch without channel axis gets
            one.
        source: str. Where the images come from, for error messages.

    Returns:
        uint8 array `(N, H, W, C)`.
    """
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise DataError(
            f"Expected images of shape (N, H, W), (N, H, W, 1) or (N, H, W, 3) "
            f"in {source}. Received shape: {images.shape}"
        )
    if images.dtype == np.uint8:
        return images
    if not np.issubdtype(images.dtype, np.integer):
        raise DataError(
            f"Expected uint8 images (0..255) in {source}. Received dtype "
            f"{images.dtype}. Convert float images with `denormalize` or "
            "`np.clip(np.rint(x * 255), 0, 255).astype('uint8')` first."
        )
    if images.size and (images.min() < 0 or images.max() > 255):
        raise DataError(
            f"Integer images in {source} must lie in 0..255. Received range "
            f"{images.min()}..{images.max()}."
        )
    return images.astype(np.uint8)


def check_labels(labels, num_images, source="labels"):
    """Returns `labels` as int64 `(num_images,)`, or raises a clear error.

    Args:
        labels: integer array with one label per image, or None (then every
            label is -1).
        num_images: int. The number of images the labels belong to.
        source: str. Where the labels come from, for error messages.

    Returns:
        int64 array `(num_images,)`.
    """
    if labels is None:
        return np.full((num_images,), -1, dtype=np.int64)
    labels = np.asarray(labels).reshape(-1)
    if not np.issubdtype(labels.dtype, np.integer):
        raise DataError(
            f"Expected integer labels in {source}; got {labels.dtype}."
        )
    if len(labels) != num_images:
        raise DataError(
            f"{source}: {len(labels)} labels for {num_images} images."
        )
    return labels.astype(np.int64)


def check_channels(channels):
    """Raises a `ValueError` unless `channels` is 1 or 3."""
    if channels not in (1, 3):
        raise DataError(
            f"`channels` must be 1 or 3. Received: channels={channels!r}"
        )


def to_size(image_size):
    """Returns `image_size` (None, int or `(height, width)`) as a tuple."""
    if image_size is None:
        return None
    if isinstance(image_size, int):
        return (image_size, image_size)
    height, width = (int(v) for v in image_size)
    return (height, width)


def apply_value_range(images, value_range):
    """Rescales stored values from `value_range` to pixels 0..255.

    Args:
        images: uint8 array of stored values.
        value_range: None (the values already are pixels 0..255: nothing is
            rescaled) or `(low, high)`, mapped linearly to 0..255, e.g.
            `(0, 16)` for scikit-learn's digits.

    Returns:
        uint8 array of the same shape.

    Example:

    >>> apply_value_range(np.array([0, 8, 16], "uint8"), (0, 16))
    array([  0, 128, 255], dtype=uint8)
    """
    if value_range is None:
        return images
    low, high = (float(v) for v in value_range)
    if high <= low:
        raise DataError(
            "`value_range` must be (low, high) with low < high. "
            f"Received: value_range={value_range!r}"
        )
    if (low, high) == (0.0, 255.0):
        return images
    x = (images.astype(np.float32) - low) * (255.0 / (high - low))
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


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

    images = check_images(images)
    height, width = to_size(image_size)
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
    images = check_images(images)
    check_channels(channels)
    if images.shape[-1] == channels:
        return images
    if channels == 3:
        return np.repeat(images, 3, axis=-1)
    luma = images.astype(np.float32) @ np.array(
        [0.299, 0.587, 0.114], np.float32
    )
    return np.clip(np.rint(luma), 0, 255).astype(np.uint8)[..., None]


def concatenation_offsets(lengths):
    """int64 `(N + 1,)` start positions of `N` concatenated pieces of the
    given lengths: piece `i` is `concatenated[offsets[i]:offsets[i + 1]]`."""
    return np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
