"""`VectorQuantizer` forward time and peak memory on N x D inputs, one size
per process (TensorFlow, eager)."""

import sys
import time

from .formatting import fmt_number


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


def _tf_memory_info():
    """TensorFlow's own CPU memory counters, where they report anything."""
    import keras

    if keras.backend.backend() != "tensorflow":
        return None
    import tensorflow as tf

    try:
        info = tf.config.experimental.get_memory_info("CPU:0")
    except (ValueError, RuntimeError):
        return None
    return info if info.get("peak") else None


def _timed_s(fn):
    """Seconds of `fn()`, which returns once its result is computed."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def worker(settings):
    """Times `call` and `get_indices` on one size; measures their peaks.

    Args:
        settings: dict with `n` (inputs), `k` (codes) and `d` (dimension).

    Returns:
        A JSON-serialisable dict: seconds (best of two), peak resident-set
        growth in bytes during each call, and how the peak was measured.
    """
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
    memory_info = _tf_memory_info()
    resettable = _reset_peak()
    base = _rss_kib("VmRSS")
    call = lambda: keras.ops.convert_to_numpy(quantizer(x)[:1])  # noqa: E731
    indices = lambda: keras.ops.convert_to_numpy(  # noqa: E731
        quantizer.get_indices(x)
    )
    indices_s = _timed_s(indices)
    peak_indices = _peak_kib(resettable)
    call_s = _timed_s(call)
    peak_call = _peak_kib(resettable)
    # A second timing of each (memory already measured).
    call_s = min(call_s, _timed_s(call))
    indices_s = min(indices_s, _timed_s(indices))
    if base is None or peak_call is None:
        delta_call = delta_indices = None
    else:
        delta_indices = max(peak_indices - base, 0) * 1024
        delta_call = max(peak_call - base, 0) * 1024
    return {
        "n": n,
        "k": k,
        "d": d,
        "call_s": call_s,
        "indices_s": indices_s,
        "peak_delta_call": delta_call,
        "peak_delta_indices": delta_indices,
        "method": "VmHWM after clear_refs" if resettable else "ru_maxrss",
        "tf_memory_info": memory_info,
    }


def _mib(value):
    return None if value is None else value / 2**20


def _div(a, b):
    return None if a is None else a / b


def render(rows):
    """The quantiser table and how its peaks were measured.

    Args:
        rows: list of this module's worker results, or `None` if not run.

    Returns:
        list of Markdown lines (none if not run).
    """
    if rows is None:
        return []
    lines = [
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
    lines += [_row(row) for row in rows]
    methods = {r.get("method") for r in rows}
    methods.discard(None)
    if methods:
        lines += [
            "",
            "Peak measured with: "
            + ", ".join(sorted(methods))
            + " (`tf.config.experimental.get_memory_info('CPU:0')` "
            "reports zeros on CPU).",
        ]
    return lines


def _row(row):
    if "error" in row:
        return (
            f"| {row.get('n')} | {row.get('k')} | | failed: "
            f"{row['error']} | | | | | |"
        )
    nk = row["n"] * row["k"] * 4
    return (
        f"| {row['n']} | {row['k']} | {row['d']} | "
        f"{fmt_number(row['call_s'] * 1e3)} | "
        f"{fmt_number(row['indices_s'] * 1e3)} | "
        f"{fmt_number(_mib(row['peak_delta_call']))} | "
        f"{fmt_number(_div(row['peak_delta_call'], nk), 2)} | "
        f"{fmt_number(_div(row['peak_delta_indices'], nk), 2)} | "
        f"{fmt_number(nk * row['d'] / 2**20)} |"
    )


def findings(rows):
    """How the quantiser's peak memory grows with N and K.

    Args:
        rows: list of this module's worker results.

    Returns:
        list of str (empty without a measured peak).
    """
    rows = [r for r in rows if "error" not in r and r.get("peak_delta_call")]
    if not rows:
        return []
    ratios = [r["peak_delta_call"] / (r["n"] * r["k"] * 4) for r in rows]
    return [
        "Quantiser memory grows as N x K: the peak is "
        f"{min(ratios):.1f}-{max(ratios):.1f} x N*K*4 bytes for every N "
        f"and K measured (an N x K x D tensor would be {rows[0]['d']} x)."
    ]
