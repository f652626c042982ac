"""Timing helpers shared by the workers.

Keras and PyTorch are imported inside the functions: the parent process
imports this module without choosing a Keras backend.
"""

import os
import statistics
import time


def cores():
    """The number of CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def median(values):
    """The median of `values`, ignoring `None`s.

    Args:
        values: iterable of numbers or `None`.

    Returns:
        The median, or `None` if no value is a number.
    """
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def median_ratio(numerators, denominators):
    """The median of the per-round ratios `numerators[i] / denominators[i]`.

    Args:
        numerators: list of floats, one per round.
        denominators: list of floats, one per round.

    Returns:
        float, or `None` for no rounds.
    """
    return median([a / b for a, b in zip(numerators, denominators)])


def best_ms(fn, repeats=4):
    """The shortest wall time of `fn()`, after two untimed calls.

    Args:
        fn: callable without arguments; returns when its work is done.
        repeats: int. Timed calls.

    Returns:
        float, milliseconds.
    """
    fn()
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times) * 1e3


def _step_timer(warmup, total):
    import keras

    class StepTimer(keras.callbacks.Callback):
        """Times from the end of the last warm-up step to the last step.

        `async_safe`: Keras may run it in its callback thread (as it does
        the default callbacks), so fit dispatches steps as it normally
        would; Keras converts the logs to floats before calling it, so the
        time is taken when the step's results exist.
        """

        async_safe = True

        def __init__(self):
            super().__init__()
            self.start = self.end = None

        def on_train_batch_end(self, batch, logs=None):
            if batch == warmup - 1:
                self.start = time.perf_counter()
            if batch == total - 1:
                self.end = time.perf_counter()

    return StepTimer()


def first_fit_s(model, x, batch_size):
    """Fits one compiled call's batches, tracing and compiling the train
    step for this batch size (`model.steps_per_execution` steps).

    Args:
        model: a compiled Keras model.
        x: float array of at least `steps_per_execution * batch_size`
            images.
        batch_size: int.

    Returns:
        float, seconds the fit took.
    """
    count = model.steps_per_execution * batch_size
    started = time.perf_counter()
    model.fit(
        x[:count],
        batch_size=batch_size,
        epochs=1,
        verbose=0,
        shuffle=False,
    )
    return time.perf_counter() - started


def time_fit(model, x, batch_size, warmup, steps):
    """Images/s of `model.fit` on arrays, warm-up steps excluded.

    Args:
        model: a compiled Keras model, already fitted once at `batch_size`.
        x: float array of at least `(warmup + steps) * batch_size` images.
        batch_size: int.
        warmup: int. Untimed steps before the timed ones.
        steps: int. Timed steps.

    Both must be multiples of `model.steps_per_execution`: callbacks see
    one batch per compiled call.

    Returns:
        float, images per second.
    """
    per_call = model.steps_per_execution
    if warmup % per_call or steps % per_call:
        raise ValueError(
            "`warmup` and `steps` must be multiples of the model's "
            f"steps_per_execution={per_call}. Received: warmup={warmup}, "
            f"steps={steps}"
        )
    total = warmup + steps
    timer = _step_timer(max(warmup, 1), total)
    begin = time.perf_counter()
    model.fit(
        x[: total * batch_size],
        batch_size=batch_size,
        epochs=1,
        steps_per_epoch=total,
        shuffle=False,
        verbose=0,
        callbacks=[timer],
    )
    if warmup == 0:
        timer.start = begin
    return steps * batch_size / (timer.end - timer.start)


def time_torch(reference, x, batch_size, warmup, steps, threads):
    """Images/s of the PyTorch reference's train steps, warm-up excluded.

    The steps' losses stay tensors until the clock has stopped: the round
    synchronises with the host once, at its end.

    Args:
        reference: a `torch_reference.TorchVQVAE`.
        x, batch_size, warmup, steps: as for `time_fit`.
        threads: int. `torch.set_num_threads` for these steps; the
            previous number is restored after them.

    Returns:
        Tuple `(images_per_s, losses_finite)`.
    """
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for i in range(warmup):
            reference.train_step(x[i * batch_size : (i + 1) * batch_size])
        losses = []
        start = time.perf_counter()
        for i in range(warmup, warmup + steps):
            losses.append(
                reference.train_step(x[i * batch_size : (i + 1) * batch_size])
            )
        elapsed = time.perf_counter() - start
        finite = bool(torch.isfinite(torch.stack(losses)).all())
        return steps * batch_size / elapsed, finite
    finally:
        torch.set_num_threads(previous)


def thread_counts(settings):
    """The PyTorch thread counts to try: all cores, and one thread too if
    `settings["torch_one_thread"]` (on a busy machine one thread can beat
    several, whose barriers wait for descheduled threads)."""
    counts = [cores()]
    if settings.get("torch_one_thread"):
        counts.append(1)
    return list(dict.fromkeys(counts))


def time_peer(reference, x, batch_size, warmup, steps, counts):
    """`time_torch` at each thread count of `counts`; the fastest.

    Args:
        reference, x, batch_size, warmup, steps: as for `time_torch`.
        counts: list of ints, from `thread_counts`.

    Returns:
        Tuple `(images_per_s, losses_finite, threads)` of the fastest
        count (`losses_finite` over all of them).
    """
    runs = [
        (*time_torch(reference, x, batch_size, warmup, steps, n), n)
        for n in counts
    ]
    rate, _, threads = max(runs)
    return rate, all(finite for _, finite, _ in runs), threads
