"""The bundled `PixelCNNPrior` presets, stored beside their VQ-VAE.

Each entry gives the prior's constructor arguments apart from those that
follow from the VQ-VAE (`num_embeddings`, `latent_shape`) and from the data
(`num_classes` of a class-conditional prior).
"""

PIXELCNN_PRIOR_PRESETS = {
    "mnist": {
        "description": "Class-conditional gated PixelCNN over 7x7 codes.",
        "config": {"hidden_dim": 64, "num_layers": 12, "kernel_size": 5},
    },
    "fashion_mnist": {
        "description": "Class-conditional gated PixelCNN over 7x7 codes.",
        "config": {"hidden_dim": 64, "num_layers": 12, "kernel_size": 5},
    },
    "cifar10": {
        "description": "Class-conditional gated PixelCNN over 8x8 codes.",
        "config": {"hidden_dim": 96, "num_layers": 12, "kernel_size": 5},
    },
    "imagenet_128": {
        "description": "Unconditional gated PixelCNN over 32x32 codes.",
        "config": {"hidden_dim": 64, "num_layers": 12, "kernel_size": 5},
    },
}
