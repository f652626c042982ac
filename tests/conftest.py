import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from real_data import DATASETS  # noqa: E402
from real_data import HOW_TO_POINT  # noqa: E402
from real_data import MISSING_DATA  # noqa: E402
from real_data import dataset  # noqa: E402


@pytest.fixture(autouse=True)
def _reset_keras_state():
    keras.utils.clear_session()
    keras.config.set_dtype_policy("float32")
    yield


@pytest.fixture(scope="session")
def mnist_slice():
    """The first 1,024 MNIST training images (uint8, 28x28x1)."""
    with np.load(dataset("mnist") / "train.npz") as data:
        return data["images"][:1024]


def pytest_terminal_summary(terminalreporter):
    """Says which tests did not run for want of data, and how to fix it."""
    missing = [
        report
        for report in terminalreporter.stats.get("skipped", [])
        if MISSING_DATA in str(report.longrepr)
    ]
    terminalreporter.write_line(f"real data: {DATASETS}")
    if not missing:
        return
    terminalreporter.section("tests NOT run: real data missing", yellow=True)
    for report in missing:
        reason = (
            str(report.longrepr[-1])
            if isinstance(report.longrepr, tuple)
            else ""
        )
        terminalreporter.write_line(f"{report.nodeid}: {reason}")
    terminalreporter.write_line(HOW_TO_POINT)
