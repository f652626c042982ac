"""Benchmarks keras-vqvae against a PyTorch reference, measured in one run.

Every number is taken on the same machine in the same run, and every speed
is also reported as a ratio against a reference measured alongside it
(interleaved rounds in one process), because the machine may be shared.

What is measured:

* training images/s of `VQVAE(**ARCHITECTURES["cifar10"])` with `model.fit`
  on in-memory arrays (batch 32 and 128, warm-up steps excluded), for each
  Keras backend, each in its own subprocess (`KERAS_BACKEND` is set before
  Keras is imported), against `tools/torch_reference.py` (the same
  architecture in plain PyTorch, `torch.set_num_threads(cores)`; also with
  one thread); on JAX also the same model with Keras's own
  `keras.layers.Conv2DTranspose` in the decoder instead of
  `keras_vqvae.layers.Conv2DTranspose` (the ratio before and after the
  library's transposed-convolution fix, in the same rounds);
* encode and decode images/s (`model.encode` / `model.decode_indices`,
  which run eagerly, and the same computations compiled through `predict`);
* TensorFlow options: `mixed_bfloat16` and XLA (`jit_compile=True`);
* `VectorQuantizer` forward time and peak memory on N x D inputs as N and
  K grow, in a fresh subprocess per size (peak RSS; the import's peak is
  reset through `/proc/self/clear_refs` where Linux allows it);
* samples/s of the bundled presets' PixelCNN priors per Keras backend
  (`PixelCNNPrior.sample`, and sample + `VQVAE.decode_indices`);
* why JAX was slow on CPU: per-layer convolution forward+backward in JAX
  (Keras's `ops.conv_transpose`, and `keras_vqvae.layers.Conv2DTranspose`
  for the transposed ones), TensorFlow (with and without XLA) and PyTorch,
  and train-step ablations (no k-means / dead-code restarts, no quantiser,
  Keras's `keras.layers.Conv2DTranspose` in the decoder).

The results go into a section of a Markdown file (default BENCHMARKS.md at
the repository root), between markers, so a rerun replaces it.

    python tools/benchmark.py                      # full run, ~10 minutes
    python tools/benchmark.py --quick --backends tensorflow,torch \
        --output quick_bench.md                    # a smoke test, < 1 minute
"""

import argparse
import datetime
import json
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
TOOLS = Path(__file__).resolve().parent
BEGIN = "<!-- keras-vqvae benchmark: begin -->"
END = "<!-- keras-vqvae benchmark: end -->"
BACKENDS = ("tensorflow", "jax", "torch")
DATA_VARIANCE = 0.06  # about CIFAR-10's; the value does not change speed

FULL = dict(
    batch_sizes=[32, 128],
    steps={32: 8, 128: 3},
    warmup=2,
    rounds=3,
    codec_images=1024,
    codec_rounds=2,
    options_steps=6,
    options_rounds=2,
    quantizer_sizes=[
        (n, k) for n in (4096, 16384, 65536) for k in (512, 2048, 8192)
    ],
    quantizer_dim=64,
    probe=True,
    options=True,
    probe_steps=6,
    probe_rounds=5,
    jax_keras_conv_transpose=True,
    sampling_n=64,
    sampling_rounds=3,
    sampling_presets=None,  # every bundled preset with a prior
)
QUICK = dict(
    batch_sizes=[32],
    steps={32: 2},
    warmup=1,
    rounds=1,
    codec_images=64,
    codec_rounds=1,
    options_steps=1,
    options_rounds=1,
    quantizer_sizes=[(1024, 128)],
    quantizer_dim=64,
    probe=False,
    options=False,
    probe_steps=1,
    probe_rounds=1,
    jax_keras_conv_transpose=True,
    sampling_n=4,
    sampling_rounds=1,
    sampling_presets=["mnist"],
)

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


# --------------------------------------------------------------------------
# Helpers shared by the workers (imported lazily: the parent never imports
# Keras, so each worker chooses its backend).


def _cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _images(count, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    return rng.uniform(-0.5, 0.5, (count, 32, 32, 3)).astype("float32")


def _torch_reference(threads, **overrides):
    import torch

    sys.path.insert(0, str(TOOLS))
    from torch_reference import build_reference

    torch.set_num_threads(threads)
    return build_reference(data_variance=DATA_VARIANCE, seed=0, **overrides)


def _time_torch(ref, x, batch_size, warmup, steps, threads):
    import torch

    torch.set_num_threads(threads)
    for i in range(warmup):
        ref.train_step(x[i * batch_size:(i + 1) * batch_size])
    start = time.perf_counter()
    for i in range(warmup, warmup + steps):
        ref.train_step(x[i * batch_size:(i + 1) * batch_size])
    return steps * batch_size / (time.perf_counter() - start)


def _keras_timer(warmup, total):
    import keras

    class StepTimer(keras.callbacks.Callback):
        """Times from the end of the last warm-up step to the last step.

        `async_safe`: Keras may run it in its callback thread (as it does
        the default callbacks), so fit dispatches steps as it normally
        would; Keras converts the logs to floats before calling it, so the
        time is taken when the step's results exist.
        """

        async_safe = True

        def __init__(self):
            super().__init__()
            self.start = self.end = None

        def on_train_batch_end(self, batch, logs=None):
            if batch == warmup - 1:
                self.start = time.perf_counter()
            if batch == total - 1:
                self.end = time.perf_counter()

    return StepTimer()


def _time_fit(model, x, batch_size, warmup, steps, start_time=None):
    """Images/s of `model.fit` on arrays, warm-up steps excluded."""
    total = warmup + steps
    timer = _keras_timer(max(warmup, 1), total)
    begin = time.perf_counter()
    model.fit(
        x[:total * batch_size],
        batch_size=batch_size,
        epochs=1,
        steps_per_epoch=total,
        shuffle=False,
        verbose=0,
        callbacks=[timer],
    )
    if warmup == 0:
        timer.start = begin
    return steps * batch_size / (timer.end - timer.start)


def _cifar10_model(**overrides):
    from keras_vqvae.models import VQVAE
    from keras_vqvae.training import ARCHITECTURES

    model = VQVAE(
        **{
            **ARCHITECTURES["cifar10"],
            "seed": 0,
            "data_variance": DATA_VARIANCE,
            **overrides,
        }
    )
    return model


KERAS_CONV_T = "keras.layers.Conv2DTranspose"


def _model_with_keras_conv_transpose(like, **overrides):
    """The cifar10 model with Keras's `keras.layers.Conv2DTranspose` in the
    decoder instead of `keras_vqvae.layers.Conv2DTranspose` (the state before
    the library's JAX fix), with the weights of `like`.

    Benchmark-only: the decoder module's name is swapped while the model is
    built and restored at once. The two layers have the same config and
    variables, so `like`'s weights load unchanged.
    """
    import keras

    from keras_vqvae.layers import decoder as decoder_module

    ours = decoder_module.Conv2DTranspose
    decoder_module.Conv2DTranspose = keras.layers.Conv2DTranspose
    try:
        model = _cifar10_model(**overrides)
    finally:
        decoder_module.Conv2DTranspose = ours
    kinds = {type(layer) for layer in model.decoder.upsamples}
    assert kinds == {keras.layers.Conv2DTranspose}, kinds
    assert {type(layer) for layer in like.decoder.upsamples} == {ours}
    model.set_weights(like.get_weights())
    return model


def _max_output_difference(a, b):
    """Largest |a(x) - b(x)| on a few images (inference mode)."""
    import numpy as np

    x = _images(4, seed=3)
    return float(np.max(np.abs(
        np.asarray(a(x, training=False)) - np.asarray(b(x, training=False))
    )))


def _trainable_count(model):
    import numpy as np

    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


# --------------------------------------------------------------------------
# Worker: one Keras backend, training and encode/decode throughput.


def worker_model(settings):
    import keras
    import numpy as np
    import torch

    cores = _cores()
    backend = keras.backend.backend()
    model = _cifar10_model()
    plain = None
    if backend == "jax" and settings.get("jax_keras_conv_transpose"):
        plain = _model_with_keras_conv_transpose(model)
        plain_difference = _max_output_difference(model, plain)
        plain.compile(optimizer=keras.optimizers.Adam(3e-4))
    model.compile(optimizer=keras.optimizers.Adam(3e-4))
    ref = _torch_reference(cores)
    result = {
        "backend": backend,
        "keras_trainable_params": _trainable_count(model),
        "torch_trainable_params": ref.trainable_parameter_count(),
        "train": [],
        "codec": [],
    }
    if plain is not None:
        result["keras_conv_transpose_max_output_difference"] = plain_difference
    warmup, rounds = settings["warmup"], settings["rounds"]
    for batch_size in settings["batch_sizes"]:
        steps = settings["steps"][str(batch_size)]
        x = _images((warmup + steps) * batch_size)
        # Compile (trace) for this batch size outside the timed rounds.
        started = time.perf_counter()
        model.fit(x[:batch_size], batch_size=batch_size, epochs=1, verbose=0,
                  shuffle=False)
        first_step_s = time.perf_counter() - started
        if plain is not None:
            plain.fit(x[:batch_size], batch_size=batch_size, epochs=1,
                      verbose=0, shuffle=False)
        ref.train_step(x[:batch_size])
        keras_rates, torch_rates, torch1_rates, ratios = [], [], [], []
        plain_rates = []
        for _ in range(rounds):
            torch.set_num_threads(cores)  # the Keras torch backend too
            keras_rate = _time_fit(model, x, batch_size, warmup, steps)
            if plain is not None:
                plain_rates.append(
                    _time_fit(plain, x, batch_size, warmup, steps)
                )
            torch_rate = _time_torch(ref, x, batch_size, warmup, steps, cores)
            torch1_rate = _time_torch(ref, x, batch_size, warmup, steps, 1)
            torch.set_num_threads(cores)
            keras_rates.append(keras_rate)
            torch_rates.append(torch_rate)
            torch1_rates.append(torch1_rate)
            ratios.append(keras_rate / torch_rate)
        result["train"].append(
            {
                "batch_size": batch_size,
                "steps": steps,
                "rounds": rounds,
                "first_fit_s": first_step_s,
                "keras": _median(keras_rates),
                "torch": _median(torch_rates),
                "torch_1_thread": _median(torch1_rates),
                "ratio": _median(ratios),
                "ratio_best_torch": _median(
                    [k / max(t, t1) for k, t, t1 in
                     zip(keras_rates, torch_rates, torch1_rates)]
                ),
                "all_keras": keras_rates,
                "all_torch": torch_rates,
                "all_torch_1_thread": torch1_rates,
            }
        )
        if plain_rates:
            result["train"][-1].update(
                keras_conv_transpose=_median(plain_rates),
                keras_conv_transpose_ratio=_median(
                    [p / t for p, t in zip(plain_rates, torch_rates)]
                ),
                keras_conv_transpose_ratio_best_torch=_median(
                    [p / max(t, t1) for p, t, t1 in
                     zip(plain_rates, torch_rates, torch1_rates)]
                ),
                speedup_of_our_conv_transpose=_median(
                    [k / p for k, p in zip(keras_rates, plain_rates)]
                ),
                all_keras_conv_transpose=plain_rates,
            )
        print(json.dumps(result["train"][-1]), file=sys.stderr, flush=True)

    result["codec"] = _codec_rates(model, ref, settings)
    losses = [ref.train_step(_images(8, seed=1)) for _ in range(1)]
    result["torch_loss_finite"] = bool(np.isfinite(losses).all())
    return result


def _codec_rates(model, ref, settings):
    """Encode/decode images/s: eager methods, compiled predict, torch."""
    import keras

    count = settings["codec_images"]
    x = _images(count, seed=2)
    codes = model.encode(x[:8])  # warm up the eager path

    class EncodeIndices(keras.Model):
        def __init__(self, vqvae):
            super().__init__()
            self.vqvae = vqvae

        def call(self, images):
            v = self.vqvae
            return v.quantizer.get_indices(v.pre_quantization(v.encoder(images)))

    class DecodeIndices(keras.Model):
        def __init__(self, vqvae):
            super().__init__()
            self.vqvae = vqvae

        def call(self, indices):
            v = self.vqvae
            return v.decoder(v.quantizer.lookup(indices))

    encoder, decoder = EncodeIndices(model), DecodeIndices(model)
    codes = model.encode(x)
    batch = 256
    encoder.predict(x[:batch], batch_size=batch, verbose=0)
    decoder.predict(codes[:batch], batch_size=batch, verbose=0)
    model.decode_indices(codes[:batch], as_uint8=False)
    ref.encode(x[:batch])
    ref.decode_indices(codes[:batch])
    methods = {
        ("encode", "model.encode (eager)"): lambda: model.encode(x, batch),
        ("encode", "compiled predict"): lambda: encoder.predict(
            x, batch_size=batch, verbose=0),
        ("decode", "model.decode_indices (eager)"): lambda: (
            model.decode_indices(codes, batch, as_uint8=False)),
        ("decode", "compiled predict"): lambda: decoder.predict(
            codes, batch_size=batch, verbose=0),
    }
    torch_methods = {
        "encode": lambda: ref.encode(x, batch),
        "decode": lambda: ref.decode_indices(codes, batch),
    }
    times = {key: [] for key in list(methods) + list(torch_methods)}
    for _ in range(settings["codec_rounds"]):
        for key, fn in list(methods.items()) + list(torch_methods.items()):
            start = time.perf_counter()
            fn()
            times[key].append(time.perf_counter() - start)
    rows = []
    for (op, method), _ in methods.items():
        keras_t = times[(op, method)]
        torch_t = times[op]
        rows.append(
            {
                "op": op,
                "method": method,
                "images": count,
                "keras": count / _median(keras_t),
                "torch": count / _median(torch_t),
                "ratio": _median([b / a for a, b in zip(keras_t, torch_t)]),
            }
        )
    return rows


# --------------------------------------------------------------------------
# Worker: TensorFlow options (mixed precision, XLA), batch 32.


def worker_options(settings):
    import keras
    import torch

    cores = _cores()
    batch_size, warmup = 32, settings["warmup"]
    steps, rounds = settings["options_steps"], settings["options_rounds"]
    x = _images((warmup + steps) * batch_size)
    configs = [
        ("float32", False),
        ("float32", True),
        ("mixed_bfloat16", False),
        ("mixed_bfloat16", True),
    ]
    models, errors, compile_s = {}, {}, {}
    for policy, jit in configs:
        keras.config.set_dtype_policy(policy)
        try:
            model = _cifar10_model()
            model.compile(optimizer=keras.optimizers.Adam(3e-4),
                          jit_compile=jit)
            started = time.perf_counter()
            model.fit(x[:batch_size], batch_size=batch_size, verbose=0)
            compile_s[(policy, jit)] = time.perf_counter() - started
            models[(policy, jit)] = model
        except Exception as error:  # report, do not hide, a failing option
            errors[(policy, jit)] = f"{type(error).__name__}: {error}"[:200]
        finally:
            keras.config.set_dtype_policy("float32")
    ref = _torch_reference(cores)
    ref.train_step(x[:batch_size])
    rates = {key: [] for key in models}
    torch_rates = []
    for _ in range(rounds):
        for key, model in models.items():
            rates[key].append(_time_fit(model, x, batch_size, warmup, steps))
        torch_rates.append(
            _time_torch(ref, x, batch_size, warmup, steps, cores)
        )
    baseline = rates.get(("float32", False))
    rows = []
    for policy, jit in configs:
        key = (policy, jit)
        row = {"policy": policy, "jit_compile": jit}
        if key in errors:
            row["error"] = errors[key]
        else:
            model = models[key]
            loss = model.evaluate(x[:batch_size], batch_size=batch_size,
                                  verbose=0, return_dict=True)["loss"]
            row.update(
                keras=_median(rates[key]),
                first_fit_s=compile_s[key],
                vs_default=_median(
                    [a / b for a, b in zip(rates[key], baseline)]
                ) if baseline else None,
                vs_torch=_median(
                    [a / b for a, b in zip(rates[key], torch_rates)]
                ),
                loss_finite=bool(loss == loss and abs(loss) < 1e30),
            )
        rows.append(row)
    return {"batch_size": batch_size, "steps": steps, "rounds": rounds,
            "torch": _median(torch_rates), "rows": rows}


# --------------------------------------------------------------------------
# Worker: VectorQuantizer forward, one size per process.


def _rss_kib(field):
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak():
    """Resets VmHWM (Linux >= 4.0); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return _rss_kib("VmHWM") is not None
    except OSError:
        return False


def _peak_kib(resettable):
    if resettable:
        return _rss_kib("VmHWM")
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak // 1024 if sys.platform == "darwin" else peak


def worker_quantizer(settings):
    import gc

    import keras
    import numpy as np

    from keras_vqvae.layers import VectorQuantizer

    n, k, d = settings["n"], settings["k"], settings["d"]
    quantizer = VectorQuantizer(k, d, seed=0)
    quantizer.build((None, d))
    x = keras.ops.convert_to_tensor(
        np.random.default_rng(0).standard_normal((n, d)).astype("float32")
    )
    quantizer(x[:64])  # first-call costs (kernels, caches) outside the peak
    quantizer.get_indices(x[:64])
    gc.collect()
    memory_info = None
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        try:
            info = tf.config.experimental.get_memory_info("CPU:0")
            if info.get("peak"):
                memory_info = info
        except (ValueError, RuntimeError):
            memory_info = None
    resettable = _reset_peak()
    base = _rss_kib("VmRSS")
    method = "VmHWM after clear_refs" if resettable else "ru_maxrss"
    start = time.perf_counter()
    indices = quantizer.get_indices(x)
    keras.ops.convert_to_numpy(indices)
    indices_s = time.perf_counter() - start
    peak_indices = _peak_kib(resettable)
    del indices
    start = time.perf_counter()
    out = quantizer(x)
    keras.ops.convert_to_numpy(out[:1])
    call_s = time.perf_counter() - start
    peak_call = _peak_kib(resettable)
    del out
    # A second timing of each (memory already measured).
    start = time.perf_counter()
    keras.ops.convert_to_numpy(quantizer(x)[:1])
    call_s = min(call_s, time.perf_counter() - start)
    start = time.perf_counter()
    keras.ops.convert_to_numpy(quantizer.get_indices(x))
    indices_s = min(indices_s, time.perf_counter() - start)
    if base is None or peak_call is None:
        delta_call = delta_indices = None
    else:
        delta_indices = max(peak_indices - base, 0) * 1024
        delta_call = max(peak_call - base, 0) * 1024
    return {
        "n": n, "k": k, "d": d, "call_s": call_s, "indices_s": indices_s,
        "peak_delta_call": delta_call, "peak_delta_indices": delta_indices,
        "method": method, "tf_memory_info": memory_info,
    }


# --------------------------------------------------------------------------
# Worker: why is JAX slow? Convolution probe and train-step ablations.


def _conv_probe_keras(jit_compile=None):
    """Forward+backward ms of each layer's convolution, Keras ops."""
    import keras
    import numpy as np
    from keras import ops

    backend = keras.backend.backend()
    rng = np.random.default_rng(0)
    rows = []
    for name, kind, x_shape, w_shape, stride in CONV_SHAPES:
        x = rng.standard_normal(x_shape).astype("float32")
        w = (rng.standard_normal(w_shape) * 0.05).astype("float32")

        def loss(x, w, kind=kind, stride=stride):
            if kind == "conv":
                y = ops.conv(x, w, strides=stride, padding="same")
            else:
                y = ops.conv_transpose(x, w, strides=stride, padding="same")
            return ops.sum(y * y)

        if backend == "jax":
            import jax

            forward = jax.jit(loss)
            grads = jax.jit(jax.grad(loss, argnums=(0, 1)))
            run_fwd = lambda: jax.block_until_ready(forward(x, w))  # noqa
            run_all = lambda: jax.block_until_ready(grads(x, w))  # noqa
        else:
            import tensorflow as tf

            xt, wt = tf.constant(x), tf.constant(w)
            forward = tf.function(loss, jit_compile=jit_compile)

            @tf.function(jit_compile=jit_compile)
            def grads(x, w, loss=loss):
                with tf.GradientTape() as tape:
                    tape.watch([x, w])
                    value = loss(x, w)
                return tape.gradient(value, [x, w])

            run_fwd = lambda: forward(xt, wt).numpy()  # noqa
            run_all = lambda: [g.numpy() for g in grads(xt, wt)]  # noqa
        rows.append({"layer": name, "fwd_ms": _best_ms(run_fwd),
                     "fwd_bwd_ms": _best_ms(run_all)})
    return rows


def _conv_probe_torch(threads):
    import numpy as np
    import torch
    from torch.nn import functional as F

    torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    rows = []
    for name, kind, x_shape, w_shape, stride in CONV_SHAPES:
        x = torch.from_numpy(
            rng.standard_normal(x_shape).astype("float32")
        ).permute(0, 3, 1, 2).contiguous().requires_grad_()
        w = torch.from_numpy(
            (rng.standard_normal(w_shape) * 0.05).astype("float32")
        ).permute(3, 2, 0, 1).contiguous().requires_grad_()
        pad = 1 if stride == 2 else (w_shape[0] - 1) // 2

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

        rows.append({"layer": name, "fwd_ms": _best_ms(run_fwd),
                     "fwd_bwd_ms": _best_ms(run_all)})
    return rows


def _best_ms(fn, repeats=4):
    fn()
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times) * 1e3


def _conv_probe_our_layer():
    """JAX: forward+backward ms of `keras_vqvae.layers.Conv2DTranspose` (no
    bias) on the transposed-convolution shapes of `CONV_SHAPES`."""
    import jax
    import numpy as np

    from keras_vqvae.layers import Conv2DTranspose

    rng = np.random.default_rng(0)
    rows = []
    for name, kind, x_shape, w_shape, stride in CONV_SHAPES:
        x = rng.standard_normal(x_shape).astype("float32")
        w = (rng.standard_normal(w_shape) * 0.05).astype("float32")
        if kind != "convT":
            continue
        layer = Conv2DTranspose(w_shape[2], w_shape[:2], strides=stride,
                                padding="same", use_bias=False)
        layer.build(x_shape)

        def loss(x, w, layer=layer):
            y, _ = layer.stateless_call([w], [], x)
            return (y * y).sum()

        forward = jax.jit(loss)
        grads = jax.jit(jax.grad(loss, argnums=(0, 1)))
        rows.append({
            "layer": name,
            "fwd_ms": _best_ms(
                lambda: jax.block_until_ready(forward(x, w))),  # noqa: B023
            "fwd_bwd_ms": _best_ms(
                lambda: jax.block_until_ready(grads(x, w))),  # noqa: B023
        })
    return rows


def _quantizer_probe(batch_size=32):
    """ms of the preset's quantiser forward in training mode, compiled."""
    import keras
    import numpy as np

    from keras_vqvae.layers import VectorQuantizerEMA

    quantizer = VectorQuantizerEMA(512, 64, kmeans_init=True,
                                   dead_code_threshold=1.0, seed=0)
    quantizer.build((batch_size, 8, 8, 64))
    z = np.random.default_rng(0).standard_normal(
        (batch_size, 8, 8, 64)).astype("float32")
    if keras.backend.backend() == "jax":
        import jax

        trainable = [v.value for v in quantizer.trainable_variables]
        non_trainable = [v.value for v in quantizer.non_trainable_variables]
        step = jax.jit(lambda t, n, z: quantizer.stateless_call(
            t, n, z, training=True))
        state = [non_trainable]

        def run():  # feeds the updated state back, as training does
            outputs, state[0] = step(trainable, state[0], z)
            jax.block_until_ready(outputs)
    else:
        import tensorflow as tf

        zt = tf.constant(z)
        step = tf.function(lambda z: quantizer(z, training=True))
        run = lambda: step(zt).numpy()  # noqa: E731
    return _best_ms(run, repeats=8)


def _torch_quantizer_probe(threads, batch_size=32):
    import numpy as np
    import torch

    ref = _torch_reference(threads)
    z = torch.from_numpy(np.random.default_rng(0).standard_normal(
        (batch_size, 8, 8, 64)).astype("float32"))
    ref.train()
    return _best_ms(lambda: ref.quantizer(z), repeats=8)


def worker_sampling(settings):
    """Prior sampling and decoding speed of the bundled presets with a prior."""
    import keras
    import numpy as np

    from keras_vqvae.models import VQVAE
    from keras_vqvae.models import PixelCNNPrior

    n, rounds = settings["sampling_n"], settings["sampling_rounds"]
    names = settings["sampling_presets"] or sorted(PixelCNNPrior.presets)
    rows = []
    for name in names:
        if name not in PixelCNNPrior.presets:
            continue
        model = VQVAE.from_preset(name)
        prior = PixelCNNPrior.from_preset(name)
        labels = (np.arange(n) % prior.num_classes
                  if prior.conditional else None)
        started = time.perf_counter()
        prior.sample(n, labels=labels, seed=0)  # traces and compiles
        first_call_s = time.perf_counter() - started
        sample_s, decode_s = [], []
        for seed in range(1, rounds + 1):
            started = time.perf_counter()
            codes = prior.sample(n, labels=labels, seed=seed)
            sample_s.append(time.perf_counter() - started)
            started = time.perf_counter()
            model.decode_indices(codes)
            decode_s.append(time.perf_counter() - started)
        rows.append({
            "preset": name,
            "latent_shape": list(prior.latent_shape),
            "num_embeddings": prior.num_embeddings,
            "parameters": int(prior.count_params()),
            "n": n,
            "first_call_s": first_call_s,
            "samples_per_s": n / _median(sample_s),
            "images_per_s": n / _median(
                [a + b for a, b in zip(sample_s, decode_s)]
            ),
        })
    return {"backend": keras.backend.backend(), "rows": rows}


def worker_probe(settings):
    import keras

    backend = keras.backend.backend()
    cores = _cores()
    result = {"backend": backend, "conv": {}, "ablation": [],
              "quantizer_ms": {}}
    if backend == "jax":
        result["conv"]["jax"] = _conv_probe_keras()
        result["conv_our_layer"] = _conv_probe_our_layer()
        result["quantizer_ms"]["jax (jit)"] = _quantizer_probe()
    else:
        result["conv"]["tensorflow"] = _conv_probe_keras(jit_compile=False)
        result["conv"]["tensorflow XLA"] = _conv_probe_keras(jit_compile=True)
        result["conv"]["torch"] = _conv_probe_torch(cores)
        result["quantizer_ms"]["tensorflow (tf.function)"] = _quantizer_probe()
        result["quantizer_ms"]["torch reference"] = _torch_quantizer_probe(cores)

    from keras_vqvae.models import VQVAE

    class NoQuantizer(VQVAE):
        """The same encoder/decoder with an identity bottleneck."""

        def call(self, inputs, training=None):
            return self.decoder(self.pre_quantization(self.encoder(inputs)))

    batch_size, warmup = 32, settings["warmup"]
    steps, rounds = settings["probe_steps"], settings["probe_rounds"]
    x = _images((warmup + steps) * batch_size)
    variants = [
        ("cifar10 preset (EMA + k-means + dead-code restarts)", VQVAE, {}),
        ("EMA quantiser only (no k-means, no restarts)", VQVAE,
         dict(kmeans_init=False, dead_code_threshold=0.0)),
        ("no quantiser (identity bottleneck)", NoQuantizer,
         dict(kmeans_init=False, dead_code_threshold=0.0)),
    ]
    models = []
    from keras_vqvae.training import ARCHITECTURES

    for label, cls, overrides in variants:
        config = {**ARCHITECTURES["cifar10"], "seed": 0,
                  "data_variance": DATA_VARIANCE, **overrides}
        model = cls(**config)
        model.compile(optimizer=keras.optimizers.Adam(3e-4))
        model.fit(x[:batch_size], batch_size=batch_size, verbose=0)
        models.append((label, model))
    if backend == "jax":
        # The preset's model (built before its first fit) with Keras's
        # transposed convolution in the decoder: the state before the fix.
        model = _model_with_keras_conv_transpose(models[0][1])
        model.compile(optimizer=keras.optimizers.Adam(3e-4))
        model.fit(x[:batch_size], batch_size=batch_size, verbose=0)
        models.append((f"cifar10 preset with {KERAS_CONV_T} in the decoder",
                       model))
    rates = {label: [] for label, _ in models}
    for _ in range(rounds):
        for label, model in models:
            rates[label].append(_time_fit(model, x, batch_size, warmup, steps))
    first = models[0][0]
    for label, _ in models:
        result["ablation"].append(
            {
                "variant": label,
                "keras": _median(rates[label]),
                "ms_per_step": 1e3 * batch_size / _median(rates[label]),
                "vs_preset": _median(
                    [a / b for a, b in zip(rates[label], rates[first])]
                ),
                "preset_vs_this": _median(
                    [b / a for a, b in zip(rates[label], rates[first])]
                ),
            }
        )
    return result


WORKERS = {
    "model": worker_model,
    "options": worker_options,
    "quantizer": worker_quantizer,
    "probe": worker_probe,
    "sampling": worker_sampling,
}


# --------------------------------------------------------------------------
# The parent: runs the workers, renders Markdown, writes the section.


def run_worker(kind, backend, settings, timeout=900, log=None):
    """Runs a worker in a subprocess with `KERAS_BACKEND=backend`."""
    env = dict(os.environ)
    env["KERAS_BACKEND"] = backend
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    # libgomp's default spin-waiting makes PyTorch's OpenMP threads burn the
    # CPU they wait for when the machine is busy (20x slower with 2 threads
    # on a loaded 2-core machine); passive waiting is the sane setting there.
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO_ROOT), str(TOOLS), env.get("PYTHONPATH", "")]
    )
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        command = [
            sys.executable, str(Path(__file__).resolve()), "--worker", kind,
            "--worker-settings", json.dumps(settings),
            "--worker-output", str(out),
        ]
        started = time.perf_counter()
        try:
            proc = subprocess.run(command, env=env, capture_output=True,
                                  text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"error": f"timed out after {timeout} s"}
        elapsed = time.perf_counter() - started
        if log:
            log(f"  {kind}[{backend}] {elapsed:.0f} s")
        if proc.returncode != 0 or not out.is_file():
            lines = [line for line in proc.stderr.splitlines() if line.strip()]
            return {"error": (lines[-1] if lines else f"exit {proc.returncode}")[:300]}
        result = json.loads(out.read_text())
        result["wall_s"] = elapsed
        return result


def machine_info():
    model = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    memory = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal"):
                    memory = int(line.split()[1]) / 2**20
    except OSError:
        pass
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    return {
        "cores": _cores(),
        "cpu": model,
        "memory_gib": memory,
        "load": load,
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def library_versions():
    from importlib import metadata

    versions = {}
    for name in ("keras", "tensorflow-cpu", "tensorflow", "jax", "jaxlib",
                 "torch", "numpy", "keras-vqvae"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    if "tensorflow-cpu" in versions:
        versions.pop("tensorflow", None)
    return versions


def _fmt(value, digits=1):
    if value is None:
        return "n/a"
    if isinstance(value, float):
        if abs(value) >= 100:
            return f"{value:,.0f}"
        return f"{value:.{digits}f}"
    return str(value)


def _ratio(value):
    return "n/a" if value is None else f"{value:.2f}x"


def render(results, command, started, settings):
    machine, versions = results["machine"], results["versions"]
    lines = [
        BEGIN,
        "## Keras 3 VQ-VAE vs. a PyTorch reference (cifar10 architecture)",
        "",
        f"- Command: `{command}`",
        f"- Date: {started:%Y-%m-%d %H:%M} (local time); run took "
        f"{results['wall_s'] / 60:.1f} min",
        f"- Machine: {machine['cores']} cores, {machine['cpu']}, "
        f"{_fmt(machine['memory_gib'])} GiB RAM, {machine['platform']}; "
        f"load average at start {_load(machine['load'])}, at end "
        f"{_load(results.get('load_end'))}",
        "- Versions: python " + machine["python"] + ", "
        + ", ".join(f"{k} {v}" for k, v in versions.items()),
        "- Settings: timed steps per round "
        + ", ".join(f"{v} at batch {k}" for k, v in settings["steps"].items())
        + f", warm-up steps {settings['warmup']} (excluded), rounds "
        f"{settings['rounds']}; "
        "PyTorch with `torch.set_num_threads(cores)` and "
        f"`OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'PASSIVE')}` "
        "(set for every worker: with libgomp's default spin-waiting, two "
        "PyTorch threads ran ~20x slower than one on this machine while "
        "other jobs were using it)",
        "",
        "Speeds are medians over rounds; a ratio is the median of per-round "
        "ratios, the two sides measured back to back in the same process, "
        "so a busy machine moves both. Ratios > 1 mean Keras is faster.",
        "",
    ]
    lines += _render_goal(results)
    lines += [
        "### Training (`model.fit` on arrays, images/s)",
        "",
        "| Keras backend | batch | Keras img/s | PyTorch img/s "
        f"({machine['cores']} threads) | Keras / PyTorch | PyTorch img/s "
        "(1 thread) | Keras / best PyTorch |",
        "|---|---|---|---|---|---|---|",
    ]
    for backend, res in results["model"].items():
        if "error" in res:
            lines.append(f"| {backend} | - | failed: {res['error']} | | | | |")
            continue
        for row in res["train"]:
            lines.append(
                f"| {backend} | {row['batch_size']} | {_fmt(row['keras'])} | "
                f"{_fmt(row['torch'])} | {_ratio(row['ratio'])} | "
                f"{_fmt(row['torch_1_thread'])} | "
                f"{_ratio(row['ratio_best_torch'])} |"
            )
        for row in res["train"]:
            if "keras_conv_transpose" not in row:
                continue
            lines.append(
                f"| {backend}, decoder with `{KERAS_CONV_T}` (before the fix)"
                f" | {row['batch_size']} | {_fmt(row['keras_conv_transpose'])}"
                f" | {_fmt(row['torch'])} | "
                f"{_ratio(row['keras_conv_transpose_ratio'])} | "
                f"{_fmt(row['torch_1_thread'])} | "
                f"{_ratio(row['keras_conv_transpose_ratio_best_torch'])} |"
            )
    if any("keras_conv_transpose" in row
           for res in results["model"].values() for row in res.get("train", [])):
        lines += [
            "",
            "Every row's decoder uses `keras_vqvae.layers.Conv2DTranspose` "
            "except the JAX row \"before the fix\": the same JAX model (same "
            f"weights) with `{KERAS_CONV_T}`, timed in the same rounds "
            "against the same PyTorch runs.",
        ]
    params = [
        (b, r["keras_trainable_params"], r["torch_trainable_params"])
        for b, r in results["model"].items() if "error" not in r
    ]
    if params:
        b, k, t = params[0]
        lines += ["", f"Trainable parameters: Keras {k:,}, PyTorch reference "
                  f"{t:,} ({'equal' if k == t else 'DIFFERENT'})."]
    lines += [
        "",
        "### Encode / decode (images/s)",
        "",
        "| Keras backend | op | Keras method | Keras img/s | PyTorch img/s | "
        "Keras / PyTorch |",
        "|---|---|---|---|---|---|",
    ]
    for backend, res in results["model"].items():
        for row in res.get("codec", []):
            lines.append(
                f"| {backend} | {row['op']} | {row['method']} | "
                f"{_fmt(row['keras'])} | {_fmt(row['torch'])} | "
                f"{_ratio(row['ratio'])} |"
            )
    options = results.get("options")
    lines += ["", "### TensorFlow options (batch 32)", ""]
    if not options:
        lines.append("Not measured in this run (`--quick` or `--no-options`).")
    elif "error" in options:
        lines.append(f"Failed: {options['error']}")
    else:
        lines += [
            "| dtype policy | jit_compile | img/s | vs float32 / no XLA | "
            "vs PyTorch | first fit (compile) s | finite loss |",
            "|---|---|---|---|---|---|---|",
        ]
        for row in options["rows"]:
            if "error" in row:
                lines.append(
                    f"| {row['policy']} | {row['jit_compile']} | failed: "
                    f"{row['error']} | | | | |"
                )
                continue
            lines.append(
                f"| {row['policy']} | {row['jit_compile']} | "
                f"{_fmt(row['keras'])} | {_ratio(row['vs_default'])} | "
                f"{_ratio(row['vs_torch'])} | {_fmt(row['first_fit_s'])} | "
                f"{row['loss_finite']} |"
            )
    lines += [
        "",
        "### `VectorQuantizer` forward on N x D inputs (TensorFlow, eager)",
        "",
        "Each size in a fresh process; peak = resident-set high-water mark "
        "during the call minus the resident set before it. `call` is the "
        "layer's forward (`training=False`); `get_indices` only the "
        "distances and argmin.",
        "",
        "| N | K | D | call ms | get_indices ms | call peak MiB | "
        "peak / (N*K*4 B) | get_indices peak / (N*K*4 B) | N*K*D*4 B in MiB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in results.get("quantizer", []):
        if "error" in row:
            lines.append(f"| {row.get('n')} | {row.get('k')} | | failed: "
                         f"{row['error']} | | | | | |")
            continue
        nk = row["n"] * row["k"] * 4
        lines.append(
            f"| {row['n']} | {row['k']} | {row['d']} | "
            f"{_fmt(row['call_s'] * 1e3)} | {_fmt(row['indices_s'] * 1e3)} | "
            f"{_fmt(_mib(row['peak_delta_call']))} | "
            f"{_fmt(_div(row['peak_delta_call'], nk), 2)} | "
            f"{_fmt(_div(row['peak_delta_indices'], nk), 2)} | "
            f"{_fmt(nk * row['d'] / 2**20)} |"
        )
    methods = {r.get("method") for r in results.get("quantizer", [])}
    methods.discard(None)
    if methods:
        lines += ["", "Peak measured with: " + ", ".join(sorted(methods))
                  + " (`tf.config.experimental.get_memory_info('CPU:0')` "
                  "reports zeros on CPU)."]
    lines += _render_sampling(results.get("sampling"))
    lines += _render_probe(results.get("probe"))
    lines += _render_findings(results)
    lines += ["", END, ""]
    return "\n".join(lines)


def _goal_numbers(results):
    """TensorFlow's train ratios vs. PyTorch and JAX's before/after ratios."""
    tf = results["model"].get("tensorflow") or {}
    jax = results["model"].get("jax") or {}
    return (
        [(r["batch_size"], r["ratio"], r["ratio_best_torch"])
         for r in tf.get("train", [])],
        [(r["batch_size"], r.get("keras_conv_transpose_ratio"), r["ratio"],
          r.get("speedup_of_our_conv_transpose"))
         for r in jax.get("train", [])],
    )


def _render_goal(results):
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
            + ", ".join(f"{_ratio(r)} at batch {b}" for b, r, _ in tf_rows)
            + " the PyTorch reference's images/s (PyTorch with all cores; "
            "against the faster of PyTorch with all cores and with one "
            "thread: "
            + ", ".join(f"{_ratio(r)}" for _, _, r in tf_rows) + ")."
        )
    else:
        lines.append("- TensorFlow was not measured in this run.")
    if any(before is not None for _, before, _, _ in jax_rows):
        lines.append(
            "- JAX before / after the library's transposed-convolution fix "
            "(`keras_vqvae.layers.Conv2DTranspose`, a `jax.custom_vjp` kernel "
            "gradient), Keras / PyTorch: "
            + "; ".join(
                f"batch {b}: {_ratio(before)} -> {_ratio(after)} "
                f"({_ratio(speedup)} faster)"
                for b, before, after, speedup in jax_rows
            ) + "."
        )
    return lines + [""]


def _render_sampling(sampling):
    if not sampling:
        return []
    lines = [
        "",
        "### Sampling from the presets' priors",
        "",
        "`PixelCNNPrior.sample(n)` (the whole raster loop compiled once; "
        "timed after a first call that traces and compiles it) and "
        "`VQVAE.decode_indices` on the sampled codes; medians over rounds. "
        "No PyTorch reference here.",
        "",
        "| Keras backend | preset | codes | prior parameters | n | "
        "samples/s | sample + decode images/s | first call s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for backend, res in sampling.items():
        if "error" in res:
            lines.append(f"| {backend} | failed: {res['error']} "
                         "| | | | | | |")
            continue
        for row in res["rows"]:
            h, w = row["latent_shape"]
            lines.append(
                f"| {backend} | {row['preset']} | {h}x{w}, "
                f"K={row['num_embeddings']} | {row['parameters']:,} | "
                f"{row['n']} | {_fmt(row['samples_per_s'])} | "
                f"{_fmt(row['images_per_s'])} | "
                f"{_fmt(row['first_call_s'])} |"
            )
    return lines


def _render_probe(probe):
    lines = ["", "### JAX on CPU: transposed convolutions, train-step "
             "ablations", ""]
    if not probe:
        return lines + ["Not measured in this run (`--quick` or `--no-probe`)."]
    conv = {}
    for res in probe.values():
        if "error" not in res:
            conv.update(res.get("conv", {}))
    errors = [f"{b}: {r['error']}" for b, r in probe.items() if "error" in r]
    if errors:
        lines.append("Failed: " + "; ".join(errors))
    ours = {}
    for res in probe.values():
        if "error" not in res:
            ours.update({r["layer"]: r["fwd_bwd_ms"]
                         for r in res.get("conv_our_layer", [])})
    if conv:
        frameworks = list(conv)
        ours_column = "jax" in conv and bool(ours)
        header = [("jax, Keras ops (`ops.conv_transpose`)" if f == "jax"
                   else f) for f in frameworks]
        if ours_column:
            header.insert(1 + frameworks.index("jax"),
                          "jax, `keras_vqvae.layers.Conv2DTranspose`")
        lines += [
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
        totals = {f: 0.0 for f in frameworks}
        ours_total = 0.0
        for i, layer in enumerate(layers):
            cells = []
            for f in frameworks:
                value = conv[f][i]["fwd_bwd_ms"]
                totals[f] += value
                cells.append(_fmt(value))
                if f == "jax" and ours_column:
                    if layer in ours:
                        ours_total += ours[layer]
                        cells.append(_fmt(ours[layer]))
                    else:
                        ours_total += value
                        cells.append(f"*{_fmt(value)}*")
            lines.append(f"| {layer} | " + " | ".join(cells) + " |")
        sums = []
        for f in frameworks:
            sums.append(_fmt(totals[f]))
            if f == "jax" and ours_column:
                sums.append(_fmt(ours_total))
        lines.append("| **sum** | " + " | ".join(sums) + " |")
    quantizer_ms = {}
    for res in probe.values():
        quantizer_ms.update(res.get("quantizer_ms", {}))
    if quantizer_ms:
        lines += [
            "",
            "The preset's quantiser alone (EMA update, k-means check, dead-code "
            "restarts; forward in training mode on 32 x 8 x 8 x 64, K = 512), "
            "ms: " + ", ".join(f"{k} {v:.2f}" for k, v in quantizer_ms.items())
            + ".",
        ]
    ablations = [
        (backend, row) for backend, res in probe.items()
        for row in res.get("ablation", [])
    ]
    if ablations:
        lines += [
            "",
            "Train-step ablations (`model.fit`, batch 32):",
            "",
            "| Keras backend | variant | img/s | ms/step | vs preset |",
            "|---|---|---|---|---|",
        ]
        for backend, row in ablations:
            lines.append(
                f"| {backend} | {row['variant']} | {_fmt(row['keras'])} | "
                f"{_fmt(row['ms_per_step'])} | {_ratio(row['vs_preset'])} |"
            )
    return lines


def _render_findings(results):
    """Short conclusions computed from this run's numbers."""
    notes = []
    train = {
        (backend, row["batch_size"]): row
        for backend, res in results["model"].items() if "error" not in res
        for row in res["train"]
    }
    for backend in results["model"]:
        ratios = [row["ratio"] for (b, _), row in train.items() if b == backend]
        if ratios:
            notes.append(
                f"Keras on {backend} trains at "
                + " / ".join(_ratio(r) for r in ratios)
                + " the speed of the PyTorch reference (batch "
                + " / ".join(str(bs) for (b, bs) in train if b == backend)
                + ")."
            )
    probe = results.get("probe") or {}
    conv = {}
    for res in probe.values():
        conv.update(res.get("conv", {}) if "error" not in res else {})
    ours = {}
    for res in probe.values():
        if "error" not in res:
            ours.update({r["layer"]: r["fwd_bwd_ms"]
                         for r in res.get("conv_our_layer", [])})
    if "jax" in conv and "tensorflow" in conv:
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
        note += (
            " JAX's other convolutions are up to "
            f"{max(jax_rows[n] / tf_rows[n] for n in jax_rows if n not in transposed):.1f}"
            "x slower than TensorFlow's (oneDNN)."
        )
        notes.append(note)
    ablation = {
        row["variant"]: row for res in probe.values()
        for row in res.get("ablation", []) if res.get("backend") == "jax"
    }
    before = [r for v, r in ablation.items() if KERAS_CONV_T in v]
    if before:
        notes.append(
            "Train-step ablation, batch 32: the preset's JAX train step is "
            f"{_ratio(before[0]['preset_vs_this'])} faster with "
            f"`keras_vqvae.layers.Conv2DTranspose` than with `{KERAS_CONV_T}`"
            f" in the decoder ({before[0]['ms_per_step']:.0f} ms per step "
            "before the fix)."
        )
    max_difference = (results["model"].get("jax") or {}).get(
        "keras_conv_transpose_max_output_difference")
    if max_difference is not None:
        notes.append(
            f"With the same weights, the model with `{KERAS_CONV_T}` and the "
            "library's model give outputs that differ by at most "
            f"{max_difference:.1e} (JAX, inference on 4 images)."
        )
    quantizer_ms = {}
    for res in probe.values():
        quantizer_ms.update(res.get("quantizer_ms", {}))
    jax_step = [r["ms_per_step"] for v, r in ablation.items()
                if v.startswith("cifar10 preset (")]
    without = [r["vs_preset"] for v, r in ablation.items()
               if v.startswith("no quantiser")]
    if "jax (jit)" in quantizer_ms and jax_step and without:
        notes.append(
            f"The quantiser alone takes {quantizer_ms['jax (jit)']:.1f} ms "
            f"compiled on JAX, against a {jax_step[0]:.0f} ms train step "
            "(segment sums for counts and EMA sums, argmin, assignments of "
            "the non-trainable state, k-means `cond`, restarts); removing it "
            f"makes the JAX step {_ratio(without[0])} as fast."
        )
    rows = [r for r in results.get("quantizer", [])
            if "error" not in r and r.get("peak_delta_call")]
    if rows:
        ratios = [r["peak_delta_call"] / (r["n"] * r["k"] * 4) for r in rows]
        notes.append(
            "Quantiser memory grows as N x K: the peak is "
            f"{min(ratios):.1f}-{max(ratios):.1f} x N*K*4 bytes for every N "
            f"and K measured (an N x K x D tensor would be {rows[0]['d']} x)."
        )
    options = results.get("options") or {}
    for row in options.get("rows", []):
        if row.get("policy") == "mixed_bfloat16" and not row["jit_compile"] \
                and "error" not in row:
            notes.append(
                f"On this CPU `mixed_bfloat16` trains at "
                f"{_ratio(row['vs_default'])} the float32 speed (TensorFlow, "
                "no XLA)."
            )
        if row.get("policy") == "float32" and row["jit_compile"] \
                and "error" not in row:
            notes.append(
                f"XLA (`jit_compile=True`) trains at "
                f"{_ratio(row['vs_default'])} the speed of the default on "
                "TensorFlow/CPU, where Keras's `jit_compile=\"auto\"` "
                "already leaves it off."
            )
    if not notes:
        return []
    return ["", "### Findings of this run", ""] + [f"- {n}" for n in notes]


def _load(load):
    return "n/a" if not load else "/".join(f"{v:.1f}" for v in load)


def _mib(value):
    return None if value is None else value / 2**20


def _div(a, b):
    return None if a is None else a / b


def write_section(path, section):
    """Replaces the benchmark section of `path` (or creates the file)."""
    path = Path(path)
    if path.is_file():
        text = path.read_text()
        pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END) + r"\n?",
                             re.S)
        if pattern.search(text):
            text = pattern.sub(lambda _: section, text, count=1)
        else:
            text = text.rstrip("\n") + "\n\n" + section
    else:
        text = (
            "# Benchmarks\n\nWritten by `tools/benchmark.py`; rerun it to "
            "replace the section below.\n\n" + section
        )
    path.write_text(text)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--backends", default=",".join(BACKENDS),
                        help="comma-separated Keras backends "
                        "(default: %(default)s)")
    parser.add_argument("--quick", action="store_true",
                        help="a few steps only: a smoke test (< 1 minute)")
    parser.add_argument("--output", default=str(REPO_ROOT / "BENCHMARKS.md"),
                        help="Markdown file whose benchmark section is "
                        "written (default: BENCHMARKS.md at the repo root)")
    parser.add_argument("--json", help="also write the raw results here")
    parser.add_argument("--no-options", action="store_true",
                        help="skip the TensorFlow mixed-precision/XLA runs")
    parser.add_argument("--no-probe", action="store_true",
                        help="skip the JAX investigation")
    parser.add_argument("--no-quantizer", action="store_true",
                        help="skip the VectorQuantizer sweep")
    parser.add_argument("--no-sampling", action="store_true",
                        help="skip the prior sampling speed of the presets")
    parser.add_argument("--worker", choices=sorted(WORKERS),
                        help=argparse.SUPPRESS)
    parser.add_argument("--worker-settings", help=argparse.SUPPRESS)
    parser.add_argument("--worker-output", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        settings = json.loads(args.worker_settings)
        result = WORKERS[args.worker](settings)
        Path(args.worker_output).write_text(json.dumps(result))
        return 0

    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = sorted(set(backends) - set(BACKENDS))
    if unknown:
        raise SystemExit(f"Unknown backends {unknown}; choose from {BACKENDS}.")
    settings = dict(QUICK if args.quick else FULL)
    settings["steps"] = {str(k): v for k, v in settings["steps"].items()}
    started = datetime.datetime.now()
    t0 = time.perf_counter()

    def log(message):
        print(message, file=sys.stderr, flush=True)

    results = {"machine": machine_info(), "versions": library_versions(),
               "model": {}}
    for backend in backends:
        log(f"training / encode / decode, Keras backend {backend} ...")
        results["model"][backend] = run_worker("model", backend, settings,
                                               log=log)
    if settings["options"] and not args.no_options and "tensorflow" in backends:
        log("TensorFlow options ...")
        results["options"] = run_worker("options", "tensorflow", settings,
                                        log=log)
    if not args.no_quantizer:
        log("VectorQuantizer sweep ...")
        results["quantizer"] = []
        for n, k in settings["quantizer_sizes"]:
            res = run_worker("quantizer", "tensorflow",
                             {"n": n, "k": k, "d": settings["quantizer_dim"]},
                             log=log)
            res.setdefault("n", n)
            res.setdefault("k", k)
            results["quantizer"].append(res)
    if not args.no_sampling:
        log("prior sampling ...")
        results["sampling"] = {
            b: run_worker("sampling", b, settings, log=log) for b in backends
        }
    if settings["probe"] and not args.no_probe:
        log("JAX probe ...")
        results["probe"] = {
            b: run_worker("probe", b, settings, log=log)
            for b in ("jax", "tensorflow")
        }
    results["wall_s"] = time.perf_counter() - t0
    try:
        results["load_end"] = os.getloadavg()
    except OSError:
        pass
    command = "python tools/benchmark.py " + " ".join(
        shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])
    )
    section = render(results, command.strip(), started, settings)
    write_section(args.output, section)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=str))
    print(section)
    failed = [b for b, r in results["model"].items() if "error" in r]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
