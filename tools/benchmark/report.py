"""The BENCHMARKS.md writer: renders the results as one Markdown section
between markers, and replaces that section of a file."""

import os
import re
from pathlib import Path

from . import jax_probe
from . import options
from . import quantizer_memory
from . import roofline
from . import sampling
from . import speech
from . import throughput
from .formatting import fmt_number

BEGIN = "<!-- keras-vqvae benchmark: begin -->"
END = "<!-- keras-vqvae benchmark: end -->"
COMMAND = "python tools/benchmark"


def _load(load):
    return "n/a" if not load else "/".join(f"{v:.1f}" for v in load)


def _header(results, command, started, settings):
    machine, versions = results["machine"], results["versions"]
    return [
        BEGIN,
        "## Keras 3 VQ-VAE vs. the strongest PyTorch peer (cifar10 "
        "architecture)",
        "",
        f"- Command: `{command}`",
        f"- Date: {started:%Y-%m-%d %H:%M} (local time); run took "
        f"{results['wall_s'] / 60:.1f} min",
        f"- Machine: {machine['cores']} cores, {machine['cpu']}, "
        f"{fmt_number(machine['memory_gib'])} GiB RAM, {machine['platform']}; "
        f"load average at start {_load(machine['load'])}, at end "
        f"{_load(results.get('load_end'))}",
        "- Versions: python "
        + machine["python"]
        + ", "
        + ", ".join(f"{k} {v}" for k, v in versions.items()),
        "- Settings: timed steps per round "
        + ", ".join(f"{v} at batch {k}" for k, v in settings["steps"].items())
        + f", warm-up steps {settings['warmup']} (PyTorch "
        f"{settings['torch_warmup']}; excluded), rounds {settings['rounds']}, "
        f"Keras `steps_per_execution={settings['steps_per_execution']}`; "
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


def _findings(results):
    """Short conclusions computed from this run's numbers."""
    probe = results.get("probe")
    notes = (
        throughput.findings(results)
        + jax_probe.conv_findings(probe)
        + jax_probe.ablation_findings(probe)
        + throughput.before_the_fix_findings(results)
        + jax_probe.quantizer_findings(probe)
        + quantizer_memory.findings(results.get("quantizer", []))
        + options.findings(results.get("options"))
    )
    if not notes:
        return []
    return ["", "### Findings of this run", ""] + [f"- {n}" for n in notes]


def render(results, command, started, settings):
    """The benchmark's Markdown section, markers included.

    Args:
        results: dict, every worker's results (see `cli.main`).
        command: str, the command line that produced them.
        started: `datetime.datetime` the run started.
        settings: dict, `cli.FULL` or `cli.QUICK` (steps keyed by str).

    Returns:
        str, ending with a newline.
    """
    lines = (
        _header(results, command, started, settings)
        + throughput.render_goal(results)
        + throughput.render_training(results)
        + throughput.render_codec(results)
        + roofline.render(results.get("roofline"))
        + options.render(results.get("options"))
        + quantizer_memory.render(results.get("quantizer"))
        + sampling.render(results.get("sampling"))
        + speech.render(results.get("speech"))
        + jax_probe.render(results.get("probe"))
        + _findings(results)
        + ["", END, ""]
    )
    return "\n".join(lines)


def write_section(path, section):
    """Replaces the benchmark section of `path` (or creates the file).

    Args:
        path: str or `Path` of a Markdown file. Text outside the markers is
            kept; without markers the section is appended.
        section: str, from `render`.
    """
    path = Path(path)
    if path.is_file():
        text = path.read_text()
        pattern = re.compile(
            re.escape(BEGIN) + r".*?" + re.escape(END) + r"\n?", re.S
        )
        if pattern.search(text):
            text = pattern.sub(lambda _: section, text, count=1)
        else:
            text = text.rstrip("\n") + "\n\n" + section
    else:
        text = (
            f"# Benchmarks\n\nWritten by `{COMMAND}`; rerun it to "
            "replace the section below.\n\n" + section
        )
    path.write_text(text)
