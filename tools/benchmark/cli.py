"""Benchmarks keras-vqvae against the strongest PyTorch peer, in one run.

The command line: runs each section's worker in a subprocess, then writes
the Markdown section (see the package's docstring for what is measured);
with `--profile-tf OUT_DIR`, only traces TensorFlow's training step and
prints its top ops; with `--onednn-primitives BATCH`, only times both
sides' oneDNN primitives and prints them side by side.
"""

import argparse
import datetime
import json
import shlex
import sys
import time
from pathlib import Path

from . import jax_probe
from . import onednn_trace
from . import options
from . import quantizer_memory
from . import roofline
from . import sampling
from . import speech
from . import tf_profile
from . import throughput
from .report import COMMAND
from .report import render
from .report import write_section
from .runner import REPO_ROOT
from .runner import library_versions
from .runner import load_average
from .runner import machine_info
from .runner import run_worker
from .timing import thread_counts

BACKENDS = ("tensorflow", "jax", "torch")
WORKERS = {
    "model": throughput.worker,
    "options": options.worker,
    "quantizer": quantizer_memory.worker,
    "probe": jax_probe.worker,
    "sampling": sampling.worker,
    "speech": speech.worker,
    "roofline": roofline.worker,
    "profile": tf_profile.worker,
    "onednn": onednn_trace.worker,
}
# Keras's warm-up and timed steps are multiples of `steps_per_execution`
# (`fit` runs and reports them one compiled call at a time).
FULL = dict(
    batch_sizes=[32, 128],
    steps={32: 16, 128: 8},
    warmup=8,
    torch_warmup=2,
    torch_one_thread=True,
    steps_per_execution=8,
    rounds=3,
    peak_size=2048,
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
    **speech.FULL,
)
QUICK = dict(
    batch_sizes=[32],
    steps={32: 2},
    warmup=2,
    torch_warmup=1,
    torch_one_thread=False,
    steps_per_execution=2,
    rounds=1,
    peak_size=1024,
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
    **speech.QUICK,
)
PROFILE_CALLS = 2  # compiled calls traced by --profile-tf
# A backend's training worker runs 8 models; on a busy machine, where
# PyTorch's threads stall, it can take much longer than the others.
MODEL_TIMEOUT_S = 3600


def parse_args(argv=None):
    """The command line's arguments (`argv` defaults to `sys.argv[1:]`)."""
    parser = argparse.ArgumentParser(
        prog=COMMAND,
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--backends",
        default=",".join(BACKENDS),
        help="comma-separated Keras backends (default: %(default)s)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a few steps only: a smoke test (a few minutes)",
    )
    parser.add_argument(
        "--output",
        default=str(REPO_ROOT / "BENCHMARKS.md"),
        help="Markdown file whose benchmark section is "
        "written (default: BENCHMARKS.md at the repo root)",
    )
    parser.add_argument("--json", help="also write the raw results here")
    parser.add_argument(
        "--no-options",
        action="store_true",
        help="skip the TensorFlow mixed-precision/XLA runs",
    )
    parser.add_argument(
        "--no-probe", action="store_true", help="skip the JAX investigation"
    )
    parser.add_argument(
        "--no-quantizer",
        action="store_true",
        help="skip the VectorQuantizer sweep",
    )
    parser.add_argument(
        "--no-sampling",
        action="store_true",
        help="skip the prior sampling speed of the presets",
    )
    parser.add_argument(
        "--no-speech",
        action="store_true",
        help="skip the speech VQ-VAE's training and generation speed",
    )
    parser.add_argument(
        "--profile-tf",
        metavar="OUT_DIR",
        help="only trace a few TensorFlow training steps of the default "
        "fast path (batch 32) into OUT_DIR and print the top ops by self "
        "time",
    )
    parser.add_argument(
        "--onednn-primitives",
        metavar="BATCH",
        type=int,
        help="only time the oneDNN primitives of a few training steps at "
        "batch BATCH (ONEDNN_VERBOSE=1), the TensorFlow fast path beside "
        "the PyTorch peer in bf16, and print them side by side",
    )
    parser.add_argument(
        "--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS
    )
    parser.add_argument("--worker-settings", help=argparse.SUPPRESS)
    parser.add_argument("--worker-output", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def _log(message):
    print(message, file=sys.stderr, flush=True)


def _quantizer_sweep(settings):
    rows = []
    for n, k in settings["quantizer_sizes"]:
        res = run_worker(
            "quantizer",
            "tensorflow",
            {"n": n, "k": k, "d": settings["quantizer_dim"]},
            log=_log,
        )
        res.setdefault("n", n)
        res.setdefault("k", k)
        rows.append(res)
    return rows


def run_sections(args, backends, settings):
    """Runs every section's workers that `args` and `settings` ask for.

    Args:
        args: the parsed command line.
        backends: list of Keras backend names.
        settings: dict, `FULL` or `QUICK` (steps keyed by str).

    Returns:
        dict: the results by section (`model`, `options`, `quantizer`,
        `sampling`, `speech`, `probe`), with the machine and library
        versions.
    """
    results = {
        "machine": machine_info(),
        "versions": library_versions(),
        "torch_threads": thread_counts(settings),
        "model": {},
    }
    _log("matmul peak ...")
    peaks = [run_worker("roofline", "tensorflow", settings, log=_log)]
    for backend in backends:
        _log(f"training / encode / decode, Keras backend {backend} ...")
        results["model"][backend] = run_worker(
            "model", backend, settings, timeout=MODEL_TIMEOUT_S, log=_log
        )
    _log("matmul peak again ...")
    peaks.append(run_worker("roofline", "tensorflow", settings, log=_log))
    results["roofline"] = roofline.best(peaks)
    if settings["options"] and not args.no_options and "tensorflow" in backends:
        _log("TensorFlow options ...")
        results["options"] = run_worker(
            "options", "tensorflow", settings, log=_log
        )
    if not args.no_quantizer:
        _log("VectorQuantizer sweep ...")
        results["quantizer"] = _quantizer_sweep(settings)
    if not args.no_sampling:
        _log("prior sampling ...")
        results["sampling"] = {
            b: run_worker("sampling", b, settings, log=_log) for b in backends
        }
    if not args.no_speech:
        _log("speech VQ-VAE ...")
        results["speech"] = {
            b: run_worker("speech", b, settings, log=_log) for b in backends
        }
    if settings["probe"] and not args.no_probe:
        _log("JAX probe ...")
        results["probe"] = {
            b: run_worker("probe", b, settings, log=_log)
            for b in ("jax", "tensorflow")
        }
    return results


def profile_tf(out_dir):
    """Traces TensorFlow's training step; prints the top ops by self time.

    Args:
        out_dir: str, the trace's folder.

    Returns:
        int, the exit status.
    """
    settings = {
        "out_dir": out_dir,
        "steps_per_execution": FULL["steps_per_execution"],
        "profile_calls": PROFILE_CALLS,
    }
    _log(f"profiling TensorFlow's training step into {out_dir} ...")
    profile = run_worker("profile", "tensorflow", settings, log=_log)
    print("\n".join(tf_profile.render(profile)))
    return 1 if "error" in profile else 0


def onednn_primitives(batch_size):
    """Times both sides' oneDNN primitives; prints them side by side.

    Args:
        batch_size: int. Images per training step.

    Returns:
        int, the exit status.
    """
    _log(f"oneDNN primitives of training steps at batch {batch_size} ...")
    traces = {}
    for side in onednn_trace.SIDES:
        result = run_worker(
            "onednn",
            "tensorflow",
            {"side": side, "batch_size": batch_size},
            log=_log,
            extra_env={"ONEDNN_VERBOSE": "1"},
            keep_stdout=True,
        )
        traces[side] = onednn_trace.summarize(result)
    print("\n".join(onednn_trace.render(traces)))
    return 1 if any("error" in t for t in traces.values()) else 0


def main(argv=None):
    """Runs the benchmark, or one worker (`--worker`, in a subprocess).

    Args:
        argv: list of str, the arguments; defaults to `sys.argv[1:]`.

    Returns:
        int, the exit status: 1 if a backend's training worker failed.
    """
    args = parse_args(argv)
    if args.worker:
        settings = json.loads(args.worker_settings)
        result = WORKERS[args.worker](settings)
        Path(args.worker_output).write_text(json.dumps(result))
        return 0
    if args.profile_tf:
        return profile_tf(args.profile_tf)
    if args.onednn_primitives:
        return onednn_primitives(args.onednn_primitives)

    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = sorted(set(backends) - set(BACKENDS))
    if unknown:
        raise SystemExit(f"Unknown backends {unknown}; choose from {BACKENDS}.")
    settings = dict(QUICK if args.quick else FULL)
    settings["steps"] = {str(k): v for k, v in settings["steps"].items()}
    started = datetime.datetime.now()
    t0 = time.perf_counter()
    results = run_sections(args, backends, settings)
    results["wall_s"] = time.perf_counter() - t0
    results["load_end"] = load_average()
    command = f"{COMMAND} " + " ".join(
        shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])
    )
    section = render(results, command.strip(), started, settings)
    write_section(args.output, section)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=str))
    print(section)
    failed = [b for b, r in results["model"].items() if "error" in r]
    return 1 if failed else 0
