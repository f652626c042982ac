"""Model cards (`README.md` with Hub YAML front matter) for preset folders."""

_DATASET_IDS = {
    "mnist": "ylecun/mnist",
    "fashion_mnist": "zalando-datasets/fashion_mnist",
    "cifar10": "uoft-cs/cifar10",
    "imagenet_128": "zh-plus/tiny-imagenet",
}


def _front_matter(name, metadata):
    metrics = metadata.get("test_metrics", {})
    lines = [
        "---",
        "library_name: keras",
        "license: apache-2.0",
        "tags:",
        "- keras",
        "- keras-vqvae",
        "- vq-vae",
        "- image-reconstruction",
        "- discrete-latents",
    ]
    if name in _DATASET_IDS:
        lines += ["datasets:", f"- {_DATASET_IDS[name]}"]
    lines += ["metrics:", "- mse", "- psnr", "- perplexity"]
    lines += ["model-index:", f"- name: vqvae-{name}", "  results:"]
    lines += ["  - task: {type: image-to-image, name: Image reconstruction}"]
    lines += ["    metrics:"]
    for key, kind in (
        ("mse", "mse"),
        ("psnr_db", "psnr"),
        ("perplexity", "perplexity"),
    ):
        if key in metrics:
            lines.append(f"    - {{type: {kind}, value: {metrics[key]:.4g}}}")
    lines.append("---")
    return "\n".join(lines)


def _format(value):
    return f"{value:.4g}" if isinstance(value, float) else value


def _table(rows):
    out = ["| | |", "|---|---|"]
    out += [f"| {key} | {_format(value)} |" for key, value in rows]
    return "\n".join(out)


def render_model_card(name, metadata, config, images):
    """Returns the model card text of a preset.

    Args:
        name: the preset's folder name (the metadata's `preset` wins).
        metadata: the preset's metadata dict.
        config: the VQ-VAE's constructor config.
        images: file names of the PNG pictures in the folder.

    Returns:
        The card: Hub YAML front matter, then Markdown.
    """
    name = metadata.get("preset", name)
    metrics = metadata.get("test_metrics", {})
    training = metadata.get("training", {})
    notes = metadata.get("notes", "")
    sections = [
        _front_matter(name, metadata),
        f"# VQ-VAE `{name}`",
        "A VQ-VAE (van den Oord, Vinyals, Kavukcuoglu 2017, "
        "[arXiv:1711.00937](https://arxiv.org/abs/1711.00937)) for "
        f"{tuple(config['image_shape'])} images, made with "
        "[keras-vqvae](https://github.com/keras-vqvae/keras-vqvae).",
        "```python\nfrom keras_vqvae.models import VQVAE\n\n"
        f'model = VQVAE.from_preset("{name}")  # or "hf://owner/repo"\n'
        "codes = model.encode(images)          # uint8 (N, H, W, C)\n"
        "recon = model.decode_indices(codes)   # uint8 images\n```",
        "## Architecture",
        _table(
            [
                ("image shape", tuple(config["image_shape"])),
                ("code map", tuple(metadata.get("latent_shape", ()))),
                (
                    "codebook K x D",
                    f"{config['num_embeddings']} x {config['embedding_dim']}",
                ),
                ("quantizer", config["quantizer"]),
                (
                    "hidden / residual hidden",
                    f"{config['hidden_dim']} / {config['residual_hidden_dim']}",
                ),
                (
                    "k-means init, dead-code threshold",
                    f"{config['kmeans_init']}, {config['dead_code_threshold']}",
                ),
            ]
        ),
        "## Training",
        _table(
            [
                (
                    "data",
                    metadata.get(
                        "dataset_description", metadata.get("dataset", "?")
                    ),
                )
            ]
            + [(key, value) for key, value in training.items()]
        ),
        "## Test metrics (measured)",
        _table([(key, value) for key, value in metrics.items()]),
    ]
    if metadata.get("reproduce"):
        sections += ["Reproduce:", f"```\n{metadata['reproduce']}\n```"]
    prior = metadata.get("prior")
    if prior:
        sections += [
            "## PixelCNN prior",
            "A gated PixelCNN over the code maps "
            f'(`PixelCNNPrior.from_preset("{name}")`), sampled in '
            "`samples.png`. bits/dim is the paper's bound: prior NLL of the "
            "codes plus the decoder's discretised Gaussian NLL of the pixels, "
            "per pixel dimension, on the test split. Sampling speed: "
            "BENCHMARKS.md in the keras-vqvae repository.",
            _table(
                [
                    (k, v)
                    for k, v in prior.items()
                    if k not in ("test_metrics", "reproduce")
                ]
                + [(k, v) for k, v in prior.get("test_metrics", {}).items()]
            ),
        ]
        if prior.get("reproduce"):
            sections += ["Reproduce:", f"```\n{prior['reproduce']}\n```"]
    if notes:
        sections += ["## Notes", notes]
    if images:
        sections += ["## Pictures"] + [
            f"![{image}]({image})" for image in images
        ]
    return "\n\n".join(sections) + "\n"
