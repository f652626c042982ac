"""Audio helpers: mu-law companding, reading, resampling and writing.

Models work on float32 mono audio in [-1, 1] at their own sample rate.
`read_audio` takes WAV, FLAC and Ogg Vorbis files (through `soundfile`)
and converts what needs converting, saying so: other sample rates are
resampled (`scipy.signal.resample_poly`), several channels are averaged.
"""

import math
import warnings
from fractions import Fraction

import numpy as np
from keras import ops

from keras_vqvae.errors import DataError

MU_LAW_LEVELS = 256


def mu_law_encode(audio, levels=MU_LAW_LEVELS):
    """Float audio in [-1, 1] to int32 mu-law levels in [0, levels).

    Works on NumPy arrays and backend tensors (returns the same kind).
    """
    mu = float(levels - 1)
    if isinstance(audio, np.ndarray):
        x = np.clip(audio.astype("float32"), -1.0, 1.0)
        y = np.sign(x) * np.log1p(mu * np.abs(x)) / math.log1p(mu)
        return np.floor((y + 1.0) / 2.0 * mu + 0.5).astype("int32")
    x = ops.clip(ops.cast(audio, "float32"), -1.0, 1.0)
    y = ops.sign(x) * ops.log1p(mu * ops.abs(x)) / math.log1p(mu)
    return ops.cast(ops.floor((y + 1.0) / 2.0 * mu + 0.5), "int32")


def mu_law_decode(levels_array, levels=MU_LAW_LEVELS):
    """int mu-law levels in [0, levels) to float32 audio in [-1, 1]."""
    mu = float(levels - 1)
    if isinstance(levels_array, np.ndarray):
        y = levels_array.astype("float32") / mu * 2.0 - 1.0
        return (np.sign(y) * np.expm1(np.abs(y) * math.log1p(mu)) / mu).astype(
            "float32"
        )
    y = ops.cast(levels_array, "float32") / mu * 2.0 - 1.0
    return ops.sign(y) * ops.expm1(ops.abs(y) * math.log1p(mu)) / mu


def resample(audio, from_rate, to_rate):
    """Resamples float audio along axis 0 with a polyphase filter."""
    if from_rate == to_rate:
        return audio
    from scipy.signal import resample_poly

    ratio = Fraction(int(to_rate), int(from_rate))
    out = resample_poly(audio, ratio.numerator, ratio.denominator, axis=0)
    return out.astype("float32")


def to_model_audio(audio, sample_rate, model_rate, source="the audio"):
    """Float32 mono audio in [-1, 1] at `model_rate`, or a `DataError`.

    Accepts float audio in [-1, 1] or int16 PCM, `(T,)` or `(T, channels)`.
    Downmixing and resampling warn, naming what was converted.
    """
    audio = np.asarray(audio)
    if audio.size == 0:
        raise DataError(f"{source} is empty: there are no samples to encode.")
    if np.issubdtype(audio.dtype, np.integer):
        audio = pcm16_to_float(audio, source)
    elif not np.issubdtype(audio.dtype, np.floating):
        raise DataError(
            f"{source}: expected float samples in [-1, 1] or int16 PCM; "
            f"received dtype {audio.dtype}."
        )
    if not np.isfinite(audio).all():
        raise DataError(
            f"{source} holds {int((~np.isfinite(audio)).sum())} NaN or "
            "infinite samples; replace or drop them first."
        )
    if np.abs(audio).max() > 1.0 + 1e-3:
        raise DataError(
            f"{source}: float samples must lie in [-1, 1]; received values "
            f"in [{audio.min():g}, {audio.max():g}]. Scale it (int16 PCM: "
            "divide by 32768)."
        )
    if audio.ndim == 2:
        warnings.warn(
            f"{source} has {audio.shape[1]} channels: downmixed to mono "
            "(their mean).",
            stacklevel=2,
        )
        audio = audio.mean(axis=1)
    elif audio.ndim != 1:
        raise DataError(
            f"{source}: expected samples (T,) or (T, channels); received "
            f"shape {audio.shape}."
        )
    if sample_rate != model_rate:
        warnings.warn(
            f"{source} is at {sample_rate} Hz: resampled to the model's "
            f"{model_rate} Hz.",
            stacklevel=2,
        )
        audio = resample(audio.astype("float32"), sample_rate, model_rate)
    return np.clip(audio, -1.0, 1.0).astype("float32")


def pcm16_to_float(audio, source="the audio"):
    if audio.min() < -32768 or audio.max() > 32767:
        raise DataError(
            f"{source}: integer samples must be int16 PCM in [-32768, "
            f"32767]; received values in [{audio.min()}, {audio.max()}]."
        )
    return audio.astype("float32") / 32768.0


def read_audio(path, model_rate):
    """Reads a WAV, FLAC or Ogg file as float32 mono audio at `model_rate`."""
    import soundfile

    try:
        audio, rate = soundfile.read(str(path), dtype="float32")
    except (RuntimeError, OSError, soundfile.LibsndfileError) as e:
        raise DataError(
            f"Cannot read {path} as audio (WAV, FLAC or Ogg Vorbis): {e}"
        ) from e
    return to_model_audio(audio, rate, model_rate, source=str(path))


def write_wav(path, audio, sample_rate):
    """Writes float audio in [-1, 1] as a 16-bit PCM WAV file."""
    import soundfile

    audio = np.clip(np.asarray(audio, "float32"), -1.0, 1.0)
    soundfile.write(str(path), audio, int(sample_rate), subtype="PCM_16")
