"""Data-parallel training keeps the quantizers' state in sync (issue 13).

Each check runs in a fresh interpreter, because the virtual devices must be
set up before the backend initialises: TensorFlow's 2 logical CPUs under
`tf.distribute.MirroredStrategy`, JAX's 2 host devices
(`--xla_force_host_platform_device_count=2`) under
`keras.distribution.DataParallel`, and (slow) 2 processes on loopback with
`tf.distribute.MultiWorkerMirroredStrategy` or `torch.distributed` (gloo).

The same training steps run on one device with the global batch and
replicated with the batch split across the replicas. After them the
replicas' copies of every state weight must be identical (bit for bit), and
equal to the one-device state to float tolerance: the all-reduced sums add
in a different order. That holds for the EMA step, k-means initialisation
(on the gathered first batch, in replica order: the global batch) and
dead-code restarts (rows of the global batch drawn with the seed generator,
in the same state on every replica), with even and uneven splits.
"""

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
# Float tolerance against one device (measured: <= 1.2e-7).
TOLERANCE = 1e-5

# The quantizer state compared: every weight but the seed generator's.
COMMON = """
import contextlib, json, os, sys
import numpy as np

NAMES = ("codebook", "ema_cluster_size", "ema_dw", "code_usage",
         "initialized", "batch_perplexity", "batch_codebook_usage")


def batches(steps):
    # Two blobs of 3x3 latents (72 vectors per global batch of 8), so
    # codes are used unevenly and k-means has structure to find.
    rng = np.random.default_rng(0)
    out = []
    for _ in range(steps):
        z = rng.normal(size=(8, 3, 3, 4)).astype("float32")
        z[:4] += 3.0
        out.append(z)
    return out


def cases():
    from keras_vqvae.layers import VectorQuantizer, VectorQuantizerEMA

    ema = dict(
        ema_step=(VectorQuantizerEMA, dict(seed=1), 1),
        ema_kmeans=(VectorQuantizerEMA, dict(seed=1, kmeans_init=True), 2),
        ema_restarts=(VectorQuantizerEMA,
                      dict(seed=1, dead_code_threshold=1.0), 3),
        ema_all=(VectorQuantizerEMA, dict(seed=1, kmeans_init=True,
                                          dead_code_threshold=1.0), 4),
    )
    if os.environ["KERAS_BACKEND"] == "jax":
        return ema  # VectorQuantizer refuses codebook updates on JAX
    return dict(
        ema,
        vq_kmeans=(VectorQuantizer, dict(seed=1, kmeans_init=True), 2),
        vq_restarts=(VectorQuantizer, dict(seed=1, dead_code_threshold=1.0),
                     3),
    )


def initial_weights(name, cls, kwargs):
    layer = cls(16, 4, **kwargs)
    layer.build((None, 4))
    if "restarts" in name:
        # Codes 0-5 far away and unused for long: restarted at once.
        codebook = np.random.default_rng(1).normal(size=(16, 4))
        codebook[:6] = 50.0
        usage = np.ones(16)
        usage[:6] = 0.0
        layer.codebook.assign(codebook.astype("float32"))
        layer.code_usage.assign(usage.astype("float32"))
        if hasattr(layer, "ema_dw"):
            layer.ema_dw.assign(codebook.astype("float32"))
    return layer.get_weights()


def copies(variable):
    # A tf.distribute variable's per-replica copies, else the one value.
    import keras

    value = variable.value
    values = getattr(value, "values", None)
    if not isinstance(values, (list, tuple)):
        values = [value]
    return [keras.ops.convert_to_numpy(v) for v in values]


def state(layer):
    return {n: copies(getattr(layer, n)) for n in NAMES if hasattr(layer, n)}


def compare(single, replicated, initial=None):
    out = {"replicas": 0.0, "single": 0.0, "variables": {}}
    for name, values in replicated.items():
        ref = single[name][0]
        between = max(float(np.max(np.abs(v - values[0]))) for v in values)
        to_single = max(float(np.max(np.abs(v - ref))) for v in values)
        out["variables"][name] = [between, to_single]
        out["replicas"] = max(out["replicas"], between)
        out["single"] = max(out["single"], to_single)
    if initial is not None:
        # How far the codebook moved: the updates under test did happen.
        out["codebook_moved"] = float(
            np.max(np.abs(single["codebook"][0] - initial)))
    return out
"""

TF_MIRRORED = """
os.environ["KERAS_BACKEND"] = "tensorflow"
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras

from keras_vqvae.models import VQVAE

strategy = tf.distribute.MirroredStrategy(
    [d.name for d in tf.config.list_logical_devices("CPU")])
assert strategy.num_replicas_in_sync == 2


def run(cls, kwargs, weights, data, cut=None):
    scope = contextlib.nullcontext() if cut is None else strategy.scope()
    with scope:
        layer = cls(16, 4, **kwargs)
        layer.build((None, 4))
        layer.set_weights(weights)

    @tf.function(reduce_retracing=True)
    def step(z):
        if cut is None:
            return layer(z, training=True)
        return strategy.run(lambda part: layer(part, training=True),
                            args=(z,))

    for z in data:
        if cut is not None:
            z = strategy.experimental_distribute_values_from_function(
                lambda ctx: z[:cut] if ctx.replica_id_in_sync_group == 0
                else z[cut:])
        step(z)
    return state(layer)


results = {}
for name, (cls, kwargs, steps) in cases().items():
    weights = initial_weights(name, cls, kwargs)
    data = batches(steps)
    single = run(cls, kwargs, weights, data)
    for split, cut in (("even", 4), ("uneven", 5)):
        results[f"{name}/{split}"] = compare(
            single, run(cls, kwargs, weights, data, cut), weights[0])

# One `fit` step of a VQ-VAE (EMA quantizer, k-means, restarts): the
# quantizer state after it depends only on the initial weights.
config = dict(image_shape=(8, 8, 1), num_embeddings=16, embedding_dim=4,
              hidden_dim=8, num_residual_layers=1, residual_hidden_dim=4,
              data_variance=1.0, seed=0, kmeans_init=True,
              dead_code_threshold=1.0)
x = np.random.default_rng(2).uniform(-0.5, 0.5, (16, 8, 8, 1))
x = x.astype("float32")


def fitted(scope):
    with scope:
        model = VQVAE(**config)
        model.compile(optimizer=keras.optimizers.Adam(1e-3))
        model(x[:1])
    model.set_weights(weights)
    model.fit(x, batch_size=16, epochs=1, shuffle=False, verbose=0)
    return model


reference = VQVAE(**config)
reference(x[:1])
weights = reference.get_weights()
initial = np.asarray(reference.quantizer.codebook)
results["fit"] = compare(state(fitted(contextlib.nullcontext()).quantizer),
                         state(fitted(strategy.scope()).quantizer), initial)
print("RESULTS " + json.dumps(results))
"""

JAX_DATA_PARALLEL = """
os.environ["KERAS_BACKEND"] = "jax"
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                           + " --xla_force_host_platform_device_count=2")
import jax
import keras

from keras_vqvae.models import VQVAE

devices = keras.distribution.list_devices("cpu")
assert len(devices) == 2, devices
distribution = keras.distribution.DataParallel(devices=devices)
sharding = jax.sharding.NamedSharding(
    distribution.device_mesh.backend_mesh,
    jax.sharding.PartitionSpec(distribution.batch_dim_name))


def run(cls, kwargs, weights, data, distributed):
    scope = distribution.scope() if distributed else contextlib.nullcontext()
    with scope:
        layer = cls(16, 4, **kwargs)
        layer.build((None, 4))
        layer.set_weights(weights)
        for z in data:
            if distributed:
                z = jax.device_put(z, sharding)
                assert len(z.sharding.device_set) == 2
            layer(z, training=True)
    return state(layer)


results = {}
for name, (cls, kwargs, steps) in cases().items():
    weights = initial_weights(name, cls, kwargs)
    data = batches(steps)
    results[name] = compare(run(cls, kwargs, weights, data, False),
                            run(cls, kwargs, weights, data, True),
                            weights[0])

config = dict(image_shape=(8, 8, 1), num_embeddings=16, embedding_dim=4,
              hidden_dim=8, num_residual_layers=1, residual_hidden_dim=4,
              data_variance=1.0, seed=0, kmeans_init=True,
              dead_code_threshold=1.0)
x = np.random.default_rng(2).uniform(-0.5, 0.5, (16, 8, 8, 1))
x = x.astype("float32")
reference = VQVAE(**config)
reference(x[:1])
weights = reference.get_weights()
initial = np.asarray(reference.quantizer.codebook)
reference.compile(optimizer=keras.optimizers.Adam(1e-3))
reference.fit(x, batch_size=16, epochs=1, shuffle=False, verbose=0)
with distribution.scope():
    model = VQVAE(**config)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    model(x[:1])
    model.set_weights(weights)
    model.fit(x, batch_size=16, epochs=1, shuffle=False, verbose=0)
results["fit"] = compare(state(reference.quantizer), state(model.quantizer),
                         initial)
print("RESULTS " + json.dumps(results))
"""

# argv: worker index, comma-separated ports, output file.
TF_MULTI_WORKER = """
index, ports, out = int(sys.argv[1]), sys.argv[2].split(","), sys.argv[3]
os.environ["KERAS_BACKEND"] = "tensorflow"
os.environ["TF_CONFIG"] = json.dumps({
    "cluster": {"worker": [f"localhost:{port}" for port in ports]},
    "task": {"type": "worker", "index": index},
})
import tensorflow as tf

# Created first, before any other TensorFlow operation.
strategy = tf.distribute.MultiWorkerMirroredStrategy()
import keras

from keras_vqvae.layers import VectorQuantizerEMA
from keras_vqvae.models import VQVAE

assert strategy.num_replicas_in_sync == len(ports)
kwargs = dict(seed=1, kmeans_init=True, dead_code_threshold=1.0)
data = batches(4)
with strategy.scope():
    layer = VectorQuantizerEMA(16, 4, **kwargs)
    layer.build((None, 4))


@tf.function
def step(z):
    return strategy.run(lambda part: layer(part, training=True), args=(z,))


for z in data:
    step(strategy.experimental_distribute_values_from_function(
        lambda ctx: np.array_split(z, ctx.num_replicas_in_sync)[
            ctx.replica_id_in_sync_group]))
single = VectorQuantizerEMA(16, 4, **kwargs)
single.build((None, 4))
for z in data:
    single(z, training=True)

# A VQ-VAE trained with a custom loop over `model.train_step` (Keras 3's
# `fit` fails under MultiWorkerMirroredStrategy when reducing its scalar
# logs: tensorflow/tensorflow#72388).
with strategy.scope():
    model = VQVAE(image_shape=(8, 8, 1), num_embeddings=16, embedding_dim=4,
                  hidden_dim=8, num_residual_layers=1, residual_hidden_dim=4,
                  data_variance=1.0, **kwargs)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    model(np.zeros((1, 8, 8, 1), "float32"))
    model.optimizer.build(model.trainable_variables)
x = np.random.default_rng(1).uniform(-0.5, 0.5, (32, 8, 8, 1))
dataset = strategy.experimental_distribute_dataset(
    tf.data.Dataset.from_tensor_slices(x.astype("float32")).batch(8))


@tf.function
def train_step(batch):
    logs = strategy.run(model.train_step, args=(batch,))
    return {k: strategy.reduce("MEAN", v, axis=None) for k, v in logs.items()}


for batch in dataset:
    logs = train_step(batch)
assert np.isfinite(float(logs["loss"]))
as_lists = lambda s: {k: v[0].tolist() for k, v in s.items()}
with open(out, "w") as f:
    json.dump({"layer": as_lists(state(layer)),
               "single": as_lists(state(single)),
               "model": as_lists(state(model.quantizer))}, f)
"""

# argv: rank, world size, port, output file.
TORCH_PROCESS_GROUP = """
rank, world, port, out = (int(sys.argv[1]), int(sys.argv[2]), sys.argv[3],
                          sys.argv[4])
os.environ["KERAS_BACKEND"] = "torch"
import torch.distributed as dist

results = {}
split = lambda z: np.array_split(z, world)[rank]
for replicated in (False, True):
    if replicated:
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}",
                                rank=rank, world_size=world)
    for name, (cls, kwargs, steps) in cases().items():
        layer = cls(16, 4, **kwargs)
        layer.build((None, 4))
        layer.set_weights(initial_weights(name, cls, kwargs))
        for z in batches(steps):
            layer(split(z) if replicated else z, training=True)
        results.setdefault(name, {})[str(replicated)] = {
            k: v[0].tolist() for k, v in state(layer).items()}
dist.destroy_process_group()
with open(out, "w") as f:
    json.dump(results, f)
"""


def _script(tmp_path, name, body):
    path = tmp_path / name
    path.write_text(textwrap.dedent(COMMON) + textwrap.dedent(body))
    return path


def _env(backend):
    env = dict(os.environ)
    env.update(
        KERAS_BACKEND=backend,
        TF_CPP_MIN_LOG_LEVEL="3",
        PYTHONPATH=os.pathsep.join(
            [str(REPO_ROOT), env.get("PYTHONPATH", "")]
        ).rstrip(os.pathsep),
    )
    env.pop("TF_CONFIG", None)
    return env


def _run_script(path, backend, timeout=600):
    result = subprocess.run(
        [sys.executable, str(path)],
        cwd=REPO_ROOT,
        env=_env(backend),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, (
        f"{path.name} exited with {result.returncode}\n"
        f"--- stdout ---\n{result.stdout[-4000:]}\n"
        f"--- stderr ---\n{result.stderr[-6000:]}"
    )
    line = [x for x in result.stdout.splitlines() if x.startswith("RESULTS ")]
    return json.loads(line[-1][len("RESULTS ") :])


def _run_processes(path, backend, args_of, outputs, timeout=300):
    """Runs one process per output file; returns their JSON outputs."""
    processes = [
        subprocess.Popen(
            [sys.executable, str(path), *args_of(i), str(out)],
            cwd=REPO_ROOT,
            env=_env(backend),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i, out in enumerate(outputs)
    ]
    logs = []
    try:
        for process in processes:
            logs.append(process.communicate(timeout=timeout)[0])
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    for process, log in zip(processes, logs):
        assert process.returncode == 0, f"{path.name}:\n{log[-6000:]}"
    return [json.loads(Path(out).read_text()) for out in outputs]


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _assert_in_sync(result, case):
    __tracebackhide__ = True
    assert result["replicas"] == 0.0, (case, result["variables"])
    assert result["single"] < TOLERANCE, (case, result["variables"])
    # The steps did change the codebook (k-means, EMA, restarts).
    assert result["codebook_moved"] > 1e-3, (case, result)


TF_CASES = [
    f"{case}/{split}"
    for case in (
        "ema_step",
        "ema_kmeans",
        "ema_restarts",
        "ema_all",
        "vq_kmeans",
        "vq_restarts",
    )
    for split in ("even", "uneven")
]
JAX_CASES = ["ema_step", "ema_kmeans", "ema_restarts", "ema_all"]


@pytest.fixture(scope="module")
def tf_mirrored(tmp_path_factory):
    pytest.importorskip("tensorflow")
    path = _script(tmp_path_factory.mktemp("tf"), "mirrored.py", TF_MIRRORED)
    return _run_script(path, "tensorflow")


@pytest.fixture(scope="module")
def jax_data_parallel(tmp_path_factory):
    pytest.importorskip("jax")
    path = _script(
        tmp_path_factory.mktemp("jax"), "data_parallel.py", JAX_DATA_PARALLEL
    )
    return _run_script(path, "jax")


@pytest.mark.parametrize("case", TF_CASES)
def test_mirrored_strategy_matches_one_device(tf_mirrored, case):
    """EMA step, k-means init and restarts under 2-replica MirroredStrategy,
    the global batch split evenly (4 + 4) or not (5 + 3)."""
    _assert_in_sync(tf_mirrored[case], case)


def test_mirrored_strategy_fit_step_matches_one_device(tf_mirrored):
    _assert_in_sync(tf_mirrored["fit"], "fit")


@pytest.mark.parametrize("case", JAX_CASES + ["fit"])
def test_jax_data_parallel_matches_one_device(jax_data_parallel, case):
    _assert_in_sync(jax_data_parallel[case], case)


@pytest.mark.slow
def test_multi_worker_mirrored_strategy_keeps_workers_in_sync(tmp_path):
    pytest.importorskip("tensorflow")
    path = _script(tmp_path, "worker.py", TF_MULTI_WORKER)
    ports = ",".join(str(p) for p in _free_ports(2))
    outputs = [tmp_path / f"worker_{i}.json" for i in range(2)]
    first, second = _run_processes(
        path, "tensorflow", lambda i: [str(i), ports], outputs
    )
    for name, values in first["layer"].items():
        np.testing.assert_array_equal(values, second["layer"][name], name)
        np.testing.assert_allclose(
            values, first["single"][name], atol=TOLERANCE, err_msg=name
        )
    # Both workers trained the same VQ-VAE: identical quantizer states.
    for name, values in first["model"].items():
        np.testing.assert_array_equal(values, second["model"][name], name)
    assert np.abs(np.array(first["model"]["codebook"])).max() > 0


@pytest.mark.slow
def test_torch_distributed_keeps_processes_in_sync(tmp_path):
    pytest.importorskip("torch")
    path = _script(tmp_path, "torch_worker.py", TORCH_PROCESS_GROUP)
    port = str(_free_ports(1)[0])
    outputs = [tmp_path / f"rank_{i}.json" for i in range(2)]
    first, second = _run_processes(
        path, "torch", lambda i: [str(i), "2", port], outputs
    )
    for case, runs in first.items():
        single, replicated = runs["False"], runs["True"]
        for name, values in replicated.items():
            np.testing.assert_array_equal(
                values, second[case]["True"][name], f"{case}: {name}"
            )
            np.testing.assert_allclose(
                values, single[name], atol=TOLERANCE, err_msg=f"{case}: {name}"
            )
