import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_vqvae")
class AudioEncoder(keras.layers.Layer):
    """The paper's speech encoder: strided 1-D convolutions.

    `num_downsamples` convolutions of window `kernel_size` and stride 2,
    each followed by ReLU (section 4.3: six of them, window 4, so the
    code rate is the sample rate / 64).

    Args:
        hidden_dim: int. Channels of every convolution.
        num_downsamples: int. Number of stride-2 convolutions.
        kernel_size: int. Window of each convolution.
        **kwargs: base layer keyword arguments, such as `name` and `dtype`.

    Call arguments:
        inputs: float audio `(batch, time, 1)`.

    Returns:
        A tensor `(batch, time / 2**num_downsamples, hidden_dim)`.

    Example:

    >>> encoder = AudioEncoder(64)
    >>> encoder(keras.ops.zeros((1, 1024, 1))).shape
    (1, 16, 64)
    """

    def __init__(self, hidden_dim, num_downsamples=6, kernel_size=4, **kwargs):
        super().__init__(**kwargs)
        if num_downsamples < 1:
            raise ValueError(
                "`num_downsamples` must be >= 1. "
                f"Received: num_downsamples={num_downsamples}"
            )
        # === Layers ===
        self.downsamples = [
            keras.layers.Conv1D(
                hidden_dim,
                kernel_size,
                strides=2,
                padding="same",
                dtype=self.dtype_policy,
                name=f"down_{i}",
            )
            for i in range(num_downsamples)
        ]
        # === Config ===
        self.hidden_dim = hidden_dim
        self.num_downsamples = num_downsamples
        self.kernel_size = kernel_size

    def build(self, input_shape):
        shape = tuple(input_shape)
        for conv in self.downsamples:
            conv.build(shape)
            shape = conv.compute_output_shape(shape)

    def call(self, inputs):
        x = inputs
        for conv in self.downsamples:
            x = ops.relu(conv(x))
        return x

    def compute_output_shape(self, input_shape):
        shape = tuple(input_shape)
        for conv in self.downsamples:
            shape = conv.compute_output_shape(shape)
        return shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "hidden_dim": self.hidden_dim,
                "num_downsamples": self.num_downsamples,
                "kernel_size": self.kernel_size,
            }
        )
        return config
