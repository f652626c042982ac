"""Speed of the speech VQ-VAE (`SpeechVQVAE`, WaveNet decoder): training
with teacher forcing, in seconds of audio per second, and generation with
the per-layer queues (Fast WaveNet), as a real-time factor (seconds of
audio generated per second of compute, > 1 is faster than real time).

Runs as part of the benchmark (`python tools/benchmark`), or alone:

    python -m tools.benchmark.speech --quick
    python -m tools.benchmark.speech --backends tensorflow --layers 10,20
"""

import argparse
import time

from .formatting import fmt_number
from .timing import median

QUICK = dict(
    speech_layers=[4],
    speech_train_steps=2,
    speech_generate_seconds=0.1,
    speech_generate_seconds_torch=0.1,
    speech_batches=[1],
    speech_rounds=1,
)
FULL = dict(
    speech_layers=[10, 20],
    speech_train_steps=10,
    speech_generate_seconds=1.0,
    # Keras's torch backend runs the generation loop eagerly (a real-time
    # factor of 0.01-0.02 at batch 1 for 10-20 layers): clips of 1 s took
    # the worker past its timeout. The real-time factor hardly depends on
    # the clip's length.
    speech_generate_seconds_torch=0.25,
    speech_batches=[1, 16],
    speech_rounds=2,
)
SAMPLE_RATE = 16000
CROP = 4096  # samples per training crop (256 ms)
TRAIN_BATCH = 8


def worker(settings):
    """Times `SpeechVQVAE` training and generation on this backend, for
    each WaveNet depth of `settings["speech_layers"]` (the other sizes are
    the class defaults), in `mixed_bfloat16` training where the CPU has
    bfloat16 units, as `keras-vqvae train-speech` trains.

    Returns:
        A JSON-serialisable dict: the backend, the precision and a row per
        depth.
    """
    import keras

    from keras_vqvae.precision import training_policy

    policy, _ = training_policy("auto")
    return {
        "backend": keras.backend.backend(),
        "precision": policy,
        "rows": [
            _depth_row(layers, policy, settings)
            for layers in settings["speech_layers"]
        ],
    }


def _model(layers, policy):
    from keras_vqvae.models import SpeechVQVAE

    return SpeechVQVAE(
        speakers=["a", "b", "c", "d"],
        num_layers=layers,
        dilation_cycle=min(layers, 10),
        seed=0,
        dtype=policy,
    )


def _depth_row(layers, policy, settings):
    import keras
    import numpy as np

    rng = np.random.default_rng(0)
    steps, rounds = settings["speech_train_steps"], settings["speech_rounds"]
    audio = (0.3 * rng.standard_normal((TRAIN_BATCH * steps, CROP, 1))).astype(
        "float32"
    )
    speakers = np.arange(len(audio)) % 4
    model = _model(layers, policy)
    model.compile(optimizer=keras.optimizers.Adam(3e-4))
    data = {"audio": audio, "speakers": speakers}
    fit = dict(batch_size=TRAIN_BATCH, epochs=1, verbose=0, shuffle=False)
    started = time.perf_counter()
    model.fit({k: v[:TRAIN_BATCH] for k, v in data.items()}, **fit)
    first_fit_s = time.perf_counter() - started
    train_s = []
    for _ in range(rounds):
        started = time.perf_counter()
        model.fit(data, **fit)
        train_s.append(time.perf_counter() - started)
    row = {
        "layers": layers,
        "parameters": int(model.count_params()),
        "receptive_field": int(model.decoder.receptive_field),
        "first_fit_s": first_fit_s,
        "train_audio_s_per_s": audio.size / SAMPLE_RATE / median(train_s),
        "generation": [],
    }
    float32 = _model(layers, "float32")
    float32.set_weights(model.get_weights())
    codes_per_clip = int(
        _generate_seconds(settings) * SAMPLE_RATE / float32.hop_length
    )
    for batch in settings["speech_batches"]:
        codes = rng.integers(0, float32.num_embeddings, (batch, codes_per_clip))
        started = time.perf_counter()
        float32.decode(codes, speaker=1, seed=0)  # traces and compiles
        first_s = time.perf_counter() - started
        times = []
        for seed in range(1, rounds + 1):
            started = time.perf_counter()
            float32.decode(codes, speaker=1, seed=seed)
            times.append(time.perf_counter() - started)
        seconds = batch * codes_per_clip * float32.hop_length / SAMPLE_RATE
        row["generation"].append(
            {
                "batch": batch,
                "audio_s": seconds,
                "first_call_s": first_s,
                "real_time_factor": seconds / median(times),
            }
        )
    return row


def _generate_seconds(settings):
    import keras

    if keras.backend.backend() == "torch":
        return settings["speech_generate_seconds_torch"]
    return settings["speech_generate_seconds"]


def render(speech):
    """The speech tables (none if not run)."""
    if not speech:
        return []
    lines = [
        "",
        "### Speech VQ-VAE: training and WaveNet generation",
        "",
        "`SpeechVQVAE` with the class defaults (16 kHz, 64 samples per code, "
        "K = 512, residual 64 / skip 128 channels, 4 speakers) at each "
        "WaveNet depth below. Training: teacher-forced `fit` on crops of "
        f"{CROP} samples, batch {TRAIN_BATCH}, in the precision "
        "`train-speech` uses, as seconds of audio per second. Generation: "
        "`decode` (one sample per step with per-layer queues, the loop "
        "compiled once on TensorFlow and JAX, eager on PyTorch, float32) of "
        "clips `clip s` long (shorter on PyTorch), as a real-time factor: "
        "seconds of audio per second of compute, summed over the batch "
        "(> 1 is faster than real time). No PyTorch reference here.",
        "",
        "| Keras backend | layers | parameters | receptive field (samples) | "
        "training audio s/s | generation batch | clip s | "
        "real-time factor | first call s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for backend, res in speech.items():
        if "error" in res:
            lines.append(f"| {backend} | failed: {res['error']} |" + " |" * 7)
            continue
        for row in res["rows"]:
            for gen in row["generation"]:
                lines.append(
                    f"| {backend} ({res['precision']}) | {row['layers']} | "
                    f"{row['parameters']:,} | {row['receptive_field']} | "
                    f"{fmt_number(row['train_audio_s_per_s'])} | "
                    f"{gen['batch']} | {gen['audio_s'] / gen['batch']:g} | "
                    f"{gen['real_time_factor']:.4f} | "
                    f"{fmt_number(gen['first_call_s'])} |"
                )
    return lines


def main(argv=None):
    """Runs only this section, one subprocess per backend, and prints its
    table (with the load average before and after)."""
    from .runner import load_average
    from .runner import run_worker

    parser = argparse.ArgumentParser(
        prog="python -m tools.benchmark.speech",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument("--backends", default="tensorflow,jax,torch")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--layers", help="comma-separated WaveNet depths")
    args = parser.parse_args(argv)
    settings = dict(QUICK if args.quick else FULL)
    if args.layers:
        settings["speech_layers"] = [int(n) for n in args.layers.split(",")]
    load_before = load_average()
    results = {
        b: run_worker("speech", b, settings, log=print)
        for b in args.backends.split(",")
    }
    print("\n".join(render(results)))
    print(f"\nload average before: {load_before}, after: {load_average()}")


if __name__ == "__main__":
    main()
