"""keras-vqvae: VQ-VAE (van den Oord et al. 2017) for Keras 3."""

from keras_vqvae import layers
from keras_vqvae import models
from keras_vqvae.version import __version__

__all__ = ["layers", "models", "__version__"]
