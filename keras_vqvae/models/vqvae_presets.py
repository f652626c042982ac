"""The bundled `VQVAE` presets: the one source of their architectures.

Each entry names the preset, describes it, and gives the constructor
arguments it was trained with (`keras-vqvae train --architecture NAME`
reads them; the tools and tests too). Measured numbers live in each
preset's `metadata.json`. A test checks that every bundled `config.json`
holds its entry's `config`.
"""


def _architecture(image_shape, num_embeddings, embedding_dim, hidden_dim):
    """The paper's encoder/decoder (two stride-2 convolutions, two residual
    blocks of 32 channels) with an EMA codebook. k-means initialisation and
    dead-code restarts are our additions."""
    return {
        "image_shape": image_shape,
        "num_embeddings": num_embeddings,
        "embedding_dim": embedding_dim,
        "hidden_dim": hidden_dim,
        "num_residual_layers": 2,
        "residual_hidden_dim": 32,
        "num_downsamples": 2,
        "quantizer": "ema",
        "kmeans_init": True,
        "dead_code_threshold": 1.0,
    }


# MNIST-sized digits and clothes: 28x28x1 -> 7x7 codes, K = 128.
_MNIST_LIKE = _architecture((28, 28, 1), 128, 32, hidden_dim=64)
# The paper's CIFAR-10 model, with the widths of DeepMind's Sonnet example.
_CIFAR10 = _architecture((32, 32, 3), 512, 64, hidden_dim=128)

VQVAE_PRESETS = {
    "mnist": {
        "description": "MNIST digits, 28x28x1 -> 7x7 codes, K = 128 (default).",
        "tfds": "mnist",
        "config": _MNIST_LIKE,
    },
    "fashion_mnist": {
        "description": "Fashion-MNIST, 28x28x1 -> 7x7 codes, K = 128.",
        "tfds": "fashion_mnist",
        "config": _MNIST_LIKE,
    },
    "cifar10": {
        "description": "CIFAR-10, 32x32x3 -> 8x8 codes, K = 512 (the "
        "paper's CIFAR-10 model).",
        "tfds": "cifar10",
        "config": _CIFAR10,
    },
    "imagenet_128": {
        "description": "128x128x3 -> 32x32 codes, K = 512 (the paper's "
        "ImageNet shapes) with the Sonnet example's ImageNet widths (the cifar10 ones), trained on 20 ImageNet classes.",
        "tfds": "imagenet2012",
        "config": {**_CIFAR10, "image_shape": (128, 128, 3)},
    },
    "crafter_84": {
        "description": "Crafter video frames, 84x84x3 -> 21x21 codes, K = "
        "512 (the paper's DeepMind Lab shapes), with an action-conditional "
        "next-frame prior.",
        "tfds": None,
        "config": {**_CIFAR10, "image_shape": (84, 84, 3)},
    },
}
