"""tools/benchmark (a package) and the PyTorch peer it measures against.

No timing is asserted: the machine may be shared. The tests check that the
benchmark runs end to end and writes its Markdown section, that the peer
is the same network as the Keras model, with the library's restart rule and
no host synchronisation in its steps, and that the FLOP count and the
report's tables are right.
"""

import contextlib
import re
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
TOOLS = REPO_ROOT / "tools"
torch = pytest.importorskip("torch")
sys.path.insert(0, str(TOOLS))

from benchmark import cifar10  # noqa: E402
from benchmark import onednn_trace  # noqa: E402
from benchmark import quantizer_memory  # noqa: E402
from benchmark import report  # noqa: E402
from benchmark import roofline  # noqa: E402
from benchmark import sampling  # noqa: E402
from benchmark import speech  # noqa: E402
from benchmark import tf_profile  # noqa: E402
from benchmark import throughput  # noqa: E402
from benchmark import timing  # noqa: E402
from benchmark import torch_reference  # noqa: E402

MODES = torch_reference.MODES


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
        model.quantizer.get_indices(
            model.pre_quantization(model.encoder(images))
        )
    )
    np.testing.assert_array_equal(reference.encode(images), codes)


def test_reference_in_bfloat16_channels_last_stays_close_to_float32(one_thread):
    images = np.random.default_rng(0).uniform(-0.5, 0.5, (2, 32, 32, 3))
    images = images.astype("float32")
    outputs = {}
    for mode in MODES:
        reference = torch_reference.build_reference(mode=mode).eval()
        with torch.no_grad():
            outputs[mode] = reference(images)[0].numpy()
    fast = torch_reference.build_reference(mode="bfloat16_channels_last")
    weight = fast.encoder.conv.weight
    assert weight.is_contiguous(memory_format=torch.channels_last)
    assert outputs["float32"].shape == outputs[MODES[1]].shape
    np.testing.assert_allclose(outputs[MODES[1]], outputs["float32"], atol=0.05)


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # libgomp spin-waits badly on a busy machine
    yield
    torch.set_num_threads(threads)


HOST_READS = (
    "item",
    "tolist",
    "numpy",
    "cpu",
    "__bool__",
    "__float__",
    "__int__",
    "__index__",
)


def _refuse(name):
    def read(self, *args, **kwargs):
        raise AssertionError(f"host synchronisation: Tensor.{name}")

    return read


@contextlib.contextmanager
def _no_host_reads():
    """Every way of reading a tensor's value on the host raises."""
    with pytest.MonkeyPatch.context() as patch:
        for name in HOST_READS:
            patch.setattr(torch.Tensor, name, _refuse(name))
        yield


def test_the_guard_catches_host_reads():
    with _no_host_reads():
        for read in (lambda t: t.item(), float, bool, lambda t: t.numpy()):
            with pytest.raises(AssertionError, match="host synchronisation"):
                read(torch.ones(()))


@pytest.mark.parametrize("mode", MODES)
def test_reference_train_steps_never_read_tensors_on_the_host(mode, one_thread):
    reference = torch_reference.build_reference(data_variance=0.06, mode=mode)
    images = np.random.default_rng(1).uniform(-0.5, 0.5, (8, 32, 32, 3))
    images = images.astype("float32")
    before = reference.encoder.downsamples[0].weight.detach().clone()
    codebook = reference.quantizer.codebook.clone()
    with _no_host_reads():
        # Step 1 runs the k-means initialisation, every step the restarts.
        losses = torch.stack([reference.train_step(images) for _ in range(3)])
    assert bool(torch.isfinite(losses).all())
    assert 0 < float(losses[0]) < 100
    assert reference.quantizer.initialized  # k-means ran on batch 1
    assert not torch.equal(before, reference.encoder.downsamples[0].weight)
    assert not torch.equal(codebook, reference.quantizer.codebook)
    assert 0 < float(reference.quantizer.batch_perplexity) <= 512


@pytest.mark.parametrize("plain", [False, True])
def test_reference_restarts_dead_codes_by_the_librarys_rule(plain):
    from keras_vqvae.layers import VectorQuantizerEMA

    k, d = 8, 4
    threshold = 0.0 if plain else 1.0
    # Every vector equal: each restart draws the same row on both sides,
    # whatever their random generators.
    vector = np.random.default_rng(0).standard_normal((1, d))
    z = np.tile(vector.astype("float32"), (2, 3, 3, 1))
    layer = VectorQuantizerEMA(k, d, dead_code_threshold=threshold, seed=0)
    layer.build(z.shape)
    peer = torch_reference.VectorQuantizerEMA(
        k, d, dead_code_threshold=threshold
    ).train()
    with torch.no_grad():
        peer.codebook.copy_(torch.from_numpy(np.asarray(layer.codebook)))
        peer.ema_dw.copy_(peer.codebook)
    for _ in range(3):
        layer(z, training=True)
        peer(torch.from_numpy(z))
    for name in ("codebook", "ema_cluster_size", "ema_dw", "code_usage"):
        np.testing.assert_allclose(
            getattr(peer, name).numpy(),
            np.asarray(getattr(layer, name)),
            atol=1e-6,
            err_msg=name,
        )
    restarted = np.asarray(layer.code_usage) == threshold
    assert restarted.any() != plain  # the case restarts codes, or not


def test_flops_per_image_match_a_hand_count_of_a_tiny_architecture():
    config = {
        "image_shape": (8, 8, 1),
        "num_embeddings": 3,
        "embedding_dim": 2,
        "hidden_dim": 4,
        "num_residual_layers": 1,
        "residual_hidden_dim": 2,
        "num_downsamples": 1,
    }
    # 2 * output pixels * out channels * kernel area * in channels:
    encoder = (
        2 * 16 * 4 * 16 * 1  # 4x4/2 conv 1->4, to 4x4
        + 2 * 16 * 4 * 9 * 4  # 3x3 conv 4->4
        + 2 * 16 * 2 * 9 * 4  # residual 3x3 4->2
        + 2 * 16 * 4 * 1 * 2  # residual 1x1 2->4
        + 2 * 16 * 2 * 1 * 4
    )  # pre-quantisation 1x1 4->2
    distances = 2 * 16 * 3 * 2  # N * K * D * 2
    decoder = (
        2 * 16 * 4 * 9 * 2  # 3x3 conv 2->4
        + 2 * 16 * 2 * 9 * 4
        + 2 * 16 * 4 * 1 * 2  # residual
        + 2 * 16 * 1 * 16 * 4
    )  # 4x4/2 transposed 4->1, 16 inputs
    assert (encoder + distances, decoder) == (9664, 6912)
    assert roofline.flops_per_image(config) == {
        "encode": encoder + distances,
        "decode": decoder,
        "train": 3 * (encoder + decoder) + distances,
    }


def test_flops_per_image_match_torchs_flop_counter_on_the_peer(one_thread):
    from torch.utils.flop_counter import FlopCounterMode

    reference = torch_reference.build_reference()
    flops = roofline.flops_per_image(cifar10.preset_config())
    images = np.random.default_rng(0).uniform(-0.5, 0.5, (2, 32, 32, 3))
    images = images.astype("float32")
    codes = reference.encode(images)
    for op, run in (
        ("encode", lambda: reference.encode(images)),
        ("decode", lambda: reference.decode_indices(codes)),
    ):
        with FlopCounterMode(display=False) as counter:
            run()
        assert counter.get_total_flops() == 2 * flops[op], op


def test_fmt_rate_gives_gflops_and_the_fraction_of_its_precisions_peak():
    roof = {
        "flops_per_image": {"train": 250e6, "encode": 50e6},
        "peak": {"float32": 200.0, "bfloat16": 500.0},
    }
    assert (
        roofline.fmt_rate(1000.0, roof, "train", "mixed_bfloat16")
        == "1,000 (250 GFLOP/s, 50% of peak)"
    )
    assert (
        roofline.fmt_rate(1000.0, roof, "encode", "float32")
        == "1,000 (50.0 GFLOP/s, 25% of peak)"
    )
    assert roofline.fmt_rate(1000.0, None, "train", "float32") == "1,000"


def test_roofline_keeps_the_best_of_its_measurements():
    def measured(torch_rates, tf_rates):
        flops = {"train": 3e6, "encode": 1e6, "decode": 1e6}
        return {
            "size": 8,
            "flops_per_image": flops,
            "gflops": {
                "torch": dict(zip(roofline.PRECISIONS, torch_rates)),
                "tensorflow": dict(zip(roofline.PRECISIONS, tf_rates)),
            },
        }

    best = roofline.best(
        [
            measured((80, 300), (150, 350)),
            {"error": "x"},
            measured((90, 380), (120, 340)),
        ]
    )
    assert best["peak"] == {"float32": 150, "bfloat16": 380}
    assert best["peak_by"] == {"float32": "tensorflow", "bfloat16": "torch"}
    assert best["gflops"]["torch"] == {"float32": 90, "bfloat16": 380}
    assert best["measurements"] == 2
    assert roofline.best([{"error": "x"}]) == {"error": "x"}
    assert "| bfloat16 | 380 | 350 | 380 (torch) |" in roofline.render(best)


def test_time_fit_refuses_steps_that_split_a_compiled_call():
    model = types.SimpleNamespace(steps_per_execution=8)
    with pytest.raises(ValueError, match="multiples"):
        timing.time_fit(model, None, 32, warmup=8, steps=4)


def test_time_peer_keeps_the_fastest_thread_count():
    class Peer:
        def train_step(self, x):
            time.sleep(0.004 if torch.get_num_threads() == 1 else 0.02)
            return torch.zeros(())

    x = np.zeros((4, 1), "float32")
    rate, finite, threads = timing.time_peer(Peer(), x, 1, 1, 2, [2, 1])
    assert (finite, threads) == (True, 1) and rate > 0


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
        Conv2DTranspose
    }
    assert {type(layer) for layer in plain.decoder.upsamples} == {
        keras.layers.Conv2DTranspose
    }
    for a, b in zip(model.get_weights(), plain.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert cifar10.max_output_difference(model, plain) < 1e-5


def _peer(value):
    return {mode: value for mode in MODES}


def _train_row(features, batch_size, ratio, **extra):
    return {
        "features": features,
        "batch_size": batch_size,
        "keras": {"mixed_bfloat16": 1000.0, "float32": 500.0},
        "torch": _peer(700.0),
        "ratio": {
            "mixed_bfloat16": {**_peer(ratio), "best": ratio},
            "float32": {**_peer(0.7), "best": 0.7},
        },
        **extra,
    }


def _codec_row(op, method, ratio):
    return {
        "op": op,
        "policy": "mixed_bfloat16",
        "method": method,
        "images": 64,
        "keras": 2000.0,
        "torch": _peer(1500.0),
        "ratio": {**_peer(ratio), "best": ratio},
    }


def _results(train_ratios, codec_ratio=1.4):
    before = dict(
        keras_conv_transpose=150.0,
        keras_conv_transpose_ratio={**_peer(0.2), "best": 0.2},
        speedup_of_our_conv_transpose=4.5,
    )
    return {
        "machine": {"cores": 2},
        "torch_threads": [2, 1],
        "roofline": {
            "flops_per_image": {"train": 265e6, "encode": 53e6, "decode": 38e6},
            "peak": {"float32": 200.0, "bfloat16": 400.0},
        },
        "model": {
            "tensorflow": {
                "fast_policy": "mixed_bfloat16",
                "steps_per_execution": 8,
                "keras_trainable_params": 1,
                "torch_trainable_params": 1,
                "train": [
                    _train_row(features, batch, ratio)
                    for features in ("preset", "plain EMA")
                    for batch, ratio in zip((32, 128), train_ratios)
                ],
                "codec": [
                    _codec_row("encode", "model.encode", codec_ratio),
                    _codec_row("encode", "compiled predict", 0.5),
                    _codec_row("decode", "model.decode_indices", 1.35),
                ],
            },
            "jax": {
                "fast_policy": "mixed_bfloat16",
                "steps_per_execution": 8,
                "keras_trainable_params": 1,
                "torch_trainable_params": 1,
                "train": [_train_row("preset", 32, 0.9, **before)],
            },
        },
    }


@pytest.mark.parametrize(
    "train_ratios, codec_ratio, verdicts",
    [
        ((1.35, 1.3), 1.4, ("**met**", "**met**")),
        ((1.35, 1.29), 1.4, ("**not met**", "**met**")),
        ((1.35, 1.3), 1.2, ("**met**", "**not met**")),
    ],
)
def test_goal_states_the_issue_target_and_whether_it_is_met(
    train_ratios, codec_ratio, verdicts
):
    text = "\n".join(
        throughput.render_goal(_results(train_ratios, codec_ratio))
    )
    assert (
        "TensorFlow-backend training at >= 1.3x the strongest PyTorch "
        "peer at batch 32 and at batch 128, same run; encode/decode at "
        ">= 1.3x likewise" in text
    )
    assert f"- Training: {verdicts[0]}" in text
    assert f"- Encode/decode: {verdicts[1]}" in text
    assert "plain EMA features, batch 128" in text
    assert "batch 32: 0.20x -> 0.70x (4.50x faster)" in text


def test_goal_is_not_met_without_batch_128():
    results = _results((1.5, 1.5))
    tf = results["model"]["tensorflow"]
    tf["train"] = [row for row in tf["train"] if row["batch_size"] == 32]
    text = "\n".join(throughput.render_goal(results))
    assert (
        "- Training: **not met** (preset features, batch 32: 1.50x; "
        "plain EMA features, batch 32: 1.50x; batch 128 not measured)." in text
    )


def test_training_and_codec_tables_show_both_peers_and_the_roofline():
    results = _results((1.35, 1.3))
    training = "\n".join(throughput.render_training(results))
    assert (
        "| PyTorch float32 img/s | PyTorch bf16 autocast + "
        "channels_last img/s |" in training
    )
    assert "Keras / strongest peer |" in training
    assert "the faster, in each round, of 2 threads and 1 thread" in training
    # 1000 img/s x 265 MFLOP = 265 GFLOP/s of a 400 GFLOP/s bf16 peak.
    assert (
        "| tensorflow | plain EMA | 128 | mixed_bfloat16 | 1,000 (265 "
        "GFLOP/s, 66% of peak) | 700 (186 GFLOP/s, 93% of peak) | 700 (186 "
        "GFLOP/s, 46% of peak) | 1.30x | 1.30x | 1.30x |" in training
    )
    assert (
        "| jax, decoder with `keras.layers.Conv2DTranspose` (before "
        "the fix) | preset | 32 | float32 | 150 (39.8 GFLOP/s, 20% of "
        "peak) |" in training
    )
    codec = "\n".join(throughput.render_codec(results))
    assert (
        "| tensorflow | encode | mixed_bfloat16 | model.encode | "
        "2,000 (106 GFLOP/s, 26% of peak) | 1,500 (79.5 GFLOP/s, 40% of "
        "peak) |" in codec
    )


def test_profile_table_lists_the_top_ops_by_self_time():
    profile = {
        "policy": "mixed_bfloat16",
        "steps_per_execution": 8,
        "steps": 16,
        "traced_s": 1.6,
        "out_dir": "runs/trace",
        "ops": [
            {
                "type": "Conv2DBackpropFilter",
                "self_us": 480e3,
                "occurrences": 96,
            },
            {"type": "_MklMatMul", "self_us": 320e3, "occurrences": 32},
        ],
    }
    lines = tf_profile.render(profile, top=1)
    assert (
        "| op type | total self ms | ms per step | % of step (wall) | "
        "% of op time |" in lines
    )
    # 480 ms over 16 steps of 100 ms: 30 ms, 30% of a step, 60% of op time.
    assert "| Conv2DBackpropFilter | 480 | 30.00 | 30.0% | 60.0% |" in lines
    assert not any("_MklMatMul" in line for line in lines)


def test_sampling_table_lists_each_backend_and_preset():
    results = {
        "tensorflow": {
            "rows": [
                {
                    "preset": "mnist",
                    "latent_shape": [7, 7],
                    "num_embeddings": 128,
                    "parameters": 2072000,
                    "n": 64,
                    "first_call_s": 3.0,
                    "samples_per_s": 50.0,
                    "images_per_s": 40.0,
                }
            ]
        },
        "jax": {"error": "boom"},
    }
    text = "\n".join(sampling.render(results))
    assert (
        "| tensorflow | mnist | 7x7, K=128 | 2,072,000 | 64 | 50.0 | 40.0 "
        "| 3.0 |" in text
    )
    assert "| jax | failed: boom" in text
    assert sampling.render(None) == []


def test_a_skipped_quantizer_sweep_writes_no_table():
    # `--no-quantizer` leaves the results without a "quantizer" entry.
    assert quantizer_memory.render(None) == []
    ran = "\n".join(
        quantizer_memory.render([{"n": 4, "k": 8, "error": "boom"}])
    )
    assert "### `VectorQuantizer` forward" in ran


def test_speech_table_has_a_row_per_depth_and_generation_batch():
    generation = [
        {
            "batch": 1,
            "audio_s": 1.0,
            "first_call_s": 9.0,
            "real_time_factor": 0.04,
        },
        {
            "batch": 16,
            "audio_s": 16.0,
            "first_call_s": 12.0,
            "real_time_factor": 0.5,
        },
    ]
    row = {
        "layers": 20,
        "parameters": 1234567,
        "receptive_field": 2047,
        "first_fit_s": 5.0,
        "train_audio_s_per_s": 1.5,
        "generation": generation,
    }
    results = {
        "tensorflow": {"precision": "mixed_bfloat16", "rows": [row]},
        "torch": {"error": "boom"},
    }
    text = "\n".join(speech.render(results))
    assert (
        "| tensorflow (mixed_bfloat16) | 20 | 1,234,567 | 2047 | 1.5 | 1 | "
        "1 | 0.0400 | 9.0 |" in text
    )
    assert "| 16 | 1 | 0.5000 | 12.0 |" in text
    assert "| torch | failed: boom" in text
    assert speech.render(None) == []


@pytest.mark.parametrize(
    "command, cwd",
    [
        ([str(TOOLS / "benchmark")], REPO_ROOT),
        (["-m", "tools.benchmark"], REPO_ROOT),
        (["-m", "benchmark"], TOOLS),
    ],
)
def test_the_package_runs_as_a_folder_and_as_a_module(command, cwd):
    proc = subprocess.run(
        [sys.executable, *command, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith(f"usage: {report.COMMAND} ")
    assert "--quick" in proc.stdout


@pytest.mark.slow  # ~20 s: TensorFlow in a subprocess
def test_profile_tf_prints_the_top_ops(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            str(TOOLS / "benchmark"),
            "--profile-tf",
            str(tmp_path / "trace"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO_ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "| op type | total self ms |" in proc.stdout
    assert re.search(
        r"^\| \w+ \| [\d,.]+ \| [\d.]+ \| [\d.]+% \|", proc.stdout, re.M
    ), proc.stdout
    assert list((tmp_path / "trace").glob("plugins/profile/*/*.xplane.pb"))


@pytest.mark.slow  # ~25 s: TensorFlow and PyTorch in subprocesses
def test_onednn_primitives_prints_both_sides_kernels():
    proc = subprocess.run(
        [sys.executable, str(TOOLS / "benchmark"), "--onednn-primitives", "8"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO_ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    # The decoder's first transposed convolution, as TensorFlow runs it,
    # timed on both sides.
    assert re.search(
        r"^\| convolution \| backward_data \| "
        r"`mb8_ic64oc128_ih16oh8kh4sh2dh0ph1_iw16ow8kw4sw2dw0pw1` \| "
        r"[\d.]+ \(\d+\) \| [\d.]+ \(\d+\) \| [\d.]+x \|$",
        proc.stdout,
        re.M,
    ), proc.stdout


@pytest.mark.slow  # ~2 min: two Keras backends in subprocesses
def test_quick_benchmark_writes_a_table_with_ratios(tmp_path):
    output = tmp_path / "bench.md"
    proc = subprocess.run(
        [
            sys.executable,
            str(TOOLS / "benchmark"),
            "--quick",
            "--backends",
            "tensorflow,torch",
            "--output",
            str(output),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=REPO_ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = output.read_text()
    assert report.BEGIN in text and report.END in text
    assert (
        "- Command: `python tools/benchmark --quick --backends "
        "tensorflow,torch --output" in text
    )
    assert re.search(r"Machine: \d+ cores", text)
    rate = r"[\d,.]+ \([\d,.]+ GFLOP/s, \d+% of peak\)"
    for backend in ("tensorflow", "torch"):
        for features in ("preset", "plain EMA"):
            row = re.search(
                rf"^\| {backend} \| {features} \| 32 \| float32 \| {rate} "
                rf"\| {rate} \| {rate} \| (\d+\.\d+)x \| (\d+\.\d+)x \| "
                r"(\d+\.\d+)x \|",
                text,
                re.M,
            )
            assert row, f"no {features} training row for {backend}:\n{text}"
            assert float(row.group(3)) > 0
        assert re.search(rf"^\| {backend} \| encode \|", text, re.M)
        assert re.search(rf"^\| {backend} \| decode \|", text, re.M)
    assert (
        "Trainable parameters: Keras 662,723, PyTorch reference 662,723 "
        "(equal)" in text
    )
    assert (
        "TensorFlow-backend training at >= 1.3x the strongest PyTorch "
        "peer" in text
    )
    assert re.search(
        r"^\| bfloat16 \| [\d,.]+ \| [\d,.]+ \| [\d,.]+ "
        r"\((torch|tensorflow)\) \|",
        text,
        re.M,
    ), text
    quantizer_row = re.search(
        r"^\| 1024 \| 128 \| 64 \| ([\d.]+) \|", text, re.M
    )
    assert quantizer_row, text
    for backend in ("tensorflow", "torch"):
        sampling_row = re.search(
            rf"^\| {backend} \| mnist \| 7x7, K=128 \| [\d,]+ \| 4 \| "
            r"([\d,.]+) \|",
            text,
            re.M,
        )
        assert sampling_row, f"no sampling row for {backend}:\n{text}"
        assert float(sampling_row.group(1).replace(",", "")) > 0
        speech_row = re.search(
            rf"^\| {backend} \(\w+\) \| 4 \| [\d,]+ \| \d+ \| ([\d,.]+) \| 1 "
            r"\| ([\d.]+) \|",
            text,
            re.M,
        )
        assert speech_row, f"no speech row for {backend}:\n{text}"
        assert float(speech_row.group(2)) > 0


def test_every_ablation_variant_trains_a_step():
    from benchmark import jax_probe

    x = cifar10.images(4)
    for label, model in jax_probe._ablation_models("tensorflow").items():
        model.compile()
        history = model.fit(x, batch_size=2, verbose=0).history
        assert np.isfinite(history["loss"][0]), label


def _onednn_line(primitive, impl, pass_, shape, ms):
    return (
        f"onednn_verbose,v1,primitive,exec,cpu,{primitive},{impl},{pass_},"
        f"src:bf16::blocked:acdb::f0 dst:bf16::blocked:acdb::f0,,"
        f"alg:convolution_direct,{shape},{ms}"
    )


ADJOINT = "mb8_ic64oc128_ih16oh8kh4sh2dh0ph1_iw16ow8kw4sw2dw0pw1"
DECONV = "mb8_ic128oc64_ih8oh16kh4sh2dh0ph1_iw8ow16kw4sw2dw0pw1"
RESIDUAL = "mb8_ic128oc32_ih8oh8kh3sh1dh0ph1_iw8ow8kw3sw1dw0pw1"


def test_onednn_trace_counts_only_the_traced_steps_and_names_deconvolutions_by_their_adjoint():
    before = _onednn_line(
        "convolution",
        "brg_conv_fwd:avx512_core_bf16",
        "forward_training",
        RESIDUAL,
        99.0,
    )
    traced = [
        _onednn_line(
            "convolution",
            "jit_bf16:avx512_core_bf16",
            "backward_weights",
            RESIDUAL,
            3.0,
        ),
        _onednn_line(
            "convolution",
            "brg_conv_fwd:avx512_core_bf16",
            "forward_training",
            RESIDUAL,
            1.0,
        ),
        "onednn_verbose,v1,primitive,create:cache_miss,cpu,convolution,x,"
        f"forward_training,,,{RESIDUAL},0.5",
        # PyTorch's transposed convolution, forward: TensorFlow runs the
        # same layer as the backward-data pass of the strided convolution.
        _onednn_line(
            "deconvolution",
            "brg_deconv:avx512_core_bf16",
            "forward_training",
            DECONV,
            2.0,
        ),
        "onednn_verbose,v1,primitive,exec,cpu,reorder,jit:uni,undef,"
        "src:bf16::blocked:cdba::f0 dst:bf16::blocked:BcdA64b2a::f0,,,"
        "32x128x3x3,0.5",
    ]
    stdout = "\n".join(
        [before, onednn_trace.START, *traced, *traced, onednn_trace.END, before]
    )
    primitives = onednn_trace.parse(stdout, steps=2)
    assert primitives == {
        ("convolution", "backward_weights", RESIDUAL): {"ms": 3.0, "calls": 1},
        ("convolution", "forward", RESIDUAL): {"ms": 1.0, "calls": 1},
        ("convolution", "backward_data", ADJOINT): {"ms": 2.0, "calls": 1},
        ("reorder", "", ""): {"ms": 0.5, "calls": 1},
    }
    with pytest.raises(ValueError, match="no oneDNN trace markers"):
        onednn_trace.parse(before)


def test_onednn_table_puts_both_sides_of_a_kernel_on_one_row():
    def trace(primitives, step_ms):
        return {
            "policy": "p",
            "batch_size": 8,
            "step_ms": step_ms,
            "primitives": primitives,
        }

    keras = {
        ("convolution", "backward_weights", RESIDUAL): {"ms": 3.0, "calls": 4},
        ("convolution", "backward_data", ADJOINT): {"ms": 2.0, "calls": 1},
        ("reorder", "", ""): {"ms": 1.0, "calls": 12},
    }
    torch_side = {
        ("convolution", "backward_weights", RESIDUAL): {"ms": 2.0, "calls": 4},
        ("convolution", "backward_data", ADJOINT): {"ms": 2.5, "calls": 1},
    }
    lines = onednn_trace.render(
        {"keras": trace(keras, 10.0), "torch": trace(torch_side, 9.0)}, top=1
    )
    assert lines[0].startswith("Batch 8, 8 training steps; wall ms per step:")
    assert (
        f"| convolution | backward_weights | `{RESIDUAL}` | 3.00 (4) | "
        "2.00 (4) | 1.50x |" in lines
    )
    assert "| reorder | - | - | 1.00 (12) | - | n/a |" in lines
    assert (
        "| other convolutions | - | `1 shape` | 2.00 (1) | 2.50 (1) | 0.80x |"
        in lines
    )
    assert "| all primitives | - | - | 6.00 (17) | 4.50 (5) | 1.33x |" in lines
    failed = onednn_trace.render({"keras": {"error": "boom"}, "torch": {}})
    assert failed == ["oneDNN trace failed: keras: boom"]
