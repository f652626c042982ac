"""Keeps the backends' native start-up logs off the terminal.

TensorFlow's C++ runtime writes lines such as "All log messages before
absl::InitializeLog() is called..." and "oneDNN custom operations are on"
straight to file descriptor 2 before `TF_CPP_MIN_LOG_LEVEL` takes effect.
`filtered_stderr()` routes descriptor 2 through a pipe and drops those
lines; everything else (our messages, tracebacks, progress bars) passes.
oneDNN itself stays on: only its notice is hidden.
"""

import contextlib
import os
import re
import sys
import threading

_NATIVE_LOG = re.compile(
    rb"^(WARNING: All log messages before absl::InitializeLog\(\)"
    rb"|[IW]\d{4} [\d:.]+ +\d+ \w+\.cc:\d+\]"
    rb"|To enable the following instructions:)"
)


def _forward(read_fd, write_fd):
    pending = b""
    while chunk := os.read(read_fd, 65536):
        pending += chunk
        *lines, pending = pending.split(b"\n")
        kept = [line + b"\n" for line in lines if not _NATIVE_LOG.match(line)]
        if b"\r" in pending:  # a progress bar redrawing its line
            head, _, pending = pending.rpartition(b"\r")
            kept.append(head + b"\r")
        if kept:
            os.write(write_fd, b"".join(kept))
    if pending and not _NATIVE_LOG.match(pending):
        os.write(write_fd, pending)


@contextlib.contextmanager
def filtered_stderr(enabled=True):
    """Drops the native start-up log lines written to stderr meanwhile.

    Args:
        enabled: bool. False leaves stderr as it is.
    """
    if not enabled:
        yield
        return
    sys.stderr.flush()
    original = os.dup(2)
    read_fd, write_fd = os.pipe()
    os.dup2(write_fd, 2)
    os.close(write_fd)
    thread = threading.Thread(
        target=_forward, args=(read_fd, original), daemon=True
    )
    thread.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(original, 2)  # closes the pipe's last write end
        thread.join(timeout=5)
        os.close(read_fd)
        os.close(original)
