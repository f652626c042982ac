import keras
import numpy as np

from keras_vqvae.layers import Decoder
from keras_vqvae.layers import Encoder
from keras_vqvae.layers.conv2d.decoder import resolve_upsampling_layer
from keras_vqvae.layers.conv2d.decoder import upsampling_layer_name
from keras_vqvae.models.vqvae_base import VQVAEBase
from keras_vqvae.models.vqvae_base import check_positive_int
from keras_vqvae.normalization import DEFAULT_NORMALIZATION
from keras_vqvae.normalization import check_normalization
from keras_vqvae.normalization import denormalize
from keras_vqvae.normalization import normalize


@keras.saving.register_keras_serializable(package="keras_vqvae")
class VQVAE(VQVAEBase):
    """The image VQ-VAE of van den Oord, Vinyals and Kavukcuoglu (2017).

    The paper's strided-convolution `Encoder`, a 1x1 pre-quantisation
    convolution to `embedding_dim` channels, a vector quantiser and the
    paper's `Decoder`; the training logic is `VQVAEBase`'s. `model(images)`
    takes float images in the model's range (uint8 images map to it with
    `preprocess`; by default `x / 255 - 0.5`, i.e. [-0.5, 0.5]) and returns
    reconstructions in that range. Fit on `x` alone (`model.fit(images)`,
    or a `tf.data` pipeline of image batches); the target is the input.

    Args:
        image_shape: tuple `(height, width, channels)` the model is built
            for. Height and width must be multiples of `2 ** num_downsamples`;
            other sizes that are multiples also work at call time.
        num_embeddings: int. Codebook size K.
        embedding_dim: int. Code size D.
        hidden_dim: int. Channels of the encoder and decoder.
        num_residual_layers: int. Residual blocks in encoder and decoder.
        residual_hidden_dim: int. Channels inside a residual block.
        num_downsamples: int. Stride-2 convolutions in the encoder (the
            latent map is `image_shape / 2 ** num_downsamples`).
        normalization: dict with `scale` and `offset`: float images are
            `uint8 * scale + offset`. Saved with the model.
        decoder_upsampling_layer: the decoder's transposed-convolution
            class (see `Decoder`); None for the library's default.
        **kwargs: the quantiser and loss arguments of `VQVAEBase`
            (`quantizer`, `commitment_cost`, `decay`, `epsilon`,
            `kmeans_init`, `dead_code_threshold`, `data_variance`, `seed`)
            and `keras.Model` arguments such as `name` and `dtype`.

    Call arguments:
        inputs: float images `(batch, height, width, channels)` in the
            model's range.
        training: bool. Whether the quantiser updates its codebook
            statistics (EMA, k-means init, restarts).

    Returns:
        Reconstructions of the input's shape, in the model's range.

    Example:

    >>> model = VQVAE(image_shape=(32, 32, 3), num_embeddings=512,
    ...               embedding_dim=64)
    >>> model.compile(optimizer=keras.optimizers.Adam(3e-4))
    >>> model.fit(images, epochs=1)  # images: float32 in [-0.5, 0.5]
    >>> codes = model.encode(uint8_images)  # (N, 8, 8) int32
    >>> images = model.decode_indices(codes)  # (N, 32, 32, 3) uint8
    """

    def __init__(
        self,
        image_shape=(32, 32, 3),
        num_embeddings=512,
        embedding_dim=64,
        hidden_dim=128,
        num_residual_layers=2,
        residual_hidden_dim=32,
        num_downsamples=2,
        normalization=None,
        decoder_upsampling_layer=None,
        **kwargs,
    ):
        super().__init__(
            num_embeddings=num_embeddings, embedding_dim=embedding_dim, **kwargs
        )
        image_shape = tuple(image_shape)
        if len(image_shape) != 3 or not all(
            isinstance(d, (int, np.integer)) and d >= 1 for d in image_shape
        ):
            raise ValueError(
                "`image_shape` must be (height, width, channels). "
                f"Received: image_shape={image_shape}"
            )
        for name, value in (
            ("hidden_dim", hidden_dim),
            ("residual_hidden_dim", residual_hidden_dim),
            ("num_downsamples", num_downsamples),
        ):
            check_positive_int(name, value)
        check_normalization(normalization)
        upsampling_layer = resolve_upsampling_layer(decoder_upsampling_layer)

        # === Layers ===
        self.encoder = Encoder(
            hidden_dim,
            num_residual_layers,
            residual_hidden_dim,
            num_downsamples=num_downsamples,
            dtype=self.dtype_policy,
            name="encoder",
        )
        self.pre_quantization = keras.layers.Conv2D(
            embedding_dim, 1, dtype=self.dtype_policy, name="pre_quantization"
        )
        self.decoder = Decoder(
            hidden_dim,
            num_residual_layers,
            residual_hidden_dim,
            output_channels=image_shape[-1],
            num_upsamples=num_downsamples,
            upsampling_layer=upsampling_layer,
            dtype=self.dtype_policy,
            name="decoder",
        )

        # === Config ===
        self.image_shape = tuple(int(d) for d in image_shape)
        self.hidden_dim = hidden_dim
        self.num_residual_layers = num_residual_layers
        self.residual_hidden_dim = residual_hidden_dim
        self.num_downsamples = num_downsamples
        self.normalization = dict(normalization or DEFAULT_NORMALIZATION)
        self.decoder_upsampling_layer = (
            None if decoder_upsampling_layer is None else upsampling_layer
        )
        self._check_spatial_shape(self.image_shape)
        self.build((None,) + self.image_shape)

    @property
    def signal_shape(self):
        """`(height, width, channels)` of the images."""
        return self.image_shape

    @property
    def raw_range(self):
        """Integer inputs are uint8 pixels."""
        return (0, 255)

    @property
    def model_range(self):
        """The float range that 0..255 maps to (by default [-0.5, 0.5])."""
        ends = normalize(np.array([0.0, 255.0]), self.normalization)
        return (float(ends.min()), float(ends.max()))

    @property
    def latent_shape(self):
        """`(height, width)` of the code map for `image_shape` inputs."""
        factor = 2**self.num_downsamples
        return (self.image_shape[0] // factor, self.image_shape[1] // factor)

    def build(self, input_shape):
        self.encoder.build(input_shape)
        latent = self.encoder.compute_output_shape(input_shape)
        self.pre_quantization.build(latent)
        latent = self.pre_quantization.compute_output_shape(latent)
        self.quantizer.build(latent)
        self.decoder.build(latent)

    def preprocess(self, images):
        """Maps uint8 images to the model's float range.

        Args:
            images: integer array or tensor `(batch, height, width,
                channels)` with values in [0, 255].

        Returns:
            float32 tensor of the same shape.
        """
        return normalize(
            keras.ops.convert_to_tensor(images), self.normalization
        )

    def postprocess(self, images):
        """Maps float images of the model's range to uint8 (numpy)."""
        return denormalize(
            np.asarray(keras.ops.convert_to_numpy(images)), self.normalization
        )

    def decode_indices(self, indices, batch_size=256, as_uint8=True, verbose=0):
        """Decodes code maps to images.

        Args:
            indices: int array `(N, h, w)` with values in `[0, K)`.
            batch_size: int. Code maps per forward pass.
            as_uint8: bool. Return uint8 images (default) or floats in the
                model's range.
            verbose: 0 or 1. 1 shows a progress bar over the batches.

        Returns:
            numpy array `(N, h * 2**num_downsamples, w * 2**num_downsamples,
            C)`.
        """
        images = self.decode_codes(indices, batch_size, verbose)
        return self.postprocess(images) if as_uint8 else images

    def check_inputs(self, images):
        """Raises a clear error unless `images` fit the model's call."""
        shape = tuple(images.shape)
        expected = (
            f"(batch, height, width, {self.image_shape[-1]}), e.g. "
            f"(batch,) + {self.image_shape}"
        )
        if len(shape) != 4 or shape[-1] != self.image_shape[-1]:
            raise ValueError(
                f"VQVAE expects images of shape {expected}. "
                f"Received: shape={shape}"
            )
        dtype = keras.backend.standardize_dtype(images.dtype)
        if not keras.backend.is_float_dtype(dtype):
            raise TypeError(
                f"VQVAE's call expects float images in [-0.5, 0.5] of shape "
                f"{expected}; received dtype {dtype}. Convert uint8 images "
                "with `model.preprocess(images)`, or use `encode` / "
                "`reconstruct`, which accept uint8."
            )
        self._check_spatial_shape(shape[1:3])

    def _check_spatial_shape(self, shape):
        factor = 2**self.num_downsamples
        for size in shape[:2]:
            if size is not None and size % factor:
                raise ValueError(
                    f"Image height and width must be multiples of {factor} "
                    f"(2 ** num_downsamples). Received: {tuple(shape[:2])}"
                )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "image_shape": self.image_shape,
                "hidden_dim": self.hidden_dim,
                "num_residual_layers": self.num_residual_layers,
                "residual_hidden_dim": self.residual_hidden_dim,
                "num_downsamples": self.num_downsamples,
                "normalization": self.normalization,
                "decoder_upsampling_layer": (
                    None
                    if self.decoder_upsampling_layer is None
                    else upsampling_layer_name(self.decoder_upsampling_layer)
                ),
            }
        )
        return config
