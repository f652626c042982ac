"""Reconstruction metrics on uint8 images, in NumPy.

Both functions compare 8-bit images on the 0..1 scale (pixel / 255), so
numbers are comparable across papers that report MSE on [0, 1] images and
PSNR with a peak value of 1 (equivalently 255 on the 0..255 scale).

Dataset-level PSNR (`psnr(a, b)`) is `10 log10(1 / mean MSE)` over all
pixels; the mean of per-image PSNRs (`psnr(a, b, per_image=True).mean()`)
is a different, usually higher, number. Say which one you report.
"""

import numpy as np


def _as_pixels(original, reconstructed):
    original = np.asarray(original)
    reconstructed = np.asarray(reconstructed)
    for name, array in (
        ("original", original),
        ("reconstructed", reconstructed),
    ):
        if not np.issubdtype(array.dtype, np.integer):
            raise ValueError(
                f"`{name}` must hold integer pixels 0..255 (uint8); got dtype "
                f"{array.dtype}. Convert model outputs with "
                "`keras_vqvae.data.denormalize` first."
            )
    if original.shape != reconstructed.shape:
        raise ValueError(
            f"Shapes differ: original {original.shape} vs reconstructed "
            f"{reconstructed.shape}."
        )
    return original.astype(np.float64), reconstructed.astype(np.float64)


def mse01(original, reconstructed, per_image=False):
    """Mean squared error of two uint8 images or batches, on the 0..1 scale.

    Args:
        original: uint8 array, e.g. `(N, H, W, C)`.
        reconstructed: uint8 array of the same shape.
        per_image: bool. If True, return one value per entry of the first
            axis (for a batch: per image); else one value over all pixels.

    Returns:
        float, or float64 array `(N,)` if `per_image`.

    Example:

    >>> a = np.zeros((1, 2, 2, 1), "uint8")
    >>> round(mse01(a, a + 51), 6)  # (51 / 255) ** 2
    0.04
    """
    a, b = _as_pixels(original, reconstructed)
    squared = ((a - b) / 255.0) ** 2
    if per_image:
        return squared.reshape(len(squared), -1).mean(axis=1)
    return float(squared.mean())


def psnr(original, reconstructed, per_image=False):
    """Peak signal-to-noise ratio in dB of two uint8 images or batches.

    `PSNR = 10 log10(1 / mse01)`; identical images give `inf`.

    Args:
        original: uint8 array, e.g. `(N, H, W, C)`.
        reconstructed: uint8 array of the same shape.
        per_image: bool. If True, return one PSNR per entry of the first
            axis; else the PSNR of the MSE over all pixels.

    Returns:
        float, or float64 array `(N,)` if `per_image`.

    Example:

    >>> a = np.zeros((4, 8, 8, 3), "uint8")
    >>> round(psnr(a, a + 1), 4)  # 20 log10(255)
    48.1308
    """
    mse = mse01(original, reconstructed, per_image=per_image)
    with np.errstate(divide="ignore"):
        values = 10.0 * np.log10(1.0 / np.asarray(mse, dtype=np.float64))
    return values if per_image else float(values)
