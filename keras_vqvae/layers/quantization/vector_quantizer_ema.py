import keras
from keras import ops

from keras_vqvae.layers.quantization.vector_quantizer import VectorQuantizer
from keras_vqvae.layers.quantization.vector_quantizer import _all_reduce_sum


@keras.saving.register_keras_serializable(package="keras_vqvae")
class VectorQuantizerEMA(VectorQuantizer):
    """Vector quantiser whose codebook follows exponential moving averages.

    The variant of the paper's appendix: instead of the codebook loss, each
    code is the moving average of the encoder outputs assigned to it. With
    `n_i` the batch's number of assignments to code `i` and `s_i` their sum
    (in data-parallel training, those of the global batch: summed across
    replicas, so every replica takes the same step):

    ```
    N_i <- decay * N_i + (1 - decay) * n_i
    m_i <- decay * m_i + (1 - decay) * s_i
    N_i <- (N_i + epsilon) / (sum(N) + K * epsilon) * sum(N)   # Laplace
    e_i <- m_i / N_i
    ```

    The codebook and the statistics `ema_cluster_size` (N) and `ema_dw` (m)
    are non-trainable weights, updated with `assign` only when
    `training=True`, as `BatchNormalization` updates its moving statistics.
    N starts at 1 and m at the initial codebook, so the codebook starts at
    its initial value and an unused code keeps its value. A code restarted
    by `dead_code_threshold` restarts with N = the threshold and
    m = its new vector times the smoothed N. The loss added is the
    commitment term alone.

    Args:
        num_embeddings: int. Codebook size K.
        embedding_dim: int. Size D of each code.
        commitment_cost: float. Weight beta of the commitment loss.
        decay: float. EMA decay. Defaults to 0.99, as in the paper.
        epsilon: float. Laplace smoothing of the cluster sizes.
        **kwargs: the other arguments of `VectorQuantizer` (`kmeans_init`,
            `dead_code_threshold`, `seed`, ...) and base layer arguments.

    Example:

    >>> quantizer = VectorQuantizerEMA(num_embeddings=512, embedding_dim=64)
    >>> z = keras.random.normal((2, 8, 8, 64))
    >>> quantized = quantizer(z, training=True)  # updates the codebook
    """

    codebook_trainable = False

    def __init__(
        self,
        num_embeddings,
        embedding_dim,
        commitment_cost=0.25,
        decay=0.99,
        epsilon=1e-5,
        **kwargs,
    ):
        super().__init__(
            num_embeddings, embedding_dim, commitment_cost, **kwargs
        )
        self.decay = float(decay)
        self.epsilon = float(epsilon)

    def build(self, input_shape):
        super().build(input_shape)
        self.ema_cluster_size = self.add_weight(
            name="ema_cluster_size",
            shape=(self.num_embeddings,),
            initializer="ones",
            trainable=False,
            autocast=False,
        )
        self.ema_dw = self.add_weight(
            name="ema_dw",
            shape=(self.num_embeddings, self.embedding_dim),
            initializer="zeros",
            trainable=False,
            autocast=False,
        )
        # A copy: JAX cannot donate one buffer shared by two variables.
        self.ema_dw.assign(ops.copy(self.codebook.value))

    def vq_loss(self, inputs, quantized):
        return self.commitment_cost * self.commitment_loss(inputs, quantized)

    def _update_codebook(self, flat_inputs, flat_indices, counts):
        decay = self.decay
        cluster_size = decay * self.ema_cluster_size + (1.0 - decay) * counts
        # Summed over the replicas, as `counts` (already global) is.
        dw = _all_reduce_sum(self._cluster_sums(flat_inputs, flat_indices))
        ema_dw = decay * self.ema_dw + (1.0 - decay) * dw
        smoothed = self._smoothed_cluster_size(cluster_size)
        self.ema_cluster_size.assign(cluster_size)
        self.ema_dw.assign(ema_dw)
        self.codebook.assign(ema_dw / smoothed[:, None])

    def _smoothed_cluster_size(self, cluster_size):
        """Laplace-smoothed cluster sizes: the divisor of `ema_dw`."""
        total = ops.sum(cluster_size)
        return (
            (cluster_size + self.epsilon)
            / (total + self.num_embeddings * self.epsilon)
            * total
        )

    def _replace_codes(self, new_codebook, replaced, cluster_size=None):
        # A restarted code's statistics are those of a cluster of
        # `cluster_size` (the dead-code threshold, which its usage restarts
        # at too) at its new vector, not the near-zero N of a long-dead
        # code: a light cluster, so the next updates pull it quickly to the
        # mean of its new assignments, and an unused one stays in place
        # instead of shrinking towards 0 as N meets the smoothing's epsilon.
        # k-means initialisation keeps the sizes (1 at the first batch).
        sizes = self.ema_cluster_size.value
        if cluster_size is not None:
            sizes = ops.where(replaced[:, 0], cluster_size, sizes)
            self.ema_cluster_size.assign(sizes)
        # m = e * smoothed(N): the codebook is m / smoothed(N), as the
        # update computes it, with the replaced rows at their new vectors.
        smoothed = self._smoothed_cluster_size(sizes)[:, None]
        ema_dw = ops.where(replaced, new_codebook * smoothed, self.ema_dw.value)
        self.ema_dw.assign(ema_dw)
        if cluster_size is not None:
            # The new total of N shifts the others' smoothing (~epsilon).
            new_codebook = ops.where(replaced, new_codebook, ema_dw / smoothed)
        self.codebook.assign(new_codebook)

    def get_config(self):
        config = super().get_config()
        config.update({"decay": self.decay, "epsilon": self.epsilon})
        return config
