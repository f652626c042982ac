"""Publishing a preset folder to the Hugging Face Hub."""

import json
import tempfile
from pathlib import Path

from keras_vqvae.errors import PresetError
from keras_vqvae.errors import UploadError
from keras_vqvae.presets import MODEL_CARD_FILE
from keras_vqvae.presets import PresetFolder
from keras_vqvae.presets import architecture


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
    preset_dir,
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
    from `token`, else `HF_TOKEN` or the `huggingface-cli login` cache. A
    folder without a model card gets one written before the upload.

    Args:
        preset_dir: the preset folder (as written by `save_to_preset`).
        repo_id: `"owner/name"` on the Hub.
        token: Hub token, or None for the environment / login.
        private: create the repository as private.
        revision: branch to commit to (default `main`).
        commit_message: commit title.
        dry_run: list what would be uploaded; change nothing, contact
            nothing.
        force: overwrite a repository that holds a different architecture.
        log: function that prints progress lines.

    Returns:
        dict with `url`, `commit` (None on a dry run) and `files`.
    """
    folder = PresetFolder(preset_dir)
    try:
        files = folder.files_to_publish()
    except PresetError as e:
        raise UploadError(str(e)) from e
    url_hint = f"hf://{repo_id}"
    if dry_run:
        for name in files:
            path = folder.path / name
            size = (
                f"{path.stat().st_size:,} bytes"
                if path.is_file()
                else "to be written"
            )
            log(f"would upload {name} ({size})")
        log(f"dry run: nothing written or sent; target {url_hint}")
        return {"url": None, "commit": None, "files": files}

    from huggingface_hub import HfApi
    from huggingface_hub import errors

    api = HfApi(token=token)
    try:
        return _upload(
            api,
            folder,
            repo_id,
            files,
            private,
            revision,
            commit_message,
            force,
            log,
        )
    except errors.HfHubHTTPError as e:
        status = getattr(e.response, "status_code", None)
        if status == 401:
            raise UploadError(
                f"The Hub refused the token (401 Unauthorized) for {repo_id}. "
                "Pass --token, set HF_TOKEN, or run `hf auth login`."
            ) from e
        raise UploadError(
            f"The Hub refused the upload of {repo_id}: {e}"
        ) from e
    except errors.HTTPError as e:
        raise UploadError(
            f"Cannot reach the Hub to upload {repo_id} ({type(e).__name__}: "
            f"{e}). Check the network and HF_ENDPOINT, then try again."
        ) from e


def _upload(
    api, folder, repo_id, files, private, revision, commit_message, force, log
):
    url_hint = f"hf://{repo_id}"
    remote = _remote_config(api, repo_id, revision)
    local = folder.architecture("model")
    if remote is not None and architecture(remote) != local:
        if not force:
            raise UploadError(
                f"{repo_id} holds a different architecture "
                f"({architecture(remote)}) than {folder.path} ({local}). "
                "Pass --force to overwrite it."
            )
        log(f"--force: replacing the architecture in {repo_id}")
    if not (folder.path / MODEL_CARD_FILE).is_file():
        folder.write_model_card()
    api.create_repo(repo_id, private=private, exist_ok=True)
    commit = api.upload_folder(
        repo_id=repo_id,
        folder_path=folder.path,
        allow_patterns=files,
        revision=revision,
        commit_message=commit_message
        or f"Upload keras-vqvae preset {folder.name}",
    )
    log(f"uploaded {len(files)} files to {commit.repo_url}")
    log(f"commit {commit.oid}")
    log(f"load with: VQVAE.from_preset('{url_hint}@{commit.oid}')")
    return {"url": str(commit.repo_url), "commit": commit.oid, "files": files}
