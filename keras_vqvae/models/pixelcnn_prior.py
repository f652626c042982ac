"""Gated PixelCNN prior over VQ-VAE code maps.

The VQ-VAE paper (van den Oord et al. 2017) fits an autoregressive prior
over the discrete latent grid (integers in `[0, K)` of shape `(H, W)`)
after training the autoencoder; new images are made by sampling a code map
from the prior and decoding it. This module provides that prior as a gated
PixelCNN (van den Oord et al. 2016, "Conditional Image Generation with
PixelCNN Decoders"), written with `keras.ops` / `keras.layers` only so it
runs on the TensorFlow, JAX and PyTorch backends.

"""

import math

import keras
import numpy as np
from keras import ops

from keras_vqvae.errors import DataError
from keras_vqvae.layers import GatedPixelCNNBlock
from keras_vqvae.models.base import Model
from keras_vqvae.models.sampling import compile_loop
from keras_vqvae.models.sampling import inverse_cdf_draw


@keras.saving.register_keras_serializable(package="keras_vqvae")
class PixelCNNPrior(Model):
    """Gated PixelCNN autoregressive prior over discrete code maps.

    The joint distribution over a code map `z` of shape `(H, W)` is
    factorised in raster order, `p(z) = prod_i p(z_i | z_<i [, y])`; the
    model outputs the logits of every conditional in one pass.

    Args:
        num_embeddings: int. Codebook size `K`; codes are ints in `[0, K)`.
        latent_shape: tuple `(H, W)` of the code maps.
        hidden_dim: int. Channels of both stacks (and of the code
            embedding).
        num_layers: int. Number of gated blocks (the first is mask type A).
        kernel_size: int. Odd kernel size `k` of the gated blocks (vertical
            convolution `(k//2+1) x k`, horizontal `1 x (k//2+1)`).
        num_classes: int or None. If set, the model is class conditional
            and expects integer labels in `[0, num_classes)`.
        head_dim: int. Channels of the hidden 1x1 convolution of the head
            (defaults to `hidden_dim`).
        condition_dim: int or None. If set, the model is also conditioned
            on a map `(B, H, W, condition_dim)` known before sampling
            starts (`ActionConditionalPrior` computes it from past frames
            and an action), added to every block's gates position by
            position.
        **kwargs: `name`, `dtype`, `trainable`.

    Call arguments:
        inputs: int codes `(B, H, W)`; when class conditional a tuple
            `(codes, labels)` or a dict `{"codes": ..., "labels": ...}`
            with labels of shape `(B,)`; with a condition map a dict
            holding it as `"condition"`.

    Returns:
        Logits of shape `(B, H, W, K)`; `logits[b, i, j]` depends only on
        codes at raster positions before `(i, j)` (and on the label and the
        condition map).

    Example:

    >>> prior = PixelCNNPrior(num_embeddings=512, latent_shape=(8, 8))
    >>> prior.compile(optimizer="adam")  # sparse cross-entropy on logits
    >>> prior.fit(codes, codes, epochs=10)  # codes: int (N, 8, 8)
    >>> nll = -prior.log_prob(codes)  # nats per code map
    >>> new_codes = prior.sample(64, seed=0)  # int32 numpy (64, 8, 8)
    """

    # Stored beside the VQ-VAE in the same preset folder.
    preset_kind = "prior"

    def __init__(
        self,
        num_embeddings,
        latent_shape,
        hidden_dim=128,
        num_layers=12,
        kernel_size=5,
        num_classes=None,
        head_dim=None,
        condition_dim=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        latent_shape = tuple(int(s) for s in latent_shape)
        if len(latent_shape) != 2 or min(latent_shape) < 1:
            raise ValueError(
                f"`latent_shape` must be (H, W) with H, W >= 1, got {latent_shape}."
            )
        if int(num_layers) < 1:
            raise ValueError(f"`num_layers` must be >= 1, got {num_layers}.")
        self.num_embeddings = int(num_embeddings)
        self.latent_shape = latent_shape
        self.hidden_dim = int(hidden_dim)
        self.num_layers = int(num_layers)
        self.kernel_size = int(kernel_size)
        self.num_classes = None if num_classes is None else int(num_classes)
        self.head_dim = self.hidden_dim if head_dim is None else int(head_dim)
        self.condition_dim = (
            None if condition_dim is None else int(condition_dim)
        )

        self.code_embedding = keras.layers.Embedding(
            self.num_embeddings, self.hidden_dim, name="code_embedding"
        )
        self.blocks = [
            GatedPixelCNNBlock(
                self.hidden_dim,
                kernel_size=self.kernel_size,
                mask_type="A" if i == 0 else "B",
                num_classes=self.num_classes,
                condition_dim=self.condition_dim,
                name=f"gated_block_{i}",
            )
            for i in range(self.num_layers)
        ]
        self.head_hidden = keras.layers.Conv2D(
            self.head_dim, 1, data_format="channels_last", name="head_hidden"
        )
        self.head_logits = keras.layers.Conv2D(
            self.num_embeddings,
            1,
            data_format="channels_last",
            name="head_logits",
        )
        # Per-instance cache of compiled sampling functions (not tracked).
        object.__setattr__(self, "_sampler_cache", {})
        self.build()

    def build(self, input_shape=None):
        if self.built:
            return
        h, w = self.latent_shape
        c = self.hidden_dim
        self.code_embedding.build((None, h, w))
        for block in self.blocks:
            block.build((None, h, w, c))
        self.head_hidden.build((None, h, w, c))
        self.head_logits.build((None, h, w, self.head_dim))
        self.built = True

    @property
    def conditional(self):
        return self.num_classes is not None

    def _split_inputs(self, inputs, labels=None):
        """`(codes, labels, condition)` from the call's inputs."""
        condition = None
        if isinstance(inputs, dict):
            codes = inputs["codes"]
            labels = inputs.get("labels", labels)
            condition = inputs.get("condition")
        elif isinstance(inputs, (tuple, list)):
            if len(inputs) == 1:
                codes = inputs[0]
            elif len(inputs) == 2:
                codes, labels = inputs
            else:
                raise ValueError(
                    "Expected `codes` or `(codes, labels)`, got a sequence of "
                    f"length {len(inputs)}."
                )
        else:
            codes = inputs
        if self.conditional and labels is None:
            raise ValueError(
                f"This prior is class conditional (num_classes={self.num_classes}); "
                "call it with `(codes, labels)`."
            )
        if not self.conditional and labels is not None:
            raise ValueError(
                "Labels were given but this prior is unconditional "
                "(num_classes=None)."
            )
        if (condition is None) != (self.condition_dim is None):
            raise ValueError(
                f"This prior has condition_dim={self.condition_dim}: call it "
                "with a dict holding a `condition` map "
                "(B, H, W, condition_dim) exactly when that is set."
            )
        return codes, labels, condition

    def _features(self, codes, labels, condition=None):
        """Horizontal-stack features (B, H, W, hidden_dim)."""
        x = self.code_embedding(ops.cast(codes, "int32"))
        v = h = x
        for block in self.blocks:
            v, h = block(v, h, labels, condition)
        return h

    def _head(self, h):
        x = self.head_hidden(ops.relu(h))
        return self.head_logits(ops.relu(x))

    def call(self, inputs, training=None):
        return self._head(self._features(*self._split_inputs(inputs)))

    def compute_output_shape(self, input_shape):
        if isinstance(input_shape, dict):
            input_shape = input_shape["codes"]
        elif (
            isinstance(input_shape, (tuple, list))
            and input_shape
            and isinstance(input_shape[0], (tuple, list))
        ):
            input_shape = input_shape[0]
        return tuple(input_shape) + (self.num_embeddings,)

    def compile(self, optimizer="adam", loss=None, **kwargs):
        """Like `keras.Model.compile`, with the loss defaulting to
        `SparseCategoricalCrossentropy(from_logits=True)`."""
        if loss is None:
            loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        super().compile(optimizer=optimizer, loss=loss, **kwargs)

    def log_prob(self, codes, labels=None, batch_size=256):
        """Per-example log-likelihood `log p(codes [| labels])` in nats.

        Args:
            codes: int array `(N, H, W)`.
            labels: int array `(N,)` (class-conditional models only).
            batch_size: examples per forward pass.

        Returns:
            float32 numpy array `(N,)`: the sum over all `H * W` positions
            of `log softmax(logits)[code]`.
        """
        codes = np.asarray(ops.convert_to_numpy(codes))
        if not np.issubdtype(codes.dtype, np.integer) or (
            codes.size
            and (codes.min() < 0 or codes.max() >= self.num_embeddings)
        ):
            raise DataError(
                f"Code maps must hold integers in [0, {self.num_embeddings}). "
                f"Received: dtype={codes.dtype}"
                + (
                    f", values in [{codes.min()}, {codes.max()}]"
                    if codes.size and np.issubdtype(codes.dtype, np.number)
                    else ""
                )
            )
        codes = codes.astype("int32")
        if labels is not None:
            labels = self._check_labels(labels)
        n = codes.shape[0]
        out = []
        for start in range(0, n, int(batch_size)):
            c = codes[start : start + batch_size]
            inputs = (
                c if labels is None else (c, labels[start : start + batch_size])
            )
            logits = ops.cast(self(inputs, training=False), "float32")
            logp = ops.log_softmax(logits, axis=-1)
            picked = ops.take_along_axis(
                logp, ops.expand_dims(ops.convert_to_tensor(c), -1), axis=-1
            )
            out.append(ops.convert_to_numpy(ops.sum(picked, axis=(1, 2, 3))))
        if not out:
            return np.zeros((0,), "float32")
        return np.concatenate(out).astype("float32")

    def bits_per_code(self, codes, labels=None, batch_size=256):
        """Mean negative log-likelihood in bits per code position.

        This is the prior's own figure; the VQ-VAE's bound in bits per
        pixel dimension is `keras_vqvae.metrics.vqvae_bits_per_dim`.
        """
        lp = self.log_prob(codes, labels=labels, batch_size=batch_size)
        h, w = self.latent_shape
        return float(-np.mean(lp) / (h * w * math.log(2.0)))

    def _sample_loop(self, uniforms, labels, condition, inv_temperature):
        """Raster-order ancestral sampling, incremental (Fast PixelCNN++,
        Ramachandran et al. 2017), written with keras.ops only.

        `uniforms`: float32 `(H*W, n)` in `(0, 1]`; position `p` of
        example `b` is drawn by inverse-CDF sampling of
        `softmax(logits * inv_temperature)` with `uniforms[p, b]`.

        Every step computes only what the new position changes, from
        caches of what the blocks' convolutions see:

        * per row `r` (outer `fori_loop`), each block's vertical stack for
          that one row (`GatedPixelCNNBlock.vertical_row`) from a cache of
          its last `k//2 + 1` padded input rows (the first block's input
          is the embedded codes shifted down a row, so all of it is known
          once row `r - 1` is drawn; later blocks' newest row is the
          previous block's output row), and the `v_to_h` link for the whole
          row;
        * per position `(r, j)` (inner `fori_loop`), each block's
          horizontal stack at that one position
          (`GatedPixelCNNBlock.horizontal_step`) from a cache of its last
          `k//2 + 1` inputs in the row, then the head and the draw.

        The logits are those of `call` to float rounding, so the draws are
        those of `_sample_loop_reference` (bar the rare uniform that falls
        within float rounding of a CDF step, after which that sample goes
        its own way), at about `1/30` of its arithmetic for a 32x32 map.
        """
        h, w = self.latent_shape
        c = self.hidden_dim
        p = self.kernel_size // 2
        n = ops.shape(uniforms)[1]
        u_grid = ops.reshape(uniforms, (h, w, n))
        col_ids = ops.arange(w, dtype="int32")[None, :]
        row_ids = ops.arange(h, dtype="int32")[None, :, None]
        dtype = self.blocks[0].compute_dtype
        head_dtype = self.head_hidden.compute_dtype
        # Loop invariants, computed (and cast) once.
        table = ops.cast(
            self.code_embedding(ops.arange(self.num_embeddings, dtype="int32")),
            dtype,
        )
        weights = [
            block.step_weights(labels, condition) for block in self.blocks
        ]
        head = [
            ops.cast(t, head_dtype)
            for t in (
                ops.reshape(self.head_hidden.kernel, (c, self.head_dim)),
                self.head_hidden.bias,
                ops.reshape(
                    self.head_logits.kernel,
                    (self.head_dim, self.num_embeddings),
                ),
                self.head_logits.bias,
            )
        ]

        def push(window, new, size):
            """Drops the oldest `size` entries of axis 1, appends `new`."""
            if p == 0:
                return new
            return ops.concatenate([window[:, size:], new], axis=1)

        def pad_row(row):  # (n, 1, W, C) -> (n, 1, W + 2p, C)
            return ops.pad(row, [[0, 0], [0, 0], [p, p], [0, 0]])

        def row_body(r, state):
            codes, v_windows = state
            # The vertical stack for row r, block by block; block 0's window
            # (rows r-1-p .. r-1 of the codes) was completed after row r-1.
            new_windows, v_hs = [v_windows[0]], []
            v_row = None
            for i, block in enumerate(self.blocks):
                window = (
                    v_windows[0] if i == 0 else push(v_windows[i], v_row, 1)
                )
                if i > 0:
                    new_windows.append(window)
                v_h, v_out = block.vertical_row(window, weights[i], r)
                v_hs.append(ops.transpose(v_h, (1, 0, 2)))  # (W, n, 2C)
                v_row = pad_row(v_out)
            u_row = ops.take(u_grid, r, axis=0)  # (W, n)

            def col_body(j, col_state):
                row, h_windows = col_state
                # Block 0's window (columns j-1-p .. j-1) was completed at j-1.
                new_h_windows = [h_windows[0]]
                x = None
                for i, block in enumerate(self.blocks):
                    window = (
                        h_windows[0] if i == 0 else push(h_windows[i], x, c)
                    )
                    if i > 0:
                        new_h_windows.append(window)
                    v_h = v_hs[i][j]  # (n, 2C); indexing: cheaper on torch
                    x = block.horizontal_step(window, v_h, weights[i])
                if head_dtype != dtype:
                    x = ops.cast(x, head_dtype)
                x = ops.relu(ops.matmul(ops.relu(x), head[0]) + head[1])
                logits = ops.matmul(x, head[2]) + head[3]
                new = inverse_cdf_draw(
                    ops.cast(logits, "float32"),
                    u_row[j],
                    inv_temperature,
                )
                new_h_windows[0] = push(
                    h_windows[0], ops.take(table, new, axis=0), c
                )
                row = ops.where(col_ids == j, new[:, None], row)
                return row, new_h_windows

            h_windows = [ops.zeros((n, (p + 1) * c), dtype)] * len(self.blocks)
            row, _ = ops.fori_loop(
                0, w, col_body, (ops.zeros((n, w), dtype="int32"), h_windows)
            )
            codes = ops.where(row_ids == r, ops.expand_dims(row, 1), codes)
            new_windows[0] = push(
                v_windows[0], pad_row(ops.take(table, row, axis=0)[:, None]), 1
            )
            return codes, new_windows

        codes0 = ops.zeros((n, h, w), dtype="int32")
        v_windows = [ops.zeros((n, p + 1, w + 2 * p, c), dtype)] * len(
            self.blocks
        )
        codes, _ = ops.fori_loop(0, h, row_body, (codes0, v_windows))
        return codes

    def _sample_loop_reference(
        self, uniforms, labels, condition, inv_temperature
    ):
        """The previous, non-incremental sampler (`sample(...,
        method="reference")`), kept to check and benchmark `_sample_loop`
        against: same arguments, same draws.

        Two nested `fori_loop`s. The vertical stack of row `r` only sees
        rows `< r`, so it is evaluated once per row (on the full grid);
        inside the row only the (row-local) horizontal stack is re-run on
        that single row for every column, and the output head only on the
        one position being sampled.
        """
        h, w = self.latent_shape
        k = self.num_embeddings
        c = self.hidden_dim
        n = ops.shape(uniforms)[1]
        u_grid = ops.reshape(uniforms, (h, w, n))
        col_ids = ops.arange(w, dtype="int32")[None, :]
        row_ids = ops.arange(h, dtype="int32")[None, :, None]
        codes0 = ops.zeros((n, h, w), dtype="int32")

        def row_body(r, codes):
            v = self.code_embedding(codes)
            v_rows = []
            for block in self.blocks:
                v_feat, v = block.vertical(v, labels, condition)
                v_rows.append(ops.expand_dims(ops.take(v_feat, r, axis=1), 1))
            u_row = ops.take(u_grid, r, axis=0)  # (W, n)
            condition_row = (
                None
                if condition is None
                else ops.expand_dims(ops.take(condition, r, axis=1), 1)
            )

            def col_body(j, row):
                hx = self.code_embedding(ops.expand_dims(row, 1))  # (n,1,W,C)
                for block, v_row in zip(self.blocks, v_rows):
                    hx = block.horizontal(hx, v_row, labels, condition_row)
                feat = ops.take(hx, j, axis=2)  # (n, 1, C)
                logits = self._head(ops.reshape(feat, (n, 1, 1, c)))
                logits = ops.reshape(ops.cast(logits, "float32"), (n, k))
                new = inverse_cdf_draw(
                    logits, ops.take(u_row, j, axis=0), inv_temperature
                )
                return ops.where(col_ids == j, new[:, None], row)

            row = ops.fori_loop(0, w, col_body, ops.take(codes, r, axis=1))
            return ops.where(row_ids == r, ops.expand_dims(row, 1), codes)

        return ops.fori_loop(0, h, row_body, codes0)

    def _get_sampler(self, method="incremental"):
        """Returns `fn(uniforms, labels, condition, inv_temperature) ->
        codes`,
        compiled for the current backend (built once per model and method;
        the backends' own caches key it by the batch size)."""
        loops = {
            "incremental": self._sample_loop,
            "reference": self._sample_loop_reference,
        }
        if method not in loops:
            raise ValueError(
                f"`method` must be one of {sorted(loops)}, got {method!r}."
            )
        key = (keras.backend.backend(), method)
        if key not in self._sampler_cache:
            self._sampler_cache[key] = compile_loop(self, loops[method])
        return self._sampler_cache[key]

    def _draw_uniforms(self, n, seed=None):
        """float32 `(H*W, n)` uniforms in `(0, 1]` used by `sample`."""
        h, w = self.latent_shape
        rng = np.random.default_rng(seed)
        return (1.0 - rng.random((h * w, n))).astype("float32")

    def sample(
        self,
        n,
        labels=None,
        temperature=1.0,
        seed=None,
        batch_size=None,
        verbose=0,
        method="incremental",
        condition=None,
    ):
        """Draws `n` code maps by ancestral sampling in raster order.

        The whole `H * W`-step loop runs inside one compiled function
        (`tf.function` on TensorFlow, `jax.jit` on JAX; an eager
        `no_grad` loop on PyTorch). Each step computes only what the new
        position changes, from caches of every block's activations for the
        rows and positions already drawn (see `_sample_loop`); each
        position is drawn from `softmax(logits / temperature)` by
        inverse-CDF sampling with uniforms from
        `numpy.random.default_rng(seed)`.

        Args:
            n: number of samples.
            labels: class-conditional models only: an int (same class for
                all samples) or an int array `(n,)`.
            temperature: softmax temperature (> 0); lower is greedier.
            seed: int for reproducible samples, or `None`.
            batch_size: samples per compiled call (defaults to `n`); the
                last chunk is padded so only one shape is ever compiled.
                The samples do not depend on it.
            verbose: 0 or 1. 1 shows a progress bar over the chunks.
            method: `"incremental"` (the default) or `"reference"`: the
                former sampler (`_sample_loop_reference`), which re-runs
                the vertical stack on the whole map once per row and the
                horizontal stack on the whole row once per position. The
                same samples (logits equal to float rounding), 3-5x slower
                at 8x8 and 10-20x at 32x32; kept to test and benchmark the
                incremental one against.
            condition: models with `condition_dim` only: the float map
                `(n, H, W, condition_dim)` each sample is conditioned on.

        Returns:
            int32 numpy array `(n, H, W)` with values in `[0, K)`.
        """
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(
                f"`n` must be an integer >= 0 (the number of samples). "
                f"Received: n={n!r}"
            )
        n = int(n)
        temperature = float(temperature)
        if not temperature > 0:
            raise ValueError(f"`temperature` must be > 0, got {temperature}.")
        if self.conditional:
            if labels is None:
                raise ValueError(
                    "This prior is class conditional; pass `labels` to `sample`."
                )
            labels = self._check_labels(labels)
            if labels.size == 1:
                labels = np.full((n,), labels[0], "int32")
            if labels.shape[0] != n:
                raise ValueError(f"Expected {n} labels, got {labels.shape[0]}.")
        elif labels is not None:
            raise ValueError(
                "Labels were given but this prior is unconditional."
            )
        condition = self._check_condition(condition, n)

        h, w = self.latent_shape
        if n == 0:
            return np.zeros((0, h, w), "int32")
        uniforms = self._draw_uniforms(n, seed)

        bs = n if batch_size is None else max(1, min(int(batch_size), n))
        fn = self._get_sampler(method)
        progress = keras.utils.Progbar(n, verbose=verbose, unit_name="sample")
        out = []
        for start in range(0, n, bs):
            u = uniforms[:, start : start + bs]
            lab = None if labels is None else labels[start : start + bs]
            cond = None if condition is None else condition[start : start + bs]
            m = u.shape[1]
            if m < bs:  # pad to a single compiled shape
                u = np.concatenate(
                    [u, np.ones((h * w, bs - m), "float32")], axis=1
                )
                if lab is not None:
                    lab = np.concatenate([lab, np.zeros((bs - m,), "int32")])
                if cond is not None:
                    cond = np.concatenate(
                        [cond, np.zeros((bs - m,) + cond.shape[1:], cond.dtype)]
                    )
            codes = fn(u, lab, cond, float(1.0 / temperature))
            out.append(np.asarray(ops.convert_to_numpy(codes))[:m])
            progress.add(m)
        return np.concatenate(out, axis=0).astype("int32")

    def _check_condition(self, condition, n):
        """The condition map as float32 numpy `(n, H, W, D)`, or None."""
        if self.condition_dim is None:
            if condition is not None:
                raise ValueError(
                    "A `condition` map was given but this prior has none "
                    "(condition_dim=None)."
                )
            return None
        expected = (n, *self.latent_shape, self.condition_dim)
        if condition is None:
            raise ValueError(
                f"This prior is conditioned on a map: pass `condition` of "
                f"shape {expected}."
            )
        condition = np.asarray(ops.convert_to_numpy(condition), "float32")
        if condition.shape != expected:
            raise ValueError(
                f"`condition` must have shape {expected}. Received: "
                f"{condition.shape}"
            )
        return condition

    def _check_labels(self, labels):
        """int32 labels `(N,)`, or a `DataError` unless all lie in
        `[0, num_classes)`."""
        labels = np.asarray(ops.convert_to_numpy(labels)).reshape(-1)
        if not np.issubdtype(labels.dtype, np.integer) or (
            self.conditional
            and labels.size
            and (labels.min() < 0 or labels.max() >= self.num_classes)
        ):
            shown = labels.tolist()[:8]
            raise DataError(
                f"Class labels must be integers in [0, {self.num_classes}) "
                f"for this prior. Received: labels={shown}"
                f"{' ...' if labels.size > 8 else ''}"
            )
        return labels.astype("int32")

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_embeddings": self.num_embeddings,
                "latent_shape": list(self.latent_shape),
                "hidden_dim": self.hidden_dim,
                "num_layers": self.num_layers,
                "kernel_size": self.kernel_size,
                "num_classes": self.num_classes,
                "head_dim": self.head_dim,
                "condition_dim": self.condition_dim,
            }
        )
        return config
