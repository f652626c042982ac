"""Where TensorFlow's training step spends its time: a profiler trace of a
few `model.fit` steps of the library's fast path (batch 32), and the top
ops by self time.

`python tools/benchmark --profile-tf OUT_DIR` runs `worker` in a
TensorFlow subprocess; the trace (`OUT_DIR/plugins/profile/*/*.xplane.pb`)
opens in TensorBoard's profile plugin.
"""

import glob
import json
import time
from pathlib import Path

from . import timing
from .cifar10 import compiled_model
from .cifar10 import fast_policy
from .cifar10 import images
from .formatting import fmt_number

BATCH_SIZE = 32
TOP = 15


def worker(settings):
    """Traces `settings["profile_calls"]` compiled calls of `fit`.

    Args:
        settings: dict with `out_dir` (the trace's folder),
            `steps_per_execution` and `profile_calls`.

    Returns:
        A JSON-serialisable dict: the policy, the steps traced, their wall
        seconds, the trace folder and `ops` (see `op_stats`).
    """
    import tensorflow as tf

    per_call = settings["steps_per_execution"]
    steps = per_call * settings["profile_calls"]
    policy = fast_policy()
    model = compiled_model(policy, per_call)
    x = images((per_call + steps) * BATCH_SIZE)
    timing.first_fit_s(model, x, BATCH_SIZE)
    timing.time_fit(model, x, BATCH_SIZE, per_call, per_call)  # warm
    out_dir = str(Path(settings["out_dir"]).resolve())
    tf.profiler.experimental.start(out_dir)
    started = time.perf_counter()
    model.fit(x[: steps * BATCH_SIZE], batch_size=BATCH_SIZE, verbose=0)
    traced_s = time.perf_counter() - started
    tf.profiler.experimental.stop()
    return {
        "policy": policy,
        "steps_per_execution": per_call,
        "steps": steps,
        "traced_s": traced_s,
        "out_dir": out_dir,
        "ops": op_stats(out_dir),
    }


def op_stats(out_dir):
    """Self time per op type of the newest trace under `out_dir`.

    Args:
        out_dir: str, the folder given to `tf.profiler.experimental.start`.

    Returns:
        list of `{"type", "self_us", "occurrences"}`, largest first (the
        profiler's `framework_op_stats` without its idle time).
    """
    from tensorflow.python.profiler.internal import (
        _pywrap_profiler_plugin as plugin,
    )

    traces = sorted(glob.glob(f"{out_dir}/plugins/profile/*/*.xplane.pb"))
    if not traces:
        raise FileNotFoundError(f"No profiler trace under {out_dir}.")
    data, _ = plugin.xspace_to_tools_data(
        [traces[-1]], "framework_op_stats", {}
    )
    table = json.loads(data)[-1]  # the last table leaves idle time out
    columns = [c["id"] for c in table["cols"]]
    by_type = {}
    for row in table["rows"]:
        cells = dict(zip(columns, (c.get("v") for c in row["c"])))
        if cells["type"] == "IDLE":
            continue
        entry = by_type.setdefault(
            cells["type"],
            {"type": cells["type"], "self_us": 0.0, "occurrences": 0},
        )
        entry["self_us"] += cells["total_self_time"]
        entry["occurrences"] += int(cells["occurrences"])
    return sorted(by_type.values(), key=lambda e: -e["self_us"])


def render(profile, top=TOP):
    """The top ops by self time as a Markdown table.

    Args:
        profile: dict, this module's worker result.
        top: int. Rows shown.

    Returns:
        list of Markdown lines.
    """
    if "error" in profile:
        return [f"Profiling failed: {profile['error']}"]
    steps, ops = profile["steps"], profile["ops"]
    step_ms = 1e3 * profile["traced_s"] / steps
    total_us = sum(op["self_us"] for op in ops)
    lines = [
        f"TensorFlow, `{profile['policy']}`, batch {BATCH_SIZE}, "
        f"steps_per_execution={profile['steps_per_execution']}: {steps} "
        f"steps traced, {fmt_number(step_ms)} ms per step (wall, with the "
        f"profiler on); ops' self time {fmt_number(total_us / 1e3 / steps)} "
        "ms per step (summed over threads). Trace: "
        f"`{profile['out_dir']}`.",
        "",
        "| op type | total self ms | ms per step | % of step (wall) | "
        "% of op time |",
        "|---|---|---|---|---|",
    ]
    for op in ops[:top]:
        per_step = op["self_us"] / 1e3 / steps
        lines.append(
            f"| {op['type']} | {fmt_number(op['self_us'] / 1e3)} | "
            f"{per_step:.2f} | {100 * per_step / step_ms:.1f}% | "
            f"{100 * op['self_us'] / total_us:.1f}% |"
        )
    return lines
