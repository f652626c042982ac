"""Prior sampling speed of the bundled presets that have a PixelCNN prior:
`PixelCNNPrior.sample`, and sample + `VQVAE.decode_indices`."""

import time

from .formatting import fmt_number
from .timing import median


def worker(settings):
    """Times sampling from each preset's prior on this process's backend.

    Args:
        settings: dict with `sampling_n` (samples per call),
            `sampling_rounds` and `sampling_presets` (names, or `None` for
            every bundled preset with a prior).

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


def _preset_row(name, settings):
    import numpy as np

    from keras_vqvae.models import VQVAE
    from keras_vqvae.models import PixelCNNPrior

    n, rounds = settings["sampling_n"], settings["sampling_rounds"]
    model = VQVAE.from_preset(name)
    prior = PixelCNNPrior.from_preset(name)
    labels = np.arange(n) % prior.num_classes if prior.conditional else None
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
    return {
        "preset": name,
        "latent_shape": list(prior.latent_shape),
        "num_embeddings": prior.num_embeddings,
        "parameters": int(prior.count_params()),
        "n": n,
        "first_call_s": first_call_s,
        "samples_per_s": n / median(sample_s),
        "images_per_s": n / median([a + b for a, b in zip(sample_s, decode_s)]),
    }


def render(sampling):
    """The sampling table.

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
