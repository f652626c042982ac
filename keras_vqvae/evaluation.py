"""Test-set metrics of a VQ-VAE: MSE, PSNR, codebook perplexity and usage."""

import math

import numpy as np

from keras_vqvae.image_metrics import mse01
from keras_vqvae.image_metrics import psnr


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


def evaluate_reconstructions(model, images, batch_size=256):
    """Reconstruction metrics of `model` on uint8 `images`.

    Args:
        model: a `VQVAE`.
        images: uint8 array `(N, H, W, C)`.
        batch_size: images per forward pass.

    Returns:
        dict with `mse` (mean squared error on the 0..1 scale over all
        pixels), `psnr_db` (from that MSE, i.e. the data set's PSNR, not a
        mean of per-image PSNRs), `mean_image_psnr_db`, and the codebook
        `perplexity`, `codebook_usage` and `codes_used` over the whole set.
    """
    codes = model.encode(images, batch_size=batch_size)
    reconstructions = model.decode_indices(codes, batch_size=batch_size)
    return {
        "mse": float(mse01(images, reconstructions)),
        "psnr_db": float(psnr(images, reconstructions)),
        "mean_image_psnr_db": float(
            np.mean(psnr(images, reconstructions, per_image=True))
        ),
        **code_statistics(codes, model.num_embeddings),
    }


def evaluate_preset(
    preset,
    data_spec,
    split="test",
    limit=None,
    grid_path=None,
    grid_images=32,
    batch_size=256,
    bits_per_dim=False,
):
    """Loads a preset, measures it on a data split, optionally draws a grid.

    Args:
        preset: bundled name, folder or `hf://owner/repo`.
        data_spec: data source for `keras_vqvae.data.load_dataset`.
        split: data split to evaluate.
        limit: evaluate on at most this many images.
        grid_path: if set, write a PNG of originals (odd rows) above their
            reconstructions (even rows) for `grid_images` evenly spaced
            images.
        grid_images: number of images in the grid.
        batch_size: images per forward pass.
        bits_per_dim: also compute bits/dim with the preset's PixelCNN prior.

    Returns:
        dict of metrics (see `evaluate_reconstructions`) plus `images`.
    """
    from keras_vqvae import data
    from keras_vqvae.models import VQVAE
    from keras_vqvae.visualization import reconstruction_rows
    from keras_vqvae.visualization import save_image_grid

    model = VQVAE.from_preset(preset)
    images, _ = data.load_dataset(
        data_spec,
        split,
        image_size=model.image_shape[:2],
        channels=model.image_shape[2],
        limit=limit,
    )
    metrics = evaluate_reconstructions(model, images, batch_size=batch_size)
    metrics["images"] = int(len(images))
    if grid_path:
        # Evenly spaced: test splits are often grouped by class.
        shown = images[np.linspace(0, len(images) - 1, grid_images).astype(int)]
        per_row = min(8, len(shown))
        rows = reconstruction_rows(shown, model.reconstruct(shown), per_row)
        save_image_grid(grid_path, rows, scale=max(1, 64 // model.image_shape[0]))
    if bits_per_dim:
        from keras_vqvae.models import PixelCNNPrior

        prior = PixelCNNPrior.from_preset(preset)
        metrics.update(
            bits_per_dim_of(model, prior, images, batch_size=batch_size)
        )
    return metrics


def _erfc(x):
    """Complementary error function, relative error < 1.2e-7 (Numerical
    Recipes' Chebyshev fit); numpy has none and scipy is not a dependency."""
    z = np.abs(x)
    t = 1.0 / (1.0 + 0.5 * z)
    poly = -z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (
        0.09678418 + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398
        + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))))
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
    lower = np.where(images == 0, -np.inf, (centers - 0.5 * pixel - means) / scale)
    upper = np.where(images == 255, np.inf, (centers + 0.5 * pixel - means) / scale)
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


def bits_per_dim_of(model, prior, images, labels=None, batch_size=256):
    """The VQ-VAE's bits/dim on uint8 `images`, as in the paper.

    `-log p(x) <= -log p(x | z_q) - log p(z)`: the decoder's discretised
    Gaussian likelihood of the pixels given the codes plus the prior's
    negative log-likelihood of the codes, in bits per pixel dimension
    (H * W * C). The decoder's Gaussian has one standard deviation, the
    root-mean-square reconstruction error on these images (its maximum-
    likelihood value).

    Returns:
        dict with `bits_per_dim` (the bound), `decoder_bits_per_dim`,
        `prior_bits_per_dim` (both per pixel dimension),
        `prior_bits_per_code` and `decoder_scale`.
    """
    codes = model.encode(images, batch_size=batch_size)
    means = model.decode_indices(codes, batch_size=batch_size, as_uint8=False)
    means = means.astype("float64")
    targets = model.preprocess(images)
    scale = float(np.sqrt(np.mean((np.asarray(targets) - means) ** 2)))
    decoder_nll = discretized_gaussian_nll(
        images, means, scale, model.normalization
    )
    prior_nll = -prior.log_prob(codes, labels=labels, batch_size=batch_size)
    dims = np.prod(images.shape[1:]) * math.log(2.0)
    return {
        "bits_per_dim": float(np.mean(decoder_nll + prior_nll) / dims),
        "decoder_bits_per_dim": float(np.mean(decoder_nll) / dims),
        "prior_bits_per_dim": float(np.mean(prior_nll) / dims),
        "prior_bits_per_code": float(
            np.mean(prior_nll) / (codes[0].size * math.log(2.0))
        ),
        "decoder_scale": scale,
    }
