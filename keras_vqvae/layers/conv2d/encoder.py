import keras
from keras import ops

from keras_vqvae.layers.conv2d.residual_stack import ResidualStack


@keras.saving.register_keras_serializable(package="keras_vqvae")
class Encoder(keras.layers.Layer):
    """The paper's image encoder: strided 4x4 convolutions, residual blocks.

    `num_downsamples` stride-2 4x4 convolutions (each followed by ReLU; all
    but the last with `hidden_dim // 2` channels), a 3x3 convolution and a
    `ResidualStack`. The spatial size shrinks by `2 ** num_downsamples`.

    Args:
        hidden_dim: int. Channels of the output.
        num_residual_layers: int. Residual blocks at the end.
        residual_hidden_dim: int. Channels inside each residual block.
        num_downsamples: int. Number of stride-2 convolutions.
        **kwargs: base layer keyword arguments, such as `name` and `dtype`.

    Call arguments:
        inputs: float images `(batch, height, width, channels)`.

    Returns:
        A tensor `(batch, height / 2**num_downsamples,
        width / 2**num_downsamples, hidden_dim)`.

    Example:

    >>> encoder = Encoder(128, 2, 32, num_downsamples=2)
    >>> encoder(keras.ops.zeros((1, 32, 32, 3))).shape
    (1, 8, 8, 128)
    """

    def __init__(
        self,
        hidden_dim,
        num_residual_layers,
        residual_hidden_dim,
        num_downsamples=2,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if num_downsamples < 1:
            raise ValueError(
                "`num_downsamples` must be >= 1. "
                f"Received: num_downsamples={num_downsamples}"
            )
        # === Layers ===
        self.downsamples = [
            keras.layers.Conv2D(
                hidden_dim if i == num_downsamples - 1 else hidden_dim // 2,
                4,
                strides=2,
                padding="same",
                dtype=self.dtype_policy,
                name=f"down_{i}",
            )
            for i in range(num_downsamples)
        ]
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
        # === Config ===
        self.hidden_dim = hidden_dim
        self.num_residual_layers = num_residual_layers
        self.residual_hidden_dim = residual_hidden_dim
        self.num_downsamples = num_downsamples

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
                "hidden_dim": self.hidden_dim,
                "num_residual_layers": self.num_residual_layers,
                "residual_hidden_dim": self.residual_hidden_dim,
                "num_downsamples": self.num_downsamples,
            }
        )
        return config
