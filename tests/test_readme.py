"""Every example in the README runs as written after `make demo`.

The README's code blocks run in order in a fresh folder (the data path
`../shared/datasets` replaced by the tests' data folder), after the demo's
command; a block that calls `make` is the set-up itself and is skipped.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from real_data import DATASETS
from real_data import dataset

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCK = re.compile(r"```(bash|python)\n(.*?)```", re.S)
DEMO = "keras-vqvae demo --data ../shared/datasets/mnist --out outputs"


def readme_blocks():
    blocks = BLOCK.findall(README.read_text())
    return [(kind, code) for kind, code in blocks if "make " not in code]


def bash_commands(code):
    joined = code.replace("\\\n", " ")
    return [line.strip() for line in joined.splitlines() if line.strip()]


def run(args, cwd, env):
    result = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, (
        f"{args[-1] if args[0] == sys.executable else args}\n"
        f"{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    )
    return result


def test_readme_has_runnable_blocks():
    kinds = [kind for kind, _ in readme_blocks()]
    assert kinds.count("python") >= 2 and "bash" in kinds
    assert any(DEMO in code for _, code in readme_blocks())


@pytest.mark.slow
def test_readme_examples_run_in_order(tmp_path):
    dataset("mnist")
    dataset("cifar10_jpeg")
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env = {k: v for k, v in env.items() if not k.startswith("HF_")}
    env.update(HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf_home"))

    def localised(text):
        return text.replace("../shared/datasets", str(DATASETS))

    run(["bash", "-c", localised(DEMO)], tmp_path, env)
    for kind, code in readme_blocks():
        if kind == "python":
            run([sys.executable, "-c", localised(code)], tmp_path, env)
            continue
        for command in bash_commands(code):
            run(["bash", "-c", localised(command)], tmp_path, env)
    for name in (
        "reconstructions.png",
        "samples.png",
        "codes.npy",
        "decoded.png",
        "sevens.png",
        "my_grid.png",
        "vqvae.keras",
    ):
        assert (tmp_path / "outputs" / name).is_file(), name
    assert (tmp_path / "outputs" / "my_mnist" / "prior.weights.h5").is_file()
