from keras_vqvae.layers.conv2d_transpose import Conv2DTranspose
from keras_vqvae.layers.decoder import Decoder
from keras_vqvae.layers.encoder import Encoder
from keras_vqvae.layers.gated_pixelcnn_block import GatedPixelCNNBlock
from keras_vqvae.layers.residual_stack import ResidualStack
from keras_vqvae.layers.vector_quantizer import VectorQuantizer
from keras_vqvae.layers.vector_quantizer_ema import VectorQuantizerEMA

__all__ = [
    "Conv2DTranspose",
    "Decoder",
    "Encoder",
    "GatedPixelCNNBlock",
    "ResidualStack",
    "VectorQuantizer",
    "VectorQuantizerEMA",
]
