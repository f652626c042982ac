"""Training and encode/decode throughput against the PyTorch reference.

One worker per Keras backend: `model.fit` images/s of the `cifar10`
architecture at each batch size, interleaved round by round with the PyTorch
reference's train steps (all cores, and one thread); on JAX also the model
with Keras's `keras.layers.Conv2DTranspose` in its decoder ("before the
fix"); then encode and decode images/s.
"""

import json
import sys
import time

from . import timing
from .cifar10 import KERAS_CONV_T
from .cifar10 import cifar10_model
from .cifar10 import images
from .cifar10 import keras_conv_transpose_model
from .cifar10 import max_output_difference
from .cifar10 import reference_model
from .cifar10 import trainable_count
from .formatting import fmt_number
from .formatting import fmt_ratio

CODEC_BATCH = 256


def worker(settings):
    """Measures one Keras backend (the one this process imported).

    Args:
        settings: dict, `FULL` or `QUICK` of `cli` (steps keyed by str).

    Returns:
        A JSON-serialisable dict: parameter counts, a `train` row per batch
        size, `codec` rows and whether the reference's loss is finite.
    """
    import keras
    import numpy as np

    threads = timing.cores()
    backend = keras.backend.backend()
    model = cifar10_model()
    result = {
        "backend": backend,
        "keras_trainable_params": trainable_count(model),
    }
    before = None
    if backend == "jax" and settings.get("jax_keras_conv_transpose"):
        before = keras_conv_transpose_model(model)
        result["keras_conv_transpose_max_output_difference"] = (
            max_output_difference(model, before)
        )
        before.compile()
    model.compile()
    reference = reference_model(threads)
    result["torch_trainable_params"] = reference.trainable_parameter_count()
    result["train"] = [
        _train_row(model, before, reference, settings, batch_size, threads)
        for batch_size in settings["batch_sizes"]
    ]
    result["codec"] = _codec_rows(model, reference, settings)
    loss = reference.train_step(images(8, seed=1))
    result["torch_loss_finite"] = bool(np.isfinite(loss))
    return result


def _train_row(model, before, reference, settings, batch_size, threads):
    """Images/s at one batch size: Keras, `before`, PyTorch, per round."""
    warmup = settings["warmup"]
    steps = settings["steps"][str(batch_size)]
    x = images((warmup + steps) * batch_size)
    first_fit = timing.first_fit_s(model, x, batch_size)
    if before is not None:
        timing.first_fit_s(before, x, batch_size)
    reference.train_step(x[:batch_size])
    rates = {"keras": [], "before": [], "torch": [], "torch_1": []}
    for _ in range(settings["rounds"]):
        rates["keras"].append(
            timing.time_fit(model, x, batch_size, warmup, steps)
        )
        if before is not None:
            rates["before"].append(
                timing.time_fit(before, x, batch_size, warmup, steps)
            )
        rates["torch"].append(
            timing.time_torch(reference, x, batch_size, warmup, steps, threads)
        )
        rates["torch_1"].append(
            timing.time_torch(reference, x, batch_size, warmup, steps, 1)
        )
    row = {
        "batch_size": batch_size,
        "steps": steps,
        "rounds": settings["rounds"],
        "first_fit_s": first_fit,
        **_train_summary(rates),
    }
    print(json.dumps(row), file=sys.stderr, flush=True)
    return row


def _train_summary(rates):
    """Medians and median ratios of the per-round images/s in `rates`."""
    keras_rates, before_rates = rates["keras"], rates["before"]
    torch_rates, torch1_rates = rates["torch"], rates["torch_1"]
    best_torch = [max(t, t1) for t, t1 in zip(torch_rates, torch1_rates)]
    summary = {
        "keras": timing.median(keras_rates),
        "torch": timing.median(torch_rates),
        "torch_1_thread": timing.median(torch1_rates),
        "ratio": timing.median_ratio(keras_rates, torch_rates),
        "ratio_best_torch": timing.median_ratio(keras_rates, best_torch),
        "all_keras": keras_rates,
        "all_torch": torch_rates,
        "all_torch_1_thread": torch1_rates,
    }
    if before_rates:
        summary.update(
            keras_conv_transpose=timing.median(before_rates),
            keras_conv_transpose_ratio=timing.median_ratio(
                before_rates, torch_rates
            ),
            keras_conv_transpose_ratio_best_torch=timing.median_ratio(
                before_rates, best_torch
            ),
            speedup_of_our_conv_transpose=timing.median_ratio(
                keras_rates, before_rates
            ),
            all_keras_conv_transpose=before_rates,
        )
    return summary


def _compiled_codec(model):
    """Keras models computing `model`'s encode / decode (for `predict`)."""
    import keras

    class OnVQVAE(keras.Model):
        def __init__(self, vqvae):
            super().__init__()
            self.vqvae = vqvae

    class EncodeIndices(OnVQVAE):
        def call(self, images):
            v = self.vqvae
            return v.quantizer.get_indices(
                v.pre_quantization(v.encoder(images))
            )

    class DecodeIndices(OnVQVAE):
        def call(self, indices):
            v = self.vqvae
            return v.decoder(v.quantizer.lookup(indices))

    return EncodeIndices(model), DecodeIndices(model)


def _codec_rows(model, reference, settings):
    """Encode/decode images/s: eager methods, compiled predict, torch."""
    count, batch = settings["codec_images"], CODEC_BATCH
    x = images(count, seed=2)
    model.encode(x[:8])  # warms up the eager path
    codes = model.encode(x)
    encoder, decoder = _compiled_codec(model)
    encoder.predict(x[:batch], batch_size=batch, verbose=0)
    decoder.predict(codes[:batch], batch_size=batch, verbose=0)
    model.decode_indices(codes[:batch], as_uint8=False)
    reference.encode(x[:batch])
    reference.decode_indices(codes[:batch])
    keras_methods = {
        ("encode", "model.encode (eager)"): lambda: model.encode(x, batch),
        ("encode", "compiled predict"): lambda: encoder.predict(
            x, batch_size=batch, verbose=0
        ),
        ("decode", "model.decode_indices (eager)"): lambda: (
            model.decode_indices(codes, batch, as_uint8=False)
        ),
        ("decode", "compiled predict"): lambda: decoder.predict(
            codes, batch_size=batch, verbose=0
        ),
    }
    torch_methods = {
        "encode": lambda: reference.encode(x, batch),
        "decode": lambda: reference.decode_indices(codes, batch),
    }
    times = _seconds_per_round(
        {**keras_methods, **torch_methods}, settings["codec_rounds"]
    )
    return [
        {
            "op": op,
            "method": method,
            "images": count,
            "keras": count / timing.median(times[(op, method)]),
            "torch": count / timing.median(times[op]),
            "ratio": timing.median_ratio(times[op], times[(op, method)]),
        }
        for op, method in keras_methods
    ]


def _seconds_per_round(methods, rounds):
    """Runs every method once per round; returns their seconds per round."""
    times = {key: [] for key in methods}
    for _ in range(rounds):
        for key, fn in methods.items():
            start = time.perf_counter()
            fn()
            times[key].append(time.perf_counter() - start)
    return times


def _goal_numbers(results):
    """TensorFlow's train ratios vs. PyTorch and JAX's before/after ratios."""
    tf = results["model"].get("tensorflow") or {}
    jax = results["model"].get("jax") or {}
    return (
        [
            (r["batch_size"], r["ratio"], r["ratio_best_torch"])
            for r in tf.get("train", [])
        ],
        [
            (
                r["batch_size"],
                r.get("keras_conv_transpose_ratio"),
                r["ratio"],
                r.get("speedup_of_our_conv_transpose"),
            )
            for r in jax.get("train", [])
        ],
    )


def render_goal(results):
    """The issue's target and whether this run meets it.

    Args:
        results: dict, the benchmark's results (`results["model"]`: this
            module's worker results by backend).

    Returns:
        list of Markdown lines.
    """
    tf_rows, jax_rows = _goal_numbers(results)
    lines = [
        "### Goal",
        "",
        "From the issue: **TensorFlow backend at >= 1.0x the PyTorch "
        "reference's train images/s on CPU.**",
        "",
    ]
    if tf_rows:
        met = all(ratio >= 1.0 for _, ratio, _ in tf_rows)
        lines.append(
            f"- This run: **{'met' if met else 'not met'}**: TensorFlow "
            "trains at "
            + ", ".join(f"{fmt_ratio(r)} at batch {b}" for b, r, _ in tf_rows)
            + " the PyTorch reference's images/s (PyTorch with all cores; "
            "against the faster of PyTorch with all cores and with one "
            "thread: "
            + ", ".join(f"{fmt_ratio(r)}" for _, _, r in tf_rows)
            + ")."
        )
    else:
        lines.append("- TensorFlow was not measured in this run.")
    if any(before is not None for _, before, _, _ in jax_rows):
        lines.append(
            "- JAX before / after the library's transposed-convolution fix "
            "(`keras_vqvae.layers.Conv2DTranspose`, a `jax.custom_vjp` kernel "
            "gradient), Keras / PyTorch: "
            + "; ".join(
                f"batch {b}: {fmt_ratio(before)} -> {fmt_ratio(after)} "
                f"({fmt_ratio(speedup)} faster)"
                for b, before, after, speedup in jax_rows
            )
            + "."
        )
    return lines + [""]


def render_training(results):
    """The training table, its note and the parameter counts.

    Args:
        results: dict, the benchmark's results (`machine` and `model`).

    Returns:
        list of Markdown lines.
    """
    lines = [
        "### Training (`model.fit` on arrays, images/s)",
        "",
        "| Keras backend | batch | Keras img/s | PyTorch img/s "
        f"({results['machine']['cores']} threads) | Keras / PyTorch | "
        "PyTorch img/s (1 thread) | Keras / best PyTorch |",
        "|---|---|---|---|---|---|---|",
    ]
    for backend, res in results["model"].items():
        lines += _training_rows(backend, res)
    if any(
        "keras_conv_transpose" in row
        for res in results["model"].values()
        for row in res.get("train", [])
    ):
        lines += [
            "",
            "Every row's decoder uses `keras_vqvae.layers.Conv2DTranspose` "
            'except the JAX row "before the fix": the same JAX model (same '
            f"weights) with `{KERAS_CONV_T}`, timed in the same rounds "
            "against the same PyTorch runs.",
        ]
    params = [
        (r["keras_trainable_params"], r["torch_trainable_params"])
        for r in results["model"].values()
        if "error" not in r
    ]
    if params:
        k, t = params[0]
        lines += [
            "",
            f"Trainable parameters: Keras {k:,}, PyTorch reference "
            f"{t:,} ({'equal' if k == t else 'DIFFERENT'}).",
        ]
    return lines


def _training_rows(backend, res):
    if "error" in res:
        return [f"| {backend} | - | failed: {res['error']} | | | | |"]
    lines = [
        f"| {backend} | {row['batch_size']} | {fmt_number(row['keras'])} | "
        f"{fmt_number(row['torch'])} | {fmt_ratio(row['ratio'])} | "
        f"{fmt_number(row['torch_1_thread'])} | "
        f"{fmt_ratio(row['ratio_best_torch'])} |"
        for row in res["train"]
    ]
    return lines + [
        f"| {backend}, decoder with `{KERAS_CONV_T}` (before the fix)"
        f" | {row['batch_size']} | {fmt_number(row['keras_conv_transpose'])}"
        f" | {fmt_number(row['torch'])} | "
        f"{fmt_ratio(row['keras_conv_transpose_ratio'])} | "
        f"{fmt_number(row['torch_1_thread'])} | "
        f"{fmt_ratio(row['keras_conv_transpose_ratio_best_torch'])} |"
        for row in res["train"]
        if "keras_conv_transpose" in row
    ]


def render_codec(results):
    """The encode / decode table.

    Args:
        results: dict, the benchmark's results (`model`).

    Returns:
        list of Markdown lines.
    """
    lines = [
        "",
        "### Encode / decode (images/s)",
        "",
        "| Keras backend | op | Keras method | Keras img/s | PyTorch img/s | "
        "Keras / PyTorch |",
        "|---|---|---|---|---|---|",
    ]
    for backend, res in results["model"].items():
        lines += [
            f"| {backend} | {row['op']} | {row['method']} | "
            f"{fmt_number(row['keras'])} | {fmt_number(row['torch'])} | "
            f"{fmt_ratio(row['ratio'])} |"
            for row in res.get("codec", [])
        ]
    return lines


def findings(results):
    """Conclusions from the training rows: each backend vs. PyTorch.

    Args:
        results: dict, the benchmark's results (`model`).

    Returns:
        list of str, one per backend measured.
    """
    train = {
        (backend, row["batch_size"]): row
        for backend, res in results["model"].items()
        if "error" not in res
        for row in res["train"]
    }
    notes = []
    for backend in results["model"]:
        ratios = [row["ratio"] for (b, _), row in train.items() if b == backend]
        if ratios:
            notes.append(
                f"Keras on {backend} trains at "
                + " / ".join(fmt_ratio(r) for r in ratios)
                + " the speed of the PyTorch reference (batch "
                + " / ".join(str(bs) for (b, bs) in train if b == backend)
                + ")."
            )
    return notes


def before_the_fix_findings(results):
    """The largest output difference of the "before the fix" variant.

    Args:
        results: dict, the benchmark's results (`model`).

    Returns:
        list of str (empty if JAX's variant was not measured).
    """
    max_difference = (results["model"].get("jax") or {}).get(
        "keras_conv_transpose_max_output_difference"
    )
    if max_difference is None:
        return []
    return [
        f"With the same weights, the model with `{KERAS_CONV_T}` and the "
        "library's model give outputs that differ by at most "
        f"{max_difference:.1e} (JAX, inference on 4 images)."
    ]
