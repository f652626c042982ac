from keras_vqvae.models.vqvae import VQVAE

__all__ = ["VQVAE"]
