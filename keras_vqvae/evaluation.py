"""Test-set metrics of a VQ-VAE: MSE, PSNR, codebook perplexity and usage."""

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
