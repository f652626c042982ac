"""WaveNet (van den Oord et al. 2016, arXiv:1609.03499) as the VQ-VAE's
speech decoder (section 4.3 of the VQ-VAE paper).

A stack of dilated causal convolutions (window 2, dilations doubling within
each cycle) with gated units `tanh(a) * sigmoid(b)`, residual and skip
connections, and two conditioning signals added to every layer's gate
pre-activations:

* local: the quantised codes, at the code rate, through a small
  non-causal convolution stack and a per-layer 1x1 projection, then
  repeated to the sample rate (the codes are all known before decoding);
* global: a learned speaker embedding, projected per layer.

The output is a categorical distribution over `num_classes` mu-law levels
of the next sample. Fast generation (Paine et al. 2016, "Fast Wavenet
Generation Algorithm", arXiv:1611.09482) keeps, per layer, a queue of the
last `dilation` inputs, so each new sample costs one matrix product per
layer instead of a pass over the receptive field: see `WaveNetDecoder.step`.
"""

import keras
from keras import ops


def _gate(x):
    a, b = ops.split(x, 2, axis=-1)
    return ops.tanh(a) * ops.sigmoid(b)


@keras.saving.register_keras_serializable(package="keras_vqvae")
class WaveNetBlock(keras.layers.Layer):
    """One WaveNet layer: dilated causal convolution, gate, residual, skip.

    Args:
        residual_dim: int. Channels `C` of the residual stream.
        skip_dim: int. Channels of the skip output.
        dilation_rate: int. Dilation of the window-2 causal convolution.
        residual_output: bool. False for the last layer, whose residual
            stream nothing reads: it then returns its inputs unchanged.
        **kwargs: base layer keyword arguments, such as `name` and `dtype`.

    Call arguments:
        inputs: residual stream `(B, T, C)`.
        conditioning: `(B, T, 2C)` added to the gate pre-activations, or
            None.

    Returns:
        `(residual, skip)`: `(B, T, C)` (inputs plus the update) and
        `(B, T, skip_dim)`.
    """

    def __init__(
        self,
        residual_dim,
        skip_dim,
        dilation_rate,
        residual_output=True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        # === Layers ===
        self.dilated = keras.layers.Conv1D(
            2 * residual_dim,
            2,
            dilation_rate=dilation_rate,
            padding="causal",
            dtype=self.dtype_policy,
            name="dilated",
        )
        self.residual = (
            keras.layers.Conv1D(
                residual_dim, 1, dtype=self.dtype_policy, name="residual"
            )
            if residual_output
            else None
        )
        self.skip = keras.layers.Conv1D(
            skip_dim, 1, dtype=self.dtype_policy, name="skip"
        )
        # === Config ===
        self.residual_dim = residual_dim
        self.skip_dim = skip_dim
        self.dilation_rate = dilation_rate
        self.residual_output = residual_output

    def build(self, input_shape):
        self.dilated.build(input_shape)
        gated = tuple(input_shape[:-1]) + (self.residual_dim,)
        if self.residual is not None:
            self.residual.build(gated)
        self.skip.build(gated)

    def call(self, inputs, conditioning=None):
        h = self.dilated(inputs)
        if conditioning is not None:
            h = h + ops.cast(conditioning, h.dtype)
        gated = _gate(h)
        if self.residual is None:
            return inputs, self.skip(gated)
        return inputs + self.residual(gated), self.skip(gated)

    def step_weights(self):
        """The kernels of `step` as matrices, in the compute dtype."""
        dtype = self.compute_dtype
        kernel = ops.cast(self.dilated.kernel, dtype)  # (2, C, 2C)
        weights = {
            "past": kernel[0],
            "now": kernel[1],
            "bias": ops.cast(self.dilated.bias, dtype),
            "skip": ops.cast(self.skip.kernel[0], dtype),
            "skip_bias": ops.cast(self.skip.bias, dtype),
        }
        if self.residual is not None:
            weights["residual"] = ops.cast(self.residual.kernel[0], dtype)
            weights["residual_bias"] = ops.cast(self.residual.bias, dtype)
        return weights

    @staticmethod
    def step(past, now, conditioning, weights):
        """One time step: `call` at position t from the inputs at t - d
        (`past`) and t (`now`), both `(B, C)`; `conditioning` `(B, 2C)`.

        Returns `(residual, skip)` at t: `(B, C)` and `(B, skip_dim)`.
        """
        h = (
            ops.matmul(past, weights["past"])
            + ops.matmul(now, weights["now"])
            + weights["bias"]
            + ops.cast(conditioning, now.dtype)
        )
        gated = _gate(h)
        skip = ops.matmul(gated, weights["skip"]) + weights["skip_bias"]
        if "residual" not in weights:
            return now, skip
        residual = ops.matmul(gated, weights["residual"])
        return now + residual + weights["residual_bias"], skip

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "residual_dim": self.residual_dim,
                "skip_dim": self.skip_dim,
                "dilation_rate": self.dilation_rate,
                "residual_output": self.residual_output,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="keras_vqvae")
class WaveNetDecoder(keras.layers.Layer):
    """A WaveNet conditioned on code features and a speaker.

    Args:
        num_classes: int. Output levels (256 for 8-bit mu-law).
        residual_dim: int. Channels of the residual stream.
        skip_dim: int. Channels of the skip connections and the head.
        num_layers: int. WaveNet layers.
        dilation_cycle: int. Layers per cycle; layer `i` has dilation
            `2 ** (i % dilation_cycle)`.
        conditioning_dim: int. Channels of the code-rate conditioning
            stack.
        upsampling_factor: int. Samples per code (64 for six stride-2
            convolutions).
        num_speakers: int. Speakers of the global conditioning; 0 for none.
        speaker_dim: int. Size of the speaker embedding.
        **kwargs: base layer keyword arguments, such as `name` and `dtype`.

    Call arguments:
        previous: int `(B, T)`: the mu-law level of the sample *before*
            each position (teacher forcing: the target shifted right).
        codes: float `(B, T / upsampling_factor, D)`: quantised codes.
        speakers: int `(B,)` speaker ids, or None without speakers.

    Returns:
        Logits `(B, T, num_classes)` of each position's level.

    Example:

    >>> decoder = WaveNetDecoder(num_layers=4, dilation_cycle=4,
    ...                          upsampling_factor=8, num_speakers=2)
    >>> logits = decoder(keras.ops.zeros((1, 64), "int32"),
    ...                  keras.ops.zeros((1, 8, 16)), keras.ops.zeros((1,), "int32"))
    >>> logits.shape
    (1, 64, 256)
    """

    def __init__(
        self,
        num_classes=256,
        residual_dim=64,
        skip_dim=128,
        num_layers=20,
        dilation_cycle=10,
        conditioning_dim=128,
        upsampling_factor=64,
        num_speakers=0,
        speaker_dim=32,
        **kwargs,
    ):
        super().__init__(**kwargs)
        for name, value in (
            ("num_classes", num_classes),
            ("residual_dim", residual_dim),
            ("skip_dim", skip_dim),
            ("num_layers", num_layers),
            ("dilation_cycle", dilation_cycle),
            ("conditioning_dim", conditioning_dim),
            ("upsampling_factor", upsampling_factor),
        ):
            if not isinstance(value, int) or value < 1:
                raise ValueError(
                    f"`{name}` must be an integer >= 1. Received: "
                    f"{name}={value!r}"
                )
        # === Layers ===
        policy = self.dtype_policy
        self.input_embedding = keras.layers.Embedding(
            num_classes, residual_dim, dtype=policy, name="input_embedding"
        )
        self.conditioning_stack = keras.layers.Conv1D(
            conditioning_dim,
            3,
            padding="same",
            activation="relu",
            dtype=policy,
            name="conditioning_stack",
        )
        self.speaker_embedding = (
            keras.layers.Embedding(
                num_speakers, speaker_dim, dtype=policy, name="speakers"
            )
            if num_speakers
            else None
        )
        # One projection of (code features, speaker) for every layer's
        # conditioning, at the code rate: cheaper than per sample.
        self.conditioning_projection = keras.layers.Dense(
            num_layers * 2 * residual_dim,
            dtype=policy,
            name="conditioning_projection",
        )
        self.blocks = [
            WaveNetBlock(
                residual_dim,
                skip_dim,
                2 ** (i % dilation_cycle),
                residual_output=i < num_layers - 1,
                dtype=policy,
                name=f"block_{i}",
            )
            for i in range(num_layers)
        ]
        self.head_hidden = keras.layers.Dense(
            skip_dim, dtype=policy, name="head_hidden"
        )
        self.head_logits = keras.layers.Dense(
            num_classes, dtype=policy, name="head_logits"
        )
        # === Config ===
        self.num_classes = num_classes
        self.residual_dim = residual_dim
        self.skip_dim = skip_dim
        self.num_layers = num_layers
        self.dilation_cycle = dilation_cycle
        self.conditioning_dim = conditioning_dim
        self.upsampling_factor = upsampling_factor
        self.num_speakers = num_speakers
        self.speaker_dim = speaker_dim

    @property
    def receptive_field(self):
        """Samples each output sees: 1 + the sum of the dilations."""
        return 1 + sum(block.dilation_rate for block in self.blocks)

    def build(self, previous_shape, codes_shape=None, speakers_shape=None):
        batch = previous_shape[0]
        self.input_embedding.build(previous_shape)
        stream = tuple(previous_shape) + (self.residual_dim,)
        for block in self.blocks:
            block.build(stream)
        codes_shape = tuple(codes_shape or (batch, None, None))
        self.conditioning_stack.build(codes_shape)
        features = self.conditioning_dim
        if self.speaker_embedding is not None:
            self.speaker_embedding.build((batch,))
            features += self.speaker_dim
        self.conditioning_projection.build((batch, None, features))
        self.head_hidden.build((batch, None, self.skip_dim))
        self.head_logits.build((batch, None, self.skip_dim))

    def layer_conditioning(self, codes, speakers=None):
        """Every layer's gate bias at the code rate: a list of
        `num_layers` tensors `(B, T / upsampling_factor, 2C)`."""
        features = self.conditioning_stack(codes)
        if self.speaker_embedding is not None:
            if speakers is None:
                raise ValueError(
                    "This decoder is conditioned on speakers: pass `speakers`."
                )
            speaker = self.speaker_embedding(speakers)[:, None, :]
            speaker = ops.broadcast_to(
                ops.cast(speaker, features.dtype),
                ops.shape(features)[:2] + (self.speaker_dim,),
            )
            features = ops.concatenate([features, speaker], axis=-1)
        projected = self.conditioning_projection(features)
        return ops.split(projected, self.num_layers, axis=-1)

    def call(self, previous, codes, speakers=None):
        conditioning = self.layer_conditioning(codes, speakers)
        x = self.input_embedding(previous)
        skips = 0
        for block, bias in zip(self.blocks, conditioning):
            bias = ops.repeat(bias, self.upsampling_factor, axis=1)
            x, skip = block(x, bias)
            skips = skips + skip
        return self._head(skips)

    def _head(self, skips):
        return self.head_logits(ops.relu(self.head_hidden(ops.relu(skips))))

    def compute_output_shape(
        self, previous_shape, codes_shape=None, speakers_shape=None
    ):
        return tuple(previous_shape) + (self.num_classes,)

    # --- Fast generation -------------------------------------------------

    def initial_queues(self, batch_size):
        """Per layer, a zero queue `(B, dilation, C)` of its past inputs
        (the zeros are the causal padding `call` sees)."""
        return [
            ops.zeros(
                (batch_size, block.dilation_rate, self.residual_dim),
                self.compute_dtype,
            )
            for block in self.blocks
        ]

    def step_weights(self):
        """Loop invariants of `step`: each block's matrices and the
        embedding table, in the compute dtype."""
        return {
            "blocks": [block.step_weights() for block in self.blocks],
            "embedding": ops.cast(
                self.input_embedding.embeddings, self.compute_dtype
            ),
        }

    def step(self, t, previous, conditioning, queues, weights):
        """The logits of position `t` and the updated queues.

        Args:
            t: int scalar tensor, the position.
            previous: int `(B,)`, the level drawn at `t - 1`.
            conditioning: `layer_conditioning(...)` of the codes.
            queues: `initial_queues(...)` or the queues `step` returned
                at `t - 1`. Layer `i`'s queue holds its inputs at
                `t - d .. t - 1` in a ring: slot `t % d` is `t - d`.
            weights: `step_weights()`.

        Returns:
            `(logits, queues)`: float32 `(B, num_classes)`, new queues.
        """
        x = ops.take(weights["embedding"], previous, axis=0)
        code_index = t // self.upsampling_factor
        skips = 0
        new_queues = []
        for block, bias, queue, w in zip(
            self.blocks, conditioning, queues, weights["blocks"]
        ):
            slot = t % block.dilation_rate
            past = ops.take(queue, slot, axis=1)
            new_queues.append(
                ops.slice_update(queue, (0, slot, 0), x[:, None, :])
            )
            x, skip = block.step(past, x, ops.take(bias, code_index, axis=1), w)
            skips = skips + skip
        logits = self._head(skips)
        return ops.cast(logits, "float32"), new_queues

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_classes": self.num_classes,
                "residual_dim": self.residual_dim,
                "skip_dim": self.skip_dim,
                "num_layers": self.num_layers,
                "dilation_cycle": self.dilation_cycle,
                "conditioning_dim": self.conditioning_dim,
                "upsampling_factor": self.upsampling_factor,
                "num_speakers": self.num_speakers,
                "speaker_dim": self.speaker_dim,
            }
        )
        return config
