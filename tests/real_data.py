"""Where the tests find the real data sets, and what to do when they are missing.

The folder is `$KERAS_VQVAE_DATA` (the Makefile sets it from `DATA=`), else
`../shared/datasets` beside the repository. A test that needs a data set it
cannot find is skipped with a reason starting with `MISSING_DATA`, and the
run ends with a list of those tests; with `CI` set, it fails instead.
"""

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
DATASETS = Path(
    os.environ.get("KERAS_VQVAE_DATA", REPO_ROOT.parent / "shared" / "datasets")
).resolve()
FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
MISSING_DATA = "missing data:"
HOW_TO_POINT = (
    "point the tests at the data with `make test DATA=/path/to/datasets` or "
    "KERAS_VQVAE_DATA=/path/to/datasets; Fashion-MNIST comes from "
    "`apt-get install dataset-fashion-mnist`"
)


def require(path):
    """Returns `path` if it exists; else skips the test (fails it under CI)."""
    path = Path(path)
    if path.exists():
        return path
    message = f"{MISSING_DATA} {path} does not exist"
    if os.environ.get("CI"):
        pytest.fail(
            f"{message} (CI is set, so missing data is an error; {HOW_TO_POINT})"
        )
    pytest.skip(message)


def dataset(name):
    """The folder of the shared data set `name`, or skip (fail under CI)."""
    return require(DATASETS / name)
