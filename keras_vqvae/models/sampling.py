"""Shared by the autoregressive samplers: the draw and the compiled loop."""

import keras
import numpy as np
from keras import ops


def inverse_cdf_draw(logits, u, inv_temperature):
    """Inverse-CDF draw from `softmax(logits * inv_temperature)`.

    `logits`: float32 `(n, K)`; `u`: float32 `(n,)` in `(0, 1]`.
    Returns int32 `(n,)`: the first class whose CDF reaches `u`.
    """
    k = logits.shape[-1]
    probs = ops.softmax(logits * inv_temperature, axis=-1)
    cdf = ops.cumsum(probs, axis=-1)
    u = u[:, None] * cdf[:, -1:]
    return ops.minimum(ops.sum(ops.cast(cdf < u, "int32"), axis=-1), k - 1)


def compile_loop(model, loop):
    """`loop(*tensors)` compiled for the current backend, reading `model`'s
    variables: `tf.function` on TensorFlow, `jax.jit` (variables passed in,
    so new weights are seen) on JAX, an eager `no_grad` loop on PyTorch
    and others. Arguments are arrays, Python scalars or None."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        compiled = tf.function(loop, reduce_retracing=True)

        def convert(arg):
            if arg is None:
                return None
            if isinstance(arg, float):
                return tf.constant(arg, tf.float32)
            return tf.convert_to_tensor(arg)

        return lambda *args: compiled(*[convert(a) for a in args])
    if backend == "jax":
        import jax

        def pure(trainable, non_trainable, *args):
            mapping = list(zip(model.trainable_variables, trainable)) + list(
                zip(model.non_trainable_variables, non_trainable)
            )
            with keras.StatelessScope(state_mapping=mapping):
                return loop(*args)

        compiled = jax.jit(pure)

        def convert(arg):
            return np.float32(arg) if isinstance(arg, float) else arg

        return lambda *args: compiled(
            [v.value for v in model.trainable_variables],
            [v.value for v in model.non_trainable_variables],
            *[convert(a) for a in args],
        )

    def convert(arg):
        if arg is None or isinstance(arg, float):
            return arg
        return ops.convert_to_tensor(arg)

    if backend == "torch":
        import torch

        def fn(*args):
            with torch.no_grad():
                return loop(*[convert(a) for a in args])

        return fn
    return lambda *args: loop(*[convert(a) for a in args])
