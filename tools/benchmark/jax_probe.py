"""Why JAX was slow on CPU: per-layer convolution forward+backward in JAX,
TensorFlow (with and without XLA) and PyTorch, the quantiser alone, and
train-step ablations (no k-means / dead-code restarts, no quantiser, Keras's
`keras.layers.Conv2DTranspose` in the decoder)."""

from . import timing
from .cifar10 import KERAS_CONV_T
from .cifar10 import cifar10_model
from .cifar10 import images
from .cifar10 import keras_conv_transpose_model
from .cifar10 import reference_model
from .formatting import fmt_number
from .formatting import fmt_ratio

BATCH_SIZE = 32
# The layer shapes of the cifar10 architecture at batch 32 for the
# convolution probe: (name, kind, input NHWC, Keras kernel, stride).
CONV_SHAPES = [
    ("enc down_0 4x4/2", "conv", (32, 32, 32, 3), (4, 4, 3, 64), 2),
    ("enc down_1 4x4/2", "conv", (32, 16, 16, 64), (4, 4, 64, 128), 2),
    ("enc conv 3x3", "conv", (32, 8, 8, 128), (3, 3, 128, 128), 1),
    ("res 3x3 128->32", "conv", (32, 8, 8, 128), (3, 3, 128, 32), 1),
    ("dec conv 3x3", "conv", (32, 8, 8, 64), (3, 3, 64, 128), 1),
    ("dec up_0 T4x4/2", "convT", (32, 8, 8, 128), (4, 4, 64, 128), 2),
    ("dec up_1 T4x4/2", "convT", (32, 16, 16, 64), (4, 4, 3, 64), 2),
]
PRESET_VARIANT = "cifar10 preset (EMA + k-means + dead-code restarts)"
NO_QUANTISER_VARIANT = "no quantiser (identity bottleneck)"


def worker(settings):
    """Runs the probe on this process's backend (JAX or TensorFlow).

    Args:
        settings: dict with `warmup`, `probe_steps` and `probe_rounds`.

    Returns:
        A JSON-serialisable dict: per-layer convolution ms by framework,
        the quantiser's ms, and the train-step ablation rows.
    """
    import keras

    backend = keras.backend.backend()
    result = {"backend": backend, "conv": {}, "quantizer_ms": {}}
    if backend == "jax":
        result["conv"]["jax"] = _conv_probe_keras()
        result["conv_our_layer"] = _conv_probe_our_layer()
        result["quantizer_ms"]["jax (jit)"] = _quantizer_probe()
    else:
        threads = timing.cores()
        result["conv"]["tensorflow"] = _conv_probe_keras(jit_compile=False)
        result["conv"]["tensorflow XLA"] = _conv_probe_keras(jit_compile=True)
        result["conv"]["torch"] = _conv_probe_torch(threads)
        result["quantizer_ms"]["tensorflow (tf.function)"] = _quantizer_probe()
        result["quantizer_ms"]["torch reference"] = _torch_quantizer_probe(
            threads
        )
    result["ablation"] = _ablation(settings, backend)
    return result


def _probe_arrays():
    """(name, kind, x, kernel, stride) of `CONV_SHAPES`, random arrays."""
    import numpy as np

    rng = np.random.default_rng(0)
    for name, kind, x_shape, w_shape, stride in CONV_SHAPES:
        x = rng.standard_normal(x_shape).astype("float32")
        w = (rng.standard_normal(w_shape) * 0.05).astype("float32")
        yield name, kind, x, w, stride


def _jax_timings(name, loss, x, w):
    """A probe row: ms of jitted `loss(x, w)` and of its gradients."""
    import jax

    forward = jax.jit(loss)
    grads = jax.jit(jax.grad(loss, argnums=(0, 1)))
    return {
        "layer": name,
        "fwd_ms": timing.best_ms(lambda: jax.block_until_ready(forward(x, w))),
        "fwd_bwd_ms": timing.best_ms(
            lambda: jax.block_until_ready(grads(x, w))
        ),
    }


def _tf_timings(name, loss, x, w, jit_compile):
    """A probe row: ms of `tf.function` `loss(x, w)` and its gradients."""
    import tensorflow as tf

    xt, wt = tf.constant(x), tf.constant(w)
    forward = tf.function(loss, jit_compile=jit_compile)

    @tf.function(jit_compile=jit_compile)
    def grads(x, w):
        with tf.GradientTape() as tape:
            tape.watch([x, w])
            value = loss(x, w)
        return tape.gradient(value, [x, w])

    return {
        "layer": name,
        "fwd_ms": timing.best_ms(lambda: forward(xt, wt).numpy()),
        "fwd_bwd_ms": timing.best_ms(
            lambda: [g.numpy() for g in grads(xt, wt)]
        ),
    }


def _conv_probe_keras(jit_compile=None):
    """Forward+backward ms of each layer's convolution, Keras ops."""
    import keras
    from keras import ops

    rows = []
    for name, kind, x, w, stride in _probe_arrays():

        def loss(x, w, kind=kind, stride=stride):
            if kind == "conv":
                y = ops.conv(x, w, strides=stride, padding="same")
            else:
                y = ops.conv_transpose(x, w, strides=stride, padding="same")
            return ops.sum(y * y)

        if keras.backend.backend() == "jax":
            rows.append(_jax_timings(name, loss, x, w))
        else:
            rows.append(_tf_timings(name, loss, x, w, jit_compile))
    return rows


def _conv_probe_our_layer():
    """JAX: forward+backward ms of `keras_vqvae.layers.Conv2DTranspose` (no
    bias) on the transposed-convolution shapes of `CONV_SHAPES`."""
    from keras_vqvae.layers import Conv2DTranspose

    rows = []
    for name, kind, x, w, stride in _probe_arrays():
        if kind != "convT":
            continue
        layer = Conv2DTranspose(
            w.shape[2],
            w.shape[:2],
            strides=stride,
            padding="same",
            use_bias=False,
        )
        layer.build(x.shape)

        def loss(x, w, layer=layer):
            y, _ = layer.stateless_call([w], [], x)
            return (y * y).sum()

        rows.append(_jax_timings(name, loss, x, w))
    return rows


def _conv_probe_torch(threads):
    import torch
    from torch.nn import functional as F

    torch.set_num_threads(threads)
    rows = []
    for name, kind, x, w, stride in _probe_arrays():
        pad = 1 if stride == 2 else (w.shape[0] - 1) // 2
        x = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()
        w = torch.from_numpy(w).permute(3, 2, 0, 1).contiguous()
        x.requires_grad_()
        w.requires_grad_()

        def forward(x=x, w=w, kind=kind, stride=stride, pad=pad):
            if kind == "conv":
                y = F.conv2d(x, w, stride=stride, padding=pad)
            else:
                y = F.conv_transpose2d(x, w, stride=stride, padding=pad)
            return (y * y).sum()

        def run_fwd(forward=forward):
            with torch.no_grad():
                forward()

        def run_all(forward=forward, x=x, w=w):
            torch.autograd.grad(forward(), [x, w])

        rows.append(
            {
                "layer": name,
                "fwd_ms": timing.best_ms(run_fwd),
                "fwd_bwd_ms": timing.best_ms(run_all),
            }
        )
    return rows


def _preset_latents():
    """The preset model's quantiser and random latents for it at batch 32."""
    import numpy as np

    model = cifar10_model()
    shape = (BATCH_SIZE, *model.latent_shape, model.embedding_dim)
    z = np.random.default_rng(0).standard_normal(shape).astype("float32")
    return model.quantizer, z


def _quantizer_probe():
    """ms of the preset's quantiser forward in training mode, compiled."""
    import keras

    quantizer, z = _preset_latents()
    if keras.backend.backend() == "jax":
        import jax

        trainable = [v.value for v in quantizer.trainable_variables]
        non_trainable = [v.value for v in quantizer.non_trainable_variables]
        step = jax.jit(
            lambda t, n, z: quantizer.stateless_call(t, n, z, training=True)
        )
        state = [non_trainable]

        def run():  # feeds the updated state back, as training does
            outputs, state[0] = step(trainable, state[0], z)
            jax.block_until_ready(outputs)
    else:
        import tensorflow as tf

        zt = tf.constant(z)
        step = tf.function(lambda z: quantizer(z, training=True))
        run = lambda: step(zt).numpy()  # noqa: E731
    return timing.best_ms(run, repeats=8)


def _torch_quantizer_probe(threads):
    """ms of the PyTorch reference's quantiser forward in training mode."""
    import torch

    reference = reference_model(threads)
    z = torch.from_numpy(_preset_latents()[1])
    reference.train()
    return timing.best_ms(lambda: reference.quantizer(z), repeats=8)


def _ablation(settings, backend):
    """`model.fit` images/s of the preset and of variants, interleaved."""
    warmup = settings["warmup"]
    steps, rounds = settings["probe_steps"], settings["probe_rounds"]
    x = images((warmup + steps) * BATCH_SIZE)
    models = _ablation_models(backend)
    for model in models.values():
        model.compile()
        timing.first_fit_s(model, x, BATCH_SIZE)
    rates = {label: [] for label in models}
    for _ in range(rounds):
        for label, model in models.items():
            rates[label].append(
                timing.time_fit(model, x, BATCH_SIZE, warmup, steps)
            )
    preset = rates[PRESET_VARIANT]
    return [
        {
            "variant": label,
            "keras": timing.median(rates[label]),
            "ms_per_step": 1e3 * BATCH_SIZE / timing.median(rates[label]),
            "vs_preset": timing.median_ratio(rates[label], preset),
            "preset_vs_this": timing.median_ratio(preset, rates[label]),
        }
        for label in models
    ]


def _ablation_models(backend):
    """The ablation's models by label, the preset's first."""
    from keras_vqvae.models import VQVAE

    class NoQuantizer(VQVAE):
        """The same encoder/decoder with an identity bottleneck."""

        def call(self, inputs, training=None):
            return self.decoder(self.pre_quantization(self.encoder(inputs)))

        def compute_loss(self, x=None, y=None, y_pred=None, *args, **kwargs):
            # No quantiser call: no VQ loss and no codebook statistics.
            return self.reconstruction_loss(x, y, y_pred)

    plain = dict(kmeans_init=False, dead_code_threshold=0.0)
    models = {
        PRESET_VARIANT: cifar10_model(),
        "EMA quantiser only (no k-means, no restarts)": cifar10_model(**plain),
        NO_QUANTISER_VARIANT: cifar10_model(NoQuantizer, **plain),
    }
    if backend == "jax":
        # The preset's model with Keras's transposed convolution in the
        # decoder (same weights): the state before the fix.
        models[f"cifar10 preset with {KERAS_CONV_T} in the decoder"] = (
            keras_conv_transpose_model(models[PRESET_VARIANT])
        )
    return models


def _measured(probe):
    return [res for res in (probe or {}).values() if "error" not in res]


def _conv_ms(probe):
    """{framework: probe rows} over the backends' results."""
    conv = {}
    for res in _measured(probe):
        conv.update(res.get("conv", {}))
    return conv


def _our_layer_ms(probe):
    """{layer: fwd+bwd ms} of `keras_vqvae.layers.Conv2DTranspose`."""
    return {
        row["layer"]: row["fwd_bwd_ms"]
        for res in _measured(probe)
        for row in res.get("conv_our_layer", [])
    }


def _quantizer_ms(probe):
    """{framework: ms} of the quantiser alone."""
    quantizer_ms = {}
    for res in (probe or {}).values():
        quantizer_ms.update(res.get("quantizer_ms", {}))
    return quantizer_ms


def render(probe):
    """The convolution table, the quantiser's ms and the ablation table.

    Args:
        probe: dict, this module's worker results by backend, or `None` if
            not run.

    Returns:
        list of Markdown lines.
    """
    lines = [
        "",
        "### JAX on CPU: transposed convolutions, train-step ablations",
        "",
    ]
    if not probe:
        return lines + ["Not measured in this run (`--quick` or `--no-probe`)."]
    errors = [f"{b}: {r['error']}" for b, r in probe.items() if "error" in r]
    if errors:
        lines.append("Failed: " + "; ".join(errors))
    conv = _conv_ms(probe)
    if conv:
        lines += _render_conv(conv, _our_layer_ms(probe))
    quantizer_ms = _quantizer_ms(probe)
    if quantizer_ms:
        lines += [
            "",
            "The preset's quantiser alone (EMA update, k-means check, dead-code "
            "restarts; forward in training mode on 32 x 8 x 8 x 64, K = 512), "
            "ms: "
            + ", ".join(f"{k} {v:.2f}" for k, v in quantizer_ms.items())
            + ".",
        ]
    return lines + _render_ablation(probe)


def _render_conv(conv, ours):
    frameworks = list(conv)
    ours_column = "jax" in conv and bool(ours)
    header = [
        ("jax, Keras ops (`ops.conv_transpose`)" if f == "jax" else f)
        for f in frameworks
    ]
    if ours_column:
        header.insert(
            1 + frameworks.index("jax"),
            "jax, `keras_vqvae.layers.Conv2DTranspose`",
        )
    lines = [
        "Forward + backward (gradients w.r.t. input and kernel) of each "
        "convolution of the model at batch 32, ms (best of 4). Keras's "
        "`keras.layers.Conv2DTranspose` calls `ops.conv_transpose`; the "
        "library's layer only replaces the transposed convolutions, so "
        "its column repeats the JAX value of the other rows (in "
        "italics).",
        "",
        "| layer | " + " | ".join(header) + " |",
        "|---|" + "---|" * len(header),
    ]
    layers = [row["layer"] for row in next(iter(conv.values()))]
    totals = [0.0] * len(header)
    for i, layer in enumerate(layers):
        values, cells = [], []
        for f in frameworks:
            value = conv[f][i]["fwd_bwd_ms"]
            values.append(value)
            cells.append(fmt_number(value))
            if f == "jax" and ours_column:
                values.append(ours.get(layer, value))
                cells.append(
                    fmt_number(ours[layer])
                    if layer in ours
                    else f"*{fmt_number(value)}*"
                )
        totals = [t + v for t, v in zip(totals, values)]
        lines.append(f"| {layer} | " + " | ".join(cells) + " |")
    lines.append(
        "| **sum** | " + " | ".join(fmt_number(t) for t in totals) + " |"
    )
    return lines


def _ablation_rows(probe):
    return [
        (backend, row)
        for backend, res in probe.items()
        for row in res.get("ablation", [])
    ]


def _render_ablation(probe):
    ablations = _ablation_rows(probe)
    if not ablations:
        return []
    lines = [
        "",
        "Train-step ablations (`model.fit`, batch 32):",
        "",
        "| Keras backend | variant | img/s | ms/step | vs preset |",
        "|---|---|---|---|---|",
    ]
    return lines + [
        f"| {backend} | {row['variant']} | {fmt_number(row['keras'])} | "
        f"{fmt_number(row['ms_per_step'])} | {fmt_ratio(row['vs_preset'])} |"
        for backend, row in ablations
    ]


def conv_findings(probe):
    """Where JAX's convolution time goes, against TensorFlow's.

    Args:
        probe: dict, this module's worker results by backend, or `None`.

    Returns:
        list of str (empty without both JAX's and TensorFlow's rows).
    """
    conv, ours = _conv_ms(probe), _our_layer_ms(probe)
    if "jax" not in conv or "tensorflow" not in conv:
        return []
    jax_rows = {r["layer"]: r["fwd_bwd_ms"] for r in conv["jax"]}
    tf_rows = {r["layer"]: r["fwd_bwd_ms"] for r in conv["tensorflow"]}
    transposed = [name for name in jax_rows if "T4x4" in name]
    excess = sum(jax_rows[n] - tf_rows[n] for n in transposed)
    total_excess = sum(jax_rows.values()) - sum(tf_rows.values())
    note = (
        "With Keras's `ops.conv_transpose` (what `keras.layers."
        "Conv2DTranspose` runs), JAX's convolutions take "
        f"{sum(jax_rows.values()):.0f} ms forward+backward per batch of "
        f"32 against TensorFlow's {sum(tf_rows.values()):.0f} ms; the two "
        f"transposed convolutions account for {excess:.0f} ms of the "
        f"{total_excess:.0f} ms difference. Their kernel gradient is an "
        "input-dilated convolution's weight gradient, which JAX emits as "
        "a convolution with `rhs_dilate` and `rhs_reversal` in a "
        "batch-as-feature layout (`01fb_o01i->f01b`); XLA:CPU compiles "
        "that as an elemental loop kernel "
        "(`convolution-base-dilated_elemental_kernel_module` in an "
        "`XLA_FLAGS=--xla_dump_to=...` dump) instead of calling its "
        "Eigen convolution. TensorFlow with XLA does not have the "
        "problem (it emits the gradient differently)."
    )
    if ours and all(n in ours for n in transposed):
        note += (
            " `keras_vqvae.layers.Conv2DTranspose` (in the library's "
            "decoder) states that gradient as the strided convolution's "
            "kernel gradient with a `jax.custom_vjp`, which XLA:CPU runs "
            "on its fast path: the two transposed convolutions take "
            f"{sum(ours[n] for n in transposed):.0f} ms instead of "
            f"{sum(jax_rows[n] for n in transposed):.0f} ms "
            f"(TensorFlow: {sum(tf_rows[n] for n in transposed):.0f} ms)."
        )
    slowest = max(
        jax_rows[n] / tf_rows[n] for n in jax_rows if n not in transposed
    )
    note += (
        f" JAX's other convolutions are up to {slowest:.1f}"
        "x slower than TensorFlow's (oneDNN)."
    )
    return [note]


def _jax_ablation(probe):
    """{variant: row} of JAX's train-step ablation."""
    return {
        row["variant"]: row
        for res in (probe or {}).values()
        if res.get("backend") == "jax"
        for row in res.get("ablation", [])
    }


def ablation_findings(probe):
    """How much faster the preset's JAX train step is after the fix.

    Args:
        probe: dict, this module's worker results by backend, or `None`.

    Returns:
        list of str (empty without JAX's "before the fix" row).
    """
    before = [r for v, r in _jax_ablation(probe).items() if KERAS_CONV_T in v]
    if not before:
        return []
    return [
        "Train-step ablation, batch 32: the preset's JAX train step is "
        f"{fmt_ratio(before[0]['preset_vs_this'])} faster with "
        f"`keras_vqvae.layers.Conv2DTranspose` than with `{KERAS_CONV_T}`"
        f" in the decoder ({before[0]['ms_per_step']:.0f} ms per step "
        "before the fix)."
    ]


def quantizer_findings(probe):
    """The quantiser's share of JAX's train step.

    Args:
        probe: dict, this module's worker results by backend, or `None`.

    Returns:
        list of str (empty without JAX's quantiser and ablation rows).
    """
    quantizer_ms = _quantizer_ms(probe)
    ablation = _jax_ablation(probe)
    if (
        "jax (jit)" not in quantizer_ms
        or PRESET_VARIANT not in ablation
        or NO_QUANTISER_VARIANT not in ablation
    ):
        return []
    return [
        f"The quantiser alone takes {quantizer_ms['jax (jit)']:.1f} ms "
        f"compiled on JAX, against a "
        f"{ablation[PRESET_VARIANT]['ms_per_step']:.0f} ms train step "
        "(segment sums for counts and EMA sums, argmin, assignments of "
        "the non-trainable state, k-means `cond`, restarts); removing it "
        "makes the JAX step "
        f"{fmt_ratio(ablation[NO_QUANTISER_VARIANT]['vs_preset'])} as fast."
    ]
