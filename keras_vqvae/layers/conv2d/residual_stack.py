import keras
from keras import ops


def residual_relu(x):
    """`relu(x)` of a tensor that a residual connection also adds on.

    The same values as `ops.relu`; the gradient differs only where `x` is
    exactly 0. As a `Relu` op, TensorFlow's graph optimiser (its oneDNN
    "remapper") fuses it into the convolution and residual add that
    produced `x`, although the next residual add still reads `x`: the
    rewrite fails ("remapper failed: ... fanout ... exist for missing
    node"), is logged as an error, and every fusion of the graph is lost.
    `maximum(0, x)` is not matched.
    """
    return ops.maximum(0.0, x)


@keras.saving.register_keras_serializable(package="keras_vqvae")
class ResidualStack(keras.layers.Layer):
    """The paper's residual blocks: `x + conv1x1(relu(conv3x3(relu(x))))`.

    A final ReLU follows the last block, as in the paper's encoder and
    decoder (and DeepMind's Sonnet reference).

    Args:
        hidden_dim: int. Channels of the input and output.
        num_residual_layers: int. Number of residual blocks.
        residual_hidden_dim: int. Channels of each block's 3x3 convolution.
        **kwargs: base layer keyword arguments, such as `name` and `dtype`.

    Call arguments:
        inputs: float tensor `(batch, height, width, hidden_dim)`.

    Returns:
        A tensor of the input's shape.

    Example:

    >>> stack = ResidualStack(128, num_residual_layers=2,
    ...                       residual_hidden_dim=32)
    >>> stack(keras.ops.zeros((1, 8, 8, 128))).shape
    (1, 8, 8, 128)
    """

    def __init__(
        self, hidden_dim, num_residual_layers, residual_hidden_dim, **kwargs
    ):
        super().__init__(**kwargs)
        # === Layers ===
        self.convs3x3 = [
            keras.layers.Conv2D(
                residual_hidden_dim,
                3,
                padding="same",
                dtype=self.dtype_policy,
                name=f"res3x3_{i}",
            )
            for i in range(num_residual_layers)
        ]
        self.convs1x1 = [
            keras.layers.Conv2D(
                hidden_dim, 1, dtype=self.dtype_policy, name=f"res1x1_{i}"
            )
            for i in range(num_residual_layers)
        ]
        # === Config ===
        self.hidden_dim = hidden_dim
        self.num_residual_layers = num_residual_layers
        self.residual_hidden_dim = residual_hidden_dim

    def build(self, input_shape):
        if input_shape[-1] != self.hidden_dim:
            raise ValueError(
                f"ResidualStack(hidden_dim={self.hidden_dim}) expects inputs "
                f"of shape (batch, height, width, {self.hidden_dim}). "
                f"Received: input_shape={tuple(input_shape)}"
            )
        for conv3x3, conv1x1 in zip(self.convs3x3, self.convs1x1):
            conv3x3.build(input_shape)
            conv1x1.build(conv3x3.compute_output_shape(input_shape))

    def call(self, inputs):
        x = inputs
        for conv3x3, conv1x1 in zip(self.convs3x3, self.convs1x1):
            h = conv3x3(residual_relu(x))
            x = x + conv1x1(ops.relu(h))
        return ops.relu(x)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "hidden_dim": self.hidden_dim,
                "num_residual_layers": self.num_residual_layers,
                "residual_hidden_dim": self.residual_hidden_dim,
            }
        )
        return config
