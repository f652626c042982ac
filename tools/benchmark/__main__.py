"""`python tools/benchmark`, `python -m benchmark` (from `tools/`) or
`python -m tools.benchmark` (from the repository root): runs the benchmark."""

import sys
from pathlib import Path

if __package__:
    from .cli import main
else:
    # Run as a folder: Python put the package's own folder first on the
    # path. Put `tools/` there instead, so the package's modules import as
    # `benchmark.*` and do not shadow top-level modules of the same name.
    sys.path[0] = str(Path(__file__).resolve().parents[1])
    from benchmark.cli import main

sys.exit(main())
