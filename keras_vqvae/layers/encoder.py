import keras
from keras import ops

from keras_vqvae.layers.residual_stack import ResidualStack


@keras.saving.register_keras_serializable(package="keras_vqvae")
class Encoder(keras.layers.Layer):
    """The paper's encoder: strided 4x4 convolutions, then residual blocks.

    `num_downsamples` stride-2 4x4 convolutions (each followed by ReLU; all
    but the last with `num_hiddens // 2` channels), a 3x3 convolution and a
    `ResidualStack`. The spatial size shrinks by `2 ** num_downsamples`.

    Args:
        num_hiddens: int. Channels of the output.
        num_residual_layers: int. Residual blocks at the end.
        num_residual_hiddens: int. Channels inside each residual block.
        num_downsamples: int. Number of stride-2 convolutions.
        **kwargs: base layer keyword arguments.

    Example:

    >>> encoder = Encoder(128, 2, 32, num_downsamples=2)
    >>> encoder(keras.ops.zeros((1, 32, 32, 3))).shape
    (1, 8, 8, 128)
    """

    def __init__(
        self,
        num_hiddens,
        num_residual_layers,
        num_residual_hiddens,
        num_downsamples=2,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if num_downsamples < 1:
            raise ValueError(
                f"`num_downsamples` must be >= 1; received {num_downsamples}."
            )
        self.num_hiddens = num_hiddens
        self.num_residual_layers = num_residual_layers
        self.num_residual_hiddens = num_residual_hiddens
        self.num_downsamples = num_downsamples
        self.downsamples = [
            keras.layers.Conv2D(
                num_hiddens if i == num_downsamples - 1 else num_hiddens // 2,
                4,
                strides=2,
                padding="same",
                name=f"down_{i}",
            )
            for i in range(num_downsamples)
        ]
        self.conv = keras.layers.Conv2D(
            num_hiddens, 3, padding="same", name="conv3x3"
        )
        self.residual_stack = ResidualStack(
            num_hiddens,
            num_residual_layers,
            num_residual_hiddens,
            name="residual_stack",
        )

    def build(self, input_shape):
        shape = tuple(input_shape)
        for layer in self.downsamples + [self.conv, self.residual_stack]:
            layer.build(shape)
            shape = layer.compute_output_shape(shape)

    def call(self, inputs):
        x = inputs
        for conv in self.downsamples:
            x = ops.relu(conv(x))
        return self.residual_stack(self.conv(x))

    def compute_output_shape(self, input_shape):
        shape = tuple(input_shape)
        for layer in self.downsamples + [self.conv]:
            shape = layer.compute_output_shape(shape)
        return shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_hiddens": self.num_hiddens,
                "num_residual_layers": self.num_residual_layers,
                "num_residual_hiddens": self.num_residual_hiddens,
                "num_downsamples": self.num_downsamples,
            }
        )
        return config
