"""Where the two sides' training steps spend their oneDNN time, primitive by
primitive: the library's TensorFlow fast path and the PyTorch peer in its
bf16 autocast + channels_last mode both run their convolutions through
oneDNN, so `ONEDNN_VERBOSE=1` times the same kernels on both.

`python tools/benchmark --onednn-primitives BATCH` runs `worker` once per
side in a subprocess with `ONEDNN_VERBOSE=1`, parses the primitives the
timed steps executed (between two markers on stdout) and prints them side
by side. TensorFlow runs a transposed convolution as the backward-data
pass of its adjoint convolution (and its input gradient as that
convolution's forward pass); PyTorch calls it a deconvolution. Rows name
every convolution by the strided convolution's shape, so both sides'
kernels for the same layer and pass share a row.

TensorFlow runs independent ops at once (two at a time on two cores), and
a primitive that shares the cores with another takes longer by the
clock: the traced Keras steps run with one inter-op thread, so that
primitives run one at a time on both sides and their times compare.
"""

import collections
import re
import time

from .formatting import fmt_ratio

SIDES = ("keras", "torch")
SIDE_NAMES = {
    "keras": "Keras TensorFlow",
    "torch": "PyTorch bf16 autocast + channels_last",
}
START, END = "=== onednn trace: start ===", "=== onednn trace: end ==="
STEPS = 8
TOP = 16
_DESC = re.compile(
    r"mb(\d+)_ic(\d+)oc(\d+)_ih(\d+)oh(\d+)(kh\d+sh\d+dh\d+ph\d+)"
    r"_iw(\d+)ow(\d+)(kw\d+sw\d+dw\d+pw\d+)"
)
# A deconvolution's pass and the pass of its adjoint convolution.
_DECONV_PASS = {
    "forward": "backward_data",
    "backward_data": "forward",
    "backward_weights": "backward_weights",
}


def worker(settings):
    """Trains `STEPS` steps of one side, between markers on stdout.

    The parent process sets `ONEDNN_VERBOSE=1`; oneDNN prints one line per
    primitive it executes.

    Args:
        settings: dict with `side` (`"keras"` or `"torch"`) and
            `batch_size`.

    Returns:
        A JSON-serialisable dict: the side, its policy or mode, the batch
        size and the wall milliseconds per traced step.
    """
    from .cifar10 import images

    batch = settings["batch_size"]
    x = images(2 * STEPS * batch)
    if settings["side"] == "keras":
        step_all, policy = _keras_steps(batch)
    else:
        step_all, policy = _torch_steps(batch)
    step_all(x[STEPS * batch :])  # warm: build, compile, first calls
    print(START, flush=True)
    started = time.perf_counter()
    step_all(x[: STEPS * batch])
    step_ms = 1e3 * (time.perf_counter() - started) / STEPS
    print(END, flush=True)
    return {
        "side": settings["side"],
        "policy": policy,
        "batch_size": batch,
        "step_ms": step_ms,
    }


def _keras_steps(batch):
    import tensorflow as tf

    from .cifar10 import compiled_model
    from .cifar10 import fast_policy

    tf.config.threading.set_inter_op_parallelism_threads(1)
    policy = fast_policy()
    model = compiled_model(policy, STEPS)

    def step_all(images):
        model.fit(images[: STEPS * batch], batch_size=batch, verbose=0)

    return step_all, policy


def _torch_steps(batch):
    import torch

    from .cifar10 import reference_model
    from .timing import cores

    reference = reference_model(cores(), mode="bfloat16_channels_last")

    def step_all(images):
        losses = [
            reference.train_step(images[i * batch : (i + 1) * batch])
            for i in range(STEPS)
        ]
        torch.stack(losses).sum().item()  # wait for the last step

    return step_all, "bfloat16_channels_last"


def summarize(result):
    """A worker's result with its oneDNN lines parsed (see `parse`).

    Args:
        result: dict from `runner.run_worker(..., keep_stdout=True)`.

    Returns:
        The result without `stdout`, with `primitives`; an error result
        unchanged.
    """
    if "error" in result:
        return result
    summary = {k: v for k, v in result.items() if k != "stdout"}
    summary["primitives"] = parse(result["stdout"])
    return summary


def parse(stdout, steps=STEPS):
    """The primitives executed between the markers, per step.

    Args:
        stdout: str, a worker's standard output with `ONEDNN_VERBOSE=1`.
        steps: int. Training steps between the markers.

    Returns:
        dict `{(primitive, pass, shape): {"ms", "calls"}}` per step, where
        a (de)convolution's primitive is `"convolution"` and its shape and
        pass those of the strided convolution (see the module docstring).
    """
    if START not in stdout or END not in stdout:
        raise ValueError("The worker's output has no oneDNN trace markers.")
    traced = stdout.split(START, 1)[1].split(END, 1)[0]
    totals = collections.defaultdict(lambda: {"ms": 0.0, "calls": 0})
    for line in traced.splitlines():
        fields = line.split(",")
        if not line.startswith("onednn_verbose") or "exec" not in fields:
            continue
        at = fields.index("exec")
        key = _row_key(fields[at + 2], fields[at + 4], fields[-2])
        totals[key]["ms"] += float(fields[-1])
        totals[key]["calls"] += 1
    return {
        key: {"ms": value["ms"] / steps, "calls": value["calls"] / steps}
        for key, value in totals.items()
    }


def _row_key(primitive, pass_, shape):
    pass_ = pass_.replace("forward_training", "forward").replace(
        "forward_inference", "forward"
    )
    if primitive == "deconvolution":
        return "convolution", _DECONV_PASS[pass_], _adjoint_shape(shape)
    if primitive != "convolution":
        return primitive, "", ""
    return primitive, pass_, shape


def _adjoint_shape(shape):
    """A deconvolution's shape as its adjoint strided convolution's:
    input and output channels and sizes swapped."""
    m = _DESC.fullmatch(shape)
    if not m:
        return shape
    mb, ic, oc, ih, oh, kh, iw, ow, kw = m.groups()
    return f"mb{mb}_ic{oc}oc{ic}_ih{oh}oh{ih}{kh}_iw{ow}ow{iw}{kw}"


def render(traces, top=TOP):
    """Both sides' primitives as a Markdown table, largest Keras time first.

    Args:
        traces: dict `{side: summarize(...) result}`.
        top: int. Convolution rows shown; the rest are summed in one row.

    Returns:
        list of Markdown lines.
    """
    errors = [f"{s}: {t['error']}" for s, t in traces.items() if "error" in t]
    if errors:
        return ["oneDNN trace failed: " + "; ".join(errors)]
    keras, torch = (traces[s]["primitives"] for s in SIDES)
    heading = ", ".join(
        f"{SIDE_NAMES[s]} (`{traces[s]['policy']}`) {traces[s]['step_ms']:.1f}"
        for s in SIDES
    )
    keys = sorted(
        set(keras) | set(torch),
        key=lambda k: (-keras.get(k, {}).get("ms", 0.0), k),
    )
    convolutions = [k for k in keys if k[0] == "convolution"]
    others = [k for k in keys if k[0] != "convolution"]
    lines = [
        f"Batch {traces['keras']['batch_size']}, {STEPS} training steps; wall "
        f"ms per step: {heading} (Keras with one inter-op thread, slower "
        "by the clock than the fast path, which runs two ops at once: the "
        "training table has its speed).",
        "",
        f"| primitive | pass | shape | {SIDE_NAMES['keras']} ms/step "
        f"(calls) | {SIDE_NAMES['torch']} ms/step (calls) | Keras / PyTorch "
        "time |",
        "|---|---|---|---|---|---|",
    ]
    for key in convolutions[:top] + others:
        lines.append(_row(key, keras.get(key), torch.get(key)))
    rest = convolutions[top:]
    if rest:
        lines.append(
            _row(
                ("other convolutions", "", _count(len(rest), "shape")),
                _sum(keras, rest),
                _sum(torch, rest),
            )
        )
    lines.append(
        _row(("all primitives", "", ""), _sum(keras, keys), _sum(torch, keys))
    )
    return lines


def _count(n, noun):
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _sum(trace, keys):
    entries = [trace[k] for k in keys if k in trace]
    return {
        "ms": sum(e["ms"] for e in entries),
        "calls": sum(e["calls"] for e in entries),
    }


def _cell(entry):
    if not entry:
        return "-"
    return f"{entry['ms']:.2f} ({entry['calls']:.3g})"


def _row(key, keras, torch):
    primitive, pass_, shape = key
    ratio = (
        keras["ms"] / torch["ms"]
        if keras and torch and torch["ms"] > 0
        else None
    )
    return (
        f"| {primitive} | {pass_ or '-'} | {f'`{shape}`' if shape else '-'} "
        f"| {_cell(keras)} | {_cell(torch)} | {fmt_ratio(ratio)} |"
    )
