import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from real_data import dataset

from keras_vqvae.cli import build_parser
from keras_vqvae.cli import main
from keras_vqvae.presets import list_presets

REPO_ROOT = Path(__file__).resolve().parents[1]
TINY_CONFIG = {
    "image_shape": [28, 28, 1],
    "num_embeddings": 16,
    "embedding_dim": 4,
    "hidden_dim": 8,
    "num_residual_layers": 1,
    "residual_hidden_dim": 4,
    "kmeans_init": True,
}


@pytest.fixture
def small_data(tmp_path, mnist_slice):
    folder = tmp_path / "data"
    folder.mkdir()
    labels = np.zeros(len(mnist_slice), "int64")
    np.savez(
        folder / "train.npz", images=mnist_slice[:768], labels=labels[:768]
    )
    np.savez(folder / "test.npz", images=mnist_slice[768:], labels=labels[768:])
    (tmp_path / "tiny.json").write_text(json.dumps(TINY_CONFIG))
    return folder


def train_command(tmp_path, data, steps, *extra):
    return [
        sys.executable,
        str(REPO_ROOT / "tools" / "train.py"),
        "--architecture",
        "tiny",
        "--config",
        str(tmp_path / "tiny.json"),
        "--data",
        str(data),
        "--steps",
        str(steps),
        "--checkpoint-every",
        "10",
        "--batch-size",
        "16",
        "--preset-dir",
        str(tmp_path / "preset"),
        "--work-dir",
        str(tmp_path / "run"),
        "--verbose",
        "0",
        *extra,
    ]


def logged_steps(tmp_path):
    lines = (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()
    return [json.loads(line)["step"] for line in lines]


@pytest.mark.slow
def test_train_resumes_after_being_killed(tmp_path, small_data):
    command = train_command(tmp_path, small_data, 80)
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    log = tmp_path / "run" / "train_log.jsonl"
    deadline = time.time() + 240
    while time.time() < deadline and process.poll() is None:
        if log.is_file() and len(log.read_text().splitlines()) >= 2:
            break
        time.sleep(0.2)
    assert process.poll() is None, "training ended before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    before = logged_steps(tmp_path)
    assert not (tmp_path / "preset").exists()

    result = subprocess.run(
        command, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    after = logged_steps(tmp_path)[len(before) :]
    assert after[0] > 10, (before, after)  # resumed, did not start over
    assert after[-1] == 80
    metadata = json.loads((tmp_path / "preset" / "metadata.json").read_text())
    assert metadata["training"]["steps"] == 80
    config = json.loads((tmp_path / "preset" / "config.json").read_text())
    assert config["config"]["dtype"]["config"]["name"] == "float32"
    assert metadata["training"]["precision"] in ("float32", "mixed_bfloat16")
    assert 0 < metadata["test_metrics"]["mse"] < 1
    assert (tmp_path / "preset" / "README.md").is_file()


@pytest.mark.slow
def test_train_stops_cleanly_on_nan_and_keeps_the_last_finite_checkpoint(
    tmp_path, small_data
):
    import h5py

    good = subprocess.run(
        train_command(tmp_path, small_data, 20),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert good.returncode == 0, good.stderr[-2000:]
    # A loss divided by ~0 overflows to inf on the first resumed step.
    command = train_command(
        tmp_path, small_data, 40, "--set", "data_variance=1e-44"
    )
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 1
    assert "error:" in result.stderr and "no preset" in result.stderr
    with h5py.File(tmp_path / "run" / "backup" / "latest.weights.h5") as f:
        arrays = []
        f.visititems(
            lambda name, item: (
                arrays.append(item[()])
                if isinstance(item, h5py.Dataset)
                else None
            )
        )
    floats = [a for a in arrays if np.asarray(a).dtype.kind == "f"]
    assert floats and all(np.isfinite(a).all() for a in floats)
    assert logged_steps(tmp_path)[:2] == [10, 20]


def test_a_resumed_run_uses_its_own_learning_rate(tmp_path, small_data, capsys):
    argv = train_command(tmp_path, small_data, 20)[2:]  # without the script
    assert main(["train", *argv, "--learning-rate", "1e-3"]) == 0
    argv = train_command(tmp_path, small_data, 40)[2:]
    assert main(["train", *argv, "--learning-rate", "1e-4"]) == 0
    assert (
        "resuming with learning rate 0.0001 (the checkpoint's was 0.001)"
        in (capsys.readouterr().out)
    )
    lines = (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()
    rates = [json.loads(line)["learning_rate"] for line in lines]
    assert rates == pytest.approx([1e-3, 1e-3, 1e-4, 1e-4])
    metadata = json.loads((tmp_path / "preset" / "metadata.json").read_text())
    np.testing.assert_allclose(
        metadata["training"]["learning_rate_by_step"], [[20, 1e-3], [40, 1e-4]]
    )


def test_every_subcommand_has_help(capsys):
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    for name in commands:
        with pytest.raises(SystemExit) as exit_info:
            main([name, "--help"])
        assert exit_info.value.code == 0
    assert {
        "presets",
        "demo",
        "reconstruct",
        "encode",
        "decode",
        "sample",
        "train",
        "train-prior",
        "evaluate",
        "upload",
    } <= set(commands)


def test_bad_input_exits_nonzero_with_one_line(capsys, tmp_path):
    assert (
        main(["encode", "--preset", "no_such_preset", "--images", "x.png"]) == 1
    )
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Unknown preset" in err
    (tmp_path / "codes.npy").write_bytes(b"garbage")
    if "mnist" in list_presets():
        assert main(["decode", "--codes", str(tmp_path / "codes.npy")]) == 1
        assert "cannot read codes" in capsys.readouterr().err
        np.save(tmp_path / "empty.npy", np.zeros((0, 7, 7), "int32"))
        assert main(["decode", "--codes", str(tmp_path / "empty.npy")]) == 1
        assert "holds no code maps" in capsys.readouterr().err
        assert main(["sample", "--label", "-1", "--n", "2"]) == 1
        assert (
            "Class labels must be integers in [0, 10)"
            in capsys.readouterr().err
        )
    assert (
        main(
            [
                "train",
                "--architecture",
                "mnist",
                "--data",
                str(tmp_path),
                "--steps",
                "5",
                "--preset-dir",
                str(tmp_path / "p"),
                "--set",
                "hidden_dim=-3",
            ]
        )
        == 1
    )
    assert "hidden_dim" in capsys.readouterr().err


def test_reconstruct_encode_decode_with_bundled_preset(tmp_path, capsys):
    data = dataset("mnist")
    grid = tmp_path / "grid.png"
    assert (
        main(
            [
                "reconstruct",
                "--data",
                str(data),
                "--limit",
                "16",
                "--out",
                str(grid),
            ]
        )
        == 0
    )
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["images"] == 16 and metrics["mse"] < 0.01 and grid.is_file()
    codes = tmp_path / "codes.npy"
    assert (
        main(
            ["encode", "--data", str(data), "--limit", "8", "--out", str(codes)]
        )
        == 0
    )
    assert np.load(codes).shape == (8, 7, 7)
    decoded = tmp_path / "decoded.png"
    assert (
        main(
            [
                "decode",
                "--codes",
                str(codes),
                "--out",
                str(decoded),
                "--npy",
                str(tmp_path / "decoded.npy"),
            ]
        )
        == 0
    )
    assert np.load(tmp_path / "decoded.npy").shape == (8, 28, 28, 1)


def test_console_script_entry_point():
    result = subprocess.run(
        [str(Path(sys.executable).parent / "keras-vqvae"), "presets"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    for name in list_presets():
        assert name in result.stdout


def test_train_prior_adds_a_loadable_prior_to_the_preset(
    tmp_path, small_data, capsys
):
    from keras_vqvae.models import VQVAE
    from keras_vqvae.models import PixelCNNPrior

    preset = tmp_path / "preset"
    VQVAE(**TINY_CONFIG, seed=0).save_to_preset(preset)
    (small_data / "classes.json").write_text('[["n0", "Zero"], ["n1", "One"]]')
    status = main(
        [
            "train-prior",
            "--preset-dir",
            str(preset),
            "--data",
            str(small_data),
            "--steps",
            "4",
            "--batch-size",
            "64",
            "--hidden-dim",
            "8",
            "--num-layers",
            "2",
            "--eval-limit",
            "64",
            "--verbose",
            "0",
            "--samples",
            "3",
        ]
    )
    assert status == 0
    for name in ("prior_config.json", "prior.weights.h5", "samples.png"):
        assert (preset / name).is_file(), name
    prior_metadata = json.loads((preset / "metadata.json").read_text())["prior"]
    metrics = prior_metadata["test_metrics"]
    assert metrics["test_images"] == 64
    assert metrics["bits_per_dim"] == pytest.approx(
        metrics["decoder_bits_per_dim"] + metrics["prior_bits_per_dim"]
    )
    # 768 training maps at batch 64: 4 steps round up to one epoch of 12.
    assert prior_metadata["epochs"] == 1 and prior_metadata["steps"] == 12
    assert prior_metadata["reproduce"].startswith("keras-vqvae train-prior")
    prior = PixelCNNPrior.from_preset(preset)
    assert prior.num_classes == 1 and prior.latent_shape == (7, 7)
    # Labels only go up to 0: the one class is recorded, the extra name not.
    assert prior_metadata["classes"] == [
        {"label": 0, "id": "n0", "name": "Zero"}
    ]
    card = (preset / "README.md").read_text()
    assert "## PixelCNN prior" in card and "| 0 | n0 | Zero |" in card
    out = tmp_path / "zero.png"
    assert (
        main(
            [
                "sample",
                "--preset",
                str(preset),
                "--label",
                "zero",
                "--n",
                "2",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert out.is_file()
    assert main(["sample", "--preset", str(preset), "--label", "cat"]) == 1
    assert "Known classes: 0: Zero (n0)" in capsys.readouterr().err


def test_commands_start_quietly_and_verbose_shows_the_native_logs():
    command = [str(Path(sys.executable).parent / "keras-vqvae")]
    quiet = subprocess.run(
        command + ["presets"], capture_output=True, text=True, timeout=120
    )
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr
    if "tensorflow" in sys.modules:
        verbose = subprocess.run(
            command + ["--verbose", "presets"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert verbose.returncode == 0
        assert "oneDNN custom operations are on" in verbose.stderr


def test_steps_per_execution_divides_checkpoints_and_is_one_on_torch(
    monkeypatch,
):
    import keras

    from keras_vqvae import workflows

    said = []
    assert workflows._steps_per_execution(8, 500, said.append) == 4
    monkeypatch.setattr(keras.backend, "backend", lambda: "torch")
    assert workflows._steps_per_execution(8, 500, said.append) == 1
    assert said and "torch backend runs one step per call" in said[0]


def test_a_save_killed_halfway_leaves_the_previous_checkpoint_readable(
    tmp_path,
):
    import keras

    from keras_vqvae.workflows import FiniteBackupAndRestore

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer="adam", loss="mse")
    backup = FiniteBackupAndRestore(str(tmp_path), log=lambda _: None)
    backup.set_model(model)
    backup._save_model()
    saved = model.get_weights()

    def killed_while_writing(filepath, overwrite=True):
        open(filepath, "wb").write(b"half an HDF5 file")
        raise KeyboardInterrupt  # stands in for the process dying here

    model.set_weights([w + 1.0 for w in saved])
    model.save_weights = killed_while_writing
    with pytest.raises(KeyboardInterrupt):
        backup._save_model()

    restored = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    restored.compile(optimizer="adam", loss="mse")
    reader = FiniteBackupAndRestore(str(tmp_path), log=lambda _: None)
    reader.set_model(restored)
    reader.on_train_begin()
    for got, want in zip(restored.get_weights(), saved):
        np.testing.assert_array_equal(got, want)
