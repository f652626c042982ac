"""The training logic and code API shared by every VQ-VAE model."""

import keras
import numpy as np
from keras import ops

from keras_vqvae.errors import DataError
from keras_vqvae.layers import VectorQuantizer
from keras_vqvae.layers import VectorQuantizerEMA
from keras_vqvae.models.base import Model
from keras_vqvae.models.sampling import compile_loop

QUANTIZERS = ("ema", "vq")


class EpochCodebookUsage(keras.metrics.Metric):
    """Fraction of the K codes used at least once since the last reset.

    `fit` and `evaluate` reset metrics at the start of every epoch (and of
    every evaluation), so this is the usage over the whole epoch, beside
    the per-batch `codebook_usage`. Per-batch figures are often misread as
    usage: a codebook can use all its codes over an epoch while each batch
    touches only some.

    Args:
        num_embeddings: int. Codebook size K.
        **kwargs: `keras.metrics.Metric` arguments such as `name`.
    """

    def __init__(self, num_embeddings, name="epoch_codebook_usage", **kwargs):
        super().__init__(name=name, **kwargs)
        self.num_embeddings = num_embeddings
        self.counts = self.add_variable(
            shape=(num_embeddings,), initializer="zeros", name="counts"
        )

    def update_state(self, counts):
        self.counts.assign(self.counts + ops.cast(counts, "float32"))

    def result(self):
        return ops.mean(ops.cast(self.counts > 0, "float32"))

    def get_config(self):
        return {**super().get_config(), "num_embeddings": self.num_embeddings}


class VQVAEBase(Model):
    """Encoder, pre-quantisation projection, vector quantiser and decoder.

    The modality-free part of a VQ-VAE: the quantiser, the loss, the
    metric trackers and the `encode` / `decode` API. A subclass creates
    `self.encoder`, `self.pre_quantization` (to `embedding_dim` channels)
    and `self.decoder` for its kind of signal, and defines `latent_shape`,
    `preprocess` / `postprocess` (its raw inputs, e.g. uint8 pixels, to and
    from the model's float range) and `check_inputs`.

    `fit` minimises `mean((x - x_hat)^2) / data_variance + vq_loss` and
    logs `loss`, `reconstruction_loss`, `vq_loss`, `perplexity`,
    `codebook_usage` (the fraction of the K codes used by the batch) and
    `epoch_codebook_usage` (used at least once so far in the epoch). The
    training logic is `compute_loss` plus `keras.metrics.Mean` trackers,
    Keras 3's way of writing a custom train step once for all backends.

    Args:
        num_embeddings: int. Codebook size K.
        embedding_dim: int. Code size D.
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
            training data); 1.0 gives the plain mean squared error.
        seed: int or None. Seed of the quantiser's random choices.
        **kwargs: `keras.Model` keyword arguments such as `name` and
            `dtype`.
    """

    def __init__(
        self,
        num_embeddings=512,
        embedding_dim=64,
        quantizer="ema",
        commitment_cost=0.25,
        decay=0.99,
        epsilon=1e-5,
        kmeans_init=False,
        dead_code_threshold=0.0,
        data_variance=1.0,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_positive_int("num_embeddings", num_embeddings)
        check_positive_int("embedding_dim", embedding_dim)
        if not (np.isfinite(data_variance) and data_variance > 0):
            raise ValueError(
                "`data_variance` must be a finite number > 0 (the variance "
                "of the normalised training data). "
                f"Received: data_variance={data_variance!r}"
            )
        if quantizer not in QUANTIZERS:
            raise ValueError(
                f"`quantizer` must be one of {QUANTIZERS}. "
                f"Received: quantizer={quantizer!r}"
            )
        # === Layers ===
        quantizer_kwargs = dict(
            commitment_cost=commitment_cost,
            kmeans_init=kmeans_init,
            dead_code_threshold=dead_code_threshold,
            seed=seed,
            dtype=self.dtype_policy,
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
        self.reconstruction_loss_tracker = keras.metrics.Mean(
            name="reconstruction_loss"
        )
        self.vq_loss_tracker = keras.metrics.Mean(name="vq_loss")
        self.perplexity_tracker = keras.metrics.Mean(name="perplexity")
        self.codebook_usage_tracker = keras.metrics.Mean(name="codebook_usage")
        self.epoch_codebook_usage_tracker = EpochCodebookUsage(num_embeddings)

        # === Config ===
        self.num_embeddings = num_embeddings
        self.embedding_dim = embedding_dim
        self.quantizer_type = quantizer
        self.commitment_cost = commitment_cost
        self.decay = decay
        self.epsilon = epsilon
        self.kmeans_init = kmeans_init
        self.dead_code_threshold = dead_code_threshold
        self.data_variance = float(data_variance)
        self.seed = seed

    def call(self, inputs, training=None):
        self.check_inputs(inputs)
        z = self.pre_quantization(self.encoder(inputs))
        quantized = self.quantizer(z, training=training)
        return self.decoder(quantized)

    def compute_loss(
        self, x=None, y=None, y_pred=None, sample_weight=None, training=True
    ):
        reconstruction_loss = self.reconstruction_loss(x, y, y_pred)
        # Python's sum: `ops.sum` of the list breaks tracing under JAX.
        vq_loss = sum(self.losses) if self.losses else 0.0
        self.reconstruction_loss_tracker.update_state(reconstruction_loss)
        self.vq_loss_tracker.update_state(vq_loss)
        self.perplexity_tracker.update_state(self.quantizer.batch_perplexity)
        self.codebook_usage_tracker.update_state(
            self.quantizer.batch_codebook_usage
        )
        self.epoch_codebook_usage_tracker.update_state(
            self.quantizer.last_counts
        )
        return reconstruction_loss + vq_loss

    def reconstruction_loss(self, x, y, y_pred):
        """`mean((target - y_pred)^2) / data_variance`; the target is `y`,
        else `x`. A subclass with another output distribution overrides
        it (the speech model: the mu-law levels' cross-entropy)."""
        target = x if y is None else y
        error = ops.cast(target, "float32") - ops.cast(y_pred, "float32")
        return ops.mean(ops.square(error)) / self.data_variance

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

    def encode(self, inputs, batch_size=256, verbose=0):
        """Encodes raw inputs (or inputs in the model's range) to codes.

        Args:
            inputs: raw inputs (e.g. uint8 images), or float inputs already
                in the model's range.
            batch_size: int. Inputs per forward pass.
            verbose: 0 or 1. 1 shows a progress bar over the batches.

        Returns:
            int32 numpy array `(N,) + latent_shape`.
        """
        inputs = self.check_values(inputs)
        empty = _empty(self.latent_shape, "int32")
        return self._map_batches(
            self._compiled("_encode_batch"), inputs, batch_size, verbose, empty
        )

    def decode_codes(self, indices, batch_size=256, verbose=0):
        """Decodes code maps to outputs in the model's float range.

        Args:
            indices: int array `(N,) + latent_shape`, values in `[0, K)`.
            batch_size: int. Code maps per forward pass.
            verbose: 0 or 1. 1 shows a progress bar over the batches.

        Returns:
            float numpy array of the decoded signals.
        """
        indices = self._check_indices(np.asarray(indices))
        empty = _empty(self.signal_shape, "float32")
        return self._map_batches(
            self._compiled("_decode_batch"), indices, batch_size, verbose, empty
        )

    def reconstruct(self, inputs, batch_size=256):
        """Encodes and decodes: raw inputs give raw outputs.

        Args:
            inputs: raw inputs (returns raw outputs, e.g. uint8 images), or
                float inputs in the model's range (returns floats).
            batch_size: int. Inputs per forward pass.

        Returns:
            numpy array of the input's shape.
        """
        inputs = self.check_values(inputs)
        outputs = self._map_batches(
            self._compiled("_reconstruct_batch"),
            inputs,
            batch_size,
            empty=_empty(self.signal_shape, "float32"),
        )
        return self.postprocess(outputs) if _is_integer(inputs) else outputs

    def _encode_batch(self, inputs):
        if _is_integer(inputs):
            inputs = self.preprocess(inputs)
        self.check_inputs(inputs)
        return self.quantizer.get_indices(
            self.pre_quantization(self.encoder(inputs))
        )

    def _decode_batch(self, indices):
        return self.decoder(self.quantizer.lookup(indices))

    def _reconstruct_batch(self, inputs):
        return self._decode_batch(self._encode_batch(inputs))

    def _compiled(self, method):
        """The batch method named `method`, compiled once for the backend.

        Eager TensorFlow runs op by op, without the graph's fused
        convolution + bias kernels (see `tools/benchmark`'s encode /
        decode rows). The compiled functions read the variables when
        called, so later training is seen.
        """
        cache = self.__dict__.get("_compiled_batch_methods")
        if cache is None:
            cache = {}
            # Not tracked by Keras: a plain cache, neither saved nor copied.
            object.__setattr__(self, "_compiled_batch_methods", cache)
        if method not in cache:
            cache[method] = compile_loop(self, getattr(self, method))
        return cache[method]

    def check_values(self, inputs):
        """Returns `inputs` as a NumPy array, or raises a `DataError`.

        Integer inputs must hold raw values in `raw_range` (uint8 pixels:
        0..255); float inputs must be finite and lie in `model_range` (the
        model's normalised range, with 1% slack for rounding). Anything
        else, such as float images holding 0..255, is refused with the fix.
        """
        array = np.asarray(keras.ops.convert_to_numpy(inputs))
        if array.size == 0:
            return array
        if np.issubdtype(array.dtype, np.integer):
            low, high = self.raw_range
            if array.min() < low or array.max() > high:
                raise DataError(
                    f"Integer inputs must hold raw values in [{low}, {high}]. "
                    f"Received values in [{array.min()}, {array.max()}]."
                )
            return array
        if not np.issubdtype(array.dtype, np.floating):
            raise DataError(
                f"Expected integer raw inputs in {list(self.raw_range)} or "
                f"float inputs in the model's range {list(self.model_range)}. "
                f"Received: dtype={array.dtype}"
            )
        if not np.isfinite(array).all():
            raise DataError(
                f"The inputs hold {int((~np.isfinite(array)).sum())} NaN or "
                "infinite values; replace or drop them before encoding."
            )
        low, high = self.model_range
        slack = 0.01 * (high - low)
        if array.min() < low - slack or array.max() > high + slack:
            raise DataError(
                f"Float inputs must lie in the model's range [{low:g}, "
                f"{high:g}]. Received values in [{array.min():g}, "
                f"{array.max():g}]. For raw values (e.g. uint8 pixels "
                f"0..255) pass an integer array, or convert with "
                "`model.preprocess`."
            )
        return array

    def _check_indices(self, indices):
        if not np.issubdtype(indices.dtype, np.integer):
            raise DataError(
                f"Code maps must hold integers in [0, {self.num_embeddings}). "
                f"Received: dtype={indices.dtype}"
            )
        expected = (None,) + tuple(self.latent_shape)
        if indices.ndim != len(expected):
            raise ValueError(
                "Expected code maps of shape (batch,) + "
                f"{tuple(self.latent_shape)}. "
                f"Received: shape={indices.shape}"
            )
        if indices.size and (
            indices.min() < 0 or indices.max() >= self.num_embeddings
        ):
            raise ValueError(
                f"Code indices must lie in [0, {self.num_embeddings}). "
                f"Received values in [{indices.min()}, {indices.max()}]."
            )
        return indices

    def _map_batches(self, fn, array, batch_size, verbose=0, empty=None):
        array = np.asarray(array)
        if len(array) == 0 and empty is not None:
            return empty
        progress = keras.utils.Progbar(len(array), verbose=verbose)
        outputs = []
        for start in range(0, len(array), batch_size):
            batch = array[start : start + batch_size]
            outputs.append(ops.convert_to_numpy(fn(batch)))
            progress.add(len(batch))
        return np.concatenate(outputs) if outputs else np.zeros((0,))

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_embeddings": self.num_embeddings,
                "embedding_dim": self.embedding_dim,
                "quantizer": self.quantizer_type,
                "commitment_cost": self.commitment_cost,
                "decay": self.decay,
                "epsilon": self.epsilon,
                "kmeans_init": self.kmeans_init,
                "dead_code_threshold": self.dead_code_threshold,
                "data_variance": self.data_variance,
                "seed": self.seed,
            }
        )
        return config


def check_positive_int(name, value):
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, np.integer))
        or value < 1
    ):
        raise ValueError(
            f"`{name}` must be an integer >= 1. Received: {name}={value!r}"
        )


def _is_integer(array):
    dtype = keras.backend.standardize_dtype(array.dtype)
    return "int" in dtype


def _empty(shape, dtype):
    """No examples of `shape` (a variable length, None, becomes 0)."""
    return np.zeros((0,) + tuple(d or 0 for d in shape), dtype)
