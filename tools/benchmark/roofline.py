"""The roofline: this machine's matmul peak per precision, measured, and the
FLOPs per image of the measured model, counted from its architecture.

The peak is the best of a square matmul in PyTorch and in TensorFlow, in
float32 and in bfloat16. FLOPs count 2 per multiply-add of the
convolutions, the transposed convolutions and the quantiser's distance
matmul (`N * K * D * 2` for the `N` latent vectors of an image); a training
step is about 3x the forward pass of the network (the forward, the
gradients of the inputs and of the kernels), plus the distances once (no
gradient flows through them). ReLUs, additions, the EMA updates and the
optimizer are not counted.
"""

from . import timing
from .cifar10 import preset_config
from .formatting import fmt_number

PRECISIONS = ("float32", "bfloat16")


def _conv(height, width, in_channels, out_channels, kernel):
    """FLOPs of a convolution with an output of `height x width`."""
    return 2 * height * width * out_channels * kernel * kernel * in_channels


def _residual_stack(height, width, config):
    hidden, inner = config["hidden_dim"], config["residual_hidden_dim"]
    block = _conv(height, width, hidden, inner, 3) + _conv(
        height, width, inner, hidden, 1
    )
    return config["num_residual_layers"] * block


def _encoder(config):
    """(FLOPs, latent height, latent width) of the encoder and the 1x1
    pre-quantisation convolution."""
    height, width, channels = config["image_shape"]
    hidden, downsamples = config["hidden_dim"], config["num_downsamples"]
    flops = 0
    for i in range(downsamples):
        out = hidden if i == downsamples - 1 else hidden // 2
        height, width = height // 2, width // 2
        flops += _conv(height, width, channels, out, 4)
        channels = out
    flops += _conv(height, width, channels, hidden, 3)
    flops += _residual_stack(height, width, config)
    flops += _conv(height, width, hidden, config["embedding_dim"], 1)
    return flops, height, width


def _decoder(config, height, width):
    """FLOPs of the decoder from a `height x width` latent map."""
    hidden, downsamples = config["hidden_dim"], config["num_downsamples"]
    flops = _conv(height, width, config["embedding_dim"], hidden, 3)
    flops += _residual_stack(height, width, config)
    channels = hidden
    for i in range(downsamples):
        last = i == downsamples - 1
        out = config["image_shape"][-1] if last else hidden // 2
        # Each input pixel scatters a 4x4 patch: the MACs of a 4x4
        # convolution evaluated at the input's size.
        flops += _conv(height, width, channels, out, 4)
        height, width, channels = 2 * height, 2 * width, out
    return flops


def flops_per_image(config):
    """Analytic FLOPs per image of a `VQVAE` architecture.

    Args:
        config: dict, `VQVAE` constructor arguments (`image_shape`,
            `num_embeddings`, `embedding_dim`, `hidden_dim`,
            `num_residual_layers`, `residual_hidden_dim`,
            `num_downsamples`).

    Returns:
        dict of ints: `encode` (encoder, pre-quantisation, distances),
        `decode` (decoder) and `train` (3x the network's forward plus the
        distances).
    """
    encoder, height, width = _encoder(config)
    distances = (
        2 * height * width * config["num_embeddings"] * config["embedding_dim"]
    )
    decoder = _decoder(config, height, width)
    return {
        "encode": encoder + distances,
        "decode": decoder,
        "train": 3 * (encoder + decoder) + distances,
    }


def _torch_gflops(size, threads):
    import torch

    torch.set_num_threads(threads)
    rates = {}
    for precision in PRECISIONS:
        dtype = getattr(torch, precision)
        a, b = (torch.randn(size, size).to(dtype) for _ in range(2))
        ms = timing.best_ms(lambda: a @ b, repeats=3)
        rates[precision] = 2 * size**3 / ms / 1e6
    return rates


def _tensorflow_gflops(size):
    import tensorflow as tf

    @tf.function
    def corner(a, b):  # slicing the product forces it to be computed
        return tf.linalg.matmul(a, b)[0, 0]

    rates = {}
    for precision in PRECISIONS:
        dtype = getattr(tf, precision)
        a, b = (
            tf.cast(tf.random.normal((size, size)), dtype) for _ in range(2)
        )
        ms = timing.best_ms(lambda: corner(a, b).numpy(), repeats=3)
        rates[precision] = 2 * size**3 / ms / 1e6
    return rates


def worker(settings):
    """Measures the matmul peak and counts the model's FLOPs per image.

    Args:
        settings: dict with `peak_size` (the square matmul's side).

    Returns:
        A JSON-serialisable dict: `gflops` by framework and precision,
        `peak` (the best per precision, GFLOP/s), `peak_by` (the framework
        that gave it), `measurements` (1) and `flops_per_image` (see
        `flops_per_image`).
    """
    size = settings["peak_size"]
    gflops = {
        "torch": _torch_gflops(size, timing.cores()),
        "tensorflow": _tensorflow_gflops(size),
    }
    return best(
        [
            {
                "size": size,
                "gflops": gflops,
                "flops_per_image": flops_per_image(preset_config()),
            }
        ]
    )


def best(results):
    """The highest rates per framework and precision of several worker
    results (the roofline is measured before and after the training rows:
    a busy machine lowers it), and the peak per precision.

    Args:
        results: list of this module's worker results (some may be
            `{"error": ...}`).

    Returns:
        A worker result whose `gflops`, `peak` and `peak_by` are the best
        measurements, with `measurements` (how many succeeded); the first
        error if none succeeded.
    """
    measured = [r for r in results if "error" not in r]
    if not measured:
        return results[0]
    gflops = {
        framework: {
            p: max(r["gflops"][framework][p] for r in measured)
            for p in PRECISIONS
        }
        for framework in measured[0]["gflops"]
    }
    peak_by = {p: max(gflops, key=lambda f: gflops[f][p]) for p in PRECISIONS}
    return {
        **measured[0],
        "measurements": len(measured),
        "gflops": gflops,
        "peak": {p: gflops[f][p] for p, f in peak_by.items()},
        "peak_by": peak_by,
    }


def precision_of(policy_or_mode):
    """`"bfloat16"` for a bfloat16 Keras policy or PyTorch mode, else
    `"float32"`."""
    return "bfloat16" if "bfloat16" in policy_or_mode else "float32"


def fmt_rate(images_per_s, roofline, op, policy_or_mode):
    """A table cell: images/s, GFLOP/s and the fraction of the peak.

    Args:
        images_per_s: float or `None`.
        roofline: dict, this module's worker result, or `None`.
        op: str, `"train"`, `"encode"` or `"decode"`.
        policy_or_mode: str, the row's Keras dtype policy or PyTorch mode
            (picks the peak of its precision).

    Returns:
        str, e.g. `594 (157 GFLOP/s, 83% of peak)`.
    """
    if images_per_s is None or not roofline or "error" in roofline:
        return fmt_number(images_per_s)
    gflops = images_per_s * roofline["flops_per_image"][op] / 1e9
    peak = roofline["peak"][precision_of(policy_or_mode)]
    return (
        f"{fmt_number(images_per_s)} ({fmt_number(gflops)} GFLOP/s, "
        f"{100 * gflops / peak:.0f}% of peak)"
    )


def render(roofline):
    """The peak table and the FLOPs per image.

    Args:
        roofline: dict, this module's worker result, or `None` if not run.

    Returns:
        list of Markdown lines.
    """
    lines = ["", "### Roofline (matmul peak of this machine)", ""]
    if not roofline:
        return lines + ["Not measured in this run."]
    if "error" in roofline:
        return lines + [f"Failed: {roofline['error']}"]
    size, gflops = roofline["size"], roofline["gflops"]
    lines += [
        f"| precision | PyTorch GFLOP/s | TensorFlow GFLOP/s | peak "
        f"({size}x{size} matmul, the best of "
        f"{roofline.get('measurements', 1)} measurements) |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {p} | {fmt_number(gflops['torch'][p])} | "
        f"{fmt_number(gflops['tensorflow'][p])} | "
        f"{fmt_number(roofline['peak'][p])} ({roofline['peak_by'][p]}) |"
        for p in PRECISIONS
    ]
    flops = roofline["flops_per_image"]
    return lines + [
        "",
        "FLOPs per image, counted from the architecture (2 per "
        "multiply-add of the convolutions, transposed convolutions and the "
        "quantiser's distances; training = 3x the network's forward + the "
        f"distances): train {flops['train'] / 1e6:.1f} M, encode "
        f"{flops['encode'] / 1e6:.1f} M, decode {flops['decode'] / 1e6:.1f} "
        "M. A row's GFLOP/s is its images/s times these; its % is of the "
        "peak of its precision (bfloat16 for `mixed_bfloat16` and PyTorch's "
        "bfloat16 autocast, whose quantiser still runs in float32). The "
        "peak is measured before and after the training workers, the best "
        "kept; other jobs on the machine lower it, so a row above 100% "
        "means the peak was measured low.",
    ]
