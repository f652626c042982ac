"""Files written whole or not at all, and byte-reproducible archives."""

import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np


def write_atomically(path, write):
    """Calls `write(tmp_path)`, then renames, so no half-written file stays."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600 files
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_json(path, data):
    write_atomically(
        path,
        lambda tmp: Path(tmp).write_text(json.dumps(data, indent=2) + "\n"),
    )


def write_npz(path, arrays):
    """`np.savez` (uncompressed, no pickles) with a fixed zip timestamp, so
    equal arrays give equal bytes (`np.savez` stamps the current time);
    written atomically."""

    def write(tmp):
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as archive:
            for name, array in arrays.items():
                entry = zipfile.ZipInfo(f"{name}.npy", (1980, 1, 1, 0, 0, 0))
                with archive.open(entry, "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, array, allow_pickle=False)

    write_atomically(path, write)
