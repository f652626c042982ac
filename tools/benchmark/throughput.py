"""Training and encode/decode throughput against the strongest PyTorch peer.

One worker per Keras backend. For each feature set of `cifar10.FEATURES`
(the preset's, and the plain EMA quantiser) it times `model.fit` images/s
of the `cifar10` architecture at each batch size, compiled as
`keras_vqvae.workflows.train_vqvae` compiles it (`steps_per_execution`
steps per call), in the library's training policy (`mixed_bfloat16` where
the CPU has bfloat16 units, but float32 on JAX's CPU backend) and in the
other of float32 and `mixed_bfloat16`, interleaved round by round with
the PyTorch peer's train steps (same features) in each of its modes
(`torch_reference.MODES`: float32, and bfloat16 autocast with channels-last
tensors). The faster peer mode of each round is the reference. On JAX it
also times the float32 model with Keras's `keras.layers.Conv2DTranspose` in
its decoder ("before the fix"); then encode and decode images/s.
"""

import json
import sys
import time

from . import roofline
from . import timing
from .cifar10 import FEATURES
from .cifar10 import KERAS_CONV_T
from .cifar10 import TORCH_MODES
from .cifar10 import compiled_model
from .cifar10 import fast_policy
from .cifar10 import images
from .cifar10 import keras_conv_transpose_model
from .cifar10 import max_output_difference
from .cifar10 import reference_model
from .cifar10 import trainable_count
from .formatting import fmt_ratio

CODEC_BATCH = 256
BEST = "best"  # the ratio against the faster PyTorch mode of each round
MODES = tuple(TORCH_MODES)
GOAL_RATIO = 1.3
GOAL_BATCHES = (32, 128)
# The library's methods (compiled inside), beside `predict` of the same
# computations.
ENCODE = "model.encode"
DECODE = "model.decode_indices"


def worker(settings):
    """Measures one Keras backend (the one this process imported).

    Args:
        settings: dict, `FULL` or `QUICK` of `cli` (steps keyed by str).

    Returns:
        A JSON-serialisable dict: the policies, parameter counts, a `train`
        row per feature set and batch size, and `codec` rows.
    """
    import keras

    threads = timing.cores()
    backend = keras.backend.backend()
    # Keras's torch trainer runs one step per call, and refuses more.
    per_call = 1 if backend == "torch" else settings["steps_per_execution"]
    # The library's policy first; the other too, which shows why it chose.
    policies = list(dict.fromkeys([fast_policy(), "float32", "mixed_bfloat16"]))
    models = {
        (features, policy): compiled_model(policy, per_call, **overrides)
        for features, overrides in FEATURES.items()
        for policy in policies
    }
    peers = {
        (features, mode): reference_model(threads, mode, **overrides)
        for features, overrides in FEATURES.items()
        for mode in MODES
    }
    float32 = models[("preset", "float32")]
    result = {
        "backend": backend,
        "fast_policy": policies[0],
        "steps_per_execution": per_call,
        "keras_trainable_params": trainable_count(float32),
        "torch_trainable_params": peers[
            ("preset", "float32")
        ].trainable_parameter_count(),
    }
    before = None
    if backend == "jax" and settings.get("jax_keras_conv_transpose"):
        before = keras_conv_transpose_model(float32)
        result["keras_conv_transpose_max_output_difference"] = (
            max_output_difference(float32, before)
        )
        before.compile(steps_per_execution=per_call)
    result["train"] = [
        _train_row(features, models, before, peers, settings, batch_size)
        for features in FEATURES
        for batch_size in settings["batch_sizes"]
    ]
    result["codec"] = _codec_rows(models, peers, settings, policies)
    return result


def _of(features, table):
    """The entries of `table` (keyed `(features, name)`) for `features`,
    keyed by name."""
    return {name: v for (f, name), v in table.items() if f == features}


def _train_row(features, models, before, peers, settings, batch_size):
    """Images/s at one batch size, one feature set: Keras per policy,
    `before` (preset features only), each PyTorch mode, per round."""
    models, peers = _of(features, models), _of(features, peers)
    if features != "preset":
        before = None
    warmup = settings["warmup"]
    steps = settings["steps"][str(batch_size)]
    x = images((warmup + steps) * batch_size)
    first_fit = {
        policy: timing.first_fit_s(model, x, batch_size)
        for policy, model in models.items()
    }
    if before is not None:
        timing.first_fit_s(before, x, batch_size)
    for peer in peers.values():
        peer.train_step(x[:batch_size])  # the k-means initialisation
    keras_rates = {policy: [] for policy in models}
    torch_rates = {mode: [] for mode in peers}
    torch_threads = {mode: [] for mode in peers}
    before_rates, finite = [], {mode: True for mode in peers}
    counts = timing.thread_counts(settings)
    for _ in range(settings["rounds"]):
        for policy, model in models.items():
            keras_rates[policy].append(
                timing.time_fit(model, x, batch_size, warmup, steps)
            )
        if before is not None:
            before_rates.append(
                timing.time_fit(before, x, batch_size, warmup, steps)
            )
        for mode, peer in peers.items():
            rate, ok, n = timing.time_peer(
                peer, x, batch_size, settings["torch_warmup"], steps, counts
            )
            torch_rates[mode].append(rate)
            torch_threads[mode].append(n)
            finite[mode] = finite[mode] and ok
    row = {
        "features": features,
        "batch_size": batch_size,
        "steps": steps,
        "rounds": settings["rounds"],
        "first_fit_s": first_fit,
        "torch_loss_finite": finite,
        "torch_threads": torch_threads,
        **_summary(keras_rates, torch_rates),
    }
    if before_rates:
        row.update(_before_summary(before_rates, keras_rates, torch_rates))
    print(json.dumps(row), file=sys.stderr, flush=True)
    return row


def _best_per_round(torch_rates):
    """The faster PyTorch mode's images/s in each round."""
    return [max(rates) for rates in zip(*torch_rates.values())]


def _ratios(rates, torch_rates):
    """Median per-round ratios of `rates` to each mode and to the best."""
    ratios = {
        mode: timing.median_ratio(rates, other)
        for mode, other in torch_rates.items()
    }
    ratios[BEST] = timing.median_ratio(rates, _best_per_round(torch_rates))
    return ratios


def _summary(keras_rates, torch_rates):
    """Medians and median ratios of per-round images/s."""
    return {
        "keras": {p: timing.median(r) for p, r in keras_rates.items()},
        "torch": {m: timing.median(r) for m, r in torch_rates.items()},
        "ratio": {p: _ratios(r, torch_rates) for p, r in keras_rates.items()},
        "all_keras": keras_rates,
        "all_torch": torch_rates,
    }


def _before_summary(before_rates, keras_rates, torch_rates):
    """The "before the fix" variant (float32) against the peer and ours."""
    return {
        "keras_conv_transpose": timing.median(before_rates),
        "keras_conv_transpose_ratio": _ratios(before_rates, torch_rates),
        "speedup_of_our_conv_transpose": timing.median_ratio(
            keras_rates["float32"], before_rates
        ),
        "all_keras_conv_transpose": before_rates,
    }


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


def _keras_codec_methods(model, x, codes, batch):
    """{(op, method): callable} of one Keras model, warmed up."""
    model.encode(x[:batch])  # traces and compiles the library's methods
    model.decode_indices(codes[:batch], as_uint8=False)
    encoder, decoder = _compiled_codec(model)
    encoder.predict(x[:batch], batch_size=batch, verbose=0)
    decoder.predict(codes[:batch], batch_size=batch, verbose=0)
    return {
        ("encode", ENCODE): lambda: model.encode(x, batch),
        ("encode", "compiled predict"): lambda: encoder.predict(
            x, batch_size=batch, verbose=0
        ),
        ("decode", DECODE): lambda: model.decode_indices(
            codes, batch, as_uint8=False
        ),
        ("decode", "compiled predict"): lambda: decoder.predict(
            codes, batch_size=batch, verbose=0
        ),
    }


def _codec_rows(models, peers, settings, policies):
    """Encode/decode images/s: the library's methods and `predict` of each
    policy's preset model, against each PyTorch mode (same rounds; each
    mode at its fastest thread count of the round)."""
    count, batch = settings["codec_images"], CODEC_BATCH
    x = images(count, seed=2)
    codes = models[("preset", "float32")].encode(x)
    methods = {}
    for policy in policies:
        keras_methods = _keras_codec_methods(
            models[("preset", policy)], x, codes, batch
        )
        for (op, method), fn in keras_methods.items():
            methods[("keras", op, policy, method)] = fn
    for mode, peer in _of("preset", peers).items():
        peer.encode(x[:batch])
        peer.decode_indices(codes[:batch])
        for n in timing.thread_counts(settings):
            methods[("torch", "encode", mode, n)] = _on_threads(
                n, lambda p=peer: p.encode(x, batch)
            )
            methods[("torch", "decode", mode, n)] = _on_threads(
                n, lambda p=peer: p.decode_indices(codes, batch)
            )
    times = _seconds_per_round(methods, settings["codec_rounds"])
    rates = {key: [count / t for t in ts] for key, ts in times.items()}
    peer_rates = {
        op: {mode: _fastest(rates, op, mode) for mode in MODES}
        for op in ("encode", "decode")
    }
    rows = []
    for key, keras_rates in rates.items():
        if key[0] != "keras":
            continue
        _, op, policy, method = key
        rows.append(
            {
                "op": op,
                "policy": policy,
                "method": method,
                "images": count,
                "keras": timing.median(keras_rates),
                "torch": {
                    m: timing.median(r) for m, r in peer_rates[op].items()
                },
                "ratio": _ratios(keras_rates, peer_rates[op]),
            }
        )
    return rows


def _fastest(rates, op, mode):
    """Per round, the fastest thread count's rate of PyTorch's `mode`."""
    runs = [r for key, r in rates.items() if key[:3] == ("torch", op, mode)]
    return [max(round_rates) for round_rates in zip(*runs)]


def _on_threads(threads, fn):
    """`fn` run with `torch.set_num_threads(threads)`, then restored."""
    import torch

    def run():
        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            return fn()
        finally:
            torch.set_num_threads(previous)

    return run


def _seconds_per_round(methods, rounds):
    """Runs every method once per round; returns their seconds per round."""
    times = {key: [] for key in methods}
    for _ in range(rounds):
        for key, fn in methods.items():
            start = time.perf_counter()
            fn()
            times[key].append(time.perf_counter() - start)
    return times


def _verdict(ratios):
    if not ratios:
        return "not measured"
    return "met" if all(r >= GOAL_RATIO for r in ratios) else "not met"


def _goal_train(tf):
    """(verdict, text) of TensorFlow's fast-path training ratios."""
    policy = tf.get("fast_policy")
    rows = [
        (row["features"], row["batch_size"], row["ratio"][policy][BEST])
        for row in tf.get("train", [])
    ]
    text = "; ".join(
        f"{features} features, batch {batch}: {fmt_ratio(ratio)}"
        for features, batch, ratio in rows
    )
    return _verdict([r for _, _, r in rows]), text


def _goal_codec(tf):
    """(verdict, text) of TensorFlow's fast-path `model.encode` and
    `model.decode_indices` ratios."""
    rows = [
        (row["op"], row["ratio"][BEST])
        for row in tf.get("codec", [])
        if row["policy"] == tf.get("fast_policy")
        and row["method"] in (ENCODE, DECODE)
    ]
    text = "; ".join(f"{op}: {fmt_ratio(ratio)}" for op, ratio in rows)
    return _verdict([r for _, r in rows]), text


def render_goal(results):
    """The issue's target and whether this run meets it.

    Args:
        results: dict, the benchmark's results (`results["model"]`: this
            module's worker results by backend).

    Returns:
        list of Markdown lines.
    """
    tf = results["model"].get("tensorflow") or {}
    lines = [
        "### Goal",
        "",
        "From the issue: **TensorFlow-backend training at >= "
        f"{GOAL_RATIO}x the strongest PyTorch peer at batch "
        f"{GOAL_BATCHES[0]} and at batch {GOAL_BATCHES[1]}, same run; "
        f"encode/decode at >= {GOAL_RATIO}x likewise.** The "
        "peer is the faster of PyTorch float32 and PyTorch bf16 autocast + "
        "channels_last in each round, at the same features; Keras runs the "
        "library's fast path (the policy `train_vqvae` picks here, "
        f"`{tf.get('fast_policy', 'n/a')}`, with "
        f"`steps_per_execution={tf.get('steps_per_execution', 'n/a')}`; "
        "encode/decode: `model.encode` and `model.decode_indices`).",
        "",
    ]
    if "train" not in tf:
        return lines + ["- TensorFlow was not measured in this run.", ""]
    train_verdict, train_text = _goal_train(tf)
    codec_verdict, codec_text = _goal_codec(tf)
    batches = {row["batch_size"] for row in tf["train"]}
    missing = ", ".join(str(b) for b in sorted(set(GOAL_BATCHES) - batches))
    if missing:  # the goal is at both batch sizes
        train_verdict = "not met"
        train_text += f"; batch {missing} not measured"
    lines += [
        f"- Training: **{train_verdict}** ({train_text}).",
        f"- Encode/decode: **{codec_verdict}** ({codec_text}).",
    ]
    return lines + _render_before_the_fix(results) + [""]


def _render_before_the_fix(results):
    jax = results["model"].get("jax") or {}
    rows = [r for r in jax.get("train", []) if "keras_conv_transpose" in r]
    if not rows:
        return []
    return [
        "- JAX before / after the library's transposed-convolution fix "
        "(`keras_vqvae.layers.Conv2DTranspose`, a `jax.custom_vjp` kernel "
        "gradient), float32 Keras / strongest PyTorch peer: "
        + "; ".join(
            f"batch {r['batch_size']}: "
            f"{fmt_ratio(r['keras_conv_transpose_ratio'][BEST])} -> "
            f"{fmt_ratio(r['ratio']['float32'][BEST])} "
            f"({fmt_ratio(r['speedup_of_our_conv_transpose'])} faster)"
            for r in rows
        )
        + "."
    ]


def render_training(results):
    """The training table, its note and the parameter counts.

    Args:
        results: dict, the benchmark's results (`machine`, `model` and
            `roofline`).

    Returns:
        list of Markdown lines.
    """
    peers = " | ".join(f"{TORCH_MODES[m]} img/s" for m in MODES)
    ratios = " | ".join(f"Keras / {TORCH_MODES[m]}" for m in MODES)
    lines = [
        "### Training (`model.fit` on arrays, images/s)",
        "",
        "Each cell: images/s (GFLOP/s, % of the peak of its precision). "
        "PyTorch: no host synchronisation in its steps (losses read after "
        f"each round); {_threads_note(results.get('torch_threads', []))}. "
        "Keras `steps_per_execution`: "
        + ", ".join(
            f"{backend} {res['steps_per_execution']}"
            for backend, res in results["model"].items()
            if "steps_per_execution" in res
        )
        + " (Keras's torch trainer allows only 1).",
        "",
        f"| Keras backend | features | batch | Keras policy | Keras img/s | "
        f"{peers} | {ratios} | Keras / strongest peer |",
        "|---|---|---|---|---|" + "---|" * (2 * len(MODES)) + "---|",
    ]
    for backend, res in results["model"].items():
        lines += _training_rows(backend, res, results.get("roofline"))
    if any(
        "keras_conv_transpose" in row
        for res in results["model"].values()
        for row in res.get("train", [])
    ):
        lines += [
            "",
            "Every row's decoder uses `keras_vqvae.layers.Conv2DTranspose` "
            'except the JAX row "before the fix": the float32 JAX model '
            f"(same weights) with `{KERAS_CONV_T}`, timed in the same rounds "
            "against the same PyTorch runs.",
        ]
    return lines + _render_parameters(results)


def _threads_note(counts):
    names = [f"{n} thread{'s' if n > 1 else ''}" for n in counts]
    if len(names) < 2:
        return f"with {''.join(names) or 'all cores'}"
    return "each mode at the faster, in each round, of " + " and ".join(names)


def _render_parameters(results):
    params = [
        (r["keras_trainable_params"], r["torch_trainable_params"])
        for r in results["model"].values()
        if "error" not in r
    ]
    if not params:
        return []
    k, t = params[0]
    return [
        "",
        f"Trainable parameters: Keras {k:,}, PyTorch reference "
        f"{t:,} ({'equal' if k == t else 'DIFFERENT'}).",
    ]


def _peer_cells(row, op, roof):
    return " | ".join(
        roofline.fmt_rate(row["torch"][m], roof, op, m) for m in MODES
    )


def _ratio_cells(ratios):
    return " | ".join(fmt_ratio(ratios[k]) for k in (*MODES, BEST))


def _training_rows(backend, res, roof):
    if "error" in res:
        cells = " | " * (2 * len(MODES) + 3)
        return [f"| {backend} | failed: {res['error']}{cells}|"]
    lines = []
    for row in res["train"]:
        start = f"| {backend} | {row['features']} | {row['batch_size']}"
        for policy, rate in row["keras"].items():
            lines.append(
                f"{start} | {policy} | "
                f"{roofline.fmt_rate(rate, roof, 'train', policy)} | "
                f"{_peer_cells(row, 'train', roof)} | "
                f"{_ratio_cells(row['ratio'][policy])} |"
            )
        if "keras_conv_transpose" in row:
            rate = row["keras_conv_transpose"]
            lines.append(
                f"| {backend}, decoder with `{KERAS_CONV_T}` (before the "
                f"fix) | {row['features']} | {row['batch_size']} | float32 | "
                f"{roofline.fmt_rate(rate, roof, 'train', 'float32')} | "
                f"{_peer_cells(row, 'train', roof)} | "
                f"{_ratio_cells(row['keras_conv_transpose_ratio'])} |"
            )
    return lines


def render_codec(results):
    """The encode / decode table.

    Args:
        results: dict, the benchmark's results (`model`, `roofline`).

    Returns:
        list of Markdown lines.
    """
    roof = results.get("roofline")
    peers = " | ".join(f"{TORCH_MODES[m]} img/s" for m in MODES)
    ratios = " | ".join(f"Keras / {TORCH_MODES[m]}" for m in MODES)
    lines = [
        "",
        "### Encode / decode (images/s)",
        "",
        "Preset features (inference does not use them), batches of "
        f"{CODEC_BATCH}; cells as in the training table.",
        "",
        f"| Keras backend | op | Keras policy | Keras method | Keras img/s | "
        f"{peers} | {ratios} | Keras / strongest peer |",
        "|---|---|---|---|---|" + "---|" * (2 * len(MODES)) + "---|",
    ]
    for backend, res in results["model"].items():
        lines += [
            f"| {backend} | {row['op']} | {row['policy']} | {row['method']} | "
            f"{roofline.fmt_rate(row['keras'], roof, row['op'], row['policy'])}"
            f" | {_peer_cells(row, row['op'], roof)} | "
            f"{_ratio_cells(row['ratio'])} |"
            for row in res.get("codec", [])
        ]
    return lines


def findings(results):
    """Conclusions from the training rows: each backend vs. the peer.

    Args:
        results: dict, the benchmark's results (`model`).

    Returns:
        list of str, one per backend measured.
    """
    notes = []
    for backend, res in results["model"].items():
        if "error" in res or not res.get("train"):
            continue
        policy = res["fast_policy"]
        notes.append(
            f"Keras on {backend} (`{policy}`) trains at "
            + ", ".join(
                f"{fmt_ratio(row['ratio'][policy][BEST])} "
                f"({row['features']}, batch {row['batch_size']})"
                for row in res["train"]
            )
            + " the speed of the strongest PyTorch peer."
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
