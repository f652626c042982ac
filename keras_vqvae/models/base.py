"""The base of every keras-vqvae model: config, presets, compile on load."""

import keras

from keras_vqvae.presets import PresetFolder
from keras_vqvae.presets import list_presets


class _BundledPresets:
    """Class attribute `Model.presets`: `{name: metadata}` of the bundled
    presets holding a model of that class."""

    def __get__(self, instance, owner):
        return list_presets(owner.preset_kind, owner.__name__)


class Model(keras.Model):
    """Base class of keras-vqvae models (the keras-hub `Backbone` pattern).

    Subclasses pass their constructor arguments to `get_config` on top of
    this base config (`name`, `trainable`, `dtype`), and get:

    - `presets`: the bundled presets holding this kind of model;
    - `from_preset(preset)`: a bundled name, a folder or an `hf://` handle;
    - `save_to_preset(preset_dir)`: config, weights, metadata with SHA-256;
    - a custom `compile` restored when a `.keras` file is loaded, with the
      optimizer state, so training resumes where it stopped.

    `preset_kind` names the files the model uses in a preset folder:
    `"model"` (`config.json`, `model.weights.h5`) or `"prior"`
    (`prior_config.json`, `prior.weights.h5`), beside the VQ-VAE.
    """

    preset_kind = "model"
    presets = _BundledPresets()

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "dtype": keras.dtype_policies.serialize(self.dtype_policy),
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config.get("dtype"), dict):
            config["dtype"] = keras.dtype_policies.deserialize(config["dtype"])
        return cls(**config)

    @classmethod
    def from_preset(
        cls,
        preset,
        load_weights=True,
        allow_missing_checksum=False,
        force_download=False,
        **config_overrides,
    ):
        """Instantiates the model from a preset.

        Args:
            preset: a bundled name (see `presets`), a local folder, or
                `hf://owner/repo[@revision]` on the Hugging Face Hub.
            load_weights: bool. Load the preset's weights (default) or keep
                the random initialisation.
            allow_missing_checksum: bool. Load weights that `metadata.json`
                has no SHA-256 for (with a warning). By default that is a
                `PresetError`; a mismatching SHA-256 always is.
            force_download: bool. For `hf://` presets, download the files
                again even if cached: repairs a damaged cache.
            **config_overrides: constructor arguments that replace the
                preset's (for instance `dead_code_threshold=0.0`).

        Returns:
            The model, built and ready for `predict`, `fit` or `encode`.

        Example:

        >>> model = VQVAE.from_preset("mnist")
        >>> model = VQVAE.from_preset("hf://owner/vqvae-cifar10@main")
        """
        return PresetFolder.resolve(preset, force_download).load_model(
            cls,
            cls.preset_kind,
            load_weights,
            allow_missing_checksum,
            **config_overrides,
        )

    def save_to_preset(self, preset_dir, metadata=None):
        """Writes config, weights and metadata to a preset folder.

        Files are written to temporary names and renamed, so an interrupted
        save leaves the previous files intact. Metadata already in the
        folder is kept and updated.

        Args:
            preset_dir: folder to write (created if missing).
            metadata: dict of extra metadata (data set, metrics, ...).
        """
        PresetFolder(preset_dir).save_model(self, self.preset_kind, metadata)

    def compile_from_config(self, config):
        # Keras skips a custom `compile` when it loads a `.keras` file
        # unless this is overridden; building the optimizer here lets Keras
        # restore its state.
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.built:
            self.optimizer.build(self.trainable_variables)
