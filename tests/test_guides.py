"""Runs every guide in guides/ top to bottom, in quick mode, so none can rot.

Each guide runs in a fresh interpreter (as `python guides/NAME.py` from the
repository root) with `KERAS_VQVAE_GUIDE_QUICK=1` and `GUIDE_OUTPUT_DIR` set
to a temporary folder; the tests check the exit status and the files the
guide promises to write. Guides that take more than ~15 s are marked slow
(`pytest -m slow`).
"""

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from real_data import DATASETS
from real_data import dataset

try:
    from hub_server import HubServer
    from hub_server import hub_client_env
except ImportError:  # pragma: no cover - when tests/ is not on sys.path
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from hub_server import HubServer
    from hub_server import hub_client_env

REPO_ROOT = Path(__file__).resolve().parents[1]
GUIDES = REPO_ROOT / "guides"
HEADER_FIELDS = (
    "Title",
    "Author",
    "Date created",
    "Last modified",
    "Description",
)

# Every guide and the tests that run it; test_every_guide_is_run checks that
# no guide is left out.
RUN_BY = {
    "use_a_pretrained_preset.py": "test_use_a_pretrained_preset",
    "fit_on_your_own_images.py": "test_fit_on_your_own_images",
    "train_a_prior_and_sample.py": "test_train_a_prior_and_sample",
    "publish_a_preset.py": "test_publish_a_preset_to_local_hub",
    "distributed_training.py": "test_distributed_training",
    "video_prediction_in_latent_space.py": (
        "test_video_prediction_in_latent_space"
    ),
    "speech_codes_conversion_and_phonemes.py": (
        "test_speech_codes_conversion_and_phonemes"
    ),
}


def _needs_data(*names):
    for name in names:
        dataset(name)


def _quick_env(out_dir, backend="tensorflow", hf_home=None, base_env=None):
    env = dict(os.environ if base_env is None else base_env)
    if base_env is None:
        # Keep the developer's Hub configuration out, and the Hub offline.
        env = {k: v for k, v in env.items() if not k.startswith("HF_")}
        env.update(
            HF_HUB_OFFLINE="1", HF_HOME=str(hf_home or out_dir / "hf_home")
        )
    env.update(
        KERAS_VQVAE_GUIDE_QUICK="1",
        KERAS_VQVAE_DATA=str(DATASETS),
        GUIDE_OUTPUT_DIR=str(out_dir),
        KERAS_BACKEND=backend,
        TF_CPP_MIN_LOG_LEVEL="3",
        PYTHONUNBUFFERED="1",
    )
    return env


def run_guide(name, env, timeout=600):
    result = subprocess.run(
        [sys.executable, str(GUIDES / name)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, (
        f"guides/{name} exited with {result.returncode}\n"
        f"--- stdout (end) ---\n{result.stdout[-4000:]}\n"
        f"--- stderr (end) ---\n{result.stderr[-6000:]}"
    )
    return result


def assert_files(folder, names):
    missing = [name for name in names if not (Path(folder) / name).is_file()]
    assert not missing, f"missing in {folder}: {missing}"
    for name in names:
        if name.endswith(".png"):
            with Image.open(Path(folder) / name) as image:
                assert image.width > 0 and image.height > 0


# ---------------------------------------------------------------------------
# Structure (no guide is run).
# ---------------------------------------------------------------------------


def test_every_guide_is_run():
    guides = sorted(path.name for path in GUIDES.glob("*.py"))
    assert guides, f"no guides in {GUIDES}"
    assert sorted(RUN_BY) == guides
    defined = {
        name
        for name, value in globals().items()
        if name.startswith("test_") and callable(value)
    }
    assert set(RUN_BY.values()) <= defined


@pytest.mark.parametrize("name", sorted(RUN_BY))
def test_guide_follows_the_keras_io_format(name):
    source = (GUIDES / name).read_text()
    module = ast.parse(source)
    header = ast.get_docstring(module, clean=False)
    assert header, f"{name} has no header docstring"
    fields = dict(
        line.split(":", 1)
        for line in header.strip().splitlines()
        if ":" in line
    )
    for field in HEADER_FIELDS:
        assert fields.get(field, "").strip(), f"{name}: header lacks {field!r}"
    # Prose cells are bare string expressions between the code cells.
    prose = [
        node
        for node in module.body[1:]
        if isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
    ]
    assert len(prose) >= 3, f"{name}: expected markdown cells between the code"
    assert "KERAS_VQVAE_GUIDE_QUICK" in source and "GUIDE_OUTPUT_DIR" in source


# ---------------------------------------------------------------------------
# Running the guides.
# ---------------------------------------------------------------------------


def test_use_a_pretrained_preset(tmp_path):
    _needs_data("mnist")
    result = run_guide("use_a_pretrained_preset.py", _quick_env(tmp_path))
    assert_files(tmp_path, ["reconstructions.png", "code_experiments.png"])
    assert "decode_indices(encode(x)) == reconstruct(x)" in result.stdout
    assert "PSNR" in result.stdout


def test_fit_on_your_own_images(tmp_path):
    _needs_data("cifar10_lossless_4k")
    run_guide("fit_on_your_own_images.py", _quick_env(tmp_path))
    assert len(list((tmp_path / "my_images").glob("*/*.png"))) == 64
    assert_files(
        tmp_path,
        [
            "best.keras",
            "checkpoints/epoch_01.weights.h5",
            "checkpoints/epoch_02.weights.h5",
            "progress/epoch_01.png",
            "progress/epoch_02.png",
            "my_vqvae_preset/config.json",
            "my_vqvae_preset/metadata.json",
            "my_vqvae_preset/model.weights.h5",
            "my_vqvae_preset/reconstructions.png",
        ],
    )


def test_train_a_prior_and_sample(tmp_path):
    _needs_data("mnist")
    result = run_guide("train_a_prior_and_sample.py", _quick_env(tmp_path))
    assert_files(
        tmp_path,
        [
            "samples_per_class.png",
            "temperatures.png",
            "bundled_prior_samples.png",
        ],
    )
    assert "bits/dim" in result.stdout


PRESET_FILES = [
    "README.md",
    "config.json",
    "metadata.json",
    "model.weights.h5",
    "reconstructions.png",
]


def test_publish_a_preset_stops_after_dry_run_without_endpoint(tmp_path):
    _needs_data("mnist")
    result = run_guide("publish_a_preset.py", _quick_env(tmp_path))
    assert_files(tmp_path / "vqvae-demo", PRESET_FILES)
    assert "dry run: nothing written or sent" in result.stdout
    assert "Stopping after the dry run" in result.stdout
    assert "uploaded" not in result.stdout


def test_publish_a_preset_to_local_hub(tmp_path):
    _needs_data("mnist")
    with HubServer(tmp_path / "hub") as server:
        env = _quick_env(
            tmp_path / "out",
            base_env=hub_client_env(server.url, tmp_path / "hf_home"),
        )
        result = run_guide("publish_a_preset.py", env)
        files = server.storage.files("user/vqvae-demo")
        for name in PRESET_FILES:
            local = (tmp_path / "out" / "vqvae-demo" / name).read_bytes()
            assert server.storage.read_file("user/vqvae-demo", name) == local, (
                name
            )
    assert sorted(files) == sorted(PRESET_FILES)
    assert "reconstructions identical to the local model: True" in result.stdout
    assert (tmp_path / "hf_home" / "hub" / "models--user--vqvae-demo").is_dir()


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_distributed_training(tmp_path, backend):
    _needs_data("mnist")
    pytest.importorskip(backend)
    result = run_guide("distributed_training.py", _quick_env(tmp_path, backend))
    assert f"backend: {backend}" in result.stdout
    assert "one step on 2 devices vs one device" in result.stdout
    # The EMA quantizer's state (k-means, EMA step, restarts) as on one device.
    assert "quantizer state on 2 devices vs one device" in result.stdout
    if backend == "tensorflow":
        assert (
            "largest difference between replica copies of a weight: 0.00e+00"
            in result.stdout
        )
    assert_files(
        tmp_path / "distributed_preset",
        ["config.json", "metadata.json", "model.weights.h5"],
    )


@pytest.mark.slow
def test_speech_codes_conversion_and_phonemes(tmp_path):
    from test_espeak_corpus import require_espeak

    require_espeak()
    result = run_guide(
        "speech_codes_conversion_and_phonemes.py", _quick_env(tmp_path)
    )
    assert_files(
        tmp_path,
        [
            "original.wav",
            "reconstruction.wav",
            "converted_to_en_f3.wav",
            "spectrograms.png",
        ],
    )
    for line in (
        "log-spectral distance:",
        "converted clips heard as their target:",
        "phoneme probe:",
    ):
        assert line in result.stdout


@pytest.mark.slow
def test_video_prediction_in_latent_space(tmp_path):
    from test_crafter_episodes import require_crafter

    require_crafter()
    result = run_guide(
        "video_prediction_in_latent_space.py", _quick_env(tmp_path)
    )
    assert_files(tmp_path, ["rollout.png", "rollout.gif", "left_or_right.png"])
    for line in ("copy the last frame", "PSNR per step, generated"):
        assert line in result.stdout
