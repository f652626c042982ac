"""Video in latent space (paper section 4.4): the action-conditional prior's
training, its next-frame measurements and rollouts.

A rollout starts from `ROLLOUT_CONTEXT` real frames and the next
`ROLLOUT_STEPS` actions, generates that many code maps one after another
with `ActionConditionalPrior.rollout` and decodes each with the VQ-VAE.
"""

import math
import time

import keras
import numpy as np

from keras_vqvae import metrics
from keras_vqvae.data.crafter_episodes import ACTION_NAMES
from keras_vqvae.data.crafter_episodes import episode_windows
from keras_vqvae.data.crafter_episodes import load_crafter_episodes
from keras_vqvae.errors import DataError
from keras_vqvae.models import ActionConditionalPrior
from keras_vqvae.precision import training_policy
from keras_vqvae.visualization import save_animation
from keras_vqvae.visualization import save_image_grid

ROLLOUT_CONTEXT = 6
ROLLOUT_STEPS = 10
# Candidates for the rollouts' softmax temperature, chosen on training
# episodes by mean PSNR (low temperatures trade variety for PSNR).
ROLLOUT_TEMPERATURES = (1.0, 0.5, 0.1)


def next_frame_examples(codes, actions, episode_offsets, context_frames):
    """Every (context, action, next frame) triple inside one episode.

    Args:
        codes: int `(N, H, W)`, the code maps of every frame of a split.
        actions: int `(N,)`: `actions[t]` leads from frame `t` to `t + 1`.
        episode_offsets: int `(E + 1,)`, as in `CrafterEpisodes`.
        context_frames: frames the prediction sees.

    Returns:
        dict of numpy arrays: `context` `(M, context_frames, H, W)`,
        `actions` `(M,)` (taken in the last context frame) and `codes`
        `(M, H, W)` (the frame that follows).
    """
    starts = episode_windows(episode_offsets, context_frames + 1)
    frames = starts[:, None] + np.arange(context_frames)
    return {
        "context": codes[frames],
        "actions": np.asarray(actions)[starts + context_frames - 1],
        "codes": codes[starts + context_frames],
    }


def copy_rate(examples):
    """How often a code equals the same position's code one frame before."""
    return float(np.mean(examples["codes"] == examples["context"][:, -1]))


def measure_next_frames(prior, examples, train_copy_rate, seed=0):
    """Teacher-forced next-frame scores and the two baselines.

    * the prior given the true actions: bits per code and the share of
      positions whose most likely code is the true one;
    * the same prior given the actions shuffled among the examples (how
      much of the prediction the action carries);
    * copying the last context frame: its accuracy, and as bits per code
      the likelihood of "the code stays with the probability it stays on
      the training frames, else any other code".

    Returns:
        dict of floats (and the number of examples).
    """
    k = prior.num_embeddings
    positions = math.prod(prior.latent_shape)

    def scores(actions):
        log_prob, accuracy = prior.next_frame_scores(
            examples["codes"], examples["context"], actions
        )
        return {
            "bits_per_code": float(-log_prob.mean() / positions / math.log(2)),
            "accuracy": float(accuracy.mean()),
        }

    shuffled = np.random.default_rng(seed).permutation(examples["actions"])
    stays = copy_rate(examples)
    rate = min(max(train_copy_rate, 1e-6), 1 - 1e-6)
    copy_bits = -(
        stays * math.log2(rate) + (1 - stays) * math.log2((1 - rate) / (k - 1))
    )
    return {
        **scores(examples["actions"]),
        "shuffled_actions": scores(shuffled),
        "copy_last_frame": {
            "bits_per_code": float(copy_bits),
            "accuracy": float(stays),
        },
        "share_of_shuffled_actions_changed": float(
            np.mean(shuffled != examples["actions"])
        ),
        "examples": int(len(examples["codes"])),
    }


def rollout_starts(
    episode_offsets, count, context=ROLLOUT_CONTEXT, steps=ROLLOUT_STEPS
):
    """`count` window starts spread evenly over the windows of
    `context + steps` frames (so over the episodes)."""
    starts = episode_windows(episode_offsets, context + steps)
    picks = np.linspace(0, len(starts) - 1, min(count, len(starts)))
    return starts[np.round(picks).astype(int)]


def check_frames(model, frames, context_frames):
    """uint8 frames `(N, T, H, W, C)` that fit `model`, or a `DataError`."""
    frames = np.asarray(frames)
    if frames.ndim != 5 or frames.shape[2:] != tuple(model.image_shape):
        raise DataError(
            f"Expected frames (rollouts, frames, "
            f"{', '.join(map(str, model.image_shape))}) for this preset's "
            f"{'x'.join(map(str, model.image_shape))} frames. Received: shape "
            f"{frames.shape}. Resize the frames or use a matching preset."
        )
    if frames.shape[1] < context_frames:
        raise DataError(
            f"This prior needs at least {context_frames} context frames; "
            f"{frames.shape[1]} were given."
        )
    return frames


def rollout(model, prior, context_frames, actions, temperature=1.0, seed=0):
    """Generates and decodes frames from real ones and actions.

    Args:
        model: the `VQVAE` of the frames.
        prior: an `ActionConditionalPrior` over its codes.
        context_frames: uint8 `(N, T, H, W, C)`, the real frames, oldest
            first (`T >= prior.context_frames`).
        actions: int `(N, S)`: `actions[:, 0]` is taken in the last real
            frame.
        temperature: softmax temperature of the draws.
        seed: int, or None for fresh draws.

    Returns:
        uint8 `(N, S, H, W, C)`: the decoded generated frames.
    """
    frames = check_frames(model, context_frames, prior.context_frames)
    n, t = frames.shape[:2]
    codes = model.encode(frames.reshape((n * t,) + frames.shape[2:]))
    codes = codes.reshape((n, t) + codes.shape[1:])
    generated = prior.rollout(codes, actions, temperature, seed)
    steps = generated.shape[1]
    images = model.decode_indices(
        generated.reshape((n * steps,) + generated.shape[2:])
    )
    return images.reshape((n, steps) + images.shape[1:])


def measure_rollouts(model, prior, episodes, count=32, temperature=1.0, seed=0):
    """Per-step PSNR of rollouts on `episodes` against the real frames
    (from each step's MSE over the rollouts).

    Beside the generated frames: copying the last real frame, copying its
    codes (decoded: the latent-space copy), and the VQ-VAE's
    reconstruction of the real frames (what a perfect prior would
    reach). Also the wall time of one rollout on its own, after a
    first call that compiles the sampler.

    Returns:
        `(metrics, example)`: a dict of per-step lists (dB, step 1 first)
        and the first rollout's `(context, real, generated)` uint8 frames.
    """
    starts = rollout_starts(episodes.episode_offsets, count)
    clips = episodes.frames[
        starts[:, None] + np.arange(ROLLOUT_CONTEXT + ROLLOUT_STEPS)
    ]
    actions = episodes.actions[
        starts[:, None] + ROLLOUT_CONTEXT - 1 + np.arange(ROLLOUT_STEPS)
    ]
    context, real = clips[:, :ROLLOUT_CONTEXT], clips[:, ROLLOUT_CONTEXT:]
    generated = rollout(model, prior, context, actions, temperature, seed)
    single = []
    for _ in range(2):  # the first call compiles the sampler for batch 1
        started = time.perf_counter()
        rollout(model, prior, context[:1], actions[:1], temperature, seed)
        single.append(time.perf_counter() - started)
    flat = (-1,) + real.shape[2:]
    reconstructed = model.decode_indices(model.encode(real.reshape(flat)))
    copied = np.repeat(context[:, -1:], ROLLOUT_STEPS, axis=1)
    last_codes = model.decode_indices(model.encode(context[:, -1]))
    copied_codes = np.repeat(last_codes[:, None], ROLLOUT_STEPS, axis=1)

    def per_step(frames):
        # PSNR of each step's MSE over the rollouts: a mean of per-image
        # PSNRs is infinite as soon as one copied frame is exact.
        mse = metrics.mse01(
            real.reshape(flat), frames.reshape(flat), per_image=True
        )
        mse = np.asarray(mse).reshape(len(starts), -1).mean(0)
        # An exact step for every rollout reads 100 dB, not infinity.
        return [round(float(-10 * np.log10(max(v, 1e-10))), 2) for v in mse]

    results = {
        "rollouts": int(len(starts)),
        "context_frames": ROLLOUT_CONTEXT,
        "steps": ROLLOUT_STEPS,
        "temperature": temperature,
        "seconds_per_rollout": round(single[-1], 2),
        "seconds_per_rollout_first_call": round(single[0], 2),
        "psnr_per_step": per_step(generated),
        "copy_last_frame_psnr_per_step": per_step(copied),
        "copy_last_frame_codes_psnr_per_step": per_step(copied_codes),
        "vqvae_reconstruction_psnr_per_step": per_step(
            reconstructed.reshape(real.shape)
        ),
    }
    return results, (context[0], real[0], generated[0])


def choose_rollout_temperature(
    model, prior, episodes, count=32, candidates=ROLLOUT_TEMPERATURES, seed=0
):
    """The candidate temperature whose rollouts on `episodes` (training
    ones: the test episodes stay unseen) reach the highest mean PSNR.

    Returns:
        `(temperature, {temperature: mean PSNR dB})`.
    """
    scores = {}
    for temperature in candidates:
        results, _ = measure_rollouts(
            model, prior, episodes, count, temperature, seed
        )
        scores[temperature] = round(float(np.mean(results["psnr_per_step"])), 2)
    return max(scores, key=scores.get), scores


def write_rollout_pictures(
    context,
    real,
    generated,
    strip_path,
    gif_path,
    actions=None,
    row_labels=("real", "generated"),
):
    """A PNG strip (the real frames above the generated ones, each column
    labelled with its time and action) and an animated GIF (real |
    generated, side by side; the context frames on both sides).
    `row_labels` name the two rows (for two generated futures, say)."""
    blank = np.full_like(context, 255)
    labels = [f"t-{len(context) - 1 - i}" for i in range(len(context) - 1)] + [
        "t"
    ]
    labels += [f"t+{i + 1}" for i in range(len(generated))]
    if actions is not None:
        labels[len(context) :] = [
            f"{label} {ACTION_NAMES[a].replace('move_', '')[:5]}"
            for label, a in zip(labels[len(context) :], actions)
        ]
    save_image_grid(
        strip_path,
        [np.concatenate([context, real]), np.concatenate([blank, generated])],
        scale=2,
        row_labels=list(row_labels),
        column_labels=labels,
    )
    gap = np.full(context.shape[1:2] + (4,) + context.shape[3:], 255, "uint8")
    side_by_side = [np.concatenate([f, gap, f], axis=1) for f in context] + [
        np.concatenate([r, gap, g], axis=1) for r, g in zip(real, generated)
    ]
    save_animation(gif_path, side_by_side, scale=3, duration_ms=300)


def train_video_prior(
    preset_dir,
    source,
    steps,
    batch_size=32,
    learning_rate=1e-3,
    context_frames=2,
    hidden_dim=64,
    num_layers=8,
    context_dim=64,
    context_layers=4,
    rollouts=32,
    seed=0,
    verbose=1,
    reproduce=None,
    precision="auto",
    log=print,
):
    """Trains an `ActionConditionalPrior` on a preset's frame codes.

    Encodes the episode folder's frames with the preset's VQ-VAE, trains
    on every (context, action, next frame) of the train episodes, measures
    the test episodes (`measure_next_frames`, and `measure_rollouts` at
    the temperature `choose_rollout_temperature` picks), writes
    `rollout.png` and `rollout.gif`, and saves the prior beside the VQ-VAE
    with its numbers in `metadata.json` (`"prior"`).

    Args:
        preset_dir: a trained frame VQ-VAE preset folder.
        source: episode folder (`tools/make_crafter_episodes.py`).
        steps: optimizer steps (rounded up to whole epochs).
        batch_size, learning_rate: of Adam.
        context_frames, hidden_dim, num_layers, context_dim,
            context_layers: `ActionConditionalPrior` arguments.
        rollouts: rollouts measured on the test episodes.
        seed: seed of the weights, shuffling and draws.
        verbose: Keras progress-bar verbosity.
        reproduce: the command line, for the metadata.
        precision: as for `train_vqvae`; the prior is saved in float32.
        log: function that prints progress lines.

    Returns:
        the prior's metadata dict.
    """
    from keras_vqvae.workflows import _float32_copy
    from keras_vqvae.workflows import _global_dtype_policy
    from keras_vqvae.workflows import trained_vqvae

    started = time.time()
    keras.utils.set_random_seed(seed)
    folder, model = trained_vqvae(preset_dir)
    train, test = (
        load_crafter_episodes(source, split) for split in ("train", "test")
    )
    train_examples, test_examples = (
        next_frame_examples(
            model.encode(episodes.frames),
            episodes.actions,
            episodes.episode_offsets,
            context_frames,
        )
        for episodes in (train, test)
    )
    policy, reason = training_policy(precision)
    log(f"precision: {policy} ({reason})")
    with _global_dtype_policy(policy):
        prior = ActionConditionalPrior(
            model.num_embeddings,
            model.latent_shape,
            num_actions=len(ACTION_NAMES),
            context_frames=context_frames,
            context_dim=context_dim,
            context_layers=context_layers,
            hidden_dim=hidden_dim,
            num_layers=num_layers,
        )
    prior.compile(optimizer=keras.optimizers.Adam(learning_rate))
    count = len(train_examples["codes"])
    epochs = max(1, math.ceil(steps * batch_size / count))
    prior.fit(
        train_examples,
        train_examples["codes"],
        batch_size=batch_size,
        epochs=epochs,
        verbose=verbose,
        callbacks=[keras.callbacks.TerminateOnNaN()],
    )
    prior = _float32_copy(prior)
    next_frame = measure_next_frames(
        prior, test_examples, copy_rate(train_examples), seed=seed
    )
    log(f"next frame (test): {next_frame}")
    temperature, train_psnr = choose_rollout_temperature(
        model, prior, train, rollouts, seed=seed
    )
    log(
        f"rollout temperature {temperature} (mean PSNR on training "
        f"episodes by temperature: {train_psnr})"
    )
    rollout_metrics, example = measure_rollouts(
        model, prior, test, rollouts, temperature, seed
    )
    first = rollout_starts(test.episode_offsets, rollouts)[0]
    write_rollout_pictures(
        *example,
        folder.path / "rollout.png",
        folder.path / "rollout.gif",
        actions=test.actions[first + ROLLOUT_CONTEXT - 1 :][:ROLLOUT_STEPS],
    )
    prior_metadata = {
        "kind": "action_conditional",
        "context_frames": context_frames,
        "hidden_dim": hidden_dim,
        "num_layers": num_layers,
        "context_dim": context_dim,
        "context_layers": context_layers,
        "actions": list(ACTION_NAMES),
        "steps": epochs * math.ceil(count / batch_size),
        "epochs": epochs,
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "precision": policy,
        "train_examples": int(count),
        "wall_time_s": round(time.time() - started, 1),
        "rollout_temperature": temperature,
        "rollout_psnr_on_training_episodes_by_temperature": {
            str(t): v for t, v in train_psnr.items()
        },
        "test_metrics": {"next_frame": next_frame, "rollouts": rollout_metrics},
        "reproduce": reproduce,
    }
    prior.save_to_preset(folder.path, metadata={"prior": prior_metadata})
    folder.write_model_card()
    return prior_metadata
