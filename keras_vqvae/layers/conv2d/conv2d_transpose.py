import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_vqvae")
class Conv2DTranspose(keras.layers.Conv2DTranspose):
    """`keras.layers.Conv2DTranspose` with a fast kernel gradient on JAX.

    JAX differentiates a transposed convolution with respect to its kernel
    into a kernel-dilated, kernel-reversed convolution that XLA on CPU
    compiles to a generic loop, about 20 times slower than its convolution
    library (measured in `tools/benchmark/jax_probe.py`; the decoder's two transposed
    convolutions made a JAX training step 3.4 times slower). A transposed
    convolution is the adjoint of a strided convolution, so its kernel
    gradient is that convolution's kernel gradient with input and cotangent
    swapped; this layer states the gradient that way with `jax.custom_vjp`.
    Values and gradients are the same as Keras's layer (up to float
    rounding); weights and configs are interchangeable. Other backends use
    the Keras implementation unchanged.

    Args:
        Those of `keras.layers.Conv2DTranspose`.

    Example:

    >>> layer = Conv2DTranspose(16, 4, strides=2, padding="same")
    >>> layer(keras.ops.zeros((1, 8, 8, 32))).shape
    (1, 16, 16, 16)
    """

    def call(self, inputs):
        if keras.backend.backend() != "jax":
            return super().call(inputs)
        outputs = _jax_conv_transpose(
            inputs,
            self.kernel,
            strides=list(self.strides),
            padding=self.padding,
            output_padding=self.output_padding,
            dilation_rate=self.dilation_rate,
            data_format=self.data_format,
        )
        if self.use_bias:
            outputs = ops.add(outputs, self._broadcastable_bias())
        if self.activation is not None:
            return self.activation(outputs)
        return outputs

    def _broadcastable_bias(self):
        if self.data_format == "channels_last":
            shape = (1,) * (self.rank + 1) + (self.filters,)
        else:
            shape = (1, self.filters) + (1,) * self.rank
        return ops.reshape(self.bias, shape)


def _jax_conv_transpose(inputs, kernel, **conv_kwargs):
    import jax

    def apply(x, w):
        return ops.conv_transpose(x, w, **conv_kwargs)

    @jax.custom_vjp
    def conv_transpose(x, w):
        return apply(x, w)

    def forward(x, w):
        return apply(x, w), (x, w)

    def backward(residuals, cotangent):
        x, w = residuals

        def adjoint(w_):  # the strided convolution: cotangent -> d/dx
            return jax.vjp(lambda x_: apply(x_, w_), x)[1](cotangent)[0]

        input_grad, adjoint_vjp = jax.vjp(adjoint, w)
        return input_grad, adjoint_vjp(x)[0]

    conv_transpose.defvjp(forward, backward)
    return conv_transpose(
        ops.convert_to_tensor(inputs), ops.convert_to_tensor(kernel)
    )
