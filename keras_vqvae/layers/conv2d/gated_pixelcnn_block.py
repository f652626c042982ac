"""Gated PixelCNN block (van den Oord et al. 2016, "Conditional Image
Generation with PixelCNN Decoders") without blind spot.

The block keeps two feature maps of the same shape `(B, H, W, C)`:

* the **vertical stack** `v`: the features at row `i` depend only on
  the inputs in rows *strictly above* `i` (any column within the
  receptive field);
* the **horizontal stack** `h`: the features at `(i, j)` depend only on
  inputs at raster positions *strictly before* `(i, j)`: the same row to
  the left of `j` and (through the vertical stack) every row above.

Causality is enforced by *shifted* convolutions instead of masked kernels,
so no weight is wasted and nothing has to be re-masked after an optimizer
step:

* vertical: an explicit zero padding of `k // 2` rows on top (and
  `k // 2` columns on both sides) followed by a `(k // 2 + 1, k)`
  `"valid"` convolution, so output row `i` sees input rows
  `i - k // 2 .. i`. In the first block (`mask_type="A"`) the input is
  additionally shifted down by one row, which is what makes "rows strictly
  above" hold; later blocks keep that invariant.
* horizontal: `k // 2` columns of zero padding on the left and a
  `(1, k // 2 + 1)` `"valid"` convolution, so output column `j` sees
  input columns `j - k // 2 .. j` of the same row (mask type B). In the
  first block (mask type A) the input is shifted right by one column first,
  so the current pixel is excluded.
* the vertical -> horizontal link is a 1x1 convolution of the vertical
  pre-activations. They only see rows strictly above, including the columns
  to the right of `j` -- which is exactly what removes the blind spot of
  the original PixelCNN.

Gates are `tanh(a) * sigmoid(b)`; an optional class embedding is added as
a bias to both halves of both stacks, and an optional conditioning map
`(B, H, W, D)` (known in full before sampling starts, such as features of
the previous video frames) through a 1x1 convolution as a per-position
bias. The horizontal stack has a 1x1
convolution and a residual connection (not in the first, type-A block,
whose input still contains the current pixel).
"""

import keras
from keras import ops


def _down_shift(x):
    """Shift a (B, H, W, C) tensor one row down (zeros on the top row)."""
    x = ops.pad(x, [[0, 0], [1, 0], [0, 0], [0, 0]])
    return x[:, :-1, :, :]


def _right_shift(x):
    """Shift a (B, H, W, C) tensor one column right (zeros on the left)."""
    x = ops.pad(x, [[0, 0], [0, 0], [1, 0], [0, 0]])
    return x[:, :, :-1, :]


def _gate(x):
    a, b = ops.split(x, 2, axis=-1)
    return ops.tanh(a) * ops.sigmoid(b)


@keras.saving.register_keras_serializable(package="keras_vqvae")
class GatedPixelCNNBlock(keras.layers.Layer):
    """One gated PixelCNN layer acting on a (vertical, horizontal) pair.

    Args:
        hidden_dim: int. Number of channels `C` of both stacks (input and output).
        kernel_size: odd kernel size `k`. The vertical convolution is
            `(k // 2 + 1) x k` and the horizontal one `1 x (k // 2 + 1)`.
        mask_type: `"A"` for the first block (the current pixel is
            excluded; input `v` and `h` are the same embedded codes) or
            `"B"` for every later block.
        residual: add a residual connection to the horizontal stack.
            Defaults to `True` for type B and `False` for type A.
        num_classes: if not `None`, `call` accepts integer `labels` of
            shape `(B,)` and adds a learned per-class bias to the gates.
        condition_dim: if not `None`, `call` accepts a `condition` map
            `(B, H, W, condition_dim)` and adds a 1x1 convolution of it to
            the gates, position by position.

    Call arguments:
        v: vertical stack, `(B, H, W, C)`.
        h: horizontal stack, `(B, H, W, C)`.
        labels: optional int labels `(B,)` (class-conditional only).
        condition: optional `(B, H, W, condition_dim)` map.

    Returns:
        `(v_out, h_out)`, both `(B, H, W, C)`.
    """

    def __init__(
        self,
        hidden_dim,
        kernel_size=5,
        mask_type="B",
        residual=None,
        num_classes=None,
        condition_dim=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        kernel_size = int(kernel_size)
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(
                f"`kernel_size` must be a positive odd integer, got {kernel_size}."
            )
        mask_type = str(mask_type).upper()
        if mask_type not in ("A", "B"):
            raise ValueError(
                f"`mask_type` must be 'A' or 'B', got {mask_type!r}."
            )
        self.hidden_dim = int(hidden_dim)
        self.kernel_size = kernel_size
        self.mask_type = mask_type
        self.residual = (
            (mask_type == "B") if residual is None else bool(residual)
        )
        if self.residual and mask_type == "A":
            raise ValueError(
                "A type-A block cannot have a residual connection: its input "
                "contains the current pixel."
            )
        self.num_classes = None if num_classes is None else int(num_classes)
        self.condition_dim = (
            None if condition_dim is None else int(condition_dim)
        )

        p = kernel_size // 2
        self._pad = p
        c2 = 2 * self.hidden_dim
        conv_kw = dict(padding="valid", data_format="channels_last")
        self.v_conv = keras.layers.Conv2D(
            c2, (p + 1, kernel_size), name="v_conv", **conv_kw
        )
        self.h_conv = keras.layers.Conv2D(
            c2, (1, p + 1), name="h_conv", **conv_kw
        )
        self.v_to_h = keras.layers.Conv2D(c2, 1, name="v_to_h", **conv_kw)
        self.h_out = keras.layers.Conv2D(
            self.hidden_dim, 1, name="h_out", **conv_kw
        )
        if self.num_classes is not None:
            # One embedding row per class: [v_gate_bias (2C), h_gate_bias (2C)].
            self.class_bias = keras.layers.Embedding(
                self.num_classes,
                2 * c2,
                name="class_bias",
            )
        else:
            self.class_bias = None
        # [v_gate_bias (2C), h_gate_bias (2C)] at every position.
        self.condition_bias = (
            None
            if self.condition_dim is None
            else keras.layers.Conv2D(
                2 * c2, 1, name="condition_bias", **conv_kw
            )
        )

    def build(self, input_shape):
        b, h, w, c = input_shape
        if c is not None and c != self.hidden_dim:
            raise ValueError(
                f"Expected {self.hidden_dim} input channels, got shape {input_shape}."
            )
        c = self.hidden_dim
        p = self._pad
        hp = None if h is None else h + p
        wp2 = None if w is None else w + 2 * p
        wp = None if w is None else w + p
        self.v_conv.build((b, hp, wp2, c))
        self.h_conv.build((b, h, wp, c))
        self.v_to_h.build((b, h, w, 2 * c))
        self.h_out.build((b, h, w, c))
        if self.class_bias is not None:
            self.class_bias.build((b,))
        if self.condition_bias is not None:
            self.condition_bias.build((b, h, w, self.condition_dim))
        self.built = True

    def _class_bias(self, labels, dtype):
        if self.class_bias is None:
            return None, None
        if labels is None:
            raise ValueError(
                "This block is class-conditional (num_classes="
                f"{self.num_classes}); `labels` must be passed."
            )
        labels = ops.reshape(ops.cast(labels, "int32"), (-1,))
        bias = ops.cast(self.class_bias(labels)[:, None, None, :], dtype)
        v_bias, h_bias = ops.split(bias, 2, axis=-1)
        return v_bias, h_bias

    def _condition_bias(self, condition, dtype):
        """`(v_bias, h_bias)`, each `(B, H, W, 2C)`, or `(None, None)`."""
        if self.condition_bias is None:
            if condition is not None:
                raise ValueError(
                    "A `condition` map was given but this block has no "
                    "condition_dim."
                )
            return None, None
        if condition is None:
            raise ValueError(
                "This block is conditioned on a map (condition_dim="
                f"{self.condition_dim}); `condition` must be passed."
            )
        bias = ops.cast(self.condition_bias(condition), dtype)
        return tuple(ops.split(bias, 2, axis=-1))

    def _biases(self, labels, condition, dtype):
        """The class and condition biases summed: `(v_bias, h_bias)`."""
        biases = [
            self._class_bias(labels, dtype),
            self._condition_bias(condition, dtype),
        ]
        v_bias = h_bias = None
        for v, h in biases:
            if v is not None:
                v_bias = v if v_bias is None else v_bias + v
                h_bias = h if h_bias is None else h_bias + h
        return v_bias, h_bias

    def vertical(self, v, labels=None, condition=None):
        """Vertical stack only.

        Returns `(v_feat, v_out)`: the (class- and condition-biased)
        pre-activations `(B, H, W, 2C)`, which feed the horizontal stack,
        and the gated output `(B, H, W, C)`, which feeds the next block.
        Row `i` of both only depends on rows `< i` of the original input
        (and on the labels and the condition).
        """
        p = self._pad
        if self.mask_type == "A":
            v = _down_shift(v)
        v_feat = self.v_conv(ops.pad(v, [[0, 0], [p, 0], [p, p], [0, 0]]))
        v_bias, _ = self._biases(labels, condition, v_feat.dtype)
        if v_bias is not None:
            v_feat = v_feat + v_bias
        return v_feat, _gate(v_feat)

    def horizontal(self, h, v_feat, labels=None, condition=None):
        """Horizontal stack given the vertical pre-activations `v_feat`.

        Every operation is row-local, so this can be evaluated on a single
        row `(B, 1, W, C)` together with the matching rows of `v_feat` and
        `condition` (used by `PixelCNNPrior`'s reference sampler).
        """
        p = self._pad
        h_in = _right_shift(h) if self.mask_type == "A" else h
        h_feat = self.h_conv(ops.pad(h_in, [[0, 0], [0, 0], [p, 0], [0, 0]]))
        # v_feat at row i only sees rows < i, so it may feed position (i, j).
        h_feat = h_feat + self.v_to_h(v_feat)
        _, h_bias = self._biases(labels, condition, h_feat.dtype)
        if h_bias is not None:
            h_feat = h_feat + h_bias
        h_out = self.h_out(_gate(h_feat))
        if self.residual:
            h_out = h_out + h
        return h_out

    def call(self, v, h, labels=None, condition=None):
        v_feat, v_out = self.vertical(v, labels, condition)
        return v_out, self.horizontal(h, v_feat, labels, condition)

    # Incremental evaluation (used by `PixelCNNPrior.sample`): the same
    # function as `call`, one row of the vertical stack and one position of
    # the horizontal stack at a time, from caches of the inputs they see.

    def step_weights(self, labels=None, condition=None):
        """What `vertical_row` / `horizontal_step` need besides their
        inputs: the class biases, the condition's biases at every position
        and the 1x1 / horizontal kernels as matrices in the compute dtype.
        Computed once, outside the sampling loop.

        Returns:
            dict of tensors: `v_bias` (`(B, 1, 1, 2C)` or `None`),
            `v_condition` and `h_condition` (`(B, H, W, 2C)` or `None`),
            `v_to_h_kernel` (`(2C, 2C)`), `h_bias` (the biases of `v_to_h`
            and `h_conv` plus the class bias: `(B, 1, 2C)`, or
            `(1, 1, 2C)` without classes), `h_kernel`
            (`((k//2+1) * C, 2C)`), `out_kernel` (`(C, C)`) and
            `out_bias` (`(C,)`).
        """
        dtype = self.compute_dtype
        c, p = self.hidden_dim, self._pad
        v_bias, class_h_bias = self._class_bias(labels, dtype)
        h_bias = ops.cast(self.h_conv.bias, dtype) + ops.cast(
            self.v_to_h.bias, dtype
        )
        h_bias = h_bias[None, None, :]
        if class_h_bias is not None:
            h_bias = h_bias + class_h_bias[:, 0]

        def matrix(layer, rows):
            return ops.reshape(ops.cast(layer.kernel, dtype), (rows, -1))

        v_condition, h_condition = self._condition_bias(condition, dtype)
        return {
            "v_bias": v_bias,
            "v_condition": v_condition,
            "h_condition": h_condition,
            "v_to_h_kernel": matrix(self.v_to_h, 2 * c),
            "h_bias": h_bias,
            "h_kernel": matrix(self.h_conv, (p + 1) * c),
            "out_kernel": matrix(self.h_out, c),
            "out_bias": ops.cast(self.h_out.bias, dtype),
        }

    def vertical_row(self, window, weights, row=None):
        """Row `i` of the vertical stack.

        Args:
            window: `(B, k//2+1, W + 2*(k//2), C)`: the vertical input rows
                `i - k//2 .. i` (already shifted down for type A; zeros
                above the map), zero-padded by `k//2` columns both sides.
            weights: `step_weights(labels, condition)`.
            row: the row index `i` (needed with a condition map).

        Returns:
            `(v_h, v_out)`: `v_to_h` of the pre-activations plus the
            horizontal biases, `(B, W, 2C)`, and the gated output row
            `(B, 1, W, C)` (row `i` of `vertical(v)[1]`).
        """
        v_feat = self.v_conv(window)
        if weights["v_bias"] is not None:
            v_feat = v_feat + weights["v_bias"]
        if weights["v_condition"] is not None:
            v_feat = (
                v_feat + ops.take(weights["v_condition"], row, axis=1)[:, None]
            )
        v_h = ops.matmul(v_feat[:, 0], weights["v_to_h_kernel"])
        v_h = v_h + weights["h_bias"]
        if weights["h_condition"] is not None:
            v_h = v_h + ops.take(weights["h_condition"], row, axis=1)
        return v_h, _gate(v_feat)

    def horizontal_step(self, window, v_h, weights):
        """Position `(i, j)` of the horizontal stack.

        Args:
            window: `(B, (k//2+1) * C)`: the horizontal inputs at columns
                `j - k//2 .. j` of row `i` (already shifted right for type
                A; zeros left of the map), oldest first.
            v_h: `(B, 2C)`: column `j` of `vertical_row`'s `v_h`.
            weights: `step_weights(labels, condition)`.

        Returns:
            `(B, C)`: position `(i, j)` of `horizontal(h, v_feat)`.
        """
        h_feat = ops.matmul(window, weights["h_kernel"]) + v_h
        h_out = ops.matmul(_gate(h_feat), weights["out_kernel"])
        h_out = h_out + weights["out_bias"]
        if self.residual:  # type B: the input at column j is the newest
            h_out = h_out + window[:, -self.hidden_dim :]
        return h_out

    def compute_output_shape(self, input_shape):
        return tuple(input_shape), tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "hidden_dim": self.hidden_dim,
                "kernel_size": self.kernel_size,
                "mask_type": self.mask_type,
                "residual": self.residual,
                "num_classes": self.num_classes,
                "condition_dim": self.condition_dim,
            }
        )
        return config
