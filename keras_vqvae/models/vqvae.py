import keras
import numpy as np
from keras import ops

from keras_vqvae.layers.decoder import Decoder
from keras_vqvae.layers.encoder import Encoder
from keras_vqvae.layers.vector_quantizer import VectorQuantizer
from keras_vqvae.layers.vector_quantizer_ema import VectorQuantizerEMA
from keras_vqvae.models.compile_on_load import CompileOnLoadMixin
from keras_vqvae.presets import PresetMixin

QUANTIZERS = ("ema", "vq")
DEFAULT_NORMALIZATION = {"scale": 1.0 / 255.0, "offset": -0.5}


@keras.saving.register_keras_serializable(package="keras_vqvae")
class VQVAE(PresetMixin, CompileOnLoadMixin, keras.Model):
    """VQ-VAE of van den Oord, Vinyals and Kavukcuoglu (2017).

    Encoder, 1x1 pre-quantisation convolution to `embedding_dim` channels,
    vector quantiser and decoder. `model(images)` takes float images in the
    model's range (uint8 images map to it with `preprocess`; by default
    `x / 255 - 0.5`, i.e. [-0.5, 0.5]) and returns reconstructions in that
    range. `fit` minimises

    `mean((x - x_hat)^2) / data_variance + vq_loss`

    and logs `loss`, `reconstruction_loss`, `vq_loss`, `perplexity` and
    `codebook_usage` (fraction of the K codes used by the batch). Fit on
    `x` alone (`model.fit(images)`, or a `tf.data` pipeline of image
    batches); the target is the input.

    Args:
        image_shape: tuple `(height, width, channels)` the model is built
            for. Height and width must be multiples of `2 ** num_downsamples`;
            other sizes that are multiples also work at call time.
        num_embeddings: int. Codebook size K.
        embedding_dim: int. Code size D.
        num_hiddens: int. Channels of the encoder and decoder.
        num_residual_layers: int. Residual blocks in encoder and decoder.
        num_residual_hiddens: int. Channels inside a residual block.
        num_downsamples: int. Stride-2 convolutions in the encoder (the
            latent map is `image_shape / 2 ** num_downsamples`).
        quantizer: `"ema"` for `VectorQuantizerEMA` (the appendix variant)
            or `"vq"` for `VectorQuantizer` (codebook loss).
        commitment_cost: float. Beta of the commitment loss (0.25).
        decay: float. EMA decay of the `"ema"` quantizer.
        epsilon: float. Laplace smoothing of the `"ema"` quantizer.
        kmeans_init: bool. Initialise the codebook by k-means on the first
            training batch.
        dead_code_threshold: float. Restart codes used less than this many
            times per batch (moving average); 0 disables restarts.
        data_variance: float. The reconstruction loss is divided by it, as
            in the reference implementation (the variance of the normalised
            training pixels); 1.0 gives the plain mean squared error.
        normalization: dict with `scale` and `offset`: float images are
            `uint8 * scale + offset`.
        seed: int or None. Seed of the quantiser's random choices.
        **kwargs: `keras.Model` keyword arguments such as `name`.

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
        num_hiddens=128,
        num_residual_layers=2,
        num_residual_hiddens=32,
        num_downsamples=2,
        quantizer="ema",
        commitment_cost=0.25,
        decay=0.99,
        epsilon=1e-5,
        kmeans_init=False,
        dead_code_threshold=0.0,
        data_variance=1.0,
        normalization=None,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if quantizer not in QUANTIZERS:
            raise ValueError(
                f"`quantizer` must be one of {QUANTIZERS}; received "
                f"{quantizer!r}."
            )
        self.image_shape = tuple(int(d) for d in image_shape)
        if len(self.image_shape) != 3:
            raise ValueError(
                "`image_shape` must be (height, width, channels); received "
                f"{image_shape}."
            )
        self.num_embeddings = num_embeddings
        self.embedding_dim = embedding_dim
        self.num_hiddens = num_hiddens
        self.num_residual_layers = num_residual_layers
        self.num_residual_hiddens = num_residual_hiddens
        self.num_downsamples = num_downsamples
        self.quantizer_type = quantizer
        self.commitment_cost = commitment_cost
        self.decay = decay
        self.epsilon = epsilon
        self.kmeans_init = kmeans_init
        self.dead_code_threshold = dead_code_threshold
        self.data_variance = float(data_variance)
        self.normalization = dict(normalization or DEFAULT_NORMALIZATION)
        self.seed = seed
        self._check_spatial_shape(self.image_shape)

        self.encoder = Encoder(
            num_hiddens,
            num_residual_layers,
            num_residual_hiddens,
            num_downsamples=num_downsamples,
            name="encoder",
        )
        self.pre_quantization = keras.layers.Conv2D(
            embedding_dim, 1, name="pre_quantization"
        )
        quantizer_kwargs = dict(
            commitment_cost=commitment_cost,
            kmeans_init=kmeans_init,
            dead_code_threshold=dead_code_threshold,
            seed=seed,
            name="quantizer",
        )
        if quantizer == "ema":
            self.quantizer = VectorQuantizerEMA(
                num_embeddings,
                embedding_dim,
                decay=decay,
                epsilon=epsilon,
                **quantizer_kwargs,
            )
        else:
            self.quantizer = VectorQuantizer(
                num_embeddings, embedding_dim, **quantizer_kwargs
            )
        self.decoder = Decoder(
            num_hiddens,
            num_residual_layers,
            num_residual_hiddens,
            output_channels=self.image_shape[-1],
            num_upsamples=num_downsamples,
            name="decoder",
        )
        self.reconstruction_loss_tracker = keras.metrics.Mean(
            name="reconstruction_loss"
        )
        self.vq_loss_tracker = keras.metrics.Mean(name="vq_loss")
        self.perplexity_tracker = keras.metrics.Mean(name="perplexity")
        self.codebook_usage_tracker = keras.metrics.Mean(name="codebook_usage")
        self.build((None,) + self.image_shape)

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

    def call(self, inputs, training=None):
        self._check_images(inputs)
        z = self.pre_quantization(self.encoder(inputs))
        quantized = self.quantizer(z, training=training)
        return self.decoder(quantized)

    def compute_loss(
        self, x=None, y=None, y_pred=None, sample_weight=None, training=True
    ):
        target = x if y is None else y
        error = ops.cast(target, "float32") - ops.cast(y_pred, "float32")
        reconstruction_loss = ops.mean(ops.square(error)) / self.data_variance
        # Python's sum: `ops.sum` of the list breaks tracing under JAX.
        vq_loss = sum(self.losses) if self.losses else 0.0
        self.reconstruction_loss_tracker.update_state(reconstruction_loss)
        self.vq_loss_tracker.update_state(vq_loss)
        self.perplexity_tracker.update_state(self.quantizer.batch_perplexity)
        self.codebook_usage_tracker.update_state(
            self.quantizer.batch_codebook_usage
        )
        return reconstruction_loss + vq_loss

    def compile(self, optimizer="auto", **kwargs):
        """Configures training; `"auto"` is Adam with learning rate 3e-4.

        Args:
            optimizer: optimizer instance or name; `"auto"` uses
                `keras.optimizers.Adam(3e-4)`, the reference setting.
            **kwargs: other `keras.Model.compile` arguments. A `loss` is not
                needed: the model computes its own.
        """
        if optimizer == "auto":
            optimizer = keras.optimizers.Adam(learning_rate=3e-4)
        super().compile(optimizer=optimizer, **kwargs)

    def preprocess(self, images):
        """Maps uint8 images to the model's float range.

        Args:
            images: integer array or tensor `(batch, height, width,
                channels)` with values in [0, 255].

        Returns:
            float32 tensor of the same shape.
        """
        return (
            ops.cast(images, "float32") * self.normalization["scale"]
            + self.normalization["offset"]
        )

    def postprocess(self, images):
        """Maps float images of the model's range back to uint8 (numpy)."""
        pixels = (
            np.asarray(ops.convert_to_numpy(images), "float32")
            - self.normalization["offset"]
        ) / self.normalization["scale"]
        return np.clip(np.round(pixels), 0, 255).astype("uint8")

    def encode(self, images, batch_size=256):
        """Encodes images to code indices.

        Args:
            images: uint8 images `(N, H, W, C)`, or float images already in
                the model's range.
            batch_size: int. Images per forward pass.

        Returns:
            int32 numpy array `(N, H / 2**num_downsamples,
            W / 2**num_downsamples)`.
        """
        return self._map_batches(self._encode_batch, images, batch_size)

    def decode_indices(self, indices, batch_size=256, as_uint8=True):
        """Decodes code indices to images.

        Args:
            indices: int array `(N, h, w)` with values in `[0, K)`.
            batch_size: int. Code maps per forward pass.
            as_uint8: bool. Return uint8 images (default) or floats in the
                model's range.

        Returns:
            numpy array `(N, h * 2**num_downsamples, w * 2**num_downsamples,
            C)`.
        """
        indices = np.asarray(indices)
        if indices.ndim != 3:
            raise ValueError(
                "`decode_indices` expects code maps of shape (batch, height, "
                f"width) = (N, {self.latent_shape[0]}, "
                f"{self.latent_shape[1]}); received shape {indices.shape}."
            )
        if indices.size and (
            indices.min() < 0 or indices.max() >= self.num_embeddings
        ):
            raise ValueError(
                f"Code indices must lie in [0, {self.num_embeddings}); "
                f"received values in [{indices.min()}, {indices.max()}]."
            )
        images = self._map_batches(self._decode_batch, indices, batch_size)
        return self.postprocess(images) if as_uint8 else images

    def reconstruct(self, images, batch_size=256):
        """Encodes and decodes images.

        Args:
            images: uint8 images `(N, H, W, C)` (returns uint8), or float
                images in the model's range (returns floats).
            batch_size: int. Images per forward pass.

        Returns:
            numpy array of the input's shape.
        """
        is_uint8 = _is_integer(images)
        outputs = self._map_batches(
            lambda x: self.decoder(
                self.quantizer.lookup(self._encode_batch(x))
            ),
            images,
            batch_size,
        )
        return self.postprocess(outputs) if is_uint8 else outputs

    def _encode_batch(self, images):
        if _is_integer(images):
            images = self.preprocess(images)
        self._check_images(images)
        return self.quantizer.get_indices(
            self.pre_quantization(self.encoder(images))
        )

    def _decode_batch(self, indices):
        return self.decoder(self.quantizer.lookup(indices))

    def _map_batches(self, fn, array, batch_size):
        array = np.asarray(array)
        outputs = [
            ops.convert_to_numpy(fn(ops.convert_to_tensor(array[i:i + batch_size])))
            for i in range(0, len(array), batch_size)
        ]
        return np.concatenate(outputs) if outputs else np.zeros((0,))

    def _check_images(self, images):
        shape = tuple(images.shape)
        expected = (
            f"(batch, height, width, {self.image_shape[-1]}), e.g. "
            f"(batch,) + {self.image_shape}"
        )
        if len(shape) != 4 or shape[-1] != self.image_shape[-1]:
            raise ValueError(
                f"VQVAE expects images of shape {expected}; received shape "
                f"{shape}."
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
                    f"(2 ** num_downsamples); received {tuple(shape[:2])}."
                )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "image_shape": self.image_shape,
                "num_embeddings": self.num_embeddings,
                "embedding_dim": self.embedding_dim,
                "num_hiddens": self.num_hiddens,
                "num_residual_layers": self.num_residual_layers,
                "num_residual_hiddens": self.num_residual_hiddens,
                "num_downsamples": self.num_downsamples,
                "quantizer": self.quantizer_type,
                "commitment_cost": self.commitment_cost,
                "decay": self.decay,
                "epsilon": self.epsilon,
                "kmeans_init": self.kmeans_init,
                "dead_code_threshold": self.dead_code_threshold,
                "data_variance": self.data_variance,
                "normalization": self.normalization,
                "seed": self.seed,
            }
        )
        return config


def _is_integer(array):
    dtype = keras.backend.standardize_dtype(array.dtype)
    return "int" in dtype
