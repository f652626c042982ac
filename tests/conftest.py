import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
DATASETS = REPO_ROOT.parent / "shared" / "datasets"


@pytest.fixture(autouse=True)
def _reset_keras_state():
    keras.utils.clear_session()
    keras.config.set_dtype_policy("float32")
    yield


@pytest.fixture(scope="session")
def mnist_slice():
    """The first 1,024 MNIST training images (uint8, 28x28x1)."""
    path = DATASETS / "mnist" / "train.npz"
    if not path.is_file():
        pytest.skip(f"real data not available at {path}")
    with np.load(path) as data:
        return data["images"][:1024]
