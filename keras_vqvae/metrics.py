"""Metrics as pure NumPy functions: arrays in, numbers out.

Reconstruction: `mse01` and `psnr` compare 8-bit images on the 0..1 scale (pixel / 255), so
numbers are comparable across papers that report MSE on [0, 1] images and
PSNR with a peak value of 1 (equivalently 255 on the 0..255 scale).

Dataset-level PSNR (`psnr(a, b)`) is `10 log10(1 / mean MSE)` over all
pixels; the mean of per-image PSNRs (`psnr(a, b, per_image=True).mean()`)
is a different, usually higher, number. Say which one you report.

Codes: `code_statistics` (perplexity and usage over a whole set of codes).
Likelihood: `discretized_gaussian_nll` and `bits_per_dim` (the paper's
bound for a VQ-VAE with a prior, in bits per pixel dimension).
"""

import math

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
                "`keras_vqvae.normalization.denormalize` first."
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


def code_statistics(codes, num_embeddings):
    """Perplexity and fraction of codes used, over all positions of `codes`."""
    counts = np.bincount(np.ravel(codes), minlength=num_embeddings)
    probabilities = counts / max(counts.sum(), 1)
    nonzero = probabilities[probabilities > 0]
    return {
        "perplexity": float(np.exp(-(nonzero * np.log(nonzero)).sum())),
        "codebook_usage": float((counts > 0).mean()),
        "codes_used": int((counts > 0).sum()),
    }


def _erfc(x):
    """Complementary error function, relative error < 1.2e-7 (Numerical
    Recipes' Chebyshev fit); numpy has none and scipy is not a dependency."""
    z = np.abs(x)
    t = 1.0 / (1.0 + 0.5 * z)
    poly = (
        -z * z
        - 1.26551223
        + t
        * (
            1.00002368
            + t
            * (
                0.37409196
                + t
                * (
                    0.09678418
                    + t
                    * (
                        -0.18628806
                        + t
                        * (
                            0.27886807
                            + t
                            * (
                                -1.13520398
                                + t
                                * (
                                    1.48851587
                                    + t * (-0.82215223 + t * 0.17087277)
                                )
                            )
                        )
                    )
                )
            )
        )
    )
    result = t * np.exp(poly)
    return np.where(x >= 0, result, 2.0 - result)


def _upper_tail(x):
    """P(X > x) for a standard normal X, accurate in the far tails."""
    return 0.5 * _erfc(x / math.sqrt(2.0))


def discretized_gaussian_nll(images, means, scale, normalization):
    """Negative log-likelihood (nats per image) of uint8 `images` under a
    Gaussian of mean `means` (model range) and std `scale`, discretised to
    the 256 pixel values (the end bins extend to infinity)."""
    pixel = normalization["scale"]
    centers = images.astype("float64") * pixel + normalization["offset"]
    lower = np.where(
        images == 0, -np.inf, (centers - 0.5 * pixel - means) / scale
    )
    upper = np.where(
        images == 255, np.inf, (centers + 0.5 * pixel - means) / scale
    )
    # Subtract the two tail masses on the side where they are small.
    probability = np.where(
        lower >= 0,
        _upper_tail(lower) - _upper_tail(upper),
        np.where(
            upper <= 0,
            _upper_tail(-upper) - _upper_tail(-lower),
            1.0 - _upper_tail(-lower) - _upper_tail(upper),
        ),
    )
    log_probability = np.log(np.maximum(probability, 1e-300))
    return -log_probability.reshape(len(images), -1).sum(axis=1)


def fit_discretized_gaussian_scale(images, means, normalization, steps=40):
    """The maximum-likelihood scale of `discretized_gaussian_nll`.

    A golden-section search over `log(scale)`, between 1/1000 of a pixel
    step and the whole range; the negative log-likelihood of a discretised
    Gaussian is unimodal in the scale. (The RMS error is the ML scale of a
    continuous Gaussian only: discretisation makes the best scale larger.)

    Args:
        images: uint8 array, the targets (fit on training data, so that the
            bound on test data is a real bound).
        means: float array of the same shape, the reconstructions in the
            model's range.
        normalization: dict with `"scale"` and `"offset"`.
        steps: search iterations (40 gives about 8 significant digits).

    Returns:
        float, the scale in model units.
    """

    def nll(log_scale):
        return float(
            np.mean(
                discretized_gaussian_nll(
                    images, means, math.exp(log_scale), normalization
                )
            )
        )

    pixel = float(normalization["scale"])
    low, high = math.log(pixel / 1000.0), math.log(pixel * 256.0)
    ratio = (math.sqrt(5.0) - 1.0) / 2.0
    a, b = high - ratio * (high - low), low + ratio * (high - low)
    fa, fb = nll(a), nll(b)
    for _ in range(steps):
        if fa < fb:
            high, b, fb = b, a, fa
            a = high - ratio * (high - low)
            fa = nll(a)
        else:
            low, a, fa = a, b, fb
            b = low + ratio * (high - low)
            fb = nll(b)
    return math.exp((low + high) / 2.0)


def bits_per_dim(decoder_nll, prior_nll, dims):
    """The VQ-VAE bound `-log p(x) <= -log p(x | z) - log p(z)` per dim.

    Args:
        decoder_nll: float array `(N,)`: the decoder's NLL of each example
            given its codes, in nats.
        prior_nll: float array `(N,)`: the prior's NLL of each example's
            codes, in nats.
        dims: int. Dimensions per example (pixels x channels).

    Returns:
        dict with `bits_per_dim` (the bound), `decoder_bits_per_dim` and
        `prior_bits_per_dim`, means over the examples.
    """
    scale = dims * math.log(2.0)
    return {
        "bits_per_dim": float(np.mean(decoder_nll + prior_nll) / scale),
        "decoder_bits_per_dim": float(np.mean(decoder_nll) / scale),
        "prior_bits_per_dim": float(np.mean(prior_nll) / scale),
    }
