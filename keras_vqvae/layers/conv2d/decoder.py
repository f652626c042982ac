import keras
from keras import ops

from keras_vqvae.layers.conv2d.conv2d_transpose import Conv2DTranspose
from keras_vqvae.layers.conv2d.residual_stack import ResidualStack


def upsampling_layer_name(layer_class):
    """The name `Decoder.get_config` stores for an upsampling layer class."""
    return keras.saving.get_registered_name(layer_class)


def resolve_upsampling_layer(layer):
    """Returns the layer class named by `layer` (a class or a stored name).

    Only registered Keras serialisables and `keras.layers` classes resolve:
    a config never names arbitrary code.
    """
    if layer is None:
        return Conv2DTranspose
    if isinstance(layer, str):
        resolved = keras.saving.get_registered_object(layer) or getattr(
            keras.layers, layer, None
        )
    else:
        resolved = layer
    if not (
        isinstance(resolved, type) and issubclass(resolved, keras.layers.Layer)
    ):
        raise ValueError(
            "`upsampling_layer` must be a Keras layer class taking the "
            "arguments of `keras.layers.Conv2DTranspose`, such as "
            "`keras_vqvae.layers.Conv2DTranspose` (the default) or "
            f"`keras.layers.Conv2DTranspose`. Received: upsampling_layer={layer!r}"
        )
    return resolved


@keras.saving.register_keras_serializable(package="keras_vqvae")
class Decoder(keras.layers.Layer):
    """The paper's image decoder: residual blocks, strided 4x4 upsampling.

    A 3x3 convolution, a `ResidualStack`, and `num_upsamples` stride-2 4x4
    transposed convolutions (ReLU between them; all but the last with
    `hidden_dim // 2` channels, the last with `output_channels` and no
    activation). The spatial size grows by `2 ** num_upsamples`.

    Args:
        hidden_dim: int. Channels of the residual blocks.
        num_residual_layers: int. Number of residual blocks.
        residual_hidden_dim: int. Channels inside each residual block.
        output_channels: int. Channels of the output images.
        num_upsamples: int. Number of stride-2 transposed convolutions.
        upsampling_layer: the transposed-convolution class, called with
            `keras.layers.Conv2DTranspose`'s arguments. Defaults to
            `keras_vqvae.layers.Conv2DTranspose` (Keras's layer with a fast
            kernel gradient on JAX); `keras.layers.Conv2DTranspose` gives
            the same outputs and weights.
        **kwargs: base layer keyword arguments, such as `name` and `dtype`.

    Call arguments:
        inputs: float tensor `(batch, height, width, channels)`.

    Returns:
        A tensor `(batch, height * 2**num_upsamples,
        width * 2**num_upsamples, output_channels)`.

    Example:

    >>> decoder = Decoder(128, 2, 32, output_channels=3, num_upsamples=2)
    >>> decoder(keras.ops.zeros((1, 8, 8, 64))).shape
    (1, 32, 32, 3)
    """

    def __init__(
        self,
        hidden_dim,
        num_residual_layers,
        residual_hidden_dim,
        output_channels,
        num_upsamples=2,
        upsampling_layer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if num_upsamples < 1:
            raise ValueError(
                "`num_upsamples` must be >= 1. "
                f"Received: num_upsamples={num_upsamples}"
            )
        upsampling_layer = resolve_upsampling_layer(upsampling_layer)
        # === Layers ===
        self.conv = keras.layers.Conv2D(
            hidden_dim,
            3,
            padding="same",
            dtype=self.dtype_policy,
            name="conv3x3",
        )
        self.residual_stack = ResidualStack(
            hidden_dim,
            num_residual_layers,
            residual_hidden_dim,
            dtype=self.dtype_policy,
            name="residual_stack",
        )
        self.upsamples = [
            upsampling_layer(
                output_channels if i == num_upsamples - 1 else hidden_dim // 2,
                4,
                strides=2,
                padding="same",
                dtype=self.dtype_policy,
                name=f"up_{i}",
            )
            for i in range(num_upsamples)
        ]
        # === Config ===
        self.hidden_dim = hidden_dim
        self.num_residual_layers = num_residual_layers
        self.residual_hidden_dim = residual_hidden_dim
        self.output_channels = output_channels
        self.num_upsamples = num_upsamples
        self.upsampling_layer = upsampling_layer

    def build(self, input_shape):
        shape = tuple(input_shape)
        for layer in [self.conv, self.residual_stack] + self.upsamples:
            layer.build(shape)
            shape = layer.compute_output_shape(shape)

    def call(self, inputs):
        x = self.residual_stack(self.conv(inputs))
        for conv in self.upsamples[:-1]:
            x = ops.relu(conv(x))
        return self.upsamples[-1](x)

    def compute_output_shape(self, input_shape):
        shape = self.conv.compute_output_shape(tuple(input_shape))
        for layer in self.upsamples:
            shape = layer.compute_output_shape(shape)
        return shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "hidden_dim": self.hidden_dim,
                "num_residual_layers": self.num_residual_layers,
                "residual_hidden_dim": self.residual_hidden_dim,
                "output_channels": self.output_channels,
                "num_upsamples": self.num_upsamples,
                "upsampling_layer": upsampling_layer_name(
                    self.upsampling_layer
                ),
            }
        )
        return config
