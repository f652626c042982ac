import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hub_server import HubServer
from real_data import dataset

from keras_vqvae.models import VQVAE
from keras_vqvae.presets import PRESET_FORMAT_VERSION
from keras_vqvae.presets import PresetError
from keras_vqvae.presets import list_presets

REPO_ROOT = Path(__file__).resolve().parents[1]
TINY = dict(
    image_shape=(16, 16, 3),
    num_embeddings=16,
    embedding_dim=4,
    hidden_dim=8,
    num_residual_layers=1,
    residual_hidden_dim=4,
    seed=0,
)
IMAGES = np.random.default_rng(0).integers(0, 256, (4, 16, 16, 3), "uint8")


@pytest.fixture
def preset_dir(tmp_path):
    model = VQVAE(**TINY)
    folder = tmp_path / "tiny"
    model.save_to_preset(folder, metadata={"preset": "tiny"})
    np.save(tmp_path / "expected.npy", model.reconstruct(IMAGES, batch_size=4))
    return folder


def test_local_folder_round_trip(preset_dir):
    model = VQVAE.from_preset(preset_dir)
    expected = np.load(preset_dir.parent / "expected.npy")
    np.testing.assert_array_equal(model.reconstruct(IMAGES), expected)
    files = sorted(p.name for p in preset_dir.iterdir())
    assert files == ["config.json", "metadata.json", "model.weights.h5"]
    metadata = json.loads((preset_dir / "metadata.json").read_text())
    assert (
        metadata["preset"] == "tiny"
        and "model.weights.h5" in metadata["sha256"]
    )


def test_trained_model_preset_holds_model_weights_only(tmp_path):
    import h5py

    model = VQVAE(**TINY)
    model.compile()
    model.fit(IMAGES.astype("float32") / 255, epochs=1, batch_size=4, verbose=0)
    model.save_to_preset(tmp_path / "trained")
    with h5py.File(tmp_path / "trained" / "model.weights.h5") as f:
        assert "optimizer" not in f
    loaded = VQVAE.from_preset(tmp_path / "trained")
    np.testing.assert_array_equal(
        loaded.reconstruct(IMAGES), model.reconstruct(IMAGES)
    )


def test_load_weights_false_and_config_overrides(preset_dir):
    random_init = VQVAE.from_preset(preset_dir, load_weights=False)
    expected = np.load(preset_dir.parent / "expected.npy")
    assert not np.array_equal(random_init.reconstruct(IMAGES), expected)
    tuned = VQVAE.from_preset(preset_dir, dead_code_threshold=2.0)
    assert tuned.quantizer.dead_code_threshold == 2.0
    np.testing.assert_array_equal(tuned.reconstruct(IMAGES), expected)
    with pytest.raises(PresetError, match="do not fit"):
        VQVAE.from_preset(preset_dir, hidden_dim=12)


def test_unknown_name_suggests_close_names():
    names = list_presets()
    if "mnist" not in names:
        pytest.skip("bundled mnist preset not trained yet")
    with pytest.raises(PresetError, match="Did you mean 'mnist'"):
        VQVAE.from_preset("mnsit")
    with pytest.raises(PresetError, match="Unknown preset"):
        VQVAE.from_preset("no_such_preset_anywhere")


def test_damaged_presets_raise_clear_errors(preset_dir):
    weights = preset_dir / "model.weights.h5"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(PresetError, match="corrupt or truncated"):
        VQVAE.from_preset(preset_dir)
    metadata = json.loads((preset_dir / "metadata.json").read_text())
    del metadata["sha256"]
    (preset_dir / "metadata.json").write_text(json.dumps(metadata))
    with pytest.raises(PresetError, match="no SHA-256 for model.weights.h5"):
        VQVAE.from_preset(preset_dir)
    with pytest.warns(UserWarning, match="unverified"):
        with pytest.raises(PresetError, match="corrupt or truncated"):
            VQVAE.from_preset(preset_dir, allow_missing_checksum=True)
    weights.unlink()
    with pytest.raises(PresetError, match="load_weights=False"):
        VQVAE.from_preset(preset_dir)


def test_newer_format_and_bad_json_are_refused(preset_dir):
    config_path = preset_dir / "config.json"
    config = json.loads(config_path.read_text())
    config["format_version"] = PRESET_FORMAT_VERSION + 1
    config_path.write_text(json.dumps(config))
    with pytest.raises(PresetError, match="newer keras-vqvae"):
        VQVAE.from_preset(preset_dir)
    config_path.write_text("{not json")
    with pytest.raises(PresetError, match="not valid JSON"):
        VQVAE.from_preset(preset_dir)
    config["format_version"] = PRESET_FORMAT_VERSION
    config["class_name"] = "SomethingElse"
    config_path.write_text(json.dumps(config))
    with pytest.raises(PresetError, match="not a VQVAE"):
        VQVAE.from_preset(preset_dir)


def test_bundled_presets_are_listed_and_meet_their_metrics():
    presets = VQVAE.presets
    if "mnist" not in presets:
        pytest.skip("bundled mnist preset not trained yet")
    for name, metadata in presets.items():
        assert metadata["test_metrics"]["psnr_db"] > 0, name
        assert (REPO_ROOT / "presets" / name / "README.md").is_file()
    model = VQVAE.from_preset("mnist")
    with np.load(dataset("mnist") / "test.npz") as arrays:
        images = arrays["images"][:500]
    reconstructed = model.reconstruct(images)
    mse = np.mean((images / 255.0 - reconstructed / 255.0) ** 2)
    assert mse <= 0.005, mse


# Through the real huggingface_hub client against a loopback server.

LOAD = """
import sys, numpy as np
from keras_vqvae.models import VQVAE
from keras_vqvae.presets import PresetError
try:
    model = VQVAE.from_preset(sys.argv[1])
except PresetError as e:
    print("PresetError:", e)
    sys.exit(3)
images = np.load(sys.argv[2])
np.save(sys.argv[3], model.reconstruct(images))
"""


def run_python(args, env, check=True):
    result = subprocess.run(
        [sys.executable, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if check and result.returncode != 0:
        raise AssertionError(result.stdout + result.stderr[-3000:])
    return result


def hub_env(endpoint, hf_home, offline=False):
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(
        HF_ENDPOINT=endpoint,
        HF_HOME=str(hf_home),
        HF_TOKEN="hf_dummy_test_token",
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_DISABLE_PROGRESS_BARS="1",
        HF_HUB_ETAG_TIMEOUT="2",
        HF_HUB_DOWNLOAD_TIMEOUT="2",
    )
    if offline:
        env["HF_HUB_OFFLINE"] = "1"
    return env


@pytest.mark.slow
def test_upload_then_from_preset_through_hub_client(preset_dir, tmp_path):
    np.save(tmp_path / "images.npy", IMAGES)
    expected = np.load(tmp_path / "expected.npy")
    upload = str(REPO_ROOT / "tools" / "upload_preset.py")
    server = HubServer(tmp_path / "hub")
    endpoint = server.start()
    try:
        env = hub_env(endpoint, tmp_path / "uploader_home")
        dry = run_python(
            [upload, str(preset_dir), "user/vqvae-tiny", "--dry-run"], env
        )
        assert "would upload model.weights.h5" in dry.stdout
        assert not server.storage.exists("user/vqvae-tiny")

        out = run_python(
            [upload, str(preset_dir), "user/vqvae-tiny"], env
        ).stdout
        commit = out.split("commit ")[1].split()[0]
        assert len(commit) == 40
        uploaded = server.storage.files("user/vqvae-tiny")
        assert {
            "config.json",
            "metadata.json",
            "model.weights.h5",
            "README.md",
        } <= set(uploaded)

        env = hub_env(endpoint, tmp_path / "user_home")
        for handle in (
            "hf://user/vqvae-tiny",
            f"hf://user/vqvae-tiny@{commit}",
        ):
            run_python(
                [
                    "-c",
                    LOAD,
                    handle,
                    str(tmp_path / "images.npy"),
                    str(tmp_path / "hub.npy"),
                ],
                env,
            )
            np.testing.assert_array_equal(
                np.load(tmp_path / "hub.npy"), expected
            )

        other = VQVAE(**{**TINY, "hidden_dim": 12})
        other.save_to_preset(tmp_path / "other")
        refused = run_python(
            [upload, str(tmp_path / "other"), "user/vqvae-tiny"],
            hub_env(endpoint, tmp_path / "uploader_home"),
            check=False,
        )
        assert (
            refused.returncode == 1
            and "different architecture" in refused.stderr
        )
        forced = run_python(
            [upload, str(tmp_path / "other"), "user/vqvae-tiny", "--force"],
            hub_env(endpoint, tmp_path / "uploader_home"),
        )
        assert "commit" in forced.stdout
    finally:
        server.stop()

    # Hub gone: the filled cache still serves the pinned commit offline ...
    run_python(
        [
            "-c",
            LOAD,
            f"hf://user/vqvae-tiny@{commit}",
            str(tmp_path / "images.npy"),
            str(tmp_path / "offline.npy"),
        ],
        hub_env(endpoint, tmp_path / "user_home", offline=True),
    )
    np.testing.assert_array_equal(np.load(tmp_path / "offline.npy"), expected)
    # ... and an empty cache gives a clear error.
    failed = run_python(
        [
            "-c",
            LOAD,
            "hf://user/vqvae-tiny",
            str(tmp_path / "images.npy"),
            str(tmp_path / "x.npy"),
        ],
        hub_env(endpoint, tmp_path / "empty_home"),
        check=False,
    )
    assert failed.returncode == 3, failed.stdout + failed.stderr[-2000:]
    assert "unreachable" in failed.stdout


def test_malformed_hub_handle():
    with pytest.raises(PresetError, match="Malformed Hub handle"):
        VQVAE.from_preset("hf://just-a-name")


def test_invalid_config_values_name_the_file(preset_dir):
    config_path = preset_dir / "config.json"
    config = json.loads(config_path.read_text())
    for key, value in [
        ("num_embeddings", "abc"),
        ("image_shape", [0, 16, 3]),
        ("data_variance", 0.0),
        ("normalization", {"scale": 0, "offset": 0}),
    ]:
        broken = {**config, "config": {**config["config"], key: value}}
        config_path.write_text(json.dumps(broken))
        with pytest.raises(
            PresetError, match="config.json holds an invalid config"
        ) as info:
            VQVAE.from_preset(preset_dir)
        assert key.split("_")[0] in str(info.value)
    for broken in (
        [1, 2],
        {"class_name": "VQVAE"},
        {**config, "format_version": "2"},
        {**config, "format_version": None},
    ):
        config_path.write_text(json.dumps(broken))
        with pytest.raises(PresetError):
            VQVAE.from_preset(preset_dir)


def test_prior_is_bound_to_the_codebook_it_was_trained_on(preset_dir):
    from keras_vqvae.models import PixelCNNPrior

    PixelCNNPrior(16, (4, 4), hidden_dim=4, num_layers=1).save_to_preset(
        preset_dir
    )
    PixelCNNPrior.from_preset(preset_dir)
    metadata_path = preset_dir / "metadata.json"
    metadata = json.loads(metadata_path.read_text())
    assert (
        metadata["prior"]["vqvae_sha256"]
        == metadata["sha256"]["model.weights.h5"]
    )

    tampered = {
        **metadata,
        "prior": {**metadata["prior"], "vqvae_sha256": "0" * 64},
    }
    metadata_path.write_text(json.dumps(tampered))
    with pytest.raises(PresetError, match="trained on other VQ-VAE weights"):
        PixelCNNPrior.from_preset(preset_dir)
    metadata_path.write_text(json.dumps(metadata))

    with pytest.warns(UserWarning, match="old PixelCNN prior .* was removed"):
        VQVAE(**{**TINY, "seed": 1}).save_to_preset(preset_dir)
    assert not (preset_dir / "prior.weights.h5").exists()
    assert "prior" not in json.loads(metadata_path.read_text())
    with pytest.raises(PresetError, match="no prior_config.json"):
        PixelCNNPrior.from_preset(preset_dir)


LOAD_FORCED = LOAD.replace(
    "VQVAE.from_preset(sys.argv[1])",
    "VQVAE.from_preset(sys.argv[1], force_download=len(sys.argv) > 4)",
)


@pytest.mark.slow
def test_hub_failures_are_one_line_errors_and_the_cache_can_be_repaired(
    preset_dir, tmp_path
):
    np.save(tmp_path / "images.npy", IMAGES)
    expected = np.load(tmp_path / "expected.npy")
    upload = str(REPO_ROOT / "tools" / "upload_preset.py")
    server = HubServer(tmp_path / "hub")
    endpoint = server.start()
    try:
        no_token = {**hub_env(endpoint, tmp_path / "anonymous"), "HF_TOKEN": ""}
        refused = run_python(
            [upload, str(preset_dir), "user/tiny"], no_token, check=False
        )
        assert refused.returncode == 1
        assert "error:" in refused.stderr and "Traceback" not in refused.stderr
        run_python(
            [upload, str(preset_dir), "user/tiny"],
            hub_env(endpoint, tmp_path / "uploader"),
        )
        env = hub_env(endpoint, tmp_path / "user")
        args = [
            "-c",
            LOAD_FORCED,
            "hf://user/tiny",
            str(tmp_path / "images.npy"),
            str(tmp_path / "out.npy"),
        ]
        run_python(args, env)
        blobs = list((tmp_path / "user").rglob("blobs/*"))
        weights = max(blobs, key=lambda p: p.stat().st_size)
        data = bytearray(weights.read_bytes())
        data[len(data) // 2] ^= 0xFF
        weights.write_bytes(bytes(data))
        damaged = run_python(args, env, check=False)
        assert (
            damaged.returncode == 3 and "force_download=True" in damaged.stdout
        )
        run_python(args + ["--force"], env)
        np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), expected)
    finally:
        server.stop()
    unreachable = run_python(
        [upload, str(preset_dir), "user/tiny"],
        hub_env(endpoint, tmp_path / "uploader"),
        check=False,
    )
    assert unreachable.returncode == 1
    assert "Cannot reach the Hub" in unreachable.stderr, unreachable.stderr[
        -2000:
    ]
    assert "Traceback" not in unreachable.stderr


def test_keras_load_model_reads_a_preset_folder(preset_dir):
    import keras

    loaded = keras.saving.load_model(preset_dir)
    assert isinstance(loaded, VQVAE)
    np.testing.assert_array_equal(
        loaded.encode(IMAGES), VQVAE.from_preset(preset_dir).encode(IMAGES)
    )
    for name in ("config.json",):
        saved = json.loads((preset_dir / name).read_text())
        assert saved["registered_name"] == "keras_vqvae>VQVAE"


def test_bundled_model_cards_are_valid_hub_metadata():
    from huggingface_hub import ModelCard

    for name, metadata in list_presets().items():
        card = ModelCard.load(REPO_ROOT / "presets" / name / "README.md")
        speech = metadata.get("modality") == "speech"
        assert card.data.pipeline_tag == (
            "audio-to-audio" if speech else "image-to-image"
        ), name
        assert card.data.eval_results and all(
            r.dataset_type and r.dataset_split == "test"
            for r in card.data.eval_results
        )
        assert 'keras.saving.load_model("hf://' in card.text


def upload_and_run(tmp_path, preset_dir, repo_id, script, *args):
    """Uploads `preset_dir` to a loopback Hub as `repo_id` with the upload
    tool, then runs `python -c script hf://repo_id *args` as a user with an
    empty cache."""
    upload = str(REPO_ROOT / "tools" / "upload_preset.py")
    with HubServer(tmp_path / "hub") as server:
        run_python(
            [upload, str(preset_dir), repo_id],
            hub_env(server.url, tmp_path / "uploader"),
        )
        run_python(
            ["-c", script, f"hf://{repo_id}", *map(str, args)],
            hub_env(server.url, tmp_path / "user"),
        )


KERAS_LOAD = """
import sys, keras, numpy as np
import keras_vqvae
model = keras.saving.load_model(sys.argv[1])
np.save(sys.argv[3], model.encode(np.load(sys.argv[2])))
"""


@pytest.mark.slow
def test_keras_load_model_from_the_hub(preset_dir, tmp_path):
    np.save(tmp_path / "images.npy", IMAGES)
    expected = VQVAE.from_preset(preset_dir).encode(IMAGES)
    upload_and_run(
        tmp_path,
        preset_dir,
        "user/tiny",
        KERAS_LOAD,
        tmp_path / "images.npy",
        tmp_path / "codes.npy",
    )
    np.testing.assert_array_equal(np.load(tmp_path / "codes.npy"), expected)


def test_upload_refuses_a_card_the_hub_would_refuse(preset_dir):
    from keras_vqvae.errors import UploadError
    from keras_vqvae.upload import upload_preset

    (preset_dir / "README.md").write_text(
        "---\nmodel-index:\n- name: x\n  results:\n  - task: {type: image-to-image}\n"
        "    metrics:\n    - {type: psnr, value: 25.0}\n---\n"
    )
    with pytest.raises(
        UploadError, match="metadata the Hugging Face Hub would refuse"
    ):
        upload_preset(
            preset_dir, "user/tiny", dry_run=True, log=lambda *_: None
        )
