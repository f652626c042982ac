"""Action-conditional next-frame prior over code maps (paper section 4.4).

The paper trains a VQ-VAE on video frames and a prior that, given the codes
of the previous frames and the agent's action, generates the next frame's
codes; a rollout repeats that step, feeding its own frames back, entirely
in latent space, and decodes each code map deterministically.

`ActionConditionalPrior` holds a gated PixelCNN (`PixelCNNPrior`, its
`frame_prior`) over the next frame's code map whose gates are biased,
position by position, by a context network: the last `context_frames` code maps, embedded and stacked
along channels, through 3x3 convolutions to which an action embedding is
added. The context is known before the frame is drawn, so the incremental
sampler of `PixelCNNPrior` draws the frame in `H * W` cheap steps.
"""

import keras
import numpy as np
from keras import ops

from keras_vqvae.errors import DataError
from keras_vqvae.layers.conv2d.residual_stack import residual_relu
from keras_vqvae.models.base import Model
from keras_vqvae.models.pixelcnn_prior import PixelCNNPrior


@keras.saving.register_keras_serializable(package="keras_vqvae")
class ActionConditionalPrior(Model):
    """Gated PixelCNN over the next frame's codes given past codes and an
    action.

    Args:
        num_embeddings: int. Codebook size `K`.
        latent_shape: tuple `(H, W)` of the code maps.
        num_actions: int. Actions are ints in `[0, num_actions)`; the action
            is the one taken in the last context frame.
        context_frames: int. How many previous frames the prediction sees.
        context_dim: int. Channels of the context network (and of the
            condition map it gives every gated block).
        context_layers: int. Residual 3x3 convolutions of the context
            network after its input convolution (each widens the area of
            the previous frames a position sees by one code on each side).
        context_embedding_dim: int. Channels of each past frame's code
            embedding.
        hidden_dim, num_layers, kernel_size, head_dim: as `PixelCNNPrior`.
        **kwargs: `name`, `dtype`, `trainable`.

    Call arguments:
        inputs: dict with `"codes"` (int `(B, H, W)`: the frame to score),
            `"context"` (int `(B, context_frames, H, W)`, oldest first) and
            `"actions"` (int `(B,)`).

    Returns:
        Logits `(B, H, W, K)` of the next frame's codes; `logits[b, i, j]`
        sees that frame's codes before `(i, j)` in raster order, all of the
        context and the action.

    Example:

    >>> prior = ActionConditionalPrior(512, (21, 21), num_actions=17)
    >>> prior.compile(optimizer="adam")
    >>> prior.fit({"codes": nxt, "context": past, "actions": a}, nxt)
    >>> frames = prior.rollout(past_codes, future_actions, seed=0)
    """

    # Stored beside the VQ-VAE in the same preset folder.
    preset_kind = "prior"

    def __init__(
        self,
        num_embeddings,
        latent_shape,
        num_actions,
        context_frames=2,
        context_dim=64,
        context_layers=4,
        context_embedding_dim=32,
        hidden_dim=64,
        num_layers=8,
        kernel_size=5,
        head_dim=None,
        **kwargs,
    ):
        for name, value, minimum in (
            ("num_actions", num_actions, 1),
            ("context_frames", context_frames, 1),
            ("context_dim", context_dim, 1),
            ("context_layers", context_layers, 0),
            ("context_embedding_dim", context_embedding_dim, 1),
        ):
            if int(value) < minimum:
                raise ValueError(
                    f"`{name}` must be >= {minimum}. Received: {name}={value}"
                )
        super().__init__(**kwargs)
        self.frame_prior = PixelCNNPrior(
            num_embeddings,
            latent_shape,
            hidden_dim=hidden_dim,
            num_layers=num_layers,
            kernel_size=kernel_size,
            head_dim=head_dim,
            condition_dim=int(context_dim),
            name="frame_prior",
        )
        self.num_embeddings = self.frame_prior.num_embeddings
        self.latent_shape = self.frame_prior.latent_shape
        self.num_actions = int(num_actions)
        self.context_frames = int(context_frames)
        self.context_dim = int(context_dim)
        self.context_layers = int(context_layers)
        self.context_embedding_dim = int(context_embedding_dim)
        conv = dict(padding="same", data_format="channels_last")
        self.context_embedding = keras.layers.Embedding(
            self.num_embeddings,
            self.context_embedding_dim,
            name="context_embedding",
        )
        self.context_input = keras.layers.Conv2D(
            self.context_dim, 3, name="context_input", **conv
        )
        self.action_embedding = keras.layers.Embedding(
            self.num_actions, self.context_dim, name="action_embedding"
        )
        self.context_convs = [
            keras.layers.Conv2D(
                self.context_dim, 3, name=f"context_conv_{i}", **conv
            )
            for i in range(self.context_layers)
        ]
        self.build()

    def build(self, input_shape=None):
        if self.built:
            return
        h, w = self.latent_shape
        t, e, d = (
            self.context_frames,
            self.context_embedding_dim,
            self.context_dim,
        )
        self.context_embedding.build((None, t, h, w))
        self.context_input.build((None, h, w, t * e))
        self.action_embedding.build((None,))
        for layer in self.context_convs:
            layer.build((None, h, w, d))
        self.built = True

    def context_features(self, context, actions):
        """The condition map `(B, H, W, context_dim)` of the gated blocks."""
        h, w = self.latent_shape
        x = self.context_embedding(ops.cast(context, "int32"))  # (B,T,H,W,E)
        x = ops.transpose(x, (0, 2, 3, 1, 4))
        x = ops.reshape(
            x, (-1, h, w, self.context_frames * self.context_embedding_dim)
        )
        x = self.context_input(x)
        action = self.action_embedding(
            ops.reshape(ops.cast(actions, "int32"), (-1,))
        )
        # The action enters before the nonlinear layers, so they can move
        # the past frames' features the way the action moves the view.
        x = x + ops.cast(action[:, None, None, :], x.dtype)
        for layer in self.context_convs:
            x = x + layer(residual_relu(x))
        return ops.relu(x)

    def call(self, inputs, training=None):
        if not isinstance(inputs, dict) or not {
            "codes",
            "context",
            "actions",
        } <= set(inputs):
            raise ValueError(
                "ActionConditionalPrior takes a dict with 'codes' (B, H, W), "
                "'context' (B, context_frames, H, W) and 'actions' (B,). "
                f"Received: {type(inputs).__name__}"
                + (
                    f" with keys {sorted(inputs)}"
                    if isinstance(inputs, dict)
                    else ""
                )
            )
        condition = self.context_features(inputs["context"], inputs["actions"])
        return self.frame_prior(
            {"codes": inputs["codes"], "condition": condition}
        )

    def compute_output_shape(self, input_shape):
        return tuple(input_shape["codes"]) + (self.num_embeddings,)

    def compile(self, optimizer="adam", loss=None, **kwargs):
        """Like `keras.Model.compile`, with the loss defaulting to
        `SparseCategoricalCrossentropy(from_logits=True)`."""
        if loss is None:
            loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        super().compile(optimizer=optimizer, loss=loss, **kwargs)

    # --- Checks ------------------------------------------------------------

    def check_codes(self, codes, name="codes", frames_axis=False):
        """int32 numpy codes `(N, [T,] H, W)` in `[0, K)`, or a `DataError`."""
        codes = np.asarray(ops.convert_to_numpy(codes))
        expected = (
            self.latent_shape if not frames_axis else (None, *self.latent_shape)
        )
        shape_ok = codes.ndim == len(expected) + 1 and all(
            e is None or s == e for s, e in zip(codes.shape[1:], expected)
        )
        if not shape_ok:
            layout = "(N, frames, H, W)" if frames_axis else "(N, H, W)"
            raise DataError(
                f"`{name}` must be code maps {layout} with (H, W) = "
                f"{self.latent_shape}. Received: shape {codes.shape}"
            )
        if not np.issubdtype(codes.dtype, np.integer) or (
            codes.size
            and (codes.min() < 0 or codes.max() >= self.num_embeddings)
        ):
            raise DataError(
                f"`{name}` must hold integer codes in [0, "
                f"{self.num_embeddings}). Received: dtype {codes.dtype}"
            )
        return codes.astype("int32")

    def check_actions(self, actions, name="actions"):
        """int32 numpy actions in `[0, num_actions)`, or a `DataError`."""
        actions = np.asarray(ops.convert_to_numpy(actions))
        if not np.issubdtype(actions.dtype, np.integer) or (
            actions.size
            and (actions.min() < 0 or actions.max() >= self.num_actions)
        ):
            bad = actions.reshape(-1)[:8].tolist()
            raise DataError(
                f"`{name}` must be integers in [0, {self.num_actions}) (the "
                f"model's actions). Received: {bad}"
                + (" ..." if actions.size > 8 else "")
            )
        return actions.astype("int32")

    def _recent_context(self, context):
        context = self.check_codes(context, "context", frames_axis=True)
        if context.shape[1] < self.context_frames:
            raise DataError(
                f"This prior predicts from the last {self.context_frames} "
                f"frames; `context` holds {context.shape[1]}. Pass at least "
                f"{self.context_frames} context frames."
            )
        return context[:, -self.context_frames :]

    # --- Scoring and generation ------------------------------------------

    def next_frame_scores(self, codes, context, actions, batch_size=256):
        """Teacher-forced scores of the true next frames.

        Args:
            codes: int `(N, H, W)`, the next frames' codes.
            context: int `(N, T, H, W)` with `T >= context_frames`.
            actions: int `(N,)`.
            batch_size: examples per forward pass.

        Returns:
            `(log_prob, accuracy)`: float32 numpy `(N,)` each: the sum over
            positions of `log p(code)` in nats, and the fraction of
            positions whose most likely code is the true one.
        """
        codes = self.check_codes(codes)
        context = self._recent_context(context)
        actions = self.check_actions(actions)
        log_probs, accuracies = [], []
        for start in range(0, len(codes), int(batch_size)):
            batch = slice(start, start + int(batch_size))
            logits = self(
                {
                    "codes": codes[batch],
                    "context": context[batch],
                    "actions": actions[batch],
                },
                training=False,
            )
            logp = ops.log_softmax(ops.cast(logits, "float32"), axis=-1)
            target = ops.convert_to_tensor(codes[batch])
            picked = ops.take_along_axis(logp, target[..., None], axis=-1)
            hits = ops.cast(ops.argmax(logp, axis=-1) == target, "float32")
            log_probs.append(ops.convert_to_numpy(ops.sum(picked, (1, 2, 3))))
            accuracies.append(ops.convert_to_numpy(ops.mean(hits, (1, 2))))
        if not log_probs:
            return np.zeros((0,), "float32"), np.zeros((0,), "float32")
        return (
            np.concatenate(log_probs).astype("float32"),
            np.concatenate(accuracies).astype("float32"),
        )

    def predict_next(self, context, actions, temperature=1.0, seed=None):
        """Draws the next frame's codes for each example.

        Args:
            context: int `(N, T, H, W)`, `T >= context_frames`, oldest first.
            actions: int `(N,)`, the action taken in the last context frame.
            temperature: softmax temperature (> 0).
            seed: int or sequence of ints for reproducible draws, or None.

        Returns:
            int32 numpy `(N, H, W)`.
        """
        context = self._recent_context(context)
        actions = self.check_actions(actions).reshape(-1)
        if len(actions) != len(context):
            raise DataError(
                f"Expected one action per context ({len(context)}). "
                f"Received: {len(actions)} actions"
            )
        condition = self.context_features(context, actions)
        return self.frame_prior.sample(
            len(context),
            temperature=temperature,
            seed=seed,
            condition=condition,
        )

    def rollout(self, context, actions, temperature=1.0, seed=None):
        """Generates frames one after another in latent space.

        Each step draws the next code map from the last `context_frames`
        maps (real ones first, then generated ones) and the step's action.

        Args:
            context: int `(N, T, H, W)`, the real frames' codes, oldest
                first (`T >= context_frames`).
            actions: int `(N, S)`: `actions[:, 0]` is taken in the last
                context frame, `actions[:, s]` in generated frame `s`.
            temperature: softmax temperature (> 0).
            seed: int for reproducible rollouts, or None.

        Returns:
            int32 numpy `(N, S, H, W)`: the `S` generated code maps.
        """
        frames = list(np.moveaxis(self._recent_context(context), 1, 0))
        actions = self.check_actions(actions)
        if actions.ndim != 2 or actions.shape[0] != len(frames[0]):
            raise DataError(
                f"`actions` must be (N, steps) with N = {len(frames[0])} "
                f"(one row per context). Received: shape {actions.shape}"
            )
        generated = []
        for step in range(actions.shape[1]):
            recent = np.stack(frames[-self.context_frames :], axis=1)
            step_seed = None if seed is None else [int(seed), step]
            frames.append(
                self.predict_next(
                    recent, actions[:, step], temperature, step_seed
                )
            )
            generated.append(frames[-1])
        h, w = self.latent_shape
        if not generated:
            return np.zeros((len(frames[0]), 0, h, w), "int32")
        return np.stack(generated, axis=1)

    def get_config(self):
        config = super().get_config()
        frame_prior = self.frame_prior
        config.update(
            {
                "num_embeddings": self.num_embeddings,
                "latent_shape": list(self.latent_shape),
                "hidden_dim": frame_prior.hidden_dim,
                "num_layers": frame_prior.num_layers,
                "kernel_size": frame_prior.kernel_size,
                "head_dim": frame_prior.head_dim,
                "num_actions": self.num_actions,
                "context_frames": self.context_frames,
                "context_dim": self.context_dim,
                "context_layers": self.context_layers,
                "context_embedding_dim": self.context_embedding_dim,
            }
        )
        return config
