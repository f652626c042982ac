import keras
from keras import ops

# Collectives for data-parallel training. Under `tf.distribute` (inside
# `strategy.run`, as `fit` calls the train step) and under `torch.distributed`
# every replica calls the layer on its own slice of the global batch, so the
# per-code statistics must be summed across replicas for all replicas to take
# the same step as one device with the whole batch. JAX's
# `keras.distribution` compiles one program for the global batch: the layer
# sees global tensors there, and these helpers do nothing; so do they on one
# device.


def _tf_replica_context():
    """The replica context of a multi-replica `tf.distribute` step, or None."""
    if keras.backend.backend() != "tensorflow":
        return None
    import tensorflow as tf

    if (
        not tf.distribute.has_strategy()
        or tf.distribute.in_cross_replica_context()
    ):
        return None
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync < 2:
        return None
    return context


def _torch_process_group():
    """`torch.distributed` when initialised with several processes, or None."""
    if keras.backend.backend() != "torch":
        return None
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return None
    if dist.get_world_size() < 2:
        return None
    return dist


def _num_replicas():
    """How many replicas share each step (a Python int; 1 on one device and
    under JAX's single-program `keras.distribution`)."""
    context = _tf_replica_context()
    if context is not None:
        return context.num_replicas_in_sync
    dist = _torch_process_group()
    if dist is not None:
        return dist.get_world_size()
    return 1


def _replica_id():
    """This replica's index in `[0, _num_replicas())` (0 when not replicated)."""
    context = _tf_replica_context()
    if context is not None:
        return context.replica_id_in_sync_group
    dist = _torch_process_group()
    if dist is not None:
        return dist.get_rank()
    return 0


def _all_reduce_sum(x):
    """`x` summed over the replicas (every replica gets the same sum)."""
    context = _tf_replica_context()
    if context is not None:
        import tensorflow as tf

        return context.all_reduce(
            tf.distribute.ReduceOp.SUM, ops.stop_gradient(x)
        )
    dist = _torch_process_group()
    if dist is not None:
        x = x.detach().clone()
        dist.all_reduce(x, op=dist.ReduceOp.SUM)
        return x
    return x


def _argmin_rows(scores):
    """`argmin(scores, axis=1)` as int32.

    On TensorFlow, `keras.ops.argmin` first maps -0.0 to a tiny negative
    number, three more passes over the N x K scores; the nearest code does
    not depend on it.
    """
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return tf.math.argmin(scores, axis=1, output_type=tf.int32)
    return ops.cast(ops.argmin(scores, axis=1), "int32")


def _all_gather(x):
    """The replicas' `x` concatenated along axis 0 in replica order (the
    global batch, for batch slices); their first axes may differ."""
    context = _tf_replica_context()
    if context is not None:
        return context.all_gather(ops.stop_gradient(x), axis=0)
    dist = _torch_process_group()
    if dist is not None:
        import torch

        x = x.detach().contiguous()
        size = torch.tensor([x.shape[0]], device=x.device)
        sizes = [torch.zeros_like(size) for _ in range(dist.get_world_size())]
        dist.all_gather(sizes, size)
        sizes = [int(s) for s in sizes]
        if max(sizes) == 0:
            return x
        padded = torch.zeros(
            (max(sizes),) + tuple(x.shape[1:]), dtype=x.dtype, device=x.device
        )
        padded[: x.shape[0]] = x
        parts = [torch.empty_like(padded) for _ in sizes]
        dist.all_gather(parts, padded)
        return torch.cat([part[:s] for part, s in zip(parts, sizes)], dim=0)
    return x


@keras.saving.register_keras_serializable(package="keras_vqvae")
class VectorQuantizer(keras.layers.Layer):
    """Vector-quantisation bottleneck of VQ-VAE (van den Oord et al., 2017).

    Each `embedding_dim`-vector of the input is replaced by its nearest entry
    of a learned codebook of `num_embeddings` vectors. Gradients pass to the
    input unchanged (straight-through estimator). The layer adds the paper's
    loss with `add_loss`:

    `||sg[z] - e||^2 + commitment_cost * ||z - sg[e]||^2`

    (the codebook term moves only the codebook, the commitment term only the
    encoder). Nearest codes come from `||z||^2 - 2 z.e + ||e||^2`, so memory
    grows as N x K, never N x K x D. Distances are computed in float32 even
    under a mixed-precision policy.

    Every call records the batch's codebook perplexity and the fraction of
    codes in use in the non-trainable weights `batch_perplexity` and
    `batch_codebook_usage`; `VQVAE` reports them in `fit` logs.

    Args:
        num_embeddings: int. Codebook size K.
        embedding_dim: int. Size D of each code; must equal the input's last
            axis.
        commitment_cost: float. Weight beta of the commitment loss. Defaults
            to 0.25, as in the paper.
        kmeans_init: bool. If True, the first training batch initialises the
            codebook with k-means on the inputs.
        kmeans_iterations: int. Lloyd iterations for `kmeans_init`.
        dead_code_threshold: float. If > 0, in training, a code whose moving
            average of assignments per batch falls below this value is
            restarted at a random input vector of the current batch, and
            its moving average is reset to the threshold, so it stays
            while it gets at least `dead_code_threshold` assignments per
            batch (and, for `VectorQuantizerEMA`, its cluster size is reset
            likewise). 0 disables restarts.
        usage_decay: float. Decay of the moving average of code usage that
            `dead_code_threshold` compares against.
        embeddings_initializer: initializer of the codebook.
        seed: int or None. Seed for k-means initialisation and restarts.
        **kwargs: base layer keyword arguments, such as `name` and `dtype`.

    Call arguments:
        inputs: float tensor `(..., embedding_dim)`.
        training: bool. In training mode, and only if the layer is
            trainable, the layer updates its state: k-means
            initialisation, dead-code restarts (and, for
            `VectorQuantizerEMA`, the moving averages).
        return_indices: bool. Also return the code indices.

    Returns:
        The quantised tensor of the input's shape (straight-through
        gradients to the input), and with `return_indices` the int32
        indices of shape `inputs.shape[:-1]`.

    Note on `trainable = False`: a frozen quantiser keeps its codebook and
    statistics even when called with `training=True` (as
    `keras.layers.BatchNormalization` keeps its moving statistics), so a
    VQ-VAE can be fine-tuned around a fixed codebook.

    Data-parallel training: every update is that of one device given the
    global batch, and every replica ends a step with the same state. With
    JAX's `keras.distribution` the layer sees the global batch (one
    program for all devices). Under `tf.distribute` (in `strategy.run`, as
    `fit` calls it) and, in training, under an initialised
    `torch.distributed` each replica calls the layer on its slice, so the
    per-code counts (the perplexity and usage statistics are the global
    batch's too) and, for `VectorQuantizerEMA`, the per-code sums are
    summed across replicas; dead codes restart at rows of the global batch
    drawn with the seed every replica holds in the same state; k-means
    initialisation runs on the gathered first batch. Every replica must
    call the layer at each step, with slices of one global batch in
    replica order (as `fit` and `experimental_distribute_dataset` give
    them). Replicated k-means initialisation gathers a batch of
    data-dependent size, which a step that TensorFlow compiles with XLA
    (`TPUStrategy`, or `jit_compile=True` with `tf.distribute`, off by
    default in `fit`) may refuse; it is tested without XLA only.

    Example:

    >>> quantizer = VectorQuantizer(num_embeddings=512, embedding_dim=64)
    >>> z = keras.random.normal((2, 8, 8, 64))
    >>> quantized, indices = quantizer(z, return_indices=True)
    >>> quantized.shape, indices.shape
    ((2, 8, 8, 64), (2, 8, 8))
    """

    codebook_trainable = True

    def __init__(
        self,
        num_embeddings,
        embedding_dim,
        commitment_cost=0.25,
        kmeans_init=False,
        kmeans_iterations=10,
        dead_code_threshold=0.0,
        usage_decay=0.99,
        embeddings_initializer=None,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_embeddings = int(num_embeddings)
        self.embedding_dim = int(embedding_dim)
        self.commitment_cost = float(commitment_cost)
        self.kmeans_init = bool(kmeans_init)
        self.kmeans_iterations = int(kmeans_iterations)
        self.dead_code_threshold = float(dead_code_threshold)
        self.usage_decay = float(usage_decay)
        self.embeddings_initializer = keras.initializers.get(
            embeddings_initializer
            or keras.initializers.VarianceScaling(
                scale=1.0, mode="fan_out", distribution="uniform", seed=seed
            )
        )
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self._check_codebook_updates_supported()

    def _check_codebook_updates_supported(self):
        updates_codebook = self.kmeans_init or self.dead_code_threshold > 0
        if (
            self.codebook_trainable
            and updates_codebook
            and keras.backend.backend() == "jax"
        ):
            raise ValueError(
                "`kmeans_init` and `dead_code_threshold` assign the codebook "
                "during training, which the JAX backend does not allow for "
                "trainable weights. Use `VectorQuantizerEMA` (its codebook is "
                "a non-trainable weight) or another backend."
            )

    def build(self, input_shape):
        self._check_input_shape(input_shape)
        self.codebook = self.add_weight(
            name="codebook",
            shape=(self.num_embeddings, self.embedding_dim),
            initializer=self.embeddings_initializer,
            trainable=self.codebook_trainable,
            autocast=False,
        )
        # The state keeps Keras's default aggregation ("none"): under
        # `tf.distribute` each replica assigns its own copy. The updates are
        # computed from statistics summed across replicas, so every replica
        # assigns the same value; "only_first_replica" would add a broadcast
        # per assign and hide a replica that computed something else.
        self.code_usage = self.add_weight(
            name="code_usage",
            shape=(self.num_embeddings,),
            initializer="ones",
            trainable=False,
            autocast=False,
        )
        self.batch_perplexity = self.add_weight(
            name="batch_perplexity",
            shape=(),
            initializer="zeros",
            trainable=False,
            autocast=False,
        )
        self.batch_codebook_usage = self.add_weight(
            name="batch_codebook_usage",
            shape=(),
            initializer="zeros",
            trainable=False,
            autocast=False,
        )
        if self.kmeans_init:
            self.initialized = self.add_weight(
                name="initialized",
                shape=(),
                initializer="zeros",
                trainable=False,
                autocast=False,
            )

    def _check_input_shape(self, shape):
        expected = f"(..., {self.embedding_dim})"
        if len(shape) < 2:
            raise ValueError(
                f"{self.__class__.__name__} expects inputs of shape {expected} "
                "with at least one leading axis, e.g. (batch, height, width, "
                f"{self.embedding_dim}); received shape {tuple(shape)}."
            )
        if shape[-1] is not None and shape[-1] != self.embedding_dim:
            raise ValueError(
                f"{self.__class__.__name__}(embedding_dim="
                f"{self.embedding_dim}) expects inputs of shape {expected}; "
                f"received shape {tuple(shape)} whose last axis is "
                f"{shape[-1]}."
            )

    def _check_input_dtype(self, inputs):
        dtype = keras.backend.standardize_dtype(inputs.dtype)
        if not keras.backend.is_float_dtype(dtype):
            raise TypeError(
                f"{self.__class__.__name__} expects floating-point inputs "
                f"of shape (..., {self.embedding_dim}); received dtype {dtype}."
            )

    def call(self, inputs, training=None, return_indices=False):
        self._check_input_shape(inputs.shape)
        self._check_input_dtype(inputs)
        z = ops.cast(inputs, "float32")
        flat = ops.reshape(z, (-1, self.embedding_dim))
        # A frozen layer keeps its state, as BatchNormalization does.
        training = bool(training) and self.trainable
        if training and self.kmeans_init:
            self._initialize_with_kmeans(flat)
        codebook = self.codebook.value
        flat_indices = self._nearest_codes(flat, codebook)
        counts = self._cluster_sums(
            ops.ones_like(flat_indices, "float32"), flat_indices
        )
        # The global batch's counts, for the statistics and the updates. On
        # torch only in training: inference may run on one process alone
        # (e.g. an evaluation on rank 0), which must not wait for the others.
        if training or keras.backend.backend() != "torch":
            counts = _all_reduce_sum(counts)
        quantized = ops.reshape(
            ops.take(codebook, flat_indices, axis=0), ops.shape(z)
        )
        self.add_loss(self.vq_loss(z, quantized))
        self._record_statistics(counts)
        if training:
            self._update_codebook(flat, flat_indices, counts)
            if self.dead_code_threshold > 0:
                self._restart_dead_codes(flat, counts)
        straight_through = z + ops.stop_gradient(quantized - z)
        outputs = ops.cast(straight_through, self.compute_dtype)
        if return_indices:
            return outputs, ops.reshape(flat_indices, ops.shape(z)[:-1])
        return outputs

    def vq_loss(self, inputs, quantized):
        """The loss this layer adds: codebook loss + beta * commitment."""
        return self.codebook_loss(
            inputs, quantized
        ) + self.commitment_cost * self.commitment_loss(inputs, quantized)

    def codebook_loss(self, inputs, quantized):
        """`||sg[z] - e||^2`: pulls the codebook towards encoder outputs."""
        return ops.mean(ops.square(ops.stop_gradient(inputs) - quantized))

    def commitment_loss(self, inputs, quantized):
        """`||z - sg[e]||^2`: keeps encoder outputs close to their codes."""
        return ops.mean(ops.square(inputs - ops.stop_gradient(quantized)))

    def _update_codebook(self, flat_inputs, flat_indices, counts):
        """Hook for codebooks not learned by gradient descent (EMA)."""

    def _cluster_sums(self, values, flat_indices):
        """Sums `values` per assigned code (a segment sum, not an N x K
        one-hot matmul: several times faster for large N and K)."""
        return ops.segment_sum(
            values, flat_indices, num_segments=self.num_embeddings
        )

    def _nearest_codes(self, flat_inputs, codebook):
        # argmin_k ||x - e_k||^2 = argmin_k (||e_k||^2 - 2 x.e_k): ||x||^2
        # is the same for every code, and adding it is one N x K pass more.
        scores = ops.sum(ops.square(codebook), axis=1)[None, :] - 2.0 * (
            ops.matmul(flat_inputs, ops.transpose(codebook))
        )
        return _argmin_rows(scores)

    def get_indices(self, inputs):
        """Returns the index of the nearest code of each input vector.

        Args:
            inputs: float tensor of shape `(..., embedding_dim)`.

        Returns:
            int32 tensor of shape `inputs.shape[:-1]`. Changes no state.
        """
        self._check_input_shape(inputs.shape)
        self._check_input_dtype(inputs)
        z = ops.cast(inputs, "float32")
        flat = ops.reshape(z, (-1, self.embedding_dim))
        flat_indices = self._nearest_codes(flat, self.codebook.value)
        return ops.reshape(flat_indices, ops.shape(z)[:-1])

    def lookup(self, indices):
        """Looks up codebook vectors (`Layer.quantize` is Keras's int8 API).

        Args:
            indices: int tensor of any shape with values in
                `[0, num_embeddings)`.

        Returns:
            float tensor of shape `indices.shape + (embedding_dim,)`.
        """
        indices = ops.convert_to_tensor(indices)
        dtype = keras.backend.standardize_dtype(indices.dtype)
        if "int" not in dtype:
            raise TypeError(
                f"`lookup` expects integer code indices in [0, "
                f"{self.num_embeddings}); received dtype {dtype}."
            )
        vectors = ops.take(
            self.codebook.value, ops.cast(indices, "int32"), axis=0
        )
        return ops.cast(vectors, self.compute_dtype)

    def _record_statistics(self, counts):
        # The last call's per-code counts, read by the model's epoch-wide
        # usage metric in the same traced step (not a weight: it is
        # neither saved nor restored).
        object.__setattr__(self, "last_counts", counts)
        probabilities = counts / ops.maximum(ops.sum(counts), 1.0)
        entropy = -ops.sum(probabilities * ops.log(probabilities + 1e-10))
        self.batch_perplexity.assign(ops.exp(entropy))
        self.batch_codebook_usage.assign(
            ops.mean(ops.cast(counts > 0, "float32"))
        )

    def _restart_dead_codes(self, flat_inputs, counts):
        usage = (
            self.usage_decay * self.code_usage
            + (1.0 - self.usage_decay) * counts
        )
        dead = usage < self.dead_code_threshold
        # A restarted code has no history: its usage restarts at the
        # threshold (as vector-quantize-pytorch resets its cluster size),
        # not at the low average that made it dead. Otherwise it stays
        # below the threshold, and is moved again every step, for as long
        # as its new assignments take to lift the average (tens of steps
        # at usage_decay=0.99) while the batches use it. From the
        # threshold, the next batch keeps it iff it gets at least
        # `dead_code_threshold` assignments; an unused one is redrawn.
        self.code_usage.assign(ops.where(dead, self.dead_code_threshold, usage))
        # Drawn for every code, used where dead: no branch on tensor values.
        candidates = self._random_batch_rows(flat_inputs, self.num_embeddings)
        self._replace_codes(
            ops.where(dead[:, None], candidates, self.codebook.value),
            dead[:, None],
            cluster_size=self.dead_code_threshold,
        )

    def _replace_codes(self, new_codebook, replaced, cluster_size=None):
        """Assigns `new_codebook`; `replaced` (K, 1) marks the changed rows.

        `cluster_size`: for codebooks with statistics (EMA), the cluster
        size the replaced codes restart with; None keeps their current
        one (k-means initialisation).
        """
        self.codebook.assign(new_codebook)

    def _random_rows(self, flat_inputs, count):
        num_rows = ops.shape(flat_inputs)[0]
        rows = keras.random.randint(
            (count,), 0, num_rows, seed=self.seed_generator
        )
        return ops.take(flat_inputs, rows, axis=0)

    def _random_batch_rows(self, flat_inputs, count):
        """`count` random rows of the global batch, the same on every
        replica: the draws of one device given the whole batch.

        The row numbers are drawn in the global batch (the replicas' slices
        in replica order) with the seed generator that every replica holds
        in the same state; each replica fills in the rows it holds, and a
        sum over the replicas (of each row and zeros) completes them, so
        only `count` rows travel, never the batch.
        """
        if _num_replicas() < 2:
            return self._random_rows(flat_inputs, count)
        num_rows = ops.cast(ops.shape(flat_inputs)[0], "int32")
        sizes = _all_gather(ops.reshape(num_rows, (1,)))
        first_row = ops.sum(
            ops.where(ops.arange(_num_replicas()) < _replica_id(), sizes, 0)
        )
        rows = keras.random.randint(
            (count,),
            0,
            ops.maximum(ops.sum(sizes), 1),
            seed=self.seed_generator,
        )
        rows = rows - first_row
        mine = ops.logical_and(rows >= 0, rows < num_rows)
        # A zero row after the slice: the index of the rows held elsewhere
        # (and safe when this replica's slice is empty).
        padded = ops.concatenate(
            [flat_inputs, ops.zeros((1, self.embedding_dim), flat_inputs.dtype)]
        )
        picked = ops.take(padded, ops.where(mine, rows, num_rows), axis=0)
        return _all_reduce_sum(ops.where(mine[:, None], picked, 0.0))

    def _initialize_with_kmeans(self, flat_inputs):
        done = self.initialized > 0.5
        if _num_replicas() > 1:
            new_codebook = self._replicated_kmeans(flat_inputs, done)
        else:
            # Drawn outside `cond`: a seed update inside a branch leaks under
            # JAX.
            starts = self._random_rows(flat_inputs, self.num_embeddings)
            new_codebook = ops.cond(
                done,
                lambda: self.codebook.value,
                lambda: self._kmeans(flat_inputs, starts),
            )
        replaced = ops.broadcast_to(
            ops.logical_not(done), (self.num_embeddings, 1)
        )
        self._replace_codes(new_codebook, replaced)
        self.initialized.assign(1.0)

    def _replicated_kmeans(self, flat_inputs, done):
        """k-means on the global batch, the same on every replica.

        The first training batch is gathered from all replicas, in replica
        order: the global batch, so the starts (drawn with the seed every
        replica holds in the same state) and the Lloyd iterations are those
        of one device given the whole batch. Replica 0 runs them and the
        others take its result, bit for bit. The collectives stay outside
        `cond` (`tf.distribute` cannot synchronise replicas inside one), so
        they run at every step; after the first, each replica sends one row
        instead of its slice (an all-empty gather crashes TensorFlow).
        """
        num_rows = ops.shape(flat_inputs)[0]
        keep = ops.where(done, ops.minimum(num_rows, 1), num_rows)
        batch = _all_gather(flat_inputs[:keep])
        starts = self._random_rows(batch, self.num_embeddings)
        first = ops.equal(_replica_id(), 0)
        new_codebook = ops.cond(
            ops.logical_or(done, ops.logical_not(first)),
            lambda: self.codebook.value,
            lambda: self._kmeans(batch, starts),
        )
        return _all_reduce_sum(ops.where(first, new_codebook, 0.0))

    def _kmeans(self, flat_inputs, centroids):
        ones = ops.ones((ops.shape(flat_inputs)[0],), "float32")
        for _ in range(self.kmeans_iterations):
            assignments = self._nearest_codes(flat_inputs, centroids)
            sizes = self._cluster_sums(ones, assignments)[:, None]
            sums = self._cluster_sums(flat_inputs, assignments)
            centroids = ops.where(
                sizes > 0, sums / ops.maximum(sizes, 1.0), centroids
            )
        return centroids

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def compute_output_spec(self, inputs, training=None, return_indices=False):
        self._check_input_shape(inputs.shape)
        outputs = keras.KerasTensor(inputs.shape, dtype=self.compute_dtype)
        if return_indices:
            return outputs, keras.KerasTensor(inputs.shape[:-1], dtype="int32")
        return outputs

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_embeddings": self.num_embeddings,
                "embedding_dim": self.embedding_dim,
                "commitment_cost": self.commitment_cost,
                "kmeans_init": self.kmeans_init,
                "kmeans_iterations": self.kmeans_iterations,
                "dead_code_threshold": self.dead_code_threshold,
                "usage_decay": self.usage_decay,
                "embeddings_initializer": keras.initializers.serialize(
                    self.embeddings_initializer
                ),
                "seed": self.seed,
            }
        )
        return config
