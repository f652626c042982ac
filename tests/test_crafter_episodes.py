"""Crafter episodes: the policy, the files, the split, windows and the tool.

Needs the `video` extra (`crafter`) for the tests that play; without it
they are skipped, or fail when `CI` is set.
"""

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from keras_vqvae.data.crafter_episodes import ACTION_NAMES
from keras_vqvae.data.crafter_episodes import MOVE_ACTIONS
from keras_vqvae.data.crafter_episodes import PADDING_ACTION
from keras_vqvae.data.crafter_episodes import RepeatedActionPolicy
from keras_vqvae.data.crafter_episodes import crafter_env
from keras_vqvae.data.crafter_episodes import episode_windows
from keras_vqvae.data.crafter_episodes import load_crafter_episodes
from keras_vqvae.errors import ConfigError
from keras_vqvae.errors import DataError

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "tools"))
import make_crafter_episodes  # noqa: E402

EPISODES = 3
STEPS = 30
SIZE = 84
TOOL_ARGS = [
    *("--episodes", str(EPISODES), "--steps-per-episode", str(STEPS)),
    *("--seed", "3", "--size", str(SIZE), "--test-fraction", "0.3"),
]


def require_crafter():
    """Skips the test without `crafter`, or fails it under CI."""
    reason = 'crafter is not installed (pip install "keras-vqvae[video]")'
    if not os.environ.get("CI"):
        pytest.importorskip("crafter", reason=reason)
        return
    try:
        import crafter  # noqa: F401
    except ImportError as e:
        pytest.fail(f"{reason}; CI is set, so this is an error: {e}")


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """The same small episode folder, written twice by the tool."""
    require_crafter()
    folders = [tmp_path_factory.mktemp(f"crafter{i}") for i in range(2)]
    for folder in folders:
        make_crafter_episodes.main(["--out", str(folder), *TOOL_ARGS])
    return folders


@pytest.fixture(scope="module")
def splits(folders):
    return {
        split: load_crafter_episodes(folders[0], split)
        for split in ("train", "test")
    }


def replay(world_seed, actions):
    env = crafter_env(world_seed, SIZE)
    return np.stack([env.reset(), *(env.step(int(a))[0] for a in actions)])


def test_same_arguments_give_identical_files(folders):
    for name in ("train.npz", "test.npz"):
        first, second = ((folder / name).read_bytes() for folder in folders)
        assert first == second
    first, second = (
        json.loads((folder / "episodes.json").read_text()) for folder in folders
    )
    assert first.pop("command") != second.pop("command")  # The --out.
    assert first == second


def test_episodes_json(folders):
    info = json.loads((folders[0] / "episodes.json").read_text())
    assert info["episodes"] == EPISODES
    assert info["frame_size"] == [SIZE, SIZE]
    assert info["action_names"] == list(ACTION_NAMES)
    assert info["padding_action"] == PADDING_ACTION
    assert info["policy"]["seed"] == 3
    assert info["crafter_version"] == "1.8.3"
    assert info["command"].endswith(" ".join(TOOL_ARGS))
    assert sum(s["episodes"] for s in info["splits"].values()) == EPISODES


def test_shapes_and_dtypes(splits):
    for episodes in splits.values():
        frames = len(episodes.frames)
        assert episodes.frames.shape == (frames, SIZE, SIZE, 3)
        assert episodes.frames.dtype == np.uint8
        assert episodes.actions.shape == (frames,)
        assert episodes.actions.dtype == np.int32
        assert episodes.rewards.dtype == np.float32
        assert episodes.dones.dtype == bool
        assert episodes.episode_offsets[0] == 0
        assert episodes.episode_offsets[-1] == frames
        lengths = np.diff(episodes.episode_offsets)
        assert np.all((lengths >= 2) & (lengths <= STEPS + 1))


def test_split_is_by_episode(splits):
    seeds = [
        set(episodes.episode_seeds.tolist()) for episodes in splits.values()
    ]
    assert all(seeds)
    assert not seeds[0] & seeds[1]
    assert len(seeds[0] | seeds[1]) == EPISODES


def test_actions_in_range_and_padded_at_each_last_frame(splits):
    for episodes in splits.values():
        last = episodes.episode_offsets[1:] - 1
        assert np.all(episodes.actions[last] == PADDING_ACTION)
        assert np.all(episodes.rewards[last] == 0)
        steps = np.delete(episodes.actions, last)
        assert np.all((steps >= 0) & (steps < len(ACTION_NAMES)))


def test_action_t_leads_from_frame_t_to_frame_t_plus_1(splits):
    """Replaying an episode's actions in its world gives its frames."""
    episodes = splits["train"]
    begin, end = episodes.episode_offsets[:2]
    replayed = replay(
        int(episodes.episode_seeds[0]), episodes.actions[begin : end - 1]
    )
    np.testing.assert_array_equal(replayed, episodes.frames[:end])


def test_a_world_replays_exactly():
    """Plain `crafter.Env` 1.8.3 differs here from step 13 on: the creature
    it despawns is drawn from a `set`, whose order follows addresses."""
    require_crafter()
    actions = RepeatedActionPolicy(seed=0).actions(episode=0, steps=40)
    first = replay(0, actions)
    np.testing.assert_array_equal(replay(0, actions), first)


def test_windows_of_real_episodes_stay_inside_one(splits):
    offsets = splits["train"].episode_offsets
    starts = episode_windows(offsets, 16)
    first = np.searchsorted(offsets, starts, side="right")
    last = np.searchsorted(offsets, starts + 15, side="right")
    np.testing.assert_array_equal(first, last)
    assert np.all(splits["train"].actions[starts[:, None] + np.arange(15)] >= 0)


def test_windows_are_every_start_inside_an_episode():
    starts = episode_windows([0, 5, 7, 11], 3)
    np.testing.assert_array_equal(starts, [0, 1, 2, 7, 8])


def test_window_longer_than_every_episode_is_a_clear_error():
    with pytest.raises(DataError, match="the longest has 4"):
        episode_windows([0, 3, 7], 5)
    with pytest.raises(ConfigError, match="length=0"):
        episode_windows([0, 3, 7], 0)


def test_policy_follows_its_seed_and_moves_mostly():
    policy = RepeatedActionPolicy(seed=1, move_probability=0.75, max_repeat=4)
    actions = policy.actions(episode=2, steps=2000)
    np.testing.assert_array_equal(actions, policy.actions(2, 2000))
    assert not np.array_equal(actions, policy.actions(3, 2000))
    assert actions.dtype == np.int32 and actions.shape == (2000,)
    assert 0.65 < np.isin(actions, MOVE_ACTIONS).mean() < 0.85
    assert ACTION_NAMES.index("sleep") not in actions
    changes = np.flatnonzero(np.diff(actions)) + 1
    runs = np.diff(np.concatenate([[0], changes, [len(actions)]]))
    assert runs.mean() > 1.5


def test_bad_policy_is_a_clear_error():
    with pytest.raises(ConfigError, match="max_repeat=0"):
        RepeatedActionPolicy(max_repeat=0)
    with pytest.raises(ConfigError, match="move_probability=1.5"):
        RepeatedActionPolicy(move_probability=1.5)


def test_unknown_split_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="split='valid'"):
        load_crafter_episodes(tmp_path, "valid")
    with pytest.raises(DataError, match="does not exist"):
        load_crafter_episodes(tmp_path, "test")


def test_tool_refuses_to_write_inside_the_repository(capsys):
    with pytest.raises(SystemExit):
        make_crafter_episodes.main(["--out", str(REPO_ROOT / "episodes")])
    assert "outside the repository" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args, message",
    [
        (["--episodes", "1"], "episodes=1"),
        (["--test-fraction", "1"], "test_fraction=1"),
        (["--size", "8"], "size=8"),
    ],
)
def test_tool_reports_bad_arguments(tmp_path, args, message):
    with pytest.raises(SystemExit, match=message):
        make_crafter_episodes.main(["--out", str(tmp_path), *args])
