"""
Title: Video: predicting frames from actions in latent space
Author: keras-vqvae contributors
Date created: 2026/12/02
Last modified: 2026/12/02
Description: Encode Crafter frames to 21x21 codes, train an action-conditional prior over the next frame's codes, and roll out ten frames from six real ones and the actions.
Accelerator: None
"""

"""
## Introduction

Section 4.4 of the VQ-VAE paper trains a VQ-VAE on the frames an agent sees
(84x84x3 -> 21x21 codes, K = 512) and a prior that, given the codes of the
previous frames and the agent's action, predicts the next frame's codes. A
*rollout* feeds the prior its own predictions: from 6 real frames and the
next 10 actions it generates 10 frames without ever decoding an intermediate
one; each code map is decoded to pixels only to look at it.

Here the frames come from [Crafter](https://github.com/danijar/crafter), a
2-D survival game with 17 actions, played by a seeded random policy. In this
guide you will:

- write a few Crafter episodes,
- encode their frames with the bundled `crafter_84` VQ-VAE,
- train a small `ActionConditionalPrior` and compare it with two baselines:
  copying the last frame, and the same prior given shuffled actions,
- roll out the bundled prior for 10 frames and measure the PSNR per step,
- steer one rollout with actions of your own.
"""

"""
## Setup

`KERAS_VQVAE_GUIDE_QUICK=1` plays 3 short episodes and trains a tiny prior
for one epoch (it only checks that everything runs); the normal mode plays 40
episodes and trains for 10 epochs. Crafter is in the `video` extra:
`pip install "keras-vqvae[video]"`. Outputs go to `GUIDE_OUTPUT_DIR`, or to a
new temporary folder.
"""

import os
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np

from keras_vqvae import metrics
from keras_vqvae.data.crafter_episodes import ACTION_NAMES
from keras_vqvae.data.crafter_episodes import load_crafter_episodes
from keras_vqvae.data.crafter_episodes import write_crafter_episodes
from keras_vqvae.models import VQVAE
from keras_vqvae.models import ActionConditionalPrior
from keras_vqvae.presets import PresetFolder
from keras_vqvae.video import copy_rate
from keras_vqvae.video import measure_next_frames
from keras_vqvae.video import next_frame_examples
from keras_vqvae.video import rollout
from keras_vqvae.video import write_rollout_pictures

QUICK = os.environ.get("KERAS_VQVAE_GUIDE_QUICK") == "1"
OUTPUT_DIR = Path(
    os.environ.get("GUIDE_OUTPUT_DIR")
    or tempfile.mkdtemp(prefix="video_prediction_in_latent_space_")
)
OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
EPISODES = 3 if QUICK else 40
STEPS_PER_EPISODE = 40 if QUICK else 300
PRIOR_SIZE = (
    dict(hidden_dim=16, num_layers=2, context_dim=16, context_layers=1)
    if QUICK
    else dict(hidden_dim=64, num_layers=8)
)
EPOCHS = 1 if QUICK else 10
keras.utils.set_random_seed(0)
print("Outputs go to", OUTPUT_DIR)

"""
## Episodes

`write_crafter_episodes` plays the game with a policy that holds random
actions for 1-8 steps (mostly movements, so the view scrolls over new
terrain) and writes the frames, actions and rewards, split by episode. The
same seed writes the same files. `tools/make_crafter_episodes.py` is the same
function on the command line.

Frame `t` is what the agent sees before step `t`, and `actions[t]` leads from
frame `t` to frame `t + 1`.
"""

episode_dir = OUTPUT_DIR / "episodes"
write_crafter_episodes(
    episode_dir,
    episodes=EPISODES,
    steps_per_episode=STEPS_PER_EPISODE,
    seed=7,
    test_fraction=0.34,
)
train = load_crafter_episodes(episode_dir, "train")
test = load_crafter_episodes(episode_dir, "test")
print(
    f"{len(train.frames)} train and {len(test.frames)} test frames of shape "
    f"{train.frames.shape[1:]}; actions: {', '.join(ACTION_NAMES[:5])}, ..."
)

"""
## Frames to codes

The bundled `crafter_84` VQ-VAE turns each 84x84 frame into a 21x21 map of
integers in `[0, 512)`, as in the paper. Everything below works on those
maps; the pixels come back only through `decode_indices`.
"""

vqvae = VQVAE.from_preset("crafter_84")
train_codes = vqvae.encode(train.frames)
test_codes = vqvae.encode(test.frames)
reconstructed = vqvae.decode_indices(test_codes)
print(
    f"codes {test_codes.shape[1:]}; reconstruction PSNR on these test frames: "
    f"{metrics.psnr(test.frames, reconstructed):.2f} dB"
)

"""
## The prior

`ActionConditionalPrior` is a gated PixelCNN over the next frame's code map.
Its gates are biased, position by position, by a small convolutional network
that sees the codes of the last `context_frames` frames and the action: the
action enters before the nonlinear layers, so the network can move the past
frames' features the way the action moves the view.

`next_frame_examples` cuts every (context, action, next frame) triple out of
the episodes; training is classification of each position's code, the loss
the negative log-likelihood in nats per code.
"""

train_examples = next_frame_examples(
    train_codes, train.actions, train.episode_offsets, context_frames=2
)
test_examples = next_frame_examples(
    test_codes, test.actions, test.episode_offsets, context_frames=2
)
prior = ActionConditionalPrior(
    vqvae.num_embeddings,
    vqvae.latent_shape,
    num_actions=len(ACTION_NAMES),
    context_frames=2,
    **PRIOR_SIZE,
)
prior.compile(optimizer=keras.optimizers.Adam(1e-3))
prior.fit(
    train_examples,
    train_examples["codes"],
    batch_size=32,
    epochs=EPOCHS,
    verbose=2,
)

"""
## Is the action used?

Two baselines, scored the same way on the test episodes: copying the last
frame's codes, and the same prior given the actions shuffled among the test
examples. If the prior is better with the true actions than with shuffled
ones, it has learnt what the actions do.
"""

scores = measure_next_frames(prior, test_examples, copy_rate(train_examples))
for label, result in (
    ("prior, true actions", scores),
    ("prior, shuffled actions", scores["shuffled_actions"]),
    ("copy the last frame", scores["copy_last_frame"]),
):
    print(
        f"{label:>24}: {result['bits_per_code']:.3f} bits/code, "
        f"next-frame code accuracy {result['accuracy']:.3f}"
    )

"""
## Rollouts

The bundled prior was trained on many more episodes. `rollout` encodes the 6
real frames, generates 10 code maps one after another (each from the last
frames, real or generated, and the step's action) and decodes them. The
incremental sampler draws each 21x21 map in 441 cheap steps, so a rollout
takes seconds.
"""

bundled_prior = ActionConditionalPrior.from_preset("crafter_84")
# The softmax temperature its rollouts were measured at: the candidate
# with the best PSNR on training episodes (lower ones trade variety for it).
temperature = PresetFolder.resolve("crafter_84").metadata["prior"][
    "rollout_temperature"
]
start = int(test.episode_offsets[0])
context = test.frames[start : start + 6]
actions = test.actions[start + 5 : start + 15]
real = test.frames[start + 6 : start + 16]
generated = rollout(
    vqvae, bundled_prior, context[None], actions[None], temperature, seed=0
)[0]
psnr = metrics.psnr(real, generated, per_image=True)
copied = metrics.psnr(real, np.repeat(context[-1:], len(real), 0), per_image=True)
print("PSNR per step, generated:", np.round(psnr, 1).tolist())
print("PSNR per step, copy     :", np.round(copied, 1).tolist())
write_rollout_pictures(
    context,
    real,
    generated,
    OUTPUT_DIR / "rollout.png",
    OUTPUT_DIR / "rollout.gif",
    actions=actions,
)

"""
`rollout.png` shows the real frames above the generated ones, each column
labelled with its step and action; `rollout.gif` plays them side by side.
The command line does the same:

```
keras-vqvae rollout --preset crafter_84 --data EPISODES --episode 0 --out rollout.gif
```

## Steering

The actions need not be the episode's: here the same 6 frames are continued
once walking left and once walking right. There are no real frames to
compare with, only the two futures side by side.
"""

futures = rollout(
    vqvae,
    bundled_prior,
    np.stack([context, context]),
    np.array([[1] * 10, [2] * 10]),  # move_left, move_right
    temperature,
    seed=0,
)
write_rollout_pictures(
    context,
    futures[0],
    futures[1],
    OUTPUT_DIR / "left_or_right.png",
    OUTPUT_DIR / "left_or_right.gif",
    row_labels=("left", "right"),
)
print("left (top) or right (bottom):", OUTPUT_DIR / "left_or_right.png")
