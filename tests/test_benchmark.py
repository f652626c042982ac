"""tools/benchmark (a package) and the PyTorch reference it measures against.

No timing is asserted: the machine may be shared. The tests check that the
benchmark runs end to end and writes its Markdown section, and that the
reference is the same network as the Keras model.
"""

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
TOOLS = REPO_ROOT / "tools"
torch = pytest.importorskip("torch")
sys.path.insert(0, str(TOOLS))

from benchmark import cifar10  # noqa: E402
from benchmark import report  # noqa: E402
from benchmark import sampling  # noqa: E402
from benchmark import throughput  # noqa: E402
from benchmark import torch_reference  # noqa: E402


def _keras_cifar10():
    from keras_vqvae.models import VQVAE
    from keras_vqvae.models import VQVAE_PRESETS

    return VQVAE(**{**VQVAE_PRESETS["cifar10"]["config"], "seed": 0})


def test_reference_has_the_keras_models_trainable_parameters():
    model = _keras_cifar10()
    keras_count = int(sum(np.prod(w.shape) for w in model.trainable_weights))
    reference = torch_reference.build_reference()
    assert reference.trainable_parameter_count() == keras_count == 662_723
    # The EMA codebook is state, not a parameter, in both.
    assert "quantizer.codebook" in dict(reference.named_buffers())


def test_reference_computes_what_the_keras_model_computes():
    model = _keras_cifar10()
    reference = torch_reference.build_reference().load_keras_weights(model)
    images = np.random.default_rng(0).uniform(-0.5, 0.5, (4, 32, 32, 3))
    images = images.astype("float32")
    expected = np.asarray(model(images, training=False))
    reference.eval()
    with torch.no_grad():
        outputs, _ = reference(images)
    np.testing.assert_allclose(outputs.numpy(), expected, atol=1e-5)
    codes = np.asarray(
        model.quantizer.get_indices(model.pre_quantization(model.encoder(images)))
    )
    np.testing.assert_array_equal(reference.encode(images), codes)


def test_reference_train_step_gives_a_finite_loss_and_updates_weights():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # libgomp spin-waits badly on a busy machine
    try:
        _check_reference_train_step()
    finally:
        torch.set_num_threads(threads)


def _check_reference_train_step():
    reference = torch_reference.build_reference(data_variance=0.06)
    images = np.random.default_rng(1).uniform(-0.5, 0.5, (8, 32, 32, 3))
    images = images.astype("float32")
    before = reference.encoder.downsamples[0].weight.detach().clone()
    codebook = reference.quantizer.codebook.clone()
    losses = [reference.train_step(images) for _ in range(3)]
    assert all(np.isfinite(losses)) and 0 < losses[0] < 100
    assert not torch.equal(before, reference.encoder.downsamples[0].weight)
    assert not torch.equal(codebook, reference.quantizer.codebook)
    assert bool(reference.quantizer.initialized)  # k-means ran on batch 1
    assert 0 < float(reference.quantizer.batch_perplexity) <= 512


def test_write_section_replaces_only_its_own_section(tmp_path):
    path = tmp_path / "BENCH.md"
    path.write_text("# Mine\n\nkeep this\n")
    report.write_section(path, f"{report.BEGIN}\none\n{report.END}\n")
    report.write_section(path, f"{report.BEGIN}\ntwo\n{report.END}\n")
    text = path.read_text()
    assert "keep this" in text and "two" in text and "one" not in text
    assert text.count(report.BEGIN) == 1


def test_the_before_the_fix_variant_passes_keras_conv_transpose_same_weights():
    import keras

    from keras_vqvae.layers import Conv2DTranspose

    model = cifar10.cifar10_model()
    plain = cifar10.keras_conv_transpose_model(model)
    assert model.decoder_upsampling_layer is None  # the library's default
    assert plain.decoder_upsampling_layer is keras.layers.Conv2DTranspose
    assert {type(layer) for layer in model.decoder.upsamples} == {
        Conv2DTranspose}
    assert {type(layer) for layer in plain.decoder.upsamples} == {
        keras.layers.Conv2DTranspose}
    for a, b in zip(model.get_weights(), plain.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert cifar10.max_output_difference(model, plain) < 1e-5


def _train_row(batch_size, ratio, **extra):
    return {"batch_size": batch_size, "keras": 1.0, "torch": 1.0,
            "torch_1_thread": 1.0, "ratio": ratio, "ratio_best_torch": ratio,
            **extra}


@pytest.mark.parametrize("ratios, verdict", [
    ((1.3, 1.05), "**met**"), ((1.3, 0.97), "**not met**"),
])
def test_goal_states_the_issue_target_and_whether_it_is_met(ratios, verdict):
    results = {"model": {
        "tensorflow": {"train": [_train_row(32, ratios[0]),
                                 _train_row(128, ratios[1])]},
        "jax": {"train": [_train_row(
            32, 0.9, keras_conv_transpose=0.2, keras_conv_transpose_ratio=0.2,
            keras_conv_transpose_ratio_best_torch=0.2,
            speedup_of_our_conv_transpose=4.5)]},
    }}
    text = "\n".join(throughput.render_goal(results))
    assert "TensorFlow backend at >= 1.0x the PyTorch reference's train " \
        "images/s on CPU" in text
    assert verdict in text
    assert "batch 32: 0.20x -> 0.90x (4.50x faster)" in text


def test_sampling_table_lists_each_backend_and_preset():
    results = {
        "tensorflow": {"rows": [{
            "preset": "mnist", "latent_shape": [7, 7], "num_embeddings": 128,
            "parameters": 2072000, "n": 64, "first_call_s": 3.0,
            "samples_per_s": 50.0, "images_per_s": 40.0,
        }]},
        "jax": {"error": "boom"},
    }
    text = "\n".join(sampling.render(results))
    assert "| tensorflow | mnist | 7x7, K=128 | 2,072,000 | 64 | 50.0 | 40.0 " \
        "| 3.0 |" in text
    assert "| jax | failed: boom" in text
    assert sampling.render(None) == []


@pytest.mark.parametrize("command, cwd", [
    ([str(TOOLS / "benchmark")], REPO_ROOT),
    (["-m", "tools.benchmark"], REPO_ROOT),
    (["-m", "benchmark"], TOOLS),
])
def test_the_package_runs_as_a_folder_and_as_a_module(command, cwd):
    proc = subprocess.run([sys.executable, *command, "--help"],
                          capture_output=True, text=True, timeout=60, cwd=cwd)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith(f"usage: {report.COMMAND} ")
    assert "--quick" in proc.stdout


@pytest.mark.slow  # ~25-30 s: two Keras backends in subprocesses
def test_quick_benchmark_writes_a_table_with_ratios(tmp_path):
    output = tmp_path / "bench.md"
    proc = subprocess.run(
        [sys.executable, str(TOOLS / "benchmark"), "--quick",
         "--backends", "tensorflow,torch", "--output", str(output)],
        capture_output=True, text=True, timeout=300, cwd=REPO_ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = output.read_text()
    assert report.BEGIN in text and report.END in text
    assert "- Command: `python tools/benchmark --quick --backends " \
        "tensorflow,torch --output" in text
    assert re.search(r"Machine: \d+ cores", text)
    for backend in ("tensorflow", "torch"):
        row = re.search(
            rf"^\| {backend} \| 32 \| ([\d,.]+) \| ([\d,.]+) \| "
            r"(\d+\.\d+)x \|", text, re.M,
        )
        assert row, f"no training row for {backend}:\n{text}"
        assert float(row.group(3)) > 0
        assert re.search(rf"^\| {backend} \| encode \|", text, re.M)
        assert re.search(rf"^\| {backend} \| decode \|", text, re.M)
    assert "Trainable parameters: Keras 662,723, PyTorch reference 662,723 " \
        "(equal)" in text
    assert "TensorFlow backend at >= 1.0x the PyTorch reference's train " \
        "images/s on CPU" in text
    quantizer_row = re.search(r"^\| 1024 \| 128 \| 64 \| ([\d.]+) \|", text,
                              re.M)
    assert quantizer_row, text
    for backend in ("tensorflow", "torch"):
        sampling_row = re.search(
            rf"^\| {backend} \| mnist \| 7x7, K=128 \| [\d,]+ \| 4 \| "
            r"([\d,.]+) \|", text, re.M,
        )
        assert sampling_row, f"no sampling row for {backend}:\n{text}"
        assert float(sampling_row.group(1).replace(",", "")) > 0
