"""Publishing a preset folder to the Hugging Face Hub."""

import json
import tempfile
from pathlib import Path

from keras_vqvae.model_card import write_model_card
from keras_vqvae.presets import METADATA_FILE
from keras_vqvae.presets import MODEL_CARD_FILE
from keras_vqvae.presets import PresetError
from keras_vqvae.presets import file_sha256
from keras_vqvae.presets import read_json

CONFIG_FILES = ("config.json", "prior_config.json")
WEIGHTS_FILES = {
    "config.json": "model.weights.h5",
    "prior_config.json": "prior.weights.h5",
}
# Constructor arguments that decide the weights' shapes. A Hub repo whose
# config differs in one of them holds a different architecture.
ARCHITECTURE_KEYS = (
    "image_shape",
    "num_embeddings",
    "embedding_dim",
    "num_hiddens",
    "num_residual_layers",
    "num_residual_hiddens",
    "num_downsamples",
    "quantizer",
    "latent_shape",
    "hidden_dim",
    "num_layers",
    "kernel_size",
    "num_classes",
)


class UploadError(RuntimeError):
    """The preset cannot be published as asked."""


def architecture(config):
    """The part of a saved config that determines the weights' shapes."""
    inner = config.get("config", {})
    return {
        "class_name": config.get("class_name"),
        **{key: inner[key] for key in ARCHITECTURE_KEYS if key in inner},
    }


def preset_files(folder):
    """Validates a preset folder and lists the files to publish."""
    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise UploadError(f"{folder} is not a preset folder: no config.json.")
    metadata = read_json(folder / METADATA_FILE)
    files = [METADATA_FILE]
    for config_file in CONFIG_FILES:
        if not (folder / config_file).is_file():
            continue
        read_json(folder / config_file)
        weights = WEIGHTS_FILES[config_file]
        if not (folder / weights).is_file():
            raise UploadError(f"{folder} has {config_file} but no {weights}.")
        expected = metadata.get("sha256", {}).get(weights)
        if expected and file_sha256(folder / weights) != expected:
            raise UploadError(
                f"{folder / weights} does not match the SHA-256 in "
                f"{METADATA_FILE}: corrupt or not the saved weights."
            )
        files += [config_file, weights]
    if not (folder / MODEL_CARD_FILE).is_file():
        write_model_card(folder)
    files.append(MODEL_CARD_FILE)
    files += sorted(p.name for p in folder.glob("*.png"))
    return files


def _remote_config(api, repo_id, revision):
    from huggingface_hub import errors

    if not api.repo_exists(repo_id):
        return None
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = api.hf_hub_download(
                repo_id, "config.json", revision=revision, local_dir=tmp
            )
            return json.loads(Path(path).read_text())
    except (errors.EntryNotFoundError, errors.RevisionNotFoundError):
        return None


def upload_preset(
    folder,
    repo_id,
    token=None,
    private=False,
    revision=None,
    commit_message=None,
    dry_run=False,
    force=False,
    log=print,
):
    """Publishes a preset folder to a Hub model repository.

    Creates the repository if missing and uploads the config(s), metadata,
    weights, model card and PNG pictures in one commit. The token comes
    from `token`, else `HF_TOKEN` or the `huggingface-cli login` cache.

    Args:
        folder: the preset folder (as written by `save_to_preset`).
        repo_id: `"owner/name"` on the Hub.
        token: Hub token, or None for the environment / login.
        private: create the repository as private.
        revision: branch to commit to (default `main`).
        commit_message: commit title.
        dry_run: list what would be uploaded; contact nothing.
        force: overwrite a repository that holds a different architecture.
        log: function that prints progress lines.

    Returns:
        dict with `url`, `commit` (None on a dry run) and `files`.
    """
    folder = Path(folder)
    try:
        files = preset_files(folder)
    except PresetError as e:
        raise UploadError(str(e)) from e
    url_hint = f"hf://{repo_id}"
    if dry_run:
        for name in files:
            log(f"would upload {name} ({(folder / name).stat().st_size:,} bytes)")
        log(f"dry run: nothing sent; target {url_hint}")
        return {"url": None, "commit": None, "files": files}

    from huggingface_hub import HfApi

    api = HfApi(token=token)
    remote = _remote_config(api, repo_id, revision)
    local = read_json(folder / "config.json")
    if remote is not None and architecture(remote) != architecture(local):
        if not force:
            raise UploadError(
                f"{repo_id} holds a different architecture "
                f"({architecture(remote)}) than {folder} "
                f"({architecture(local)}). Pass --force to overwrite it."
            )
        log(f"--force: replacing the architecture in {repo_id}")
    api.create_repo(repo_id, private=private, exist_ok=True)
    commit = api.upload_folder(
        repo_id=repo_id,
        folder_path=folder,
        allow_patterns=files,
        revision=revision,
        commit_message=commit_message or f"Upload keras-vqvae preset {folder.name}",
    )
    log(f"uploaded {len(files)} files to {commit.repo_url}")
    log(f"commit {commit.oid}")
    log(f"load with: VQVAE.from_preset('{url_hint}@{commit.oid}')")
    return {"url": str(commit.repo_url), "commit": commit.oid, "files": files}
