"""Prior sampling speed of the bundled presets that have a PixelCNN prior:
`PixelCNNPrior.sample`, and sample + `VQVAE.decode_indices`; and the
incremental sampler against the previous one (`method="reference"`),
timed in interleaved rounds in the same process.

Runs as part of the benchmark (`python tools/benchmark`), or alone:

    python -m tools.benchmark.sampling --quick     # mnist, cifar10,
                                                   # imagenet_128; n=4
    python -m tools.benchmark.sampling --backends jax --n 16 --rounds 2
"""

import argparse
import time

from .formatting import fmt_number
from .formatting import fmt_ratio
from .timing import median
from .timing import median_ratio

# Settings of this section when run alone (`--quick`, or the full run).
QUICK = dict(
    sampling_n=4,
    sampling_rounds=1,
    sampling_presets=["mnist", "cifar10", "imagenet_128"],
    sampling_reference_n=4,
    sampling_reference_rounds=2,
)
FULL = dict(
    sampling_n=64,
    sampling_rounds=3,
    sampling_presets=None,  # every bundled preset with a prior
    sampling_reference_n=16,
    sampling_reference_rounds=2,
)


def worker(settings):
    """Times sampling from each preset's prior on this process's backend.

    Args:
        settings: dict with `sampling_n` (samples per call),
            `sampling_rounds` and `sampling_presets` (names, or `None` for
            every bundled preset with a prior); optionally
            `sampling_reference_n` (samples per call of the comparison
            with the reference sampler, default `min(sampling_n, 16)`: it
            is 10-30x slower; 0 skips it) and `sampling_reference_rounds`
            (default 1).

    Returns:
        A JSON-serialisable dict: the backend and a row per preset.
    """
    import keras

    from keras_vqvae.models import PixelCNNPrior

    names = settings["sampling_presets"] or sorted(PixelCNNPrior.presets)
    return {
        "backend": keras.backend.backend(),
        "rows": [
            _preset_row(name, settings)
            for name in names
            if name in PixelCNNPrior.presets
        ],
    }


def _labels(prior, n):
    import numpy as np

    return np.arange(n) % prior.num_classes if prior.conditional else None


def _preset_row(name, settings):
    from keras_vqvae.models import VQVAE
    from keras_vqvae.models import PixelCNNPrior

    n, rounds = settings["sampling_n"], settings["sampling_rounds"]
    model = VQVAE.from_preset(name)
    prior = PixelCNNPrior.from_preset(name)
    labels = _labels(prior, n)
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
    row = {
        "preset": name,
        "latent_shape": list(prior.latent_shape),
        "num_embeddings": prior.num_embeddings,
        "parameters": int(prior.count_params()),
        "n": n,
        "first_call_s": first_call_s,
        "samples_per_s": n / median(sample_s),
        "images_per_s": n / median([a + b for a, b in zip(sample_s, decode_s)]),
    }
    ref_n = settings.get("sampling_reference_n", min(n, 16))
    if ref_n:
        row["reference"] = _versus_reference(
            prior, ref_n, settings.get("sampling_reference_rounds", 1)
        )
    return row


def _versus_reference(prior, n, rounds):
    """The incremental sampler against `method="reference"`: both compiled
    by an untimed first call each, then timed in interleaved rounds on the
    same seeds; how many of the samples they drew are identical (all, but
    for the rare draw whose uniform falls within float rounding of a CDF
    step, after which that sample goes its own way)."""
    import numpy as np

    labels = _labels(prior, n)
    methods = ("incremental", "reference")
    times, identical = {m: [] for m in methods}, 0
    for method in methods:
        prior.sample(n, labels=labels, seed=0, method=method)
    for seed in range(1, rounds + 1):
        drawn = []
        for method in methods:
            started = time.perf_counter()
            drawn.append(
                prior.sample(n, labels=labels, seed=seed, method=method)
            )
            times[method].append(time.perf_counter() - started)
        identical += int(np.all(drawn[0] == drawn[1], axis=(1, 2)).sum())
    return {
        "n": n,
        "rounds": rounds,
        "incremental_per_s": n / median(times["incremental"]),
        "reference_per_s": n / median(times["reference"]),
        "speedup": median_ratio(times["reference"], times["incremental"]),
        "identical_samples": identical,
        "samples": n * rounds,
    }


def render(sampling):
    """The sampling tables.

    Args:
        sampling: dict, this module's worker results by backend, or `None`
            if not run.

    Returns:
        list of Markdown lines (none if not run).
    """
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
            lines.append(f"| {backend} | failed: {res['error']} | | | | | | |")
            continue
        lines += [_row(backend, row) for row in res["rows"]]
    return lines + _render_reference(sampling)


def _render_reference(sampling):
    rows = [
        (backend, row)
        for backend, res in sampling.items()
        for row in res.get("rows", [])
        if "reference" in row
    ]
    if not rows:
        return []
    lines = [
        "",
        "Incremental sampling (each step computes only what the new "
        "position changes) against the previous sampler "
        '(`sample(..., method="reference")`: the vertical stack on the '
        "whole map once per row, the horizontal stack on the whole row once "
        "per position), same n and seeds, interleaved rounds in one process; "
        "speed-up: median of the per-round ratios. Identical samples: "
        "a sample differs only where a uniform falls within float rounding "
        "of a CDF step (the logits agree to rounding, not bit for bit).",
        "",
        "| Keras backend | preset | codes | n | rounds | reference samples/s "
        "| incremental samples/s | speed-up | identical samples |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for backend, row in rows:
        ref = row["reference"]
        h, w = row["latent_shape"]
        lines.append(
            f"| {backend} | {row['preset']} | {h}x{w} | {ref['n']} | "
            f"{ref['rounds']} | {fmt_number(ref['reference_per_s'])} | "
            f"{fmt_number(ref['incremental_per_s'])} | "
            f"{fmt_ratio(ref['speedup'])} | "
            f"{ref['identical_samples']}/{ref['samples']} |"
        )
    return lines


def _row(backend, row):
    h, w = row["latent_shape"]
    return (
        f"| {backend} | {row['preset']} | {h}x{w}, "
        f"K={row['num_embeddings']} | {row['parameters']:,} | "
        f"{row['n']} | {fmt_number(row['samples_per_s'])} | "
        f"{fmt_number(row['images_per_s'])} | "
        f"{fmt_number(row['first_call_s'])} |"
    )


def main(argv=None):
    """Runs only this section, one subprocess per backend, and prints its
    tables (with the load average before and after)."""
    from .runner import load_average
    from .runner import run_worker

    parser = argparse.ArgumentParser(
        prog="python -m tools.benchmark.sampling",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument("--backends", default="tensorflow,jax,torch")
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"n={QUICK['sampling_n']}, one round (two against the reference), "
        f"{', '.join(QUICK['sampling_presets'])}",
    )
    parser.add_argument("--n", type=int, help="samples per call (both timings)")
    parser.add_argument(
        "--rounds", type=int, help="timed rounds (both timings)"
    )
    parser.add_argument("--presets", help="comma-separated preset names")
    args = parser.parse_args(argv)
    settings = dict(QUICK if args.quick else FULL)
    if args.n:
        settings["sampling_n"] = settings["sampling_reference_n"] = args.n
    if args.rounds:
        settings["sampling_rounds"] = args.rounds
        settings["sampling_reference_rounds"] = args.rounds
    if args.presets:
        settings["sampling_presets"] = args.presets.split(",")
    load_before = load_average()

    def log(message):
        print(message, flush=True)

    results = {
        b: run_worker("sampling", b, settings, log=log)
        for b in args.backends.split(",")
    }
    print("\n".join(render(results)))
    print(f"\nload average before: {load_before}, after: {load_average()}")


if __name__ == "__main__":
    main()
