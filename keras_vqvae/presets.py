"""Presets: folders of JSON configs, JSON metadata and `.weights.h5` weights.

A preset is named by a bundled name (`"cifar10"`), a local folder, or a
Hugging Face Hub handle `hf://owner/repo[@revision]`. `PresetFolder` owns
one folder: its file names (keras-hub's: `config.json`, `metadata.json`,
`model.weights.h5`; `prior_config.json` and `prior.weights.h5` for the
PixelCNN prior beside the VQ-VAE), the weights' SHA-256 in the metadata,
the model card and the architecture fingerprint. Loading reads JSON and
HDF5 weights only: no code from a preset ever runs.
"""

import datetime
import difflib
import hashlib
import json
import os
import shutil
import warnings
from pathlib import Path

import keras

from keras_vqvae import model_card
from keras_vqvae.errors import PresetError
from keras_vqvae.files import write_atomically
from keras_vqvae.files import write_json
from keras_vqvae.version import __version__

# Bump when a preset written by this version cannot be read by older ones.
# Format 2 renamed the VQ-VAE's width arguments (see `_FORMAT_1_RENAMES`).
PRESET_FORMAT_VERSION = 2
HF_PREFIX = "hf://"
METADATA_FILE = "metadata.json"
# Pictures and sound samples the model card shows (uploaded and downloaded).
MEDIA_PATTERNS = ("*.png", "*.gif", "*.wav")
MODEL_CARD_FILE = "README.md"
# The model kinds a preset folder can hold: (config file, weights file).
MODEL_FILES = {
    "model": ("config.json", "model.weights.h5"),
    "prior": ("prior_config.json", "prior.weights.h5"),
}
# Constructor arguments that decide the weights' shapes: a folder whose
# config differs in one of them holds a different architecture.
ARCHITECTURE_KEYS = (
    "image_shape",
    "num_embeddings",
    "embedding_dim",
    "hidden_dim",
    "num_residual_layers",
    "residual_hidden_dim",
    "num_downsamples",
    "quantizer",
    "latent_shape",
    "num_layers",
    "kernel_size",
    "num_classes",
)
# A prior is bound to the codebook it was trained on: its metadata holds
# the VQ-VAE weights' SHA-256, checked when the prior is loaded.
PRIOR_BINDING = "vqvae_sha256"
# What a prior draws; removed with it.
PRIOR_PICTURES = ("samples.png", "rollout.png", "rollout.gif")
_FORMAT_1_RENAMES = {
    "num_hiddens": "hidden_dim",
    "num_residual_hiddens": "residual_hidden_dim",
}


def bundled_presets_dir():
    """The folder of the presets shipped with the package."""
    package_dir = Path(__file__).resolve().parent
    installed = package_dir / "_bundled_presets"
    return installed if installed.is_dir() else package_dir.parent / "presets"


def list_presets(kind="model", class_name=None):
    """Returns `{name: metadata}` of the bundled presets holding `kind`
    (and, if given, a model of the class named `class_name`)."""
    root = bundled_presets_dir()
    if not root.is_dir():
        return {}
    folders = (PresetFolder(path) for path in sorted(root.iterdir()))
    return {
        folder.name: folder.metadata
        for folder in folders
        if folder.has(kind)
        and folder.metadata_path.is_file()
        and (
            class_name is None
            or folder.saved_config(kind).get("class_name") == class_name
        )
    }


def resolve_preset(preset, force_download=False):
    """Returns the local folder of a preset, downloading it if needed.

    Args:
        preset: a bundled preset name, a local folder, or
            `hf://owner/repo[@revision]`.
        force_download: bool. For a Hub preset, download the files again
            even if they are cached (repairs a damaged cache).

    Returns:
        `pathlib.Path` of a folder holding the preset files.
    """
    preset = str(preset)
    if preset.startswith(HF_PREFIX):
        return download_from_hub(preset, force_download)
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


def download_from_hub(handle, force_download=False):
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
            allow_patterns=["*.json", "*.h5", "*.md", *MEDIA_PATTERNS],
            force_download=force_download,
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
    except errors.HTTPError as e:  # refused, cut off mid-file, timed out
        raise PresetError(
            f"Downloading {handle} failed ({type(e).__name__}: {e}). Try "
            "again: finished files stay in the cache."
        ) from e
    return Path(folder)


def _repair_hint(path):
    """How to get a good copy of a damaged preset file."""
    cached = [p for p in Path(path).parents if p.name.startswith("models--")]
    if not cached:
        return "Copy the preset folder again."
    return (
        "Download it again with `from_preset(handle, force_download=True)` "
        f"(or delete the cached repository {cached[0]})."
    )


def read_json(path):
    """Reads a preset's JSON file, with a `PresetError` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise PresetError(f"The preset has no {path.name}: {path} is missing.")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise PresetError(f"{path} is not valid JSON: {e}.") from e


def file_sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _migrated(saved):
    """A saved config in the current format (format 1 had other names)."""
    if saved.get("format_version", 1) != 1:
        return saved
    inner = {
        _FORMAT_1_RENAMES.get(key, key): value
        for key, value in saved.get("config", {}).items()
    }
    return {**saved, "config": inner}


def architecture(saved_config):
    """The part of a saved config that determines the weights' shapes."""
    inner = _migrated(saved_config).get("config", {})
    return {
        "class_name": saved_config.get("class_name"),
        **{key: inner[key] for key in ARCHITECTURE_KEYS if key in inner},
    }


class PresetFolder:
    """One preset folder: its files, metadata, hashes and model card.

    Args:
        path: the folder (it need not exist yet when saving).

    Example:

    >>> folder = PresetFolder.resolve("mnist")
    >>> folder.has("prior"), folder.weights_path("model").name
    (True, 'model.weights.h5')
    """

    def __init__(self, path):
        self.path = Path(path)

    @classmethod
    def resolve(cls, preset, force_download=False):
        """The folder of a bundled name, a local folder or an `hf://` handle."""
        return cls(resolve_preset(preset, force_download))

    @property
    def name(self):
        return self.path.name

    @property
    def metadata_path(self):
        return self.path / METADATA_FILE

    @property
    def metadata(self):
        """The folder's metadata dict (`{}` when it has none yet)."""
        if not self.metadata_path.is_file():
            return {}
        return read_json(self.metadata_path)

    def config_path(self, kind):
        return self.path / _files(kind)[0]

    def weights_path(self, kind):
        return self.path / _files(kind)[1]

    def has(self, kind, cls=None):
        """Whether the folder holds a config for `kind` ("model", "prior"),
        of a model of class `cls` if given."""
        if not self.config_path(kind).is_file():
            return False
        return cls is None or (
            self.saved_config(kind).get("class_name") == cls.__name__
        )

    def saved_config(self, kind):
        """The checked JSON config of `kind`, migrated to the current format."""
        path = self.config_path(kind)
        saved = read_json(path)
        if not isinstance(saved, dict) or not isinstance(
            saved.get("config"), dict
        ):
            raise PresetError(
                f"{path} must be a JSON object with a 'config' object, as "
                "written by `save_to_preset`."
            )
        version = saved.get("format_version", 1)
        if not isinstance(version, int) or version < 1:
            raise PresetError(
                f"{path} has an invalid 'format_version'. Expected an "
                f"integer from 1 to {PRESET_FORMAT_VERSION}. Received: "
                f"format_version={version!r}"
            )
        if version > PRESET_FORMAT_VERSION:
            raise PresetError(
                f"{path} was written by a newer keras-vqvae (preset format "
                f"{version}, written by version "
                f"{saved.get('keras_vqvae_version', '?')}); this is version "
                f"{__version__}, which reads format {PRESET_FORMAT_VERSION}. "
                "Upgrade: pip install -U keras-vqvae."
            )
        return _migrated(saved)

    def architecture(self, kind="model"):
        """The fingerprint of the architecture stored for `kind`."""
        return architecture(self.saved_config(kind))

    def load_model(
        self,
        cls,
        kind,
        load_weights=True,
        allow_missing_checksum=False,
        **config_overrides,
    ):
        """Builds a `cls` from the folder's `kind` config (and weights)."""
        saved = self.saved_config(kind)
        config_path = self.config_path(kind)
        if saved.get("class_name") != cls.__name__:
            raise PresetError(
                f"{config_path} describes a {saved.get('class_name')!r}, not "
                f"a {cls.__name__}."
            )
        try:
            model = cls.from_config({**saved["config"], **config_overrides})
        except (TypeError, ValueError) as e:
            raise PresetError(
                f"{config_path} holds an invalid config: {e}"
            ) from e
        if load_weights:
            self._load_weights(model, kind, allow_missing_checksum)
        if kind == "prior":
            self._check_prior_binding(allow_missing_checksum)
        return model

    def _check_prior_binding(self, allow_missing_checksum):
        prior = self.metadata.get("prior")
        bound = prior.get(PRIOR_BINDING) if isinstance(prior, dict) else None
        current = self._expected_sha256(MODEL_FILES["model"][1])
        if bound is None:
            message = (
                f"{self.metadata_path} does not say which VQ-VAE weights the "
                f"prior was trained on ('prior': {{'{PRIOR_BINDING}': ...}})"
            )
            if not allow_missing_checksum:
                raise PresetError(
                    f"{message}, so it may not match the codebook. Retrain it "
                    "with `keras-vqvae train-prior`, or pass "
                    "`allow_missing_checksum=True`."
                )
            warnings.warn(f"{message}; loading it anyway.", stacklevel=4)
        elif bound != current:
            raise PresetError(
                f"The prior in {self.path} was trained on other VQ-VAE weights "
                f"(SHA-256 {bound[:12]}..., the folder's are "
                f"{str(current)[:12]}...): its codes mean nothing to this "
                "decoder. Retrain it with `keras-vqvae train-prior --preset-dir "
                f"{self.path}`."
            )

    def _remove_prior(self, metadata):
        """Deletes a prior that the new VQ-VAE weights make meaningless."""
        for name in (*MODEL_FILES["prior"], *PRIOR_PICTURES):
            (self.path / name).unlink(missing_ok=True)
        metadata.pop("prior", None)
        metadata.get("sha256", {}).pop(MODEL_FILES["prior"][1], None)
        for prior_class in ("PixelCNNPrior", "ActionConditionalPrior"):
            metadata.get("parameter_count", {}).pop(prior_class, None)
        warnings.warn(
            f"The VQ-VAE in {self.path} was retrained, so its old PixelCNN "
            "prior (trained on the old codebook) was removed. Train a new one "
            "with `keras-vqvae train-prior`.",
            stacklevel=3,
        )

    def _load_weights(self, model, kind, allow_missing_checksum=False):
        path = self.weights_path(kind)
        if not path.is_file():
            raise PresetError(
                f"The preset has no weights file {path}. Pass "
                "`load_weights=False` for a randomly initialised model."
            )
        expected = self._expected_sha256(path.name)
        if expected is None:
            message = (
                f"{self.metadata_path} has no SHA-256 for {path.name}, so the "
                "weights cannot be verified"
            )
            if not allow_missing_checksum:
                raise PresetError(
                    f"{message}. Re-save the preset with `save_to_preset`, "
                    "or pass `allow_missing_checksum=True` to load it "
                    "unverified."
                )
            warnings.warn(f"{message}; loading them unverified.", stacklevel=4)
        elif file_sha256(path) != expected:
            raise PresetError(
                f"{path} is corrupt or truncated: its SHA-256 does not "
                f"match metadata.json. {_repair_hint(path)}"
            )
        try:
            model.load_weights(path)
        except OSError as e:
            raise PresetError(
                f"{path} is not a readable .weights.h5 file (corrupt or "
                f"truncated?): {e}"
            ) from e
        except ValueError as e:
            raise PresetError(
                f"The weights in {path} do not fit the configured "
                f"architecture: {e}"
            ) from e

    def _expected_sha256(self, file_name):
        metadata = self.metadata if self.metadata_path.is_file() else {}
        checksums = (
            metadata.get("sha256") if isinstance(metadata, dict) else None
        )
        value = (
            checksums.get(file_name) if isinstance(checksums, dict) else None
        )
        return value if isinstance(value, str) and value else None

    def save_model(self, model, kind, metadata=None):
        """Writes `model`'s config and weights as `kind`, and the metadata.

        Files are written to temporary names and renamed, so an interrupted
        save leaves the previous files intact. Metadata already in the
        folder is kept and updated with `metadata`.
        """
        self.path.mkdir(parents=True, exist_ok=True)
        self.check_existing_card()
        weights_path = self.weights_path(kind)
        write_atomically(weights_path, lambda tmp: _save_weights(model, tmp))
        write_json(
            self.config_path(kind),
            {
                "module": model.__class__.__module__,
                "class_name": model.__class__.__name__,
                # Lets `keras.saving.load_model(folder or "hf://...")` find
                # the class once `keras_vqvae` is imported.
                "registered_name": keras.saving.get_registered_name(
                    model.__class__
                ),
                "config": model.get_config(),
                "format_version": PRESET_FORMAT_VERSION,
                "keras_vqvae_version": __version__,
            },
        )
        merged = {**self.metadata, **(metadata or {})}
        sha256 = file_sha256(weights_path)
        merged.setdefault("sha256", {})[weights_path.name] = sha256
        if kind == "model" and self.has("prior"):
            prior = merged.get("prior") or {}
            if prior.get(PRIOR_BINDING) != sha256:
                self._remove_prior(merged)
        if kind == "prior":
            merged["prior"] = {
                **(merged.get("prior") or {}),
                PRIOR_BINDING: merged["sha256"].get(MODEL_FILES["model"][1]),
            }
        merged.update(
            {
                "keras_vqvae_version": __version__,
                "keras_version": keras.__version__,
                "saved_at": datetime.date.today().isoformat(),
            }
        )
        merged.setdefault("parameter_count", {})[model.__class__.__name__] = (
            int(model.count_params())
        )
        write_json(self.metadata_path, merged)

    def render_model_card(self):
        """The model card (`README.md`) text for this folder."""
        return model_card.render_model_card(
            self.name,
            self.metadata,
            self.saved_config("model")["config"],
            _pictures(self.path),
        )

    def write_model_card(self):
        """Writes `README.md`, checked as the Hub checks card metadata."""
        path = self.path / MODEL_CARD_FILE
        text = self.render_model_card()
        self._check_card(text, path)
        path.write_text(text)
        return path

    def _check_card(self, text, path):
        try:
            model_card.check_model_card(text, source=str(path))
        except ValueError as e:
            raise PresetError(str(e)) from e

    def check_existing_card(self):
        """Raises `PresetError` if the folder's `README.md` is not valid Hub
        metadata (a folder without a card passes)."""
        path = self.path / MODEL_CARD_FILE
        if path.is_file():
            self._check_card(path.read_text(), path)

    def files_to_publish(self):
        """Checks the folder and lists the files a Hub upload sends.

        Raises `PresetError` for a missing config or metadata, a config
        without its weights, or weights that do not match their SHA-256.
        """
        if not self.has("model"):
            raise PresetError(
                f"{self.path} is not a preset folder: no config.json."
            )
        metadata = read_json(self.metadata_path)
        files = [METADATA_FILE]
        for kind in MODEL_FILES:
            if not self.has(kind):
                continue
            self.saved_config(kind)
            weights = self.weights_path(kind)
            if not weights.is_file():
                raise PresetError(
                    f"{self.path} has {self.config_path(kind).name} but no "
                    f"{weights.name}."
                )
            expected = metadata.get("sha256", {}).get(weights.name)
            if expected and file_sha256(weights) != expected:
                raise PresetError(
                    f"{weights} does not match the SHA-256 in "
                    f"{METADATA_FILE}: corrupt or not the saved weights."
                )
            files += [self.config_path(kind).name, weights.name]
        self.check_existing_card()
        files.append(MODEL_CARD_FILE)
        files += _pictures(self.path)
        return files


def _pictures(folder):
    """The pictures and sound samples of a preset folder, by name."""
    return sorted(
        p.name
        for p in folder.iterdir()
        if any(p.match(pattern) for pattern in MEDIA_PATTERNS)
    )


def _files(kind):
    if kind not in MODEL_FILES:
        raise ValueError(
            f"Unknown preset model kind. Expected one of {list(MODEL_FILES)}. "
            f"Received: kind={kind!r}"
        )
    return MODEL_FILES[kind]


def _save_weights(model, tmp_path):
    # `save_weights` also stores a compiled model's optimizer state, which
    # a preset does not need and which triples the file (Adam); an
    # uncompiled copy holds only the model's own weights.
    copy = model.__class__.from_config(model.get_config())
    copy.set_weights(model.get_weights())
    staged = f"{tmp_path}.weights.h5"  # Keras insists on the suffix.
    try:
        copy.save_weights(staged)
        shutil.move(staged, tmp_path)
    finally:
        if os.path.exists(staged):
            os.remove(staged)
