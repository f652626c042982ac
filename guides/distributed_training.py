"""
Title: Data-parallel training of a VQ-VAE
Author: keras-vqvae contributors
Date created: 2026/11/25
Last modified: 2026/12/01
Description: Train a VQ-VAE on several devices with `keras.distribution` (JAX) or `tf.distribute.MirroredStrategy` (TensorFlow), shown on two virtual CPU devices, and how to scale past one machine.
Accelerator: None
"""

"""
## Introduction

In data-parallel training every device holds a full copy of the model and
processes its own slice of each batch; the gradients are then combined so that
all copies take the same step. The result is the same as training on one
device with the whole (global) batch, only faster when the devices are real.

Keras offers data parallelism through the backend:

- **JAX**: `keras.distribution.DataParallel`. Variables are replicated on a
  device mesh, batches are sharded along it, and XLA compiles one program for
  the global batch.
- **TensorFlow**: `tf.distribute.MirroredStrategy`. Models created in the
  strategy's scope get mirrored variables, and `fit` runs the train step once
  per replica and sums the gradients.

(The PyTorch backend has no `fit`-level data parallelism in Keras; use
`torch.distributed` with a custom training loop.)

The quantizer's own state (the EMA codebook and its statistics, k-means
initialisation, dead-code restarts) is not learned by gradients, so it does
not go through the gradient all-reduce. With JAX the layer sees the global
batch anyway. With TensorFlow (and torch) each replica sees only its slice,
so the quantizer sums its per-code counts and sums across the replicas before
each update, draws restarted codes from the global batch, and runs k-means on
the gathered first batch: every replica takes the step that one device would
take with the global batch.

You do not need several GPUs to try this: both backends can split the host CPU
into several *virtual* devices, which is how this guide runs. On a machine with
GPUs, leave out the CPU set-up below and list the GPUs instead.

Run it with either backend:

```
KERAS_BACKEND=jax python guides/distributed_training.py
KERAS_BACKEND=tensorflow python guides/distributed_training.py
```
"""

"""
## Setup

Both virtual-device settings must be made **before** the backend initialises:
`XLA_FLAGS` before JAX is imported, and TensorFlow's logical devices before it
runs its first operation.
"""

import os
import sys
import tempfile
from pathlib import Path

NUM_DEVICES = 2
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
_flag = f"--xla_force_host_platform_device_count={NUM_DEVICES}"
if "xla_force_host_platform_device_count" not in os.environ.get(
    "XLA_FLAGS", ""
):
    os.environ["XLA_FLAGS"] = (
        f"{os.environ.get('XLA_FLAGS', '')} {_flag}".strip()
    )

import keras

BACKEND = keras.backend.backend()
if BACKEND == "tensorflow":
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * NUM_DEVICES
    )
elif BACKEND != "jax":
    print(f"This guide needs the JAX or TensorFlow backend, not {BACKEND!r}.")
    sys.exit(0)

import numpy as np

from keras_vqvae.data import load_split
from keras_vqvae.data import make_dataset
from keras_vqvae.data import normalize
from keras_vqvae.models import VQVAE
from keras_vqvae.workflows import measure_reconstructions

QUICK = os.environ.get("KERAS_VQVAE_GUIDE_QUICK") == "1"
OUTPUT_DIR = Path(
    os.environ.get("GUIDE_OUTPUT_DIR")
    or tempfile.mkdtemp(prefix="distributed_training_")
)
OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
DATA = Path(os.environ.get("KERAS_VQVAE_DATA", "../shared/datasets"))
MNIST = str(DATA / "mnist") if (DATA / "mnist").is_dir() else "tfds:mnist"

NUM_TRAIN = 512 if QUICK else None  # None: all 60,000
NUM_TEST = 128 if QUICK else 10_000
PER_DEVICE_BATCH = 16 if QUICK else 64
GLOBAL_BATCH = PER_DEVICE_BATCH * NUM_DEVICES
EPOCHS = 3 if QUICK else 5
print(f"backend: {BACKEND}; outputs go to {OUTPUT_DIR}")

"""
## Data and model

Each step consumes one *global* batch, which is split evenly across the
devices: pick a global batch size divisible by the number of devices, and
drop the last partial batch so that every step can be split.
"""

train_images, _ = load_split(MNIST, "train", limit=NUM_TRAIN)
test_images, _ = load_split(MNIST, "test", limit=NUM_TEST)
train_ds = make_dataset(
    train_images, batch_size=GLOBAL_BATCH, seed=0, drop_remainder=True
)
data_variance = float(np.var(normalize(train_images)))

model_config = dict(
    image_shape=(28, 28, 1),
    data_variance=data_variance,
    # k-means initialisation and dead-code restarts keep the codebook in use.
    kmeans_init=True,
    dead_code_threshold=1.0,
    seed=0,
    **(
        dict(
            num_embeddings=32,
            embedding_dim=8,
            hidden_dim=16,
            num_residual_layers=1,
            residual_hidden_dim=8,
        )
        if QUICK
        # The architecture of the bundled `mnist` preset.
        else dict(
            num_embeddings=128,
            embedding_dim=32,
            hidden_dim=64,
            num_residual_layers=2,
            residual_hidden_dim=32,
        )
    ),
)
# The default quantizer, "ema": its codebook follows moving averages.
LEARNING_RATE = 1e-3


def make_model():
    model = VQVAE(**model_config)
    model.compile(optimizer=keras.optimizers.Adam(LEARNING_RATE))
    return model


"""
## A reference: one step on one device

To check the distributed set-up, first train a model for one step on one
device, with the global batch. A data-parallel step from the same weights
must give the same new weights.
"""


def parameters(model):
    """The model's weights, without the quantizer's `batch_perplexity` and
    `batch_codebook_usage`: diagnostics of the last batch, not parameters."""
    return [
        w
        for w in model.weights
        if not w.path.split("/")[-1].startswith("batch_")
    ]


def quantizer_state(model):
    """The quantizer's non-trainable weights: codebook, EMA statistics, usage."""
    return {
        w.path.split("/")[-1]: w for w in model.quantizer.non_trainable_weights
    }


first_batch = normalize(train_images[:GLOBAL_BATCH])
reference = make_model()
initial_weights = reference.get_weights()
reference.fit(
    first_batch, batch_size=GLOBAL_BATCH, epochs=1, shuffle=False, verbose=0
)
reference_values = [np.asarray(w) for w in parameters(reference)]
reference_quantizer = {
    k: np.asarray(w) for k, w in quantizer_state(reference).items()
}

"""
## Distributing the model

With JAX, `DataParallel` over the listed devices replicates every variable
and shards the batch axis of the data; `set_distribution` makes it the
default for every model created afterwards (or use `with distribution.scope():`).

With TensorFlow, the model (its variables) and the optimizer (through
`compile`) must be created inside `strategy.scope()`; `fit` then distributes
the data by itself.
"""

if BACKEND == "jax":
    # Or keras.distribution.list_devices() for the GPUs.
    devices = keras.distribution.list_devices("cpu")
    print("devices:", devices)
    distribution = keras.distribution.DataParallel(devices=devices)
    keras.distribution.set_distribution(distribution)
    distributed_scope = distribution.scope
else:
    devices = [d.name for d in tf.config.list_logical_devices("CPU")]
    print("devices:", devices)
    # Or tf.distribute.MirroredStrategy() for all the GPUs.
    strategy = tf.distribute.MirroredStrategy(devices)
    print("replicas in sync:", strategy.num_replicas_in_sync)
    distributed_scope = strategy.scope

with distributed_scope():
    probe = make_model()
print(
    "codebook placement:",
    getattr(probe.quantizer.codebook.value, "sharding", None)
    or [v.device for v in probe.quantizer.codebook.value.values],
)

"""
Take one data-parallel step from the reference's initial weights, on the same
batch, and compare.
"""

probe.set_weights(initial_weights)
probe.fit(
    first_batch, batch_size=GLOBAL_BATCH, epochs=1, shuffle=False, verbose=0
)
difference = max(
    float(np.max(np.abs(np.asarray(w) - expected)))
    for w, expected in zip(parameters(probe), reference_values)
)
print(
    f"one step on {NUM_DEVICES} devices vs one device: max weight difference {difference:.2e}"
)
# keras-vqvae 0.1.0 on TensorFlow: the gradients come out multiplied by the
# number of replicas (see "Train" below), which Adam absorbs up to its epsilon,
# so the step differs slightly; on JAX the two agree to float precision.
assert difference < (1e-5 if BACKEND == "jax" else 0.5 * LEARNING_RATE), (
    difference
)

"""
The quantizer's state after the step (k-means initialisation on the first
batch, the EMA update, restarted codes) depends only on the initial weights
and the global batch, so it must match the one-device step to float precision
on both backends, in every replica's copy.
"""

quantizer_difference = max(
    float(np.max(np.abs(np.asarray(copy) - reference_quantizer[name])))
    for name, w in quantizer_state(probe).items()
    for copy in getattr(w.value, "values", [w.value])
)
print(
    f"quantizer state on {NUM_DEVICES} devices vs one device: max difference {quantizer_difference:.2e}"
)
assert quantizer_difference < 1e-5, quantizer_difference

"""
## Train

From here on, training is ordinary Keras: create and compile the model in the
scope, and call `fit`. The data pipeline needs no change; `fit` splits every
global batch across the devices.
"""

with distributed_scope():
    model = make_model()
history = model.fit(train_ds, epochs=EPOCHS, shuffle=False, verbose=2)

"""
The reconstruction loss (the mean squared error divided by the data variance:
predicting the mean pixel value everywhere scores 1) must go down. With
TensorFlow, read `reconstruction_loss` rather than `loss`: keras-vqvae 0.1.0
logs `loss` multiplied by the number of replicas under `MirroredStrategy`.
"""

losses = history.history["reconstruction_loss"]
print(f"reconstruction loss per epoch: {[round(v, 4) for v in losses]}")
assert losses[-1] < losses[0], losses

"""
With TensorFlow, every replica holds its own copy of each variable; after
training, all copies must still be equal, the quantizer's codebook and EMA
statistics included (bit for bit: every replica computes its update from the
same all-reduced sums).
"""

if BACKEND == "tensorflow":
    worst = 0.0
    for variable in parameters(model):
        copies = [
            np.asarray(v)
            for v in getattr(variable.value, "values", [variable.value])
        ]
        worst = max(
            worst, max(float(np.max(np.abs(c - copies[0]))) for c in copies)
        )
    print(f"largest difference between replica copies of a weight: {worst:.2e}")
    assert worst == 0.0, worst

"""
## Use the trained model

Outside `fit`, the distributed model is used as any other: encode, decode,
evaluate, save.
"""

metrics = measure_reconstructions(model, test_images)
print(
    f"test PSNR {metrics['psnr_db']:.2f} dB, perplexity {metrics['perplexity']:.1f} "
    f"on {len(test_images)} images"
)
model.save_to_preset(
    OUTPUT_DIR / "distributed_preset", metadata={"backend": BACKEND}
)
reloaded = VQVAE.from_preset(OUTPUT_DIR / "distributed_preset")
assert np.array_equal(reloaded.encode(test_images), model.encode(test_images))
print("saved and reloaded", OUTPUT_DIR / "distributed_preset")

"""
## Scaling past one machine

Nothing in the model code changes when the devices are on several machines:
the same `VQVAE(...)`, `compile` and training step run on every host, and the
quantizer synchronises itself as above. What changes is how the processes find
each other, and the batch arithmetic:

- **TensorFlow**: `tf.distribute.MultiWorkerMirroredStrategy()`, created at
  program start on every worker, each with a `TF_CONFIG` environment variable
  naming the whole cluster and its own place in it, e.g.
  `{"cluster": {"worker": ["host0:12345", "host1:12345"]}, "task": {"type": "worker", "index": 0}}`.
  Create the model in `strategy.scope()` as above. (Keras 3's `fit` currently
  fails under this strategy when it reduces its scalar logs,
  tensorflow/tensorflow#72388; until that is fixed, loop over
  `strategy.experimental_distribute_dataset(...)` and call
  `strategy.run(model.train_step, args=(batch,))` in a `tf.function`.) On
  TPUs, `tf.distribute.TPUStrategy` with a `TPUClusterResolver` plays the same
  role for a TPU pod slice. (k-means initialisation gathers a first batch of
  data-dependent size, which XLA-compiled steps, as on TPUs, may refuse:
  there, leave `kmeans_init` off, or initialise the codebook on one device
  and load its weights.)
- **JAX**: call `jax.distributed.initialize(coordinator_address="host0:1234",
  num_processes=2, process_id=...)` on every host first (on Cloud TPU and
  SLURM it finds these by itself); `keras.distribution.list_devices()` then
  lists the devices of all hosts, and `DataParallel(devices=...)` (or a
  `DeviceMesh` over them) spans the machines. Each host feeds its own shard of
  the global batch.
- **PyTorch**: start one process per GPU with `torchrun --nnodes=2
  --nproc-per-node=8 --rdzv-endpoint=host0:29500 train.py`, call
  `torch.distributed.init_process_group("nccl")`, wrap the model in
  `torch.nn.parallel.DistributedDataParallel` and train with a custom loop; the
  quantizer all-reduces its statistics through the initialised process group
  (in training calls only, so an evaluation on one rank does not wait for the
  others).

The settings to revisit:

- **Global batch size**: per-device batch x number of devices, on all hosts.
  Keep it divisible by the number of devices, and drop the last partial batch.
- **Learning rate**: a larger global batch usually wants a larger learning
  rate (scale it with the batch and warm it up), or keep the global batch
  fixed and use fewer steps per device.
- **Addresses**: `TF_CONFIG` per worker, the JAX coordinator address and
  process ids, or torchrun's rendezvous endpoint; every host must reach the
  first one's port.
- **Data sharding**: each worker must read a different part of the data.
  `tf.distribute` shards a `tf.data` pipeline by itself
  (`tf.data.Options().experimental_distribute.auto_shard_policy`); with JAX
  and torch, give each process its own slice (e.g. `dataset.shard(num_hosts,
  host_index)` or a `DistributedSampler`).
"""
