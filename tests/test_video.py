"""The video workflow end to end: episodes -> frame VQ-VAE -> action-
conditional prior -> measurements and rollouts (keras_vqvae.video, CLI)."""

import json

import numpy as np
import pytest
from PIL import Image
from test_crafter_episodes import require_crafter

from keras_vqvae.cli import main
from keras_vqvae.data.crafter_episodes import load_crafter_episodes
from keras_vqvae.data.crafter_episodes import write_crafter_episodes
from keras_vqvae.models import VQVAE
from keras_vqvae.video import ROLLOUT_CONTEXT
from keras_vqvae.video import ROLLOUT_STEPS
from keras_vqvae.video import ROLLOUT_TEMPERATURES
from keras_vqvae.video import measure_next_frames
from keras_vqvae.video import next_frame_examples
from keras_vqvae.video import train_video_prior

SIZE = 36


@pytest.fixture(scope="module")
def episodes(tmp_path_factory):
    require_crafter()
    folder = tmp_path_factory.mktemp("episodes")
    write_crafter_episodes(
        folder,
        episodes=4,
        steps_per_episode=40,
        seed=1,
        size=SIZE,
        test_fraction=0.25,
    )
    return folder


@pytest.fixture(scope="module")
def preset(episodes, tmp_path_factory):
    folder = tmp_path_factory.mktemp("preset")
    model = VQVAE(
        image_shape=(SIZE, SIZE, 3),
        num_embeddings=16,
        embedding_dim=4,
        hidden_dim=8,
        residual_hidden_dim=4,
        num_residual_layers=1,
    )
    model.save_to_preset(folder, metadata={"preset": "tiny_frames"})
    metadata = train_video_prior(
        folder,
        episodes,
        steps=20,
        batch_size=16,
        hidden_dim=8,
        num_layers=2,
        context_dim=8,
        context_layers=1,
        rollouts=3,
        precision="float32",
        verbose=0,
        log=lambda *a: None,
    )
    return folder, metadata


def test_examples_are_context_action_and_the_frame_that_follows():
    codes = np.arange(10)[:, None, None] * np.ones((1, 2, 2), "int32")
    actions = np.array([5, 6, 7, -1, 1, 2, 3, 4, 0, -1])
    offsets = np.array([0, 4, 10])
    examples = next_frame_examples(codes, actions, offsets, context_frames=2)
    # Windows never cross the episode boundary at frame 4.
    np.testing.assert_array_equal(
        examples["codes"][:, 0, 0], [2, 3, 6, 7, 8, 9]
    )
    np.testing.assert_array_equal(examples["context"][:, :, 0, 0][2], [4, 5])
    np.testing.assert_array_equal(examples["actions"], [6, 7, 2, 3, 4, 0])


def test_training_writes_measurements_pictures_and_a_loadable_prior(preset):
    folder, metadata = preset
    next_frame = metadata["test_metrics"]["next_frame"]
    for scores in (
        next_frame,
        next_frame["shuffled_actions"],
        next_frame["copy_last_frame"],
    ):
        assert scores["bits_per_code"] > 0 and 0 <= scores["accuracy"] <= 1
    rollouts = metadata["test_metrics"]["rollouts"]
    assert len(rollouts["psnr_per_step"]) == ROLLOUT_STEPS
    assert len(rollouts["copy_last_frame_psnr_per_step"]) == ROLLOUT_STEPS
    for key in (
        "psnr_per_step",
        "copy_last_frame_psnr_per_step",
        "copy_last_frame_codes_psnr_per_step",
    ):
        assert len(rollouts[key]) == ROLLOUT_STEPS
        assert all(np.isfinite(rollouts[key])), rollouts[key]
    # The temperature is chosen on training episodes, then measured on test.
    by_temperature = metadata[
        "rollout_psnr_on_training_episodes_by_temperature"
    ]
    assert set(by_temperature) == {str(t) for t in ROLLOUT_TEMPERATURES}
    chosen = metadata["rollout_temperature"]
    assert by_temperature[str(chosen)] == max(by_temperature.values())
    assert rollouts["temperature"] == chosen
    saved = json.loads((folder / "metadata.json").read_text())
    assert saved["prior"]["kind"] == "action_conditional"
    assert saved["prior"]["vqvae_sha256"]  # bound to the frame VQ-VAE
    with Image.open(folder / "rollout.gif") as gif:
        assert gif.n_frames == ROLLOUT_CONTEXT + ROLLOUT_STEPS
    with Image.open(folder / "rollout.png") as strip:
        assert strip.width > (ROLLOUT_CONTEXT + ROLLOUT_STEPS) * SIZE * 2
    card = (folder / "README.md").read_text()
    assert "rollout.gif" in card and "Copy the last frame" in card


def test_shuffled_actions_are_scored_with_the_same_prior(preset, episodes):
    from keras_vqvae.models import ActionConditionalPrior

    folder, metadata = preset
    model = VQVAE.from_preset(folder)
    prior = ActionConditionalPrior.from_preset(folder)
    test = load_crafter_episodes(episodes, "test")
    examples = next_frame_examples(
        model.encode(test.frames), test.actions, test.episode_offsets, 2
    )
    again = measure_next_frames(prior, examples, train_copy_rate=0.5, seed=0)
    expected = metadata["test_metrics"]["next_frame"]
    assert again["bits_per_code"] == pytest.approx(
        expected["bits_per_code"], rel=1e-4
    )
    assert again["shuffled_actions"] == pytest.approx(
        expected["shuffled_actions"], rel=1e-4
    )
    assert again["share_of_shuffled_actions_changed"] > 0.5


def test_rollout_command(preset, episodes, tmp_path, capsys):
    folder, _ = preset
    out = tmp_path / "out" / "clip.gif"
    argv = [
        "rollout",
        "--preset",
        str(folder),
        "--data",
        str(episodes),
        "--out",
        str(out),
        "--steps",
        "4",
    ]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["strip"] == str(out.with_suffix(".png"))
    with Image.open(out) as gif:
        assert gif.n_frames == ROLLOUT_CONTEXT + 4
    assert main(argv + ["--actions", "move_left,2,noop"]) == 0
    capsys.readouterr()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--actions", "jump"], "'jump' is not an action"),
        (["--actions", "17"], "'17' is not an action"),
        (["--episode", "9"], "has episodes 0..0"),
        (["--start", "39"], f"{ROLLOUT_CONTEXT} context frames must fit"),
    ],
)
def test_rollout_command_reports_bad_input(
    preset, episodes, tmp_path, capsys, extra, message
):
    folder, _ = preset
    argv = [
        "rollout",
        "--preset",
        str(folder),
        "--data",
        str(episodes),
        "--out",
        str(tmp_path / "x.gif"),
        *extra,
    ]
    assert main(argv) == 1
    assert message in capsys.readouterr().err


def test_frames_of_the_wrong_size_are_refused(preset):
    from keras_vqvae.errors import DataError
    from keras_vqvae.models import ActionConditionalPrior
    from keras_vqvae.video import rollout

    folder, _ = preset
    model = VQVAE.from_preset(folder)
    prior = ActionConditionalPrior.from_preset(folder)
    with pytest.raises(DataError, match="36x36x3 frames"):
        rollout(
            model,
            prior,
            np.zeros((1, 6, 32, 32, 3), "uint8"),
            np.zeros((1, 2), "int32"),
        )
    with pytest.raises(DataError, match="at least 2 context frames"):
        rollout(
            model,
            prior,
            np.zeros((1, 1, 36, 36, 3), "uint8"),
            np.zeros((1, 2), "int32"),
        )
