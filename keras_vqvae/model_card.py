"""Model cards (`README.md` with Hub YAML front matter) for preset folders."""

# Hub data set ids and name of each bundled preset's data, for the card's
# model-index (the Hub requires a dataset for every result; the first id).
_DATASETS = {
    "mnist": (("ylecun/mnist",), "MNIST"),
    "fashion_mnist": (("zalando-datasets/fashion_mnist",), "Fashion-MNIST"),
    "cifar10": (("uoft-cs/cifar10",), "CIFAR-10"),
    "imagenet_128": (
        ("frgfm/imagenette", "frgfm/imagewoof"),
        "Imagenette2 + Imagewoof2 (20 ImageNet classes, 128 px crops)",
    ),
}
_METRICS = (
    ("mse", "mse", "MSE (0..1 scale)"),
    ("psnr_db", "psnr", "PSNR (dB)"),
    ("perplexity", "perplexity", "Codebook perplexity"),
)


def card_data(name, metadata):
    """The card's Hub metadata as `huggingface_hub.ModelCardData`."""
    from huggingface_hub import EvalResult
    from huggingface_hub import ModelCardData

    dataset_ids, dataset_name = _DATASETS.get(
        name, ((metadata.get("dataset", "custom"),), name)
    )
    metrics = metadata.get("test_metrics", {})
    results = [
        EvalResult(
            task_type="image-to-image",
            task_name="Image reconstruction",
            dataset_type=str(dataset_ids[0]),
            dataset_name=dataset_name,
            dataset_split="test",
            metric_type=kind,
            metric_name=label,
            metric_value=float(f"{metrics[key]:.4g}"),
        )
        for key, kind, label in _METRICS
        if key in metrics
    ]
    return ModelCardData(
        library_name="keras",
        license="apache-2.0",
        pipeline_tag="image-to-image",
        tags=["keras", "keras-vqvae", "vq-vae", "discrete-latents"],
        datasets=list(dataset_ids) if name in _DATASETS else None,
        model_name=f"vqvae-{name}",
        eval_results=results or None,
    )


def check_model_card(text, source="the model card"):
    """Raises a `ValueError` unless the Hub would accept the card's metadata.

    Uses huggingface_hub's own parser (`ModelCard`), which checks the YAML
    front matter and the model-index as the Hub does.
    """
    from huggingface_hub import ModelCard

    try:
        ModelCard(text)
    except Exception as e:  # it raises ValueError, KeyError, YAML errors
        raise ValueError(
            f"{source} has metadata the Hugging Face Hub would refuse: "
            f"{type(e).__name__}: {e}"
        ) from e


def _front_matter(name, metadata):
    return "---\n" + card_data(name, metadata).to_yaml() + "\n---"


def _format(value):
    return f"{value:.4g}" if isinstance(value, float) else value


def _table(rows):
    out = ["| | |", "|---|---|"]
    out += [f"| {key} | {_format(value)} |" for key, value in rows]
    return "\n".join(out)


def _classes_section(name, classes):
    rows = ["| label | id | name |", "|---|---|---|"] + [
        f"| {c['label']} | {c['id']} | {c['name']} |" for c in classes
    ]
    return [
        "### Classes",
        "The prior is class-conditional: `samples.png` has a column per "
        f"class; `keras-vqvae sample --preset {name} --label NAME` samples "
        "one class (label, name or id).",
        "\n".join(rows),
    ]


def _temperature_note(prior, rollouts):
    by_temperature = prior.get(
        "rollout_psnr_on_training_episodes_by_temperature"
    )
    if not by_temperature:
        return ""
    scores = ", ".join(f"{v:.2f} dB at {t}" for t, v in by_temperature.items())
    return (
        f" at softmax temperature {rollouts['temperature']}, the best of the "
        f"candidates by mean PSNR on {rollouts['rollouts']} training-episode rollouts ({scores})"
    )


def _video_prior_section(name, prior):
    metrics = prior.get("test_metrics", {})
    next_frame = metrics.get("next_frame", {})
    rollouts = metrics.get("rollouts", {})
    rows = [
        "| on the test episodes | bits per code | next-frame code accuracy |",
        "|---|---|---|",
    ]
    for label, scores in (
        ("Prior, true actions", next_frame),
        (
            "Same prior, shuffled actions",
            next_frame.get("shuffled_actions", {}),
        ),
        ("Copy the last frame", next_frame.get("copy_last_frame", {})),
    ):
        if scores:
            rows.append(
                f"| {label} | {scores['bits_per_code']:.3f} | "
                f"{scores['accuracy']:.3f} |"
            )
    section = [
        "## Action-conditional prior",
        "A gated PixelCNN over the next frame's code map, conditioned on the "
        f"codes of the last {prior.get('context_frames')} frames and the "
        "action taken (`ActionConditionalPrior.from_preset"
        f'("{name}")`). Teacher-forced on every next frame of the test '
        "episodes; the copy baseline's bits assume the code stays with the "
        "probability it stays on the training frames.",
        "\n".join(rows),
    ]
    if rollouts.get("psnr_per_step"):
        steps = range(1, len(rollouts["psnr_per_step"]) + 1)
        table = [
            "| step | " + " | ".join(map(str, steps)) + " |",
            "|---|" + "---|" * len(steps),
        ]
        for label, key in (
            ("generated", "psnr_per_step"),
            ("copy the last real frame", "copy_last_frame_psnr_per_step"),
            (
                "copy the last frame's codes",
                "copy_last_frame_codes_psnr_per_step",
            ),
            ("VQ-VAE reconstruction", "vqvae_reconstruction_psnr_per_step"),
        ):
            if key not in rollouts:
                continue
            table.append(
                f"| {label} | "
                + " | ".join(f"{v:.2f}" for v in rollouts[key])
                + " |"
            )
        section += [
            "### Rollouts (PSNR in dB against the real frames, from each "
            f"step's MSE over {rollouts['rollouts']} test rollouts)",
            f"From {rollouts['context_frames']} real frames and the next "
            f"{rollouts['steps']} actions, {rollouts['steps']} frames are "
            "generated in latent space, one code map after another, and "
            f"decoded{_temperature_note(prior, rollouts)}. `rollout.png`: the "
            "real frames above the generated ones; `rollout.gif`: real | "
            f"generated. `keras-vqvae rollout --preset {name} --data EPISODES "
            "--out rollout.gif` makes one.",
            "\n".join(table),
            "![rollout.gif](rollout.gif)",
        ]
    details = {
        k: v
        for k, v in prior.items()
        if k
        not in (
            "test_metrics",
            "reproduce",
            "actions",
            "kind",
            "rollout_psnr_on_training_episodes_by_temperature",
        )
    }
    section.append(_table(list(details.items())))
    if prior.get("reproduce"):
        section += ["Reproduce:", f"```\n{prior['reproduce']}\n```"]
    return section


def render_model_card(name, metadata, config, images):
    """Returns the model card text of a preset.

    Args:
        name: the preset's folder name (the metadata's `preset` wins).
        metadata: the preset's metadata dict.
        config: the VQ-VAE's constructor config.
        images: file names of the PNG and GIF pictures in the folder.

    Returns:
        The card: Hub YAML front matter, then Markdown.
    """
    name = metadata.get("preset", name)
    if "sample_rate" in config:
        return render_speech_model_card(name, metadata, config, images)
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
        "```bash\npip install keras-vqvae\n```",
        "```python\nimport keras\nimport keras_vqvae  # registers the model classes\n\n"
        'model = keras.saving.load_model("hf://owner/repo")  # this repository\n'
        f'# or: keras_vqvae.models.VQVAE.from_preset("{name}")\n'
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
    if prior and prior.get("kind") == "action_conditional":
        sections += _video_prior_section(name, prior)
    elif prior:
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
                    if k not in ("test_metrics", "reproduce", "classes")
                ]
                + [(k, v) for k, v in prior.get("test_metrics", {}).items()]
            ),
        ]
        if prior.get("classes"):
            sections += _classes_section(name, prior["classes"])
        if prior.get("reproduce"):
            sections += ["Reproduce:", f"```\n{prior['reproduce']}\n```"]
    if notes:
        sections += ["## Notes", notes]
    if images:
        sections += ["## Pictures"] + [
            f"![{image}]({image})" for image in images
        ]
    return "\n\n".join(sections) + "\n"


# (section of `test_metrics`, key, metric type, label) of a speech card.
_SPEECH_METRICS = (
    (
        "reconstruction",
        "log_spectral_distance_db",
        "log_spectral_distance",
        "Log-spectral distance (dB) of reconstructions",
    ),
    (
        "phoneme_probe",
        "accuracy",
        "accuracy",
        "Phoneme probe accuracy (code -> most frequent phoneme)",
    ),
    (
        "speaker_conversion",
        "converted_heard_as_target",
        "accuracy",
        "Converted clips identified as the target speaker",
    ),
)


def speech_card_data(name, metadata):
    """The Hub metadata of a speech preset's card."""
    from huggingface_hub import EvalResult
    from huggingface_hub import ModelCardData

    metrics = metadata.get("test_metrics", {})
    dataset = str(metadata.get("dataset", name))
    results = [
        EvalResult(
            task_type="audio-to-audio",
            task_name="Speech reconstruction and voice conversion",
            dataset_type=dataset,
            dataset_name=dataset,
            dataset_split="test",
            metric_type=kind,
            metric_name=label,
            metric_value=float(f"{metrics[section][key]:.4g}"),
        )
        for section, key, kind, label in _SPEECH_METRICS
        if key in metrics.get(section, {})
    ]
    return ModelCardData(
        library_name="keras",
        license="apache-2.0",
        pipeline_tag="audio-to-audio",
        tags=["keras", "keras-vqvae", "vq-vae", "discrete-latents", "speech"],
        model_name=f"vqvae-{name}",
        eval_results=results or None,
    )


def _speech_metrics_sections(metrics):
    sections = []
    reconstruction = metrics.get("reconstruction")
    if reconstruction:
        sections += [
            "### Reconstruction",
            f"The first {reconstruction['seconds_per_clip']:g} s of "
            f"{reconstruction['clips']} test clips, encoded and regenerated "
            "by the WaveNet decoder (temperature 1) with each clip's own "
            "speaker. Log-spectral distance (dB; 32 ms windows every 8 ms) "
            "to the original, beside an 8-bit mu-law round trip of the "
            "original: the floor of a decoder that outputs mu-law levels.",
            _table(
                [
                    (
                        "log-spectral distance, VQ-VAE",
                        reconstruction["log_spectral_distance_db"],
                    ),
                    (
                        "log-spectral distance, mu-law round trip",
                        reconstruction["mu_law_round_trip_lsd_db"],
                    ),
                    (
                        "generation (seconds of audio per second, batch of "
                        f"{reconstruction['clips']})",
                        reconstruction["generation_real_time_factor"],
                    ),
                ]
            ),
        ]
    conversion = metrics.get("speaker_conversion")
    if conversion:
        sections += [
            "### Speaker conversion",
            f"The first {conversion['seconds_per_clip']:g} s of "
            f"{conversion['clips']} test clips, decoded as another of the "
            f"speakers {', '.join(conversion['target_speakers'])}. A speaker "
            "classifier (softmax regression on log-mel statistics, fitted on "
            "the training clips) says whose voice it hears; the content is "
            "kept when the converted clip encodes to the source's codes.",
            _table(
                [
                    (k, v)
                    for k, v in conversion.items()
                    if k != "target_speakers"
                ]
            ),
        ]
    probe = metrics.get("phoneme_probe")
    if probe:
        sections += [
            "### Phoneme probe",
            "As in the paper: each code is mapped to the phoneme it most "
            "often covers on the training clips; accuracy of that map on the "
            "test clips, against always answering the most frequent phoneme.",
            _table(list(probe.items())),
        ]
    return sections


def render_speech_model_card(name, metadata, config, files):
    """The model card of a speech preset (`SpeechVQVAE`)."""
    training = metadata.get("training", {})
    speakers = config.get("speakers", [])
    hop = 2 ** config["num_downsamples"] * config.get("final_stride", 1)
    sections = [
        "---\n" + speech_card_data(name, metadata).to_yaml() + "\n---",
        f"# Speech VQ-VAE `{name}`",
        "The speech VQ-VAE of van den Oord, Vinyals, Kavukcuoglu 2017 "
        "([arXiv:1711.00937](https://arxiv.org/abs/1711.00937), section "
        "4.3): a strided 1-D encoder to one code every "
        f"{hop} samples ({config['sample_rate'] / hop:g} codes/s) and a "
        "WaveNet decoder conditioned on the codes and the speaker, made "
        "with [keras-vqvae](https://github.com/keras-vqvae/keras-vqvae).",
        "```python\nimport keras\nimport keras_vqvae  # registers the model classes\n"
        "from keras_vqvae.audio import read_audio\n\n"
        'model = keras.saving.load_model("hf://owner/repo")  # this repository\n'
        f'# or: keras_vqvae.models.SpeechVQVAE.from_preset("{name}")\n'
        'audio = read_audio("in.wav", model.sample_rate)  # resampled, mono\n'
        "codes = model.encode(audio)\n"
        f'other = model.decode(codes, speaker="{speakers[-1] if speakers else 0}")\n```',
        "## Architecture",
        _table(
            [
                ("sample rate", config["sample_rate"]),
                ("samples per code", hop),
                (
                    "codebook K x D",
                    f"{config['num_embeddings']} x {config['embedding_dim']}",
                ),
                ("quantizer", config.get("quantizer")),
                ("encoder channels", config["encoder_dim"]),
                (
                    "WaveNet layers (dilation cycle)",
                    f"{config['num_layers']} ({config['dilation_cycle']})",
                ),
                (
                    "residual / skip / conditioning channels",
                    f"{config['residual_dim']} / {config['skip_dim']} / "
                    f"{config['conditioning_dim']}",
                ),
                ("speakers", f"{len(speakers)}: {', '.join(speakers)}"),
            ]
        ),
        "## Training",
        _table(
            [
                (
                    "data",
                    metadata.get(
                        "dataset_description", metadata.get("dataset")
                    ),
                )
            ]
            + list(training.items())
        ),
        "## Test metrics (measured)",
        *_speech_metrics_sections(metadata.get("test_metrics", {})),
    ]
    if metadata.get("reproduce"):
        sections += ["Reproduce:", f"```\n{metadata['reproduce']}\n```"]
    if metadata.get("notes"):
        sections += ["## Notes", metadata["notes"]]
    if files:
        sections += ["## Pictures and sounds"] + [
            f"![{f}]({f})" if f.endswith((".png", ".gif")) else f"- [{f}]({f})"
            for f in files
        ]
    return "\n\n".join(sections) + "\n"
