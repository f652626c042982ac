"""Image grids: originals above reconstructions, or sample sheets, as PNG."""

from pathlib import Path

import numpy as np
from PIL import Image


def image_grid(rows, padding=2, pad_value=255):
    """Tiles rows of images into one uint8 image.

    Args:
        rows: list of uint8 arrays `(N, H, W, C)`, all of one shape; each
            becomes a row of the grid.
        padding: pixels between images.
        pad_value: grey level of the padding.

    Returns:
        uint8 array `(rows * (H + padding) + padding, N * (W + padding) +
        padding, C)`.
    """
    rows = [np.asarray(row) for row in rows]
    count, height, width, channels = rows[0].shape
    grid = np.full(
        (
            len(rows) * (height + padding) + padding,
            count * (width + padding) + padding,
            channels,
        ),
        pad_value,
        "uint8",
    )
    for r, row in enumerate(rows):
        for c, image in enumerate(row):
            top = padding + r * (height + padding)
            left = padding + c * (width + padding)
            grid[top : top + height, left : left + width] = image
    return grid


def save_image_grid(path, rows, scale=1, columns=None):
    """Writes an image grid as PNG.

    Args:
        path: output file.
        rows: list of uint8 arrays `(N, H, W, C)` (see `image_grid`), or a
            single array with `columns` set to wrap it into rows.
        scale: integer upscaling (nearest neighbour) for small images.
        columns: images per row when `rows` is a single array.

    Returns:
        the path written.
    """
    if columns:
        images = np.asarray(rows)
        rows = [images[i : i + columns] for i in range(0, len(images), columns)]
        if len(rows[-1]) < columns:
            rows[-1] = np.concatenate(
                [
                    rows[-1],
                    np.full(
                        (columns - len(rows[-1]),) + images.shape[1:],
                        255,
                        "uint8",
                    ),
                ]
            )
    grid = image_grid(rows)
    if scale > 1:
        grid = grid.repeat(scale, axis=0).repeat(scale, axis=1)
    if grid.shape[-1] == 1:
        grid = grid[..., 0]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid).save(path)
    return path


def reconstruction_rows(originals, reconstructions, per_row=8):
    """Interleaves rows of originals and their reconstructions."""
    rows = []
    for start in range(0, len(originals), per_row):
        rows.append(originals[start : start + per_row])
        rows.append(reconstructions[start : start + per_row])
    if len(rows[-1]) < per_row:
        rows = rows[:-2]
    return rows
