import keras
from keras import ops

from keras_vqvae.layers.conv2d_transpose import Conv2DTranspose
from keras_vqvae.layers.residual_stack import ResidualStack


@keras.saving.register_keras_serializable(package="keras_vqvae")
class Decoder(keras.layers.Layer):
    """The paper's decoder: residual blocks, then strided 4x4 transposed convs.

    A 3x3 convolution, a `ResidualStack`, and `num_upsamples` stride-2 4x4
    transposed convolutions (ReLU between them; all but the last with
    `num_hiddens // 2` channels, the last with `output_channels` and no
    activation). The spatial size grows by `2 ** num_upsamples`.

    Args:
        num_hiddens: int. Channels of the residual blocks.
        num_residual_layers: int. Number of residual blocks.
        num_residual_hiddens: int. Channels inside each residual block.
        output_channels: int. Channels of the output images.
        num_upsamples: int. Number of stride-2 transposed convolutions.
        **kwargs: base layer keyword arguments.

    Example:

    >>> decoder = Decoder(128, 2, 32, output_channels=3, num_upsamples=2)
    >>> decoder(keras.ops.zeros((1, 8, 8, 64))).shape
    (1, 32, 32, 3)
    """

    def __init__(
        self,
        num_hiddens,
        num_residual_layers,
        num_residual_hiddens,
        output_channels,
        num_upsamples=2,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if num_upsamples < 1:
            raise ValueError(
                f"`num_upsamples` must be >= 1; received {num_upsamples}."
            )
        self.num_hiddens = num_hiddens
        self.num_residual_layers = num_residual_layers
        self.num_residual_hiddens = num_residual_hiddens
        self.output_channels = output_channels
        self.num_upsamples = num_upsamples
        self.conv = keras.layers.Conv2D(
            num_hiddens, 3, padding="same", name="conv3x3"
        )
        self.residual_stack = ResidualStack(
            num_hiddens,
            num_residual_layers,
            num_residual_hiddens,
            name="residual_stack",
        )
        self.upsamples = [
            Conv2DTranspose(
                output_channels if i == num_upsamples - 1 else num_hiddens // 2,
                4,
                strides=2,
                padding="same",
                name=f"up_{i}",
            )
            for i in range(num_upsamples)
        ]

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
                "num_hiddens": self.num_hiddens,
                "num_residual_layers": self.num_residual_layers,
                "num_residual_hiddens": self.num_residual_hiddens,
                "output_channels": self.output_channels,
                "num_upsamples": self.num_upsamples,
            }
        )
        return config
