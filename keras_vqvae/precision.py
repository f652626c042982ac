"""Which precision to train in: bfloat16 where the hardware has units for it.

`mixed_bfloat16` (bfloat16 compute, float32 variables) runs matrix work
several times faster on CPUs with AMX-BF16 or AVX512-BF16 (with the
TensorFlow and PyTorch backends; XLA's CPU convolutions on JAX do not use
them) and on GPUs; the quantisers keep their distances, argmin and EMA
statistics in float32 whatever the policy. Elsewhere float32 is faster, and
is the default.
"""

import keras

PRECISIONS = ("auto", "float32", "mixed_bfloat16")
_CPU_BF16_FLAGS = ("amx_bf16", "avx512_bf16")


def _cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def _has_gpu():
    backend = keras.backend.backend()
    try:
        if backend == "tensorflow":
            import tensorflow as tf

            return bool(tf.config.list_physical_devices("GPU"))
        if backend == "jax":
            import jax

            return jax.default_backend() == "gpu"
        if backend == "torch":
            import torch

            return torch.cuda.is_available()
    except Exception:  # a broken accelerator stack means: no GPU
        return False
    return False


def bf16_hardware():
    """A short description of the bfloat16 units found, or None."""
    if _has_gpu():
        return "a GPU"
    flags = [flag for flag in _CPU_BF16_FLAGS if flag in _cpu_flags()]
    if flags:
        names = ", ".join(flag.upper().replace("_", "-") for flag in flags)
        return f"this CPU's {names} units"
    return None


def training_policy(precision="auto"):
    """The dtype policy to train in, and why.

    Args:
        precision: `"auto"` (bfloat16 where the hardware has units for it,
            else float32), `"float32"` or `"mixed_bfloat16"`.

    Returns:
        Tuple `(policy_name, reason)`.
    """
    if precision not in PRECISIONS:
        raise ValueError(
            f"`precision` must be one of {PRECISIONS}. "
            f"Received: precision={precision!r}"
        )
    if precision != "auto":
        return precision, "as asked"
    hardware = bf16_hardware()
    if not hardware:
        return "float32", "auto: no bfloat16 matrix units found"
    if keras.backend.backend() == "jax" and not _has_gpu():
        # Measured by tools/benchmark on an AVX512-BF16 CPU: cifar10 trained
        # at 0.86-0.87x (batch 32) and 0.95-1.06x (batch 128) the float32
        # speed, in two runs.
        return "float32", (
            "auto: JAX's CPU convolutions do not use bfloat16 units "
            "(mixed_bfloat16 trains slower there)"
        )
    return "mixed_bfloat16", f"auto: {hardware} run bfloat16 matmuls fast"
