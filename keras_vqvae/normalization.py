"""Pixel normalisation: uint8 pixels <-> the float range the models use.

A normalisation is a dict `{"scale": s, "offset": o}`: a float image is
`pixel * s + o`. The image model stores its own (`VQVAE.normalization`,
saved in its config and preset), and the data pipeline takes the model's,
so training and evaluation always use one scale.
"""

import math

import keras
import numpy as np

DEFAULT_NORMALIZATION = {"scale": 1.0 / 255.0, "offset": -0.5}
"""`x = pixel / 255 - 0.5`: 0..255 maps to [-0.5, 0.5]."""


def check_normalization(normalization):
    """Returns `(scale, offset)` of a normalisation dict, or raises.

    Args:
        normalization: dict with float `"scale"` (> 0) and `"offset"`, or
            None for `DEFAULT_NORMALIZATION`.

    Returns:
        Tuple of floats `(scale, offset)`.
    """
    if normalization is None:
        normalization = DEFAULT_NORMALIZATION
    try:
        scale = float(normalization["scale"])
        offset = float(normalization["offset"])
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(
            "`normalization` must be a dict with float keys 'scale' and "
            f"'offset', such as {DEFAULT_NORMALIZATION}. "
            f"Received: normalization={normalization!r}"
        ) from e
    if not (scale > 0 and math.isfinite(scale) and math.isfinite(offset)):
        raise ValueError(
            "Normalization 'scale' must be a finite number > 0 and 'offset' "
            f"finite. Received: normalization={normalization!r}"
        )
    return scale, offset


def _is_numpy_like(x):
    return isinstance(x, (np.ndarray, np.generic, list, tuple, int, float))


def normalize(images, normalization=None):
    """Maps uint8 pixels (0..255) to the models' float32 range.

    Computes `images * scale + offset`, by default `images / 255 - 0.5`.

    Args:
        images: array of pixel values 0..255: a NumPy array, or a backend
            tensor (then `keras.ops` is used).
        normalization: dict with `"scale"` and `"offset"`. Defaults to
            `DEFAULT_NORMALIZATION`.

    Returns:
        float32 array (NumPy in, NumPy out; tensor in, tensor out).

    Example:

    >>> normalize(np.array([0, 255], dtype="uint8"))
    array([-0.5,  0.5], dtype=float32)
    """
    scale, offset = check_normalization(normalization)
    if _is_numpy_like(images):
        x = np.asarray(images, dtype=np.float32)
        return x * np.float32(scale) + np.float32(offset)
    x = keras.ops.cast(images, "float32")
    return x * scale + offset


def denormalize(images, normalization=None):
    """Maps float images of the models' range back to uint8 pixels.

    Inverts `normalize`: `(images - offset) / scale`, rounded to the nearest
    integer and clipped to 0..255, so `denormalize(normalize(x)) == x` for
    every uint8 `x`. NaNs become 0. The arithmetic is float32 for NumPy
    arrays and tensors alike, so both give the same pixels.

    Args:
        images: float array in the model range: a NumPy array, or a backend
            tensor (then `keras.ops` is used).
        normalization: dict with `"scale"` and `"offset"`. Defaults to
            `DEFAULT_NORMALIZATION`.

    Returns:
        uint8 array (NumPy in, NumPy out; tensor in, tensor out).

    Example:

    >>> denormalize(np.array([-0.5, 0.0, 0.5, 0.7]))  # 0.0 is 127.5
    array([  0, 127, 255, 255], dtype=uint8)
    """
    scale, offset = check_normalization(normalization)
    if _is_numpy_like(images):
        x = (np.asarray(images, dtype=np.float32) - offset) / scale
        x = np.clip(np.rint(np.nan_to_num(x, nan=0.0)), 0, 255)
        return x.astype(np.uint8)
    ops = keras.ops
    x = (ops.cast(images, "float32") - offset) / scale
    x = ops.where(ops.isnan(x), ops.zeros_like(x), x)
    return ops.cast(ops.clip(ops.round(x), 0, 255), "uint8")
