"""The bundled `PixelCNNPrior` presets, stored beside their VQ-VAE.

Each entry gives the prior's constructor arguments apart from those that
follow from the VQ-VAE (`num_embeddings`, `latent_shape`) and from the data
(`num_classes` of a class-conditional prior).
"""


def _gated_pixelcnn(latent, hidden_dim, conditional=True):
    kind = "Class-conditional" if conditional else "Unconditional"
    return {
        "description": f"{kind} gated PixelCNN over {latent} codes.",
        "config": {
            "hidden_dim": hidden_dim,
            "num_layers": 12,
            "kernel_size": 5,
        },
    }


PIXELCNN_PRIOR_PRESETS = {
    "mnist": _gated_pixelcnn("7x7", 64),
    "fashion_mnist": _gated_pixelcnn("7x7", 64),
    "cifar10": _gated_pixelcnn("8x8", 96),
    "imagenet_128": _gated_pixelcnn("32x32", 64, conditional=False),
}
