"""Benchmarks keras-vqvae against the strongest PyTorch peer, in one run.

Every number is taken on the same machine in the same run, and every speed
is also reported as a ratio against a reference measured alongside it
(interleaved rounds in one process), because the machine may be shared.

What is measured, one module per section:

* `throughput`: training images/s of the `cifar10` preset's architecture
  (`VQVAE(**VQVAE_PRESETS["cifar10"]["config"])`) with `model.fit` on
  in-memory arrays (batch 32 and 128, warm-up steps excluded), compiled as
  `keras_vqvae.workflows.train_vqvae` compiles it (`steps_per_execution=8`)
  in the library's training policy (`mixed_bfloat16` where the CPU has
  bfloat16 units) and in float32, for each Keras backend, each in its own
  subprocess (`KERAS_BACKEND` is set before Keras is imported), at two
  feature sets (the preset's k-means initialisation and dead-code
  restarts; the plain EMA quantiser), against `torch_reference` (the same
  architecture and features in plain PyTorch, no host synchronisation per
  step) in float32 and with bfloat16 autocast + channels_last (each at the
  faster of all cores and one thread), the faster of the two in each round
  being the reference; on JAX also the float32
  model built with `decoder_upsampling_layer=keras.layers.Conv2DTranspose`
  instead of the default `keras_vqvae.layers.Conv2DTranspose` (the ratio
  before and after the library's transposed-convolution fix, in the same
  rounds); encode and decode images/s (`model.encode` /
  `model.decode_indices`, which compile their batch computation once,
  and the same computations through `predict`);
* `roofline`: the matmul peak of this machine in float32 and bfloat16
  (PyTorch and TensorFlow, the best of each precision) and the FLOPs per
  image of train, encode and decode, counted from the architecture: each
  training and encode/decode row gets its GFLOP/s and its fraction of the
  peak of its precision;
* `options`: TensorFlow's `mixed_bfloat16` and XLA (`jit_compile=True`);
* `quantizer_memory`: `VectorQuantizer` forward time and peak memory on
  N x D inputs as N and K grow, in a fresh subprocess per size (peak RSS;
  the import's peak is reset through `/proc/self/clear_refs` where Linux
  allows it);
* `sampling`: samples/s of the bundled presets' PixelCNN priors per Keras
  backend (`PixelCNNPrior.sample`, and sample + `VQVAE.decode_indices`);
* `speech`: the speech VQ-VAE's teacher-forced training (seconds of audio
  per second) and WaveNet generation (real-time factor) per Keras backend;
* `jax_probe`: why JAX was slow on CPU: per-layer convolution
  forward+backward in JAX (Keras's `ops.conv_transpose`, and
  `keras_vqvae.layers.Conv2DTranspose` for the transposed ones), TensorFlow
  (with and without XLA) and PyTorch, and train-step ablations (no k-means /
  dead-code restarts, no quantiser, Keras's `keras.layers.Conv2DTranspose`
  in the decoder).

`cli` runs each section's worker in a subprocess (`runner`) and `report`
writes the results into a section of a Markdown file (default BENCHMARKS.md
at the repository root), between markers, so a rerun replaces it. The
parent process never imports Keras: the workers import it lazily, each
with its own backend.

    python tools/benchmark                         # full run, ~40 minutes
    python tools/benchmark --quick --backends tensorflow,torch \\
        --output quick_bench.md                    # a smoke test, ~2 minutes
    python tools/benchmark --profile-tf runs/tf_profile  # top TF ops
    python tools/benchmark --onednn-primitives 128  # kernels, both sides

`tf_profile` (`--profile-tf OUT_DIR`) traces a few TensorFlow training
steps of the fast path (batch 32) with `tf.profiler` and prints the top
ops by self time; it runs nothing else. `onednn_trace`
(`--onednn-primitives BATCH`) times every oneDNN primitive of a few
training steps on both sides (`ONEDNN_VERBOSE=1`), the TensorFlow fast
path beside the PyTorch peer in bf16, and prints them side by side, shape
by shape; it runs nothing else.

`python -m benchmark` from `tools/` (or `python -m tools.benchmark` from the
repository root) runs the same command.
"""
