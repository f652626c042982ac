"""Presets: a folder of JSON config, JSON metadata and `.weights.h5` weights.

A preset is named by a bundled name (`"cifar10"`), a local folder, or a
Hugging Face Hub handle `hf://owner/repo[@revision]`. File names follow
keras-hub: `config.json`, `metadata.json`, `model.weights.h5` (and
`prior_config.json`, `prior.weights.h5` for the PixelCNN prior). Loading
reads JSON and HDF5 weights only: no code from a preset ever runs.
"""

import datetime
import difflib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import keras

from keras_vqvae.version import __version__

# Bump when a preset written by this version cannot be read by older ones.
PRESET_FORMAT_VERSION = 1
HF_PREFIX = "hf://"
METADATA_FILE = "metadata.json"
MODEL_CARD_FILE = "README.md"


class PresetError(ValueError):
    """A preset cannot be found, read or trusted."""


def bundled_presets_dir():
    """The folder of the presets shipped with the package."""
    package_dir = Path(__file__).resolve().parent
    installed = package_dir / "_bundled_presets"
    return installed if installed.is_dir() else package_dir.parent / "presets"


def list_presets(config_file="config.json"):
    """Returns `{name: metadata}` for every bundled preset with `config_file`."""
    root = bundled_presets_dir()
    if not root.is_dir():
        return {}
    return {
        folder.name: read_json(folder / METADATA_FILE)
        for folder in sorted(root.iterdir())
        if (folder / config_file).is_file()
        and (folder / METADATA_FILE).is_file()
    }


def resolve_preset(preset):
    """Returns the local folder of a preset, downloading it if needed.

    Args:
        preset: a bundled preset name, a local folder, or
            `hf://owner/repo[@revision]`.

    Returns:
        `pathlib.Path` of a folder holding the preset files.
    """
    preset = str(preset)
    if preset.startswith(HF_PREFIX):
        return download_from_hub(preset)
    bundled = bundled_presets_dir() / preset
    if "/" not in preset and os.sep not in preset and bundled.is_dir():
        return bundled
    path = Path(preset).expanduser()
    if path.is_dir():
        return path
    names = sorted(list_presets())
    close = difflib.get_close_matches(preset, names, n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
    raise PresetError(
        f"Unknown preset {preset!r}: not a bundled preset name nor an "
        f"existing folder.{hint} Bundled presets: {', '.join(names) or 'none'}"
        "; Hub presets are named 'hf://owner/repo'."
    )


def parse_hub_handle(handle):
    """Splits `hf://owner/repo[@revision]` into `(repo_id, revision)`."""
    repo_id, _, revision = handle[len(HF_PREFIX) :].partition("@")
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise PresetError(
            f"Malformed Hub handle {handle!r}; expected "
            "'hf://owner/repo' or 'hf://owner/repo@revision'."
        )
    return repo_id, revision or None


def download_from_hub(handle):
    """Downloads (or reads from the cache) a Hub preset; returns its folder.

    Uses `huggingface_hub.snapshot_download`, so `HF_ENDPOINT`, `HF_HOME`,
    `HF_HUB_OFFLINE` and `HF_TOKEN` apply as usual.
    """
    import huggingface_hub
    from huggingface_hub import errors

    repo_id, revision = parse_hub_handle(handle)
    try:
        folder = huggingface_hub.snapshot_download(
            repo_id,
            revision=revision,
            allow_patterns=["*.json", "*.h5", "*.md", "*.png"],
        )
    except errors.RepositoryNotFoundError as e:
        raise PresetError(
            f"No Hub repository {repo_id!r} (or no access to it): {handle}."
        ) from e
    except errors.RevisionNotFoundError as e:
        raise PresetError(
            f"The Hub repository {repo_id!r} has no revision {revision!r}."
        ) from e
    except errors.LocalEntryNotFoundError as e:
        raise PresetError(
            f"Cannot download {handle}: the Hub is unreachable (or "
            "HF_HUB_OFFLINE=1) and the files are not in the local cache "
            f"({huggingface_hub.constants.HF_HUB_CACHE}). Check the network, "
            "or use a bundled preset or a local folder."
        ) from e
    return Path(folder)


def read_json(path):
    path = Path(path)
    if not path.is_file():
        raise PresetError(f"The preset has no {path.name}: {path} is missing.")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise PresetError(f"{path} is not valid JSON: {e}.") from e


def check_format_version(config, path):
    version = config.get("format_version", PRESET_FORMAT_VERSION)
    if version > PRESET_FORMAT_VERSION:
        raise PresetError(
            f"{path} was written by a newer keras-vqvae (preset format "
            f"{version}, written by version "
            f"{config.get('keras_vqvae_version', '?')}); this is version "
            f"{__version__}, which reads format {PRESET_FORMAT_VERSION}. "
            "Upgrade: pip install -U keras-vqvae."
        )


def file_sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_weights_checked(model, weights_path, expected_sha256=None):
    """Loads `.weights.h5`, with clear errors for missing or damaged files."""
    weights_path = Path(weights_path)
    if not weights_path.is_file():
        raise PresetError(
            f"The preset has no weights file {weights_path}. Pass "
            "`load_weights=False` for a randomly initialised model."
        )
    if expected_sha256 and file_sha256(weights_path) != expected_sha256:
        raise PresetError(
            f"{weights_path} is corrupt or truncated: its SHA-256 does not "
            "match metadata.json. Download it again (delete it from the "
            "Hugging Face cache, or re-copy the folder)."
        )
    try:
        model.load_weights(weights_path)
    except OSError as e:
        raise PresetError(
            f"{weights_path} is not a readable .weights.h5 file (corrupt or "
            f"truncated?): {e}"
        ) from e
    except ValueError as e:
        raise PresetError(
            f"The weights in {weights_path} do not fit the configured "
            f"architecture: {e}"
        ) from e


def write_atomically(path, write):
    """Calls `write(tmp_path)`, then renames, so no half-written file stays."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600 files
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_json(path, data):
    write_atomically(
        path, lambda tmp: Path(tmp).write_text(json.dumps(data, indent=2) + "\n")
    )


class _PresetNames:
    """Class attribute `Model.presets`: the bundled presets for that class."""

    def __get__(self, instance, owner):
        return list_presets(owner.preset_config_file)


class PresetMixin:
    """Adds `from_preset`, `save_to_preset` and `presets` to a Keras model."""

    preset_config_file = "config.json"
    preset_weights_file = "model.weights.h5"
    presets = _PresetNames()

    @classmethod
    def from_preset(cls, preset, load_weights=True, **config_overrides):
        """Instantiates the model from a preset.

        Args:
            preset: a bundled name (see `presets`), a local folder, or
                `hf://owner/repo[@revision]` on the Hugging Face Hub.
            load_weights: bool. Load the preset's weights (default) or keep
                the random initialisation.
            **config_overrides: constructor arguments that replace the
                preset's (for instance `dead_code_threshold=0.0`).

        Returns:
            The model, built and ready for `predict`, `fit` or `encode`.

        Example:

        >>> model = VQVAE.from_preset("mnist")
        >>> model = VQVAE.from_preset("hf://owner/vqvae-cifar10@main")
        """
        folder = resolve_preset(preset)
        config_path = folder / cls.preset_config_file
        saved = read_json(config_path)
        check_format_version(saved, config_path)
        if saved.get("class_name") != cls.__name__:
            raise PresetError(
                f"{config_path} describes a {saved.get('class_name')!r}, not "
                f"a {cls.__name__}."
            )
        config = {**saved["config"], **config_overrides}
        model = cls.from_config(config)
        if load_weights:
            metadata_path = folder / METADATA_FILE
            metadata = read_json(metadata_path) if metadata_path.is_file() else {}
            load_weights_checked(
                model,
                folder / cls.preset_weights_file,
                metadata.get("sha256", {}).get(cls.preset_weights_file),
            )
        return model

    def save_to_preset(self, preset_dir, metadata=None):
        """Writes config, weights and metadata to a preset folder.

        Files are written to temporary names and renamed, so an interrupted
        save leaves the previous files intact. Metadata already in the
        folder is kept and updated.

        Args:
            preset_dir: folder to write (created if missing).
            metadata: dict of extra metadata (data set, metrics, ...).
        """
        folder = Path(preset_dir)
        folder.mkdir(parents=True, exist_ok=True)
        weights_path = folder / self.preset_weights_file
        write_atomically(weights_path, self._save_weights_to)
        write_json(
            folder / self.preset_config_file,
            {
                "module": self.__class__.__module__,
                "class_name": self.__class__.__name__,
                "config": self.get_config(),
                "format_version": PRESET_FORMAT_VERSION,
                "keras_vqvae_version": __version__,
            },
        )
        metadata_path = folder / METADATA_FILE
        merged = read_json(metadata_path) if metadata_path.is_file() else {}
        merged.update(metadata or {})
        merged.setdefault("sha256", {})[self.preset_weights_file] = (
            file_sha256(weights_path)
        )
        merged.update(
            {
                "keras_vqvae_version": __version__,
                "keras_version": keras.__version__,
                "saved_at": datetime.date.today().isoformat(),
            }
        )
        merged.setdefault("parameter_count", {})[self.__class__.__name__] = (
            int(self.count_params())
        )
        write_json(metadata_path, merged)

    def _save_weights_to(self, tmp_path):
        # `save_weights` also stores a compiled model's optimizer state,
        # which a preset does not need and which triples the file (Adam);
        # an uncompiled copy holds only the model's own weights.
        copy = self.__class__.from_config(self.get_config())
        copy.set_weights(self.get_weights())
        # Keras insists on the `.weights.h5` suffix.
        staged = f"{tmp_path}.weights.h5"
        try:
            copy.save_weights(staged)
            shutil.move(staged, tmp_path)
        finally:
            if os.path.exists(staged):
                os.remove(staged)
