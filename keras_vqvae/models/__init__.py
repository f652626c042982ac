"""Models: the VQ-VAE base, the image and speech VQ-VAEs, the PixelCNN
prior and the action-conditional next-frame prior.

Each model's bundled presets are described in a `*_presets.py` beside it.
"""

from keras_vqvae.models.action_conditional_prior import ActionConditionalPrior
from keras_vqvae.models.base import Model
from keras_vqvae.models.pixelcnn_prior import PixelCNNPrior
from keras_vqvae.models.pixelcnn_prior_presets import PIXELCNN_PRIOR_PRESETS
from keras_vqvae.models.speech_vqvae import SpeechVQVAE
from keras_vqvae.models.vqvae import VQVAE
from keras_vqvae.models.vqvae_base import VQVAEBase
from keras_vqvae.models.vqvae_presets import VQVAE_PRESETS

__all__ = [
    "ActionConditionalPrior",
    "Model",
    "PIXELCNN_PRIOR_PRESETS",
    "PixelCNNPrior",
    "SpeechVQVAE",
    "VQVAE",
    "VQVAEBase",
    "VQVAE_PRESETS",
]
