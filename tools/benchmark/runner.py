"""Runs a worker in a subprocess with its own Keras backend, and describes
the machine and library versions for the report."""

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .timing import cores

PACKAGE = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE.parents[1]


def run_worker(
    kind,
    backend,
    settings,
    timeout=900,
    log=None,
    extra_env=None,
    keep_stdout=False,
):
    """Runs `python tools/benchmark --worker kind` with `KERAS_BACKEND`.

    Args:
        kind: str, a name in `cli.WORKERS`.
        backend: str, the Keras backend of the subprocess.
        settings: dict, JSON-serialisable, passed to the worker.
        timeout: float. Seconds before the worker is abandoned.
        log: callable taking a message, or `None`.
        extra_env: dict of environment variables for the subprocess, or
            `None`.
        keep_stdout: bool. Whether the result holds the worker's `stdout`.

    Returns:
        The worker's result dict with its `wall_s`, or `{"error": ...}`.
    """
    env = dict(os.environ, **(extra_env or {}))
    env["KERAS_BACKEND"] = backend
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    # libgomp's default spin-waiting makes PyTorch's OpenMP threads burn the
    # CPU they wait for when the machine is busy (20x slower with 2 threads
    # on a loaded 2-core machine); passive waiting is the sane setting there.
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO_ROOT), env.get("PYTHONPATH", "")]
    )
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        command = [
            sys.executable,
            str(PACKAGE),
            "--worker",
            kind,
            "--worker-settings",
            json.dumps(settings),
            "--worker-output",
            str(out),
        ]
        started = time.perf_counter()
        try:
            proc = subprocess.run(
                command,
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            return {"error": f"timed out after {timeout} s"}
        elapsed = time.perf_counter() - started
        if log:
            log(f"  {kind}[{backend}] {elapsed:.0f} s")
        if proc.returncode != 0 or not out.is_file():
            lines = [line for line in proc.stderr.splitlines() if line.strip()]
            return {
                "error": (lines[-1] if lines else f"exit {proc.returncode}")[
                    :300
                ]
            }
        result = json.loads(out.read_text())
        result["wall_s"] = elapsed
        if keep_stdout:
            result["stdout"] = proc.stdout
        return result


def _proc_line(path, prefix):
    """The first line of `path` starting with `prefix`, or `None`."""
    try:
        with open(path) as f:
            return next((line for line in f if line.startswith(prefix)), None)
    except OSError:
        return None


def load_average():
    """`os.getloadavg()`, or `None` where it is not available."""
    try:
        return os.getloadavg()
    except OSError:
        return None


def machine_info():
    """Cores, CPU, memory, load, platform and Python version (a dict)."""
    cpu = _proc_line("/proc/cpuinfo", "model name")
    memory = _proc_line("/proc/meminfo", "MemTotal")
    return {
        "cores": cores(),
        "cpu": (
            cpu.split(":", 1)[1].strip()
            if cpu
            else platform.processor() or "unknown"
        ),
        "memory_gib": int(memory.split()[1]) / 2**20 if memory else None,
        "load": load_average(),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def library_versions():
    """{distribution: version} of the benchmarked libraries installed."""
    from importlib import metadata

    versions = {}
    for name in (
        "keras",
        "tensorflow-cpu",
        "tensorflow",
        "jax",
        "jaxlib",
        "torch",
        "numpy",
        "keras-vqvae",
    ):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    if "tensorflow-cpu" in versions:
        versions.pop("tensorflow", None)
    return versions
