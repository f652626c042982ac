import keras
import numpy as np
from keras import ops

from keras_vqvae.audio import MU_LAW_LEVELS
from keras_vqvae.audio import mu_law_decode
from keras_vqvae.audio import mu_law_encode
from keras_vqvae.audio import to_model_audio
from keras_vqvae.errors import DataError
from keras_vqvae.layers import AudioEncoder
from keras_vqvae.layers import WaveNetDecoder
from keras_vqvae.models.sampling import compile_loop
from keras_vqvae.models.sampling import inverse_cdf_draw
from keras_vqvae.models.vqvae_base import VQVAEBase
from keras_vqvae.models.vqvae_base import check_positive_int


@keras.saving.register_keras_serializable(package="keras_vqvae")
class SpeechVQVAE(VQVAEBase):
    """The paper's speech VQ-VAE (section 4.3): strided 1-D encoder, codes,
    and a WaveNet decoder conditioned on the codes and a speaker.

    The encoder's `num_downsamples` stride-2 convolutions give one code per
    `2 ** num_downsamples` samples (64: 250 codes/s at 16 kHz). The decoder
    predicts each sample's 8-bit mu-law level from the samples before it
    (teacher forcing in training), the codes and the speaker; `fit`
    minimises that cross-entropy plus the quantiser's loss. Decoding one
    speaker's codes with another speaker converts the voice
    (`convert`).

    Args:
        sample_rate: int. The model's sample rate; other audio is resampled.
        speakers: list of speaker names; the model's speaker ids are their
            indices. Empty for a model without speakers.
        num_embeddings: int. Codebook size K (512 in the paper).
        embedding_dim: int. Code size D.
        encoder_dim: int. Channels of the encoder's convolutions.
        num_downsamples: int. Stride-2 convolutions of the encoder.
        final_stride: int. Stride of one more encoder convolution (1: none);
            one code per `2 ** num_downsamples * final_stride` samples.
        residual_dim, skip_dim, num_layers, dilation_cycle,
        conditioning_dim, speaker_dim: the `WaveNetDecoder`'s sizes.
        **kwargs: `VQVAEBase` arguments (quantizer, commitment_cost, ...)
            and `keras.Model` ones (`name`, `dtype`).

    Call arguments:
        inputs: a dict with `"audio"`, float `(B, T, 1)` in [-1, 1] with
            `T` a multiple of `hop_length`, and `"speakers"`, int `(B,)`.

    Returns (call): logits `(B, T, 256)` of each sample's mu-law level.

    Example:

    >>> model = SpeechVQVAE(speakers=["anna", "ben"], num_layers=10)
    >>> model.compile()
    >>> model.fit({"audio": clips, "speakers": ids}, epochs=1)
    >>> codes = model.encode(audio)                 # (T / 64,) int32
    >>> other = model.convert(audio, "ben")         # float32 audio
    """

    def __init__(
        self,
        sample_rate=16000,
        speakers=(),
        num_embeddings=512,
        embedding_dim=64,
        encoder_dim=128,
        num_downsamples=6,
        final_stride=1,
        residual_dim=64,
        skip_dim=128,
        num_layers=20,
        dilation_cycle=10,
        conditioning_dim=128,
        speaker_dim=32,
        **kwargs,
    ):
        super().__init__(
            num_embeddings=num_embeddings, embedding_dim=embedding_dim, **kwargs
        )
        check_positive_int("sample_rate", sample_rate)
        check_positive_int("encoder_dim", encoder_dim)
        check_positive_int("num_downsamples", num_downsamples)
        check_positive_int("final_stride", final_stride)
        speakers = [str(name) for name in speakers]
        if len(set(speakers)) != len(speakers):
            raise ValueError(
                f"`speakers` must be distinct names. Received: {speakers}"
            )
        # === Layers ===
        self.encoder = AudioEncoder(
            encoder_dim,
            num_downsamples=num_downsamples,
            final_stride=final_stride,
            dtype=self.dtype_policy,
            name="encoder",
        )
        self.pre_quantization = keras.layers.Conv1D(
            embedding_dim, 1, dtype=self.dtype_policy, name="pre_quantization"
        )
        self.decoder = WaveNetDecoder(
            num_classes=MU_LAW_LEVELS,
            residual_dim=residual_dim,
            skip_dim=skip_dim,
            num_layers=num_layers,
            dilation_cycle=dilation_cycle,
            conditioning_dim=conditioning_dim,
            upsampling_factor=2**num_downsamples * final_stride,
            num_speakers=len(speakers),
            speaker_dim=speaker_dim,
            dtype=self.dtype_policy,
            name="decoder",
        )
        # === Config ===
        self.sample_rate = int(sample_rate)
        self.speakers = speakers
        self.encoder_dim = encoder_dim
        self.num_downsamples = num_downsamples
        self.final_stride = final_stride
        self.residual_dim = residual_dim
        self.skip_dim = skip_dim
        self.num_layers = num_layers
        self.dilation_cycle = dilation_cycle
        self.conditioning_dim = conditioning_dim
        self.speaker_dim = speaker_dim
        self._generator_cache = {}
        self.build((None, None, 1))

    @property
    def hop_length(self):
        """Samples per code."""
        return 2**self.num_downsamples * self.final_stride

    @property
    def signal_shape(self):
        return (None, 1)

    @property
    def latent_shape(self):
        return (None,)

    @property
    def raw_range(self):
        """Integer inputs are 16-bit PCM."""
        return (-32768, 32767)

    @property
    def model_range(self):
        return (-1.0, 1.0)

    def build(self, input_shape):
        self.encoder.build(input_shape)
        latent = self.encoder.compute_output_shape(input_shape)
        self.pre_quantization.build(latent)
        latent = self.pre_quantization.compute_output_shape(latent)
        self.quantizer.build(latent)
        self.decoder.build(input_shape[:2], latent, input_shape[:1])

    def preprocess(self, audio):
        """int16 PCM to float audio in [-1, 1]."""
        return ops.cast(ops.convert_to_tensor(audio), "float32") / 32768.0

    def postprocess(self, audio):
        """Float audio to int16 PCM (numpy)."""
        audio = np.asarray(ops.convert_to_numpy(audio), "float32")
        return np.clip(np.round(audio * 32768.0), -32768, 32767).astype("int16")

    # --- Training --------------------------------------------------------

    def _split_inputs(self, inputs):
        if isinstance(inputs, dict):
            return inputs["audio"], inputs.get("speakers")
        if isinstance(inputs, (list, tuple)) and len(inputs) == 2:
            return inputs
        return inputs, None

    def call(self, inputs, training=None):
        audio, speakers = self._split_inputs(inputs)
        self.check_inputs(audio)
        z = self.pre_quantization(self.encoder(audio))
        quantized = self.quantizer(z, training=training)
        return self.decoder(self._previous_levels(audio), quantized, speakers)

    @staticmethod
    def _previous_levels(audio):
        """Teacher forcing: each position sees the level before it (the
        level of silence before the first sample)."""
        levels = mu_law_encode(audio[..., 0])
        start = ops.full_like(levels[:, :1], MU_LAW_LEVELS // 2)
        return ops.concatenate([start, levels[:, :-1]], axis=1)

    def reconstruction_loss(self, x, y, y_pred):
        """Cross-entropy (nats per sample) of the true mu-law levels."""
        audio, _ = self._split_inputs(x)
        targets = mu_law_encode(audio[..., 0])
        losses = keras.losses.sparse_categorical_crossentropy(
            targets, ops.cast(y_pred, "float32"), from_logits=True
        )
        return ops.mean(losses)

    def check_inputs(self, audio):
        shape = tuple(audio.shape)
        if len(shape) != 3 or shape[-1] != 1:
            raise ValueError(
                "SpeechVQVAE expects mono audio of shape (batch, time, 1). "
                f"Received: shape={shape}"
            )
        if shape[1] is not None and shape[1] % self.hop_length:
            raise ValueError(
                f"The audio length must be a multiple of {self.hop_length} "
                f"samples (one code each). Received: {shape[1]}. Pad it, or "
                "use `encode`, which pads."
            )

    # --- Codes, audio and conversion ------------------------------------

    def speaker_id(self, speaker):
        """The id of a speaker given by id or name."""
        if isinstance(speaker, (int, np.integer)) and not isinstance(
            speaker, bool
        ):
            if 0 <= speaker < len(self.speakers):
                return int(speaker)
        elif speaker in self.speakers:
            return self.speakers.index(speaker)
        raise DataError(
            f"Unknown speaker {speaker!r}. Known speakers (id: name): "
            + ", ".join(f"{i}: {name}" for i, name in enumerate(self.speakers))
        )

    def prepare_audio(self, audio, sample_rate=None):
        """One clip `(T,)` or `(T, channels)` (float in [-1, 1] or int16;
        channels are downmixed, other rates resampled, with warnings) as
        float32 `(T', 1)` at the model's rate, padded with silence to a
        multiple of `hop_length`."""
        audio = to_model_audio(
            audio, sample_rate or self.sample_rate, self.sample_rate
        )
        if len(audio) < self.hop_length:
            raise DataError(
                f"The audio is too short: {len(audio)} samples; the model "
                f"needs at least {self.hop_length} ({self.hop_length} samples "
                "make one code)."
            )
        pad = -len(audio) % self.hop_length
        return np.pad(audio, (0, pad))[:, None]

    def encode(self, audio, sample_rate=None, batch_size=16, verbose=0):
        """Codes of one clip `(T,)` or of a batch of clips `(N, T)`.

        Args:
            audio: float samples in [-1, 1] or int16 PCM: one clip `(T,)`
                or a batch `(N, T)` of clips of equal length.
            sample_rate: the audio's rate; None means the model's. Other
                rates are resampled, with a warning.
            batch_size: clips per forward pass.
            verbose: 0 or 1.

        Returns:
            int32 codes `(ceil(T / hop_length),)` or `(N, ...)`.
        """
        array = np.asarray(audio)
        single = array.ndim == 1
        if array.ndim not in (1, 2):
            raise DataError(
                "Expected one clip (T,) or a batch of clips (N, T). For a "
                "multi-channel clip use `keras_vqvae.audio.read_audio` or "
                f"`prepare_audio`, which downmix. Received: shape={array.shape}"
            )
        clips = [
            self.prepare_audio(clip, sample_rate)
            for clip in (array[None] if single else array)
        ]
        codes = super().encode(np.stack(clips), batch_size, verbose)
        return codes[0] if single else codes

    def decode(self, codes, speaker=0, temperature=1.0, seed=None):
        """Generates audio from codes with the WaveNet decoder.

        Args:
            codes: int codes `(Tc,)` or `(N, Tc)`.
            speaker: a speaker id or name (see `speakers`).
            temperature: softmax temperature of each sample's draw (> 0).
            seed: int for reproducible audio, or None.

        Returns:
            float32 audio `(Tc * hop_length,)` or `(N, ...)` in [-1, 1].
        """
        codes = np.asarray(codes)
        single = codes.ndim == 1
        codes = self._check_indices(codes[None] if single else codes)
        if not temperature > 0:
            raise ValueError(f"`temperature` must be > 0, got {temperature!r}.")
        speakers = None
        if self.speakers:
            speakers = np.full(len(codes), self.speaker_id(speaker), "int32")
        length = codes.shape[1] * self.hop_length
        rng = np.random.default_rng(seed)
        uniforms = (1.0 - rng.random((length, len(codes)))).astype("float32")
        generate = self._generator_cache.get(keras.backend.backend())
        if generate is None:
            generate = compile_loop(self, self._generate_loop)
            self._generator_cache[keras.backend.backend()] = generate
        levels = generate(
            codes.astype("int32"), speakers, uniforms, float(1.0 / temperature)
        )
        audio = mu_law_decode(np.asarray(ops.convert_to_numpy(levels)))
        return audio[0] if single else audio

    def convert(self, audio, speaker, sample_rate=None, seed=None):
        """Speaker conversion: `audio`'s codes decoded as `speaker`."""
        return self.decode(
            self.encode(audio, sample_rate=sample_rate), speaker, seed=seed
        )

    def _generate_loop(self, codes, speakers, uniforms, inv_temperature):
        """Ancestral sampling, one sample per step, with the decoder's
        per-layer queues (`WaveNetDecoder.step`)."""
        decoder = self.decoder
        batch = ops.shape(codes)[0]
        conditioning = decoder.layer_conditioning(
            self.quantizer.lookup(codes), speakers
        )
        weights = decoder.step_weights()

        def body(t, state):
            previous, queues, levels = state
            logits, queues = decoder.step(
                t, previous, conditioning, queues, weights
            )
            new = inverse_cdf_draw(
                logits, ops.take(uniforms, t, axis=0), inv_temperature
            )
            levels = ops.slice_update(levels, (0, t), new[:, None])
            return new, queues, levels

        start = ops.full((batch,), MU_LAW_LEVELS // 2, "int32")
        # Dynamic: TensorFlow retraces with an unknown length once a second
        # length is decoded (`reduce_retracing`).
        length = ops.shape(uniforms)[0]
        levels = ops.zeros((batch, length), "int32")
        state = (start, decoder.initial_queues(batch), levels)
        _, _, levels = ops.fori_loop(0, length, body, state)
        return levels

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "sample_rate": self.sample_rate,
                "speakers": list(self.speakers),
                "encoder_dim": self.encoder_dim,
                "num_downsamples": self.num_downsamples,
                "final_stride": self.final_stride,
                "residual_dim": self.residual_dim,
                "skip_dim": self.skip_dim,
                "num_layers": self.num_layers,
                "dilation_cycle": self.dilation_cycle,
                "conditioning_dim": self.conditioning_dim,
                "speaker_dim": self.speaker_dim,
            }
        )
        return config
