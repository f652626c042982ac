import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_vqvae")
class AudioEncoder(keras.layers.Layer):
    """The paper's speech encoder: strided 1-D convolutions.

    `num_downsamples` convolutions of window `kernel_size` and stride 2,
    each followed by ReLU (section 4.3: six of them, window 4, so the
    code rate is the sample rate / 64). A `final_stride` > 1 adds one more
    convolution of that stride (window `2 * final_stride`), for code rates
    that powers of two do not reach: at 16 kHz, 7 stride-2 convolutions and
    `final_stride=5` give the paper's 25 Hz of the phoneme experiment.

    Args:
        hidden_dim: int. Channels of every convolution.
        num_downsamples: int. Number of stride-2 convolutions.
        kernel_size: int. Window of each stride-2 convolution.
        final_stride: int. Stride of an extra last convolution; 1 for none.
        **kwargs: base layer keyword arguments, such as `name` and `dtype`.

    Call arguments:
        inputs: float audio `(batch, time, 1)`.

    Returns:
        A tensor `(batch, time / (2**num_downsamples * final_stride),
        hidden_dim)`.

    Example:

    >>> encoder = AudioEncoder(64)
    >>> encoder(keras.ops.zeros((1, 1024, 1))).shape
    (1, 16, 64)
    """

    def __init__(
        self,
        hidden_dim,
        num_downsamples=6,
        kernel_size=4,
        final_stride=1,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if num_downsamples < 1:
            raise ValueError(
                "`num_downsamples` must be >= 1. "
                f"Received: num_downsamples={num_downsamples}"
            )
        if not isinstance(final_stride, int) or final_stride < 1:
            raise ValueError(
                "`final_stride` must be an integer >= 1. "
                f"Received: final_stride={final_stride!r}"
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
        if final_stride > 1:
            self.downsamples.append(
                keras.layers.Conv1D(
                    hidden_dim,
                    2 * final_stride,
                    strides=final_stride,
                    padding="same",
                    dtype=self.dtype_policy,
                    name="down_final",
                )
            )
        # === Config ===
        self.hidden_dim = hidden_dim
        self.num_downsamples = num_downsamples
        self.kernel_size = kernel_size
        self.final_stride = final_stride

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
                "final_stride": self.final_stride,
            }
        )
        return config
