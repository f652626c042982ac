"""The data tools' `--out`: a folder outside the repository (data never
goes into the project)."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def output_folder(parser, out):
    """`out` resolved, or a parser error if it lies inside the repository."""
    path = Path(out).expanduser().resolve()
    if path == REPO_ROOT or REPO_ROOT in path.parents:
        parser.error(
            f"--out must be outside the repository {REPO_ROOT}. "
            f"Received: --out={out}"
        )
    return path
