"""Restoring a custom `compile` when a `.keras` file is loaded."""

import keras


class CompileOnLoadMixin:
    """For models that override `compile` with their own defaults.

    Keras skips a custom `compile` when it loads a `.keras` file unless
    `compile_from_config` is overridden; this override calls the model's
    `compile` with the saved arguments and builds the optimizer, so Keras
    then restores its state and training resumes where it stopped.

    Example:

    >>> model.save("vqvae.keras")
    >>> model = keras.saving.load_model("vqvae.keras")
    >>> model.fit(dataset)  # compiled, with the saved optimizer state
    """

    def compile_from_config(self, config):
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.built:
            self.optimizer.build(self.trainable_variables)
