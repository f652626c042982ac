from keras_vqvae.models.pixelcnn_prior import PixelCNNPrior
from keras_vqvae.models.vqvae import VQVAE

__all__ = ["PixelCNNPrior", "VQVAE"]
