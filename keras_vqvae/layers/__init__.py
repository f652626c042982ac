"""Layers: vector quantisers (any modality) and 2-D convolutional blocks."""

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
    "Conv2DTranspose",
    "Decoder",
    "Encoder",
    "GatedPixelCNNBlock",
    "ResidualStack",
    "VectorQuantizer",
    "VectorQuantizerEMA",
]
