"""Missing real data is reported at the end of a run, and fails under CI."""

import os
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def run_pytest_without_data(tmp_path, ci):
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["KERAS_VQVAE_DATA"] = str(tmp_path / "no_data_here")
    if ci:
        env["CI"] = "1"
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            str(TESTS / "test_data.py"),
            "-k",
            "load_arrays_mnist_test",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=TESTS.parent,
    )


def test_missing_data_is_listed_with_the_fix(tmp_path):
    result = run_pytest_without_data(tmp_path, ci=False)
    assert result.returncode == 0, result.stdout[-2000:]
    assert "tests NOT run: real data missing" in result.stdout
    assert "test_load_arrays_mnist_test" in result.stdout
    assert "make test DATA=" in result.stdout


def test_missing_data_fails_under_ci(tmp_path):
    result = run_pytest_without_data(tmp_path, ci=True)
    assert result.returncode == 1, result.stdout[-2000:]
    assert "CI is set, so missing data is an error" in result.stdout
