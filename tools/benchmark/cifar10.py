"""The measured model: the `cifar10` preset's architecture, in Keras and in
PyTorch, and the images it is timed on.

The architecture is `keras_vqvae.models.VQVAE_PRESETS["cifar10"]`; Keras,
PyTorch and the library are imported inside the functions (the parent
process imports this module without choosing a Keras backend).
"""

PRESET = "cifar10"
DATA_VARIANCE = 0.06  # about CIFAR-10's; the value does not change speed
KERAS_CONV_T = "keras.layers.Conv2DTranspose"
# The two feature sets compared, the same on both sides: the preset's
# (k-means initialisation on the first batch, dead-code restarts), and the
# plain EMA quantiser (both off).
FEATURES = {
    "preset": {},
    "plain EMA": {"kmeans_init": False, "dead_code_threshold": 0.0},
}
# The PyTorch peer's modes (`torch_reference.TorchVQVAE(mode=...)`) and
# their names in the report.
TORCH_MODES = {
    "float32": "PyTorch float32",
    "bfloat16_channels_last": "PyTorch bf16 autocast + channels_last",
}


def preset_config():
    """The preset's `VQVAE` constructor arguments (a dict)."""
    from keras_vqvae.models import VQVAE_PRESETS

    return VQVAE_PRESETS[PRESET]["config"]


def images(count, seed=0):
    """Random float images of the preset's shape, in the model's range.

    Args:
        count: int. Number of images.
        seed: int. Seed of the generator.

    Returns:
        float32 numpy array `(count, 32, 32, 3)`, values in [-0.5, 0.5].
    """
    import numpy as np

    shape = (count, *preset_config()["image_shape"])
    rng = np.random.default_rng(seed)
    return rng.uniform(-0.5, 0.5, shape).astype("float32")


def cifar10_model(model_class=None, **overrides):
    """The preset's architecture, freshly initialised (seed 0).

    Args:
        model_class: the `keras_vqvae.models.VQVAE` subclass to build;
            defaults to `VQVAE`.
        **overrides: `VQVAE` arguments replacing the preset's.

    Returns:
        An uncompiled `model_class` instance.
    """
    from keras_vqvae.models import VQVAE

    return (model_class or VQVAE)(
        **{
            **preset_config(),
            "seed": 0,
            "data_variance": DATA_VARIANCE,
            **overrides,
        }
    )


def fast_policy():
    """The dtype policy `keras_vqvae.workflows.train_vqvae` trains in here
    (`mixed_bfloat16` where the hardware has bfloat16 units)."""
    from keras_vqvae.precision import training_policy

    return training_policy("auto")[0]


def compiled_model(policy, steps_per_execution, **overrides):
    """The preset's architecture compiled as `train_vqvae` compiles it.

    Args:
        policy: str, the dtype policy (`"float32"`, `"mixed_bfloat16"`).
        steps_per_execution: int. Training steps per compiled call.
        **overrides: `VQVAE` arguments replacing the preset's.

    Returns:
        A `VQVAE` compiled with Adam(3e-4).
    """
    model = cifar10_model(dtype=policy, **overrides)
    model.compile(steps_per_execution=steps_per_execution)
    return model


def keras_conv_transpose_model(like):
    """The model before the library's JAX fix, with the weights of `like`.

    Built with `decoder_upsampling_layer=keras.layers.Conv2DTranspose`
    (Keras's transposed convolution) instead of the default
    `keras_vqvae.layers.Conv2DTranspose`; the two layers have the same
    variables, so `like`'s weights load unchanged.

    Args:
        like: a `VQVAE` from `cifar10_model()`.

    Returns:
        An uncompiled `VQVAE`.
    """
    import keras

    model = cifar10_model(decoder_upsampling_layer=keras.layers.Conv2DTranspose)
    model.set_weights(like.get_weights())
    return model


def max_output_difference(a, b):
    """Largest |a(x) - b(x)| over a few images, in inference mode.

    Args:
        a: a Keras model taking `images()`.
        b: a Keras model taking `images()`.

    Returns:
        float.
    """
    import numpy as np

    x = images(4, seed=3)
    outputs = [np.asarray(model(x, training=False)) for model in (a, b)]
    return float(np.max(np.abs(outputs[0] - outputs[1])))


def trainable_count(model):
    """The number of trainable parameters of a Keras model."""
    import numpy as np

    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


def reference_model(threads, mode="float32", **overrides):
    """The PyTorch reference of the preset's architecture (seed 0).

    Args:
        threads: int. `torch.set_num_threads` from now on.
        mode: str, one of `torch_reference.MODES`.
        **overrides: arguments replacing the preset's (see `FEATURES`).

    Returns:
        A `torch_reference.TorchVQVAE`.
    """
    import torch

    from .torch_reference import build_reference

    torch.set_num_threads(threads)
    return build_reference(
        PRESET, data_variance=DATA_VARIANCE, seed=0, mode=mode, **overrides
    )
