"""A plain PyTorch VQ-VAE: the benchmark's peer, the Keras `VQVAE` layer by
layer.

`build_reference(preset)` builds it with the architecture of a bundled preset
(`keras_vqvae.models.VQVAE_PRESETS[preset]["config"]`, the constructor
arguments of the Keras model); the benchmark times the `cifar10` one.

* encoder: `num_downsamples` 4x4 stride-2 convolutions (padding 1, which is
  Keras `"same"` for even sizes; `hidden_dim // 2` channels, then
  `hidden_dim`), each followed by ReLU; a 3x3 convolution; a residual stack
  (`x + conv1x1(relu(conv3x3(relu(x))))` per block, then ReLU);
* a 1x1 pre-quantisation convolution to `embedding_dim` channels;
* the EMA vector quantiser (decay 0.99, epsilon 1e-5, commitment 0.25,
  straight-through gradient, distances in float32), with the preset's
  k-means initialisation on the first training batch and dead-code restarts
  (usage decay 0.99) by the library's rule: a restarted code's usage and
  cluster size restart at the threshold;
* decoder: a 3x3 convolution, a residual stack and `num_downsamples` 4x4
  stride-2 transposed convolutions (padding 1: output twice the input), ReLU
  between them.

Inputs and outputs are NHWC like Keras; the model works in NCHW inside.
Weights are initialised as Keras initialises them (Glorot-uniform kernels,
zero biases, a fan-out variance-scaling codebook), and `load_keras_weights`
copies a Keras `VQVAE`'s weights in, so both give the same outputs.

`train_step(x)` is one Adam(3e-4) step on
`mean((x - x_hat)^2) / data_variance + commitment_cost * commitment_loss`.
It never synchronises with the host: no `.item()`, no branch on a tensor's
value (the quantiser's updates, restarts included, are `torch.where`s; the
k-means initialisation runs once, on a Python flag), and it returns the
loss as a tensor, for the caller to read when its clock has stopped.

Two modes (`MODES`), PyTorch's plain one and its fastest on a CPU with
bfloat16 units: `"float32"` (NCHW tensors) and `"bfloat16_channels_last"`
(`torch.autocast("cpu", dtype=torch.bfloat16)` around the network, the
model and its inputs in `torch.channels_last`; the quantiser stays in
float32, as the library's does under `mixed_bfloat16`).
"""

import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from keras_vqvae.models import VQVAE_PRESETS

from .cifar10 import TORCH_MODES

MODES = tuple(TORCH_MODES)


def _glorot_(conv):
    # Keras Glorot uniform: fan_in = kh*kw*in, fan_out = kh*kw*out (for a
    # transposed convolution Keras's kernel is (kh, kw, out, in): the same
    # two numbers). Biases start at zero.
    weight = conv.weight
    receptive = weight.shape[2] * weight.shape[3]
    fans = weight.shape[0] * receptive + weight.shape[1] * receptive
    limit = math.sqrt(6.0 / fans)
    with torch.no_grad():
        weight.uniform_(-limit, limit)
        conv.bias.zero_()
    return conv


class ResidualStack(nn.Module):
    def __init__(self, hidden_dim, num_residual_layers, residual_hidden_dim):
        super().__init__()
        self.convs3x3 = nn.ModuleList(
            _glorot_(nn.Conv2d(hidden_dim, residual_hidden_dim, 3, padding=1))
            for _ in range(num_residual_layers)
        )
        self.convs1x1 = nn.ModuleList(
            _glorot_(nn.Conv2d(residual_hidden_dim, hidden_dim, 1))
            for _ in range(num_residual_layers)
        )

    def forward(self, x):
        for conv3x3, conv1x1 in zip(self.convs3x3, self.convs1x1):
            x = x + conv1x1(F.relu(conv3x3(F.relu(x))))
        return F.relu(x)


class Encoder(nn.Module):
    def __init__(
        self,
        in_channels,
        hidden_dim,
        num_residual_layers,
        residual_hidden_dim,
        num_downsamples,
    ):
        super().__init__()
        downsamples = []
        channels = in_channels
        for i in range(num_downsamples):
            out = hidden_dim if i == num_downsamples - 1 else hidden_dim // 2
            downsamples.append(
                _glorot_(nn.Conv2d(channels, out, 4, stride=2, padding=1))
            )
            channels = out
        self.downsamples = nn.ModuleList(downsamples)
        self.conv = _glorot_(nn.Conv2d(channels, hidden_dim, 3, padding=1))
        self.residual_stack = ResidualStack(
            hidden_dim, num_residual_layers, residual_hidden_dim
        )

    def forward(self, x):
        for conv in self.downsamples:
            x = F.relu(conv(x))
        return self.residual_stack(self.conv(x))


class Decoder(nn.Module):
    def __init__(
        self,
        embedding_dim,
        hidden_dim,
        num_residual_layers,
        residual_hidden_dim,
        out_channels,
        num_upsamples,
    ):
        super().__init__()
        self.conv = _glorot_(nn.Conv2d(embedding_dim, hidden_dim, 3, padding=1))
        self.residual_stack = ResidualStack(
            hidden_dim, num_residual_layers, residual_hidden_dim
        )
        upsamples = []
        channels = hidden_dim
        for i in range(num_upsamples):
            out = out_channels if i == num_upsamples - 1 else hidden_dim // 2
            upsamples.append(
                _glorot_(
                    nn.ConvTranspose2d(channels, out, 4, stride=2, padding=1)
                )
            )
            channels = out
        self.upsamples = nn.ModuleList(upsamples)

    def forward(self, x):
        x = self.residual_stack(self.conv(x))
        for conv in self.upsamples[:-1]:
            x = F.relu(conv(x))
        return self.upsamples[-1](x)


class VectorQuantizerEMA(nn.Module):
    """EMA codebook (buffers, not parameters) with the Keras layer's extras.

    Works in float32 whatever the autocast around it. Every update is a
    tensor operation: nothing reads a tensor's value on the host.
    """

    def __init__(
        self,
        num_embeddings,
        embedding_dim,
        commitment_cost=0.25,
        decay=0.99,
        epsilon=1e-5,
        kmeans_init=False,
        kmeans_iterations=10,
        dead_code_threshold=0.0,
        usage_decay=0.99,
        generator=None,
    ):
        super().__init__()
        self.num_embeddings = num_embeddings
        self.embedding_dim = embedding_dim
        self.commitment_cost = commitment_cost
        self.decay = decay
        self.epsilon = epsilon
        self.kmeans_init = kmeans_init
        self.kmeans_iterations = kmeans_iterations
        self.dead_code_threshold = dead_code_threshold
        self.usage_decay = usage_decay
        self.generator = generator
        # Keras VarianceScaling(1.0, "fan_out", "uniform") on (K, D): fan_out=D.
        limit = math.sqrt(3.0 / embedding_dim)
        codebook = torch.empty(num_embeddings, embedding_dim).uniform_(
            -limit, limit, generator=generator
        )
        self.register_buffer("codebook", codebook)
        self.register_buffer("ema_cluster_size", torch.ones(num_embeddings))
        self.register_buffer("ema_dw", codebook.clone())
        self.register_buffer("code_usage", torch.ones(num_embeddings))
        # A Python flag, not a buffer: the first training batch is known on
        # the host, so no step reads a tensor to decide.
        self.initialized = False
        self.batch_perplexity = torch.zeros(())
        self.batch_codebook_usage = torch.zeros(())

    def nearest_codes(self, flat, codebook):
        distances = (
            flat.pow(2).sum(1, keepdim=True)
            - 2.0 * flat @ codebook.t()
            + codebook.pow(2).sum(1)[None, :]
        )
        return distances.argmin(1)

    def _cluster_sums(self, values, indices):
        """Sums `values` (N, C) per assigned code: a (K, C) segment sum."""
        sums = values.new_zeros(self.num_embeddings, values.shape[1])
        return sums.index_add_(0, indices, values)

    def _random_rows(self, flat, count):
        rows = torch.randint(
            0, flat.shape[0], (count,), generator=self.generator
        )
        return flat[rows]

    def _smoothed_cluster_size(self, cluster_size):
        total = cluster_size.sum()
        return (
            (cluster_size + self.epsilon)
            / (total + self.num_embeddings * self.epsilon)
            * total
        )

    def _replace_codes(self, new_codebook, replaced, cluster_size=None):
        """The library's rule (`VectorQuantizerEMA._replace_codes`).

        `replaced` (K, 1) marks the new rows; with `cluster_size` (a
        restart) their cluster sizes restart at it, else (k-means) they are
        kept; their `ema_dw` is the new vector times the smoothed size.
        """
        sizes = self.ema_cluster_size
        if cluster_size is not None:
            sizes = torch.where(replaced[:, 0], cluster_size, sizes)
            self.ema_cluster_size.copy_(sizes)
        smoothed = self._smoothed_cluster_size(sizes)[:, None]
        ema_dw = torch.where(replaced, new_codebook * smoothed, self.ema_dw)
        self.ema_dw.copy_(ema_dw)
        if cluster_size is not None:
            new_codebook = torch.where(
                replaced, new_codebook, ema_dw / smoothed
            )
        self.codebook.copy_(new_codebook)

    def _kmeans(self, flat, centroids):
        ones = flat.new_ones(flat.shape[0], 1)
        for _ in range(self.kmeans_iterations):
            assignments = self.nearest_codes(flat, centroids)
            sizes = self._cluster_sums(ones, assignments)
            sums = self._cluster_sums(flat, assignments)
            centroids = torch.where(
                sizes > 0, sums / sizes.clamp(min=1.0), centroids
            )
        return centroids

    def _initialize_with_kmeans(self, flat):
        starts = self._random_rows(flat, self.num_embeddings)
        replaced = flat.new_ones(self.num_embeddings, 1, dtype=torch.bool)
        self._replace_codes(self._kmeans(flat, starts), replaced)
        self.initialized = True

    @torch.autocast("cpu", enabled=False)
    def forward(self, z):
        """`z`: (N, H, W, D) tensor; returns (quantized, vq_loss, indices)."""
        z = z.float()
        flat = z.reshape(-1, self.embedding_dim)
        detached = flat.detach()
        with torch.no_grad():
            if self.training and self.kmeans_init and not self.initialized:
                self._initialize_with_kmeans(detached)
            codebook = self.codebook.clone()
            indices = self.nearest_codes(detached, codebook)
            counts = torch.bincount(
                indices, minlength=self.num_embeddings
            ).float()
            quantized = codebook[indices].reshape(z.shape)
            probabilities = counts / counts.sum().clamp(min=1.0)
            self.batch_perplexity = torch.exp(
                -(probabilities * torch.log(probabilities + 1e-10)).sum()
            )
            self.batch_codebook_usage = (counts > 0).float().mean()
            if self.training:
                self._update_codebook(detached, indices, counts)
                if self.dead_code_threshold > 0:
                    self._restart_dead_codes(detached, counts)
        loss = self.commitment_cost * F.mse_loss(z, quantized)
        straight_through = z + (quantized - z).detach()
        return straight_through, loss, indices.reshape(z.shape[:-1])

    def _update_codebook(self, flat, indices, counts):
        decay = self.decay
        cluster_size = decay * self.ema_cluster_size + (1.0 - decay) * counts
        dw = self._cluster_sums(flat, indices)
        ema_dw = decay * self.ema_dw + (1.0 - decay) * dw
        smoothed = self._smoothed_cluster_size(cluster_size)
        self.ema_cluster_size.copy_(cluster_size)
        self.ema_dw.copy_(ema_dw)
        self.codebook.copy_(ema_dw / smoothed[:, None])

    def _restart_dead_codes(self, flat, counts):
        """The library's rule: dead codes move to random batch rows, and
        their usage and cluster size restart at the threshold."""
        threshold = self.dead_code_threshold
        usage = (
            self.usage_decay * self.code_usage
            + (1.0 - self.usage_decay) * counts
        )
        dead = usage < threshold
        self.code_usage.copy_(torch.where(dead, threshold, usage))
        candidates = self._random_rows(flat, self.num_embeddings)
        dead = dead[:, None]
        self._replace_codes(
            torch.where(dead, candidates, self.codebook),
            dead,
            cluster_size=threshold,
        )

    def lookup(self, indices):
        return self.codebook[indices]


class TorchVQVAE(nn.Module):
    """The reference model; NHWC in, NHWC out (float images in [-0.5, 0.5]).

    Args:
        image_shape, num_embeddings, embedding_dim, hidden_dim,
            num_residual_layers, residual_hidden_dim, num_downsamples,
            quantizer, commitment_cost, decay, epsilon, kmeans_init,
            dead_code_threshold, data_variance, seed: as for
            `keras_vqvae.models.VQVAE` (`quantizer` must be `"ema"`).
        learning_rate: float. Adam's learning rate.
        mode: str, one of `MODES`: `"float32"`, or
            `"bfloat16_channels_last"` (bfloat16 autocast, channels-last
            tensors).
    """

    def __init__(
        self,
        image_shape,
        num_embeddings,
        embedding_dim,
        hidden_dim,
        num_residual_layers,
        residual_hidden_dim,
        num_downsamples,
        quantizer="ema",
        commitment_cost=0.25,
        decay=0.99,
        epsilon=1e-5,
        kmeans_init=False,
        dead_code_threshold=0.0,
        data_variance=1.0,
        learning_rate=3e-4,
        seed=0,
        mode="float32",
    ):
        super().__init__()
        if quantizer != "ema":
            raise ValueError("The reference implements the EMA quantiser only.")
        if mode not in MODES:
            raise ValueError(
                f"`mode` must be one of {MODES}. Received: mode={mode!r}"
            )
        torch.manual_seed(seed)
        self.generator = torch.Generator().manual_seed(seed)
        self.image_shape = tuple(image_shape)
        self.embedding_dim = embedding_dim
        self.data_variance = float(data_variance)
        self.mode = mode
        self.bfloat16 = mode == "bfloat16_channels_last"
        self.memory_format = (
            torch.channels_last if self.bfloat16 else torch.contiguous_format
        )
        self.encoder = Encoder(
            image_shape[-1],
            hidden_dim,
            num_residual_layers,
            residual_hidden_dim,
            num_downsamples,
        )
        self.pre_quantization = _glorot_(
            nn.Conv2d(hidden_dim, embedding_dim, 1)
        )
        self.quantizer = VectorQuantizerEMA(
            num_embeddings,
            embedding_dim,
            commitment_cost=commitment_cost,
            decay=decay,
            epsilon=epsilon,
            kmeans_init=kmeans_init,
            dead_code_threshold=dead_code_threshold,
            generator=self.generator,
        )
        self.decoder = Decoder(
            embedding_dim,
            hidden_dim,
            num_residual_layers,
            residual_hidden_dim,
            image_shape[-1],
            num_downsamples,
        )
        self.to(memory_format=self.memory_format)
        # Keras Adam's defaults (epsilon 1e-7, not torch's 1e-8). Fused: one
        # kernel for all parameters, and, unlike the for-loop and foreach
        # implementations, no `.item()` of the step count.
        self.optimizer = torch.optim.Adam(
            self.parameters(),
            lr=learning_rate,
            betas=(0.9, 0.999),
            eps=1e-7,
            fused=True,
        )

    def trainable_parameter_count(self):
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def _autocast(self):
        return torch.autocast(
            "cpu", dtype=torch.bfloat16, enabled=self.bfloat16
        )

    def _to_nchw(self, x):
        """NHWC images (array or tensor) -> NCHW float32 in the mode's
        memory format (channels-last: the NHWC memory itself)."""
        x = _to_tensor(x).permute(0, 3, 1, 2)
        return x.contiguous(memory_format=self.memory_format)

    def _latents(self, x):
        z = self.pre_quantization(self.encoder(x))
        return z.permute(0, 2, 3, 1)  # the quantiser works on NHWC vectors

    def _decode_latents(self, quantized):
        x = quantized.permute(0, 3, 1, 2)
        return self.decoder(x.contiguous(memory_format=self.memory_format))

    def _reconstruct(self, x):
        """NCHW images -> (NCHW float32 reconstructions, vq_loss)."""
        with self._autocast():
            quantized, vq_loss, _ = self.quantizer(self._latents(x))
            reconstructions = self._decode_latents(quantized)
        return reconstructions.float(), vq_loss

    def forward(self, x):
        """Returns `(reconstructions NHWC, vq_loss)`."""
        reconstructions, vq_loss = self._reconstruct(self._to_nchw(x))
        return reconstructions.permute(0, 2, 3, 1), vq_loss

    def train_step(self, x):
        """One Adam step on a batch of NHWC float images.

        Returns:
            The loss, a 0-d tensor: reading it is the caller's choice.
        """
        self.train()
        x = self._to_nchw(x)
        reconstructions, vq_loss = self._reconstruct(x)
        loss = F.mse_loss(reconstructions, x) / self.data_variance + vq_loss
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.detach()

    @torch.inference_mode()
    def encode(self, images, batch_size=256):
        """Float NHWC images -> int64 code maps (numpy)."""
        self.eval()
        out = []
        for i in range(0, len(images), batch_size):
            with self._autocast():
                z = self._latents(self._to_nchw(images[i : i + batch_size]))
            flat = z.float().reshape(-1, self.embedding_dim)
            indices = self.quantizer.nearest_codes(
                flat, self.quantizer.codebook
            )
            out.append(indices.reshape(z.shape[:-1]).numpy())
        return np.concatenate(out)

    @torch.inference_mode()
    def decode_indices(self, indices, batch_size=256):
        """Code maps -> float NHWC images (numpy)."""
        self.eval()
        out = []
        for i in range(0, len(indices), batch_size):
            codes = torch.from_numpy(np.array(indices[i : i + batch_size]))
            quantized = self.quantizer.lookup(codes.long())
            with self._autocast():
                images = self._decode_latents(quantized)
            out.append(images.float().permute(0, 2, 3, 1).numpy())
        return np.concatenate(out)

    def load_keras_weights(self, keras_model):
        """Copies the weights (and codebook state) of a Keras `VQVAE`."""

        def conv(dst, src):
            kernel = np.asarray(src.kernel.numpy())
            # Keras Conv2D (kh, kw, in, out) -> torch (out, in, kh, kw);
            # Conv2DTranspose (kh, kw, out, in) -> torch (in, out, kh, kw).
            weight = kernel.transpose(3, 2, 0, 1)
            with torch.no_grad():
                dst.weight.copy_(torch.from_numpy(np.ascontiguousarray(weight)))
                dst.bias.copy_(torch.from_numpy(np.asarray(src.bias.numpy())))

        def stack(dst, src):
            for d, s in zip(dst.convs3x3, src.convs3x3):
                conv(d, s)
            for d, s in zip(dst.convs1x1, src.convs1x1):
                conv(d, s)

        enc, dec = keras_model.encoder, keras_model.decoder
        for d, s in zip(self.encoder.downsamples, enc.downsamples):
            conv(d, s)
        conv(self.encoder.conv, enc.conv)
        stack(self.encoder.residual_stack, enc.residual_stack)
        conv(self.pre_quantization, keras_model.pre_quantization)
        conv(self.decoder.conv, dec.conv)
        stack(self.decoder.residual_stack, dec.residual_stack)
        for d, s in zip(self.decoder.upsamples, dec.upsamples):
            conv(d, s)
        q, kq = self.quantizer, keras_model.quantizer
        with torch.no_grad():
            for name in (
                "codebook",
                "ema_cluster_size",
                "ema_dw",
                "code_usage",
            ):
                getattr(q, name).copy_(
                    torch.from_numpy(np.asarray(getattr(kq, name).numpy()))
                )
        if getattr(kq, "kmeans_init", False):
            q.initialized = bool(float(kq.initialized.numpy()) > 0.5)
        return self


def _to_tensor(x):
    if isinstance(x, torch.Tensor):
        return x.float()
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))


def build_reference(
    preset="cifar10", data_variance=1.0, seed=0, mode="float32", **overrides
):
    """The architecture of a bundled `VQVAE` preset as a `TorchVQVAE`.

    Args:
        preset: str. A name in `keras_vqvae.models.VQVAE_PRESETS`.
        data_variance: float. Divides the reconstruction loss.
        seed: int. Seed of the initial weights and of the quantiser's
            random choices.
        mode: str, one of `MODES`.
        **overrides: `TorchVQVAE` arguments replacing the preset's (e.g.
            `kmeans_init=False, dead_code_threshold=0.0`: plain EMA).

    Returns:
        A `TorchVQVAE`.
    """
    return TorchVQVAE(
        **{**VQVAE_PRESETS[preset]["config"], **overrides},
        data_variance=data_variance,
        seed=seed,
        mode=mode,
    )
