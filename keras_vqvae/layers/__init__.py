"""Layers: vector quantisers (any modality), 1-D (audio) and 2-D (image)
convolutional blocks."""

from keras_vqvae.layers.conv1d.audio_encoder import AudioEncoder
from keras_vqvae.layers.conv1d.wavenet import WaveNetBlock
from keras_vqvae.layers.conv1d.wavenet import WaveNetDecoder
from keras_vqvae.layers.conv2d.conv2d_transpose import Conv2DTranspose
from keras_vqvae.layers.conv2d.decoder import Decoder
from keras_vqvae.layers.conv2d.encoder import Encoder
from keras_vqvae.layers.conv2d.gated_pixelcnn_block import GatedPixelCNNBlock
from keras_vqvae.layers.conv2d.residual_stack import ResidualStack
from keras_vqvae.layers.quantization.vector_quantizer import VectorQuantizer
from keras_vqvae.layers.quantization.vector_quantizer_ema import (
    VectorQuantizerEMA,
)

__all__ = [
    "AudioEncoder",
    "Conv2DTranspose",
    "Decoder",
    "Encoder",
    "GatedPixelCNNBlock",
    "ResidualStack",
    "VectorQuantizer",
    "VectorQuantizerEMA",
    "WaveNetBlock",
    "WaveNetDecoder",
]
