"""keras-vqvae: VQ-VAE (van den Oord et al. 2017) for Keras 3."""

import os

from keras_vqvae.native_logs import filtered_stderr

# The backend's native start-up notices are hidden unless asked for
# (`keras-vqvae --verbose`, or KERAS_VQVAE_NATIVE_LOGS=1).
with filtered_stderr(enabled=os.environ.get("KERAS_VQVAE_NATIVE_LOGS") != "1"):
    import keras  # noqa: F401  (imports the backend)

from keras_vqvae import layers  # noqa: E402
from keras_vqvae import models  # noqa: E402
from keras_vqvae.version import __version__  # noqa: E402

__all__ = ["layers", "models", "__version__"]
