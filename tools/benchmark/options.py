"""TensorFlow options: mixed precision (`mixed_bfloat16`) and XLA
(`jit_compile=True`), batch 32, one step per compiled call, against
float32 without XLA and the strongest PyTorch peer (the faster of its
modes in each round)."""

from . import timing
from .cifar10 import TORCH_MODES
from .cifar10 import cifar10_model
from .cifar10 import images
from .cifar10 import reference_model
from .formatting import fmt_number
from .formatting import fmt_ratio

BATCH_SIZE = 32
CONFIGS = [
    ("float32", False),
    ("float32", True),
    ("mixed_bfloat16", False),
    ("mixed_bfloat16", True),
]


def worker(settings):
    """Times each (dtype policy, jit_compile) of `CONFIGS` on TensorFlow.

    Args:
        settings: dict, `FULL` or `QUICK` of `cli`.

    Returns:
        A JSON-serialisable dict: the strongest PyTorch peer's images/s and
        a row per config (images/s, ratios, first-fit seconds, finite loss,
        or its error).
    """
    threads = timing.cores()
    warmup = settings["warmup"]
    steps, rounds = settings["options_steps"], settings["options_rounds"]
    x = images((warmup + steps) * BATCH_SIZE)
    models, errors, compile_s = _compiled_models(x)
    peers = [reference_model(threads, mode) for mode in TORCH_MODES]
    for peer in peers:
        peer.train_step(x[:BATCH_SIZE])
    rates = {key: [] for key in models}
    torch_rates = []
    for _ in range(rounds):
        for key, model in models.items():
            rates[key].append(
                timing.time_fit(model, x, BATCH_SIZE, warmup, steps)
            )
        torch_rates.append(
            max(
                timing.time_peer(
                    peer,
                    x,
                    BATCH_SIZE,
                    settings["torch_warmup"],
                    steps,
                    timing.thread_counts(settings),
                )[0]
                for peer in peers
            )
        )
    baseline = rates.get(("float32", False))
    rows = []
    for policy, jit in CONFIGS:
        key = (policy, jit)
        row = {"policy": policy, "jit_compile": jit}
        if key in errors:
            row["error"] = errors[key]
        else:
            row.update(
                keras=timing.median(rates[key]),
                first_fit_s=compile_s[key],
                vs_default=timing.median_ratio(rates[key], baseline)
                if baseline
                else None,
                vs_torch=timing.median_ratio(rates[key], torch_rates),
                loss_finite=_loss_is_finite(models[key], x),
            )
        rows.append(row)
    return {
        "batch_size": BATCH_SIZE,
        "steps": steps,
        "rounds": rounds,
        "torch": timing.median(torch_rates),
        "rows": rows,
    }


def _compiled_models(x):
    """A fitted-once model per config; errors reported, not raised."""
    import keras

    models, errors, compile_s = {}, {}, {}
    for policy, jit in CONFIGS:
        keras.config.set_dtype_policy(policy)
        try:
            model = cifar10_model()
            model.compile(jit_compile=jit)
            compile_s[(policy, jit)] = timing.first_fit_s(model, x, BATCH_SIZE)
            models[(policy, jit)] = model
        except Exception as error:  # report, do not hide, a failing option
            errors[(policy, jit)] = f"{type(error).__name__}: {error}"[:200]
        finally:
            keras.config.set_dtype_policy("float32")
    return models, errors, compile_s


def _loss_is_finite(model, x):
    loss = model.evaluate(
        x[:BATCH_SIZE], batch_size=BATCH_SIZE, verbose=0, return_dict=True
    )["loss"]
    return bool(loss == loss and abs(loss) < 1e30)


def render(options):
    """The TensorFlow options table.

    Args:
        options: dict, this module's worker result, or `None` if not run.

    Returns:
        list of Markdown lines.
    """
    lines = ["", "### TensorFlow options (batch 32)", ""]
    if not options:
        return lines + [
            "Not measured in this run (`--quick` or `--no-options`)."
        ]
    if "error" in options:
        return lines + [f"Failed: {options['error']}"]
    lines += [
        "| dtype policy | jit_compile | img/s | vs float32 / no XLA | "
        "vs strongest PyTorch peer | first fit (compile) s | finite loss |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in options["rows"]:
        if "error" in row:
            lines.append(
                f"| {row['policy']} | {row['jit_compile']} | failed: "
                f"{row['error']} | | | | |"
            )
            continue
        lines.append(
            f"| {row['policy']} | {row['jit_compile']} | "
            f"{fmt_number(row['keras'])} | {fmt_ratio(row['vs_default'])} | "
            f"{fmt_ratio(row['vs_torch'])} | {fmt_number(row['first_fit_s'])} "
            f"| {row['loss_finite']} |"
        )
    return lines


def findings(options):
    """What mixed precision and XLA do to TensorFlow's speed on this CPU.

    Args:
        options: dict, this module's worker result, or `None`.

    Returns:
        list of str.
    """
    notes = []
    for row in (options or {}).get("rows", []):
        if "error" in row:
            continue
        if row["policy"] == "mixed_bfloat16" and not row["jit_compile"]:
            notes.append(
                f"On this CPU `mixed_bfloat16` trains at "
                f"{fmt_ratio(row['vs_default'])} the float32 speed "
                "(TensorFlow, no XLA)."
            )
        if row["policy"] == "float32" and row["jit_compile"]:
            notes.append(
                f"XLA (`jit_compile=True`) trains at "
                f"{fmt_ratio(row['vs_default'])} the speed of the default on "
                'TensorFlow/CPU, where Keras\'s `jit_compile="auto"` '
                "already leaves it off."
            )
    return notes
