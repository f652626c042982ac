"""Crafter episodes for action-conditional video models (paper section 4.4).

`write_crafter_episodes` plays Crafter (`pip install "keras-vqvae[video]"`)
with a seeded `RepeatedActionPolicy` and writes an episode folder:

- `episodes.json`: the `seed`, the `policy`'s parameters, counts per split,
  `frame_size`, `action_names` (action id = index), `padding_action`, the
  `command` that wrote it and the `crafter_version` and
  `opensimplex_version` (its noise draws the terrain);
- `train.npz` and `test.npz`: every episode of the split, concatenated:
  `frames` (uint8 `(N, H, W, 3)`), `actions` (int32 `(N,)`), `rewards`
  (float32 `(N,)`), `dones` (bool `(N,)`), `episode_offsets` (int64
  `(E + 1,)`: episode `e` is `frames[episode_offsets[e]:episode_offsets[e +
  1]]`) and `episode_seeds` (int64 `(E,)`, each episode's Crafter seed).

Frame `t` of an episode is the observation before step `t`; `actions[t]`,
`rewards[t]` and `dones[t]` belong to the step from frame `t` to frame
`t + 1`. An episode of `T` steps has `T + 1` frames: its last frame has no
step, so it holds `actions = PADDING_ACTION` (-1), `rewards = 0` and
`dones = False`. `dones[t]` is True only where the player died, which ends
the episode early; otherwise it stops after `steps_per_episode` steps.

The split is by episode: each episode lies wholly in `train` or `test`. The
same arguments give byte-identical files (with the same Crafter and
opensimplex versions, on 64-bit Python >= 3.8: Crafter seeds each world
with `hash((seed, 1))`). Crafter 1.8.3 alone is not deterministic for a
seed: it despawns a creature chosen from a Python `set`, whose order follows
memory addresses; `_DeterministicEnv` sorts those creatures by position.

Example:

```python
write_crafter_episodes("crafter_episodes", episodes=4, steps_per_episode=200)
episodes = load_crafter_episodes("crafter_episodes", "train")
starts = episode_windows(episodes.episode_offsets, length=16)
clips = episodes.frames[starts[:, None] + np.arange(16)]
```
"""

import dataclasses
import functools
import importlib.metadata
from pathlib import Path

import numpy as np

from keras_vqvae.data.arrays import concatenation_offsets
from keras_vqvae.errors import ConfigError
from keras_vqvae.errors import DataError
from keras_vqvae.files import write_json
from keras_vqvae.files import write_npz

SPLITS = ("train", "test")
EPISODES_FILE = "episodes.json"
PADDING_ACTION = -1
# Crafter 1.8.3's actions (`crafter.constants.actions`); id = index.
ACTION_NAMES = (
    "noop",
    "move_left",
    "move_right",
    "move_up",
    "move_down",
    "do",
    "sleep",
    "place_stone",
    "place_table",
    "place_furnace",
    "place_plant",
    "make_wood_pickaxe",
    "make_stone_pickaxe",
    "make_iron_pickaxe",
    "make_wood_sword",
    "make_stone_sword",
    "make_iron_sword",
)
MOVE_ACTIONS = tuple(
    i for i, name in enumerate(ACTION_NAMES) if name.startswith("move_")
)
# A sleeping player ignores its actions until its energy is full, so the
# policy never sleeps: every action it takes can act on the frames.
OTHER_ACTIONS = tuple(
    i
    for i, name in enumerate(ACTION_NAMES)
    if i not in MOVE_ACTIONS and name != "sleep"
)
# Seed streams, so that worlds, policy and split never share draws.
_WORLD_STREAM, _SPLIT_STREAM, _POLICY_STREAM = 0, 1, 2


@dataclasses.dataclass(frozen=True)
class RepeatedActionPolicy:
    """Random actions, each held for a random number of steps.

    The policy is open-loop: it never looks at the frames, so an episode's
    actions follow from the seed and the episode's index alone. Each held
    action is a movement (one of `MOVE_ACTIONS`, uniformly) with probability
    `move_probability`, otherwise one of `OTHER_ACTIONS` (not `sleep`); it
    is held for a uniform number of steps in `[1, max_repeat]`, so the
    player walks across the map and the view scrolls over new terrain.

    Args:
        seed: int, the policy's own seed.
        move_probability: float in [0, 1].
        max_repeat: int >= 1, the most steps one action is held.
    """

    seed: int = 0
    move_probability: float = 0.75
    max_repeat: int = 8

    def __post_init__(self):
        if not 0 <= self.move_probability <= 1:
            raise ConfigError(
                "move_probability must be in [0, 1]. "
                f"Received: move_probability={self.move_probability}"
            )
        if self.max_repeat < 1:
            raise ConfigError(
                "max_repeat must be at least 1. "
                f"Received: max_repeat={self.max_repeat}"
            )

    def actions(self, episode, steps):
        """The int32 actions `(steps,)` of the episode with index `episode`."""
        rng = np.random.default_rng([self.seed, _POLICY_STREAM, episode])
        is_move = rng.random(steps) < self.move_probability
        moves = rng.choice(MOVE_ACTIONS, steps)
        others = rng.choice(OTHER_ACTIONS, steps)
        repeats = rng.integers(1, self.max_repeat + 1, steps)
        chosen = np.where(is_move, moves, others)
        return np.repeat(chosen, repeats)[:steps].astype(np.int32)


@dataclasses.dataclass(frozen=True)
class CrafterEpisodes:
    """One split of an episode folder (the arrays the module describes).

    Attributes:
        frames: uint8 array `(N, H, W, 3)`.
        actions: int32 array `(N,)`: `actions[t]` leads from frame `t` to
            frame `t + 1`; `PADDING_ACTION` at each episode's last frame.
        rewards: float32 array `(N,)`, the reward of that step.
        dones: bool array `(N,)`, True where that step killed the player.
        episode_offsets: int64 array `(E + 1,)` of frame indices.
        episode_seeds: int64 array `(E,)`, each episode's Crafter seed.
    """

    frames: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    dones: np.ndarray
    episode_offsets: np.ndarray
    episode_seeds: np.ndarray


def write_crafter_episodes(
    out,
    episodes,
    steps_per_episode=500,
    seed=0,
    policy=None,
    test_fraction=0.1,
    size=84,
    command=None,
):
    """Plays `episodes` Crafter episodes and writes the folder `out`.

    Episode `i` is played in a new world seeded from `(seed, i)`, with the
    actions `policy.actions(i, steps_per_episode)`; `test_fraction` of the
    episodes (at least one, and one fewer than all) go to `test`, drawn
    with `seed`.

    Args:
        out: str or `Path`, the folder to write (created if needed).
        episodes: int >= 2, the number of episodes.
        steps_per_episode: int >= 1, the most steps of an episode.
        seed: int, for the worlds and the split.
        policy: None or `RepeatedActionPolicy` (None: its defaults, with
            `seed`).
        test_fraction: float in (0, 1).
        size: int >= 9, the frames' height and width (Crafter's view is 9
            cells across; a size that is not a multiple of 9 gets a black
            border).
        command: None or str, the command line to record.

    Returns:
        The `episodes.json` content, a dict.
    """
    _check_arguments(episodes, steps_per_episode, size)
    policy = RepeatedActionPolicy(seed=seed) if policy is None else policy
    is_test = _test_mask(episodes, test_fraction, seed)
    world_seeds = [_world_seed(seed, i) for i in range(episodes)]
    played = [
        _play(world_seeds[i], policy.actions(i, steps_per_episode), size)
        for i in range(episodes)
    ]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    splits = {}
    for split, mask in zip(SPLITS, (~is_test, is_test)):
        chosen = np.flatnonzero(mask)
        arrays = _split_arrays(
            [played[i] for i in chosen], [world_seeds[i] for i in chosen]
        )
        write_npz(out / f"{split}.npz", arrays)
        splits[split] = _split_summary(arrays)
    info = {
        "seed": seed,
        "episodes": episodes,
        "steps_per_episode": steps_per_episode,
        "test_fraction": test_fraction,
        "frames": sum(s["frames"] for s in splits.values()),
        "splits": splits,
        "frame_size": [size, size],
        "action_names": list(ACTION_NAMES),
        "padding_action": PADDING_ACTION,
        "policy": {
            "name": type(policy).__name__,
            **dataclasses.asdict(policy),
            "move_actions": [ACTION_NAMES[i] for i in MOVE_ACTIONS],
            "other_actions": [ACTION_NAMES[i] for i in OTHER_ACTIONS],
        },
        "command": command,
        "crafter_version": importlib.metadata.version("crafter"),
        "opensimplex_version": importlib.metadata.version("opensimplex"),
    }
    write_json(out / EPISODES_FILE, info)
    return info


def _check_arguments(episodes, steps_per_episode, size):
    if episodes < 2:
        raise ConfigError(
            "Both splits need an episode: give at least 2 episodes. "
            f"Received: episodes={episodes}"
        )
    if steps_per_episode < 1:
        raise ConfigError(
            "steps_per_episode must be at least 1. "
            f"Received: steps_per_episode={steps_per_episode}"
        )
    if size < 9:
        raise ConfigError(
            "size must be at least 9 (Crafter's view is 9 cells across). "
            f"Received: size={size}"
        )


def _test_mask(episodes, test_fraction, seed):
    """Marks `test_fraction` of the episodes (at least one) for testing."""
    if not 0 < test_fraction < 1:
        raise ConfigError(
            "test_fraction must be in (0, 1). "
            f"Received: test_fraction={test_fraction}"
        )
    rng = np.random.default_rng([seed, _SPLIT_STREAM])
    count = min(max(round(test_fraction * episodes), 1), episodes - 1)
    is_test = np.zeros(episodes, bool)
    is_test[rng.permutation(episodes)[:count]] = True
    return is_test


def _world_seed(seed, episode):
    entropy = np.random.SeedSequence([seed, _WORLD_STREAM, episode])
    return int(entropy.generate_state(1)[0])


def _play(world_seed, actions, size):
    """One episode: frames `(T + 1, ...)`, then `T` actions, rewards and
    dones, stopping early where the player dies."""
    env = crafter_env(world_seed, size)
    frames, rewards, dones = [env.reset()], [], []
    for action in actions:
        frame, reward, done, _ = env.step(int(action))
        frames.append(frame)
        rewards.append(reward)
        dones.append(done)
        if done:
            break
    return np.stack(frames), actions[: len(rewards)], rewards, dones


def crafter_env(seed, size=84):
    """A Crafter world that the same seed replays exactly (see the module).

    It never ends by itself (`length=None`): the caller limits the steps.
    """
    return _deterministic_env_class()(size=(size, size), seed=seed, length=None)


@functools.cache
def _deterministic_env_class():
    crafter = _import_crafter()
    if tuple(crafter.constants.actions) != ACTION_NAMES:
        raise ImportError(
            f"crafter {importlib.metadata.version('crafter')} has other "
            f"actions than crafter 1.8.3. Received: "
            f"{crafter.constants.actions}; expected: {list(ACTION_NAMES)}"
        )

    class _DeterministicEnv(crafter.Env):
        """`crafter.Env`, balancing creatures in a fixed order.

        `Env._balance_object` despawns `creatures[random.randint(...)]`,
        with `creatures` taken from a `set` of objects; sorting them by
        position (one object per cell) makes the choice follow the seed.
        """

        def _balance_chunk(self, chunk, objs):
            ordered = sorted(objs, key=lambda obj: tuple(obj.pos))
            super()._balance_chunk(chunk, ordered)

    return _DeterministicEnv


def _import_crafter():
    try:
        import crafter
    except ImportError as e:
        raise ImportError(
            f'crafter is not installed: pip install "keras-vqvae[video]". ({e})'
        ) from e
    return crafter


def _split_arrays(played, world_seeds):
    frames, actions, rewards, dones = zip(*played)
    return {
        "frames": np.concatenate(frames),
        "actions": _padded(actions, PADDING_ACTION, np.int32),
        "rewards": _padded(rewards, 0.0, np.float32),
        "dones": _padded(dones, False, bool),
        "episode_offsets": concatenation_offsets([len(f) for f in frames]),
        "episode_seeds": np.asarray(world_seeds, np.int64),
    }


def _padded(episodes, padding, dtype):
    """Each episode's steps and a `padding` for its last frame, joined."""
    return np.concatenate(
        [np.append(steps, padding) for steps in episodes]
    ).astype(dtype)


def _split_summary(arrays):
    return {
        "episodes": len(arrays["episode_seeds"]),
        "frames": len(arrays["frames"]),
        "deaths": int(arrays["dones"].sum()),
    }


def load_crafter_episodes(path, split="train"):
    """Reads a split of a folder that `write_crafter_episodes` wrote.

    Args:
        path: str or `Path`, the episode folder.
        split: `"train"` or `"test"`.

    Returns:
        A `CrafterEpisodes`.
    """
    if split not in SPLITS:
        raise DataError(
            f"split must be one of {list(SPLITS)}. Received: split={split!r}"
        )
    file = Path(path) / f"{split}.npz"
    if not file.is_file():
        raise DataError(
            f"No Crafter episodes split {split!r} in {path}: {file} does not "
            "exist. Write one with tools/make_crafter_episodes.py."
        )
    fields = [field.name for field in dataclasses.fields(CrafterEpisodes)]
    with np.load(file, allow_pickle=False) as arrays:
        missing = sorted(set(fields) - set(arrays.files))
        if missing:
            raise DataError(
                f"{file} is not a Crafter episodes file: it lacks {missing}. "
                "Write one with tools/make_crafter_episodes.py."
            )
        return CrafterEpisodes(**{name: arrays[name] for name in fields})


def episode_windows(episode_offsets, length):
    """The start of every run of `length` frames inside one episode.

    A window starting at `s` holds `frames[s : s + length]`, and the steps
    between them are `actions[s : s + length - 1]` (never padding).
    Episodes shorter than `length` give no window.

    Args:
        episode_offsets: int array `(E + 1,)`, as in `CrafterEpisodes`.
        length: int >= 1, frames per window (e.g. 6 context + 10 future).

    Returns:
        int64 array of frame indices, in increasing order.
    """
    offsets = np.asarray(episode_offsets, np.int64)
    if length < 1:
        raise ConfigError(
            f"A window holds at least 1 frame. Received: length={length}"
        )
    counts = np.maximum(np.diff(offsets) - length + 1, 0)
    if not counts.any():
        raise DataError(
            f"No episode has {length} frames: the longest has "
            f"{np.diff(offsets).max(initial=0)}. Use a shorter window or "
            f"longer episodes. Received: length={length}"
        )
    firsts = np.cumsum(counts) - counts
    within = np.arange(counts.sum()) - np.repeat(firsts, counts)
    return np.repeat(offsets[:-1], counts) + within
