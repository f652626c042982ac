"""Image grids as PNG: originals above reconstructions, or sample sheets.

Grids can carry captions, drawn with Pillow's built-in font (no
matplotlib): a label per row in a strip on the left, a label per column in
a strip on top, and a title line above everything. The images themselves
are never drawn over: every grid cell keeps its pixels.
"""

import functools
from pathlib import Path

import numpy as np
from PIL import Image
from PIL import ImageDraw
from PIL import ImageFont

# Caption text sizes, in output pixels (after `scale`).
_MIN_FONT_SIZE = 6
_MIN_COLUMN_FONT_SIZE = 8
_MAX_FONT_SIZE = 16
# Space around caption text, in output pixels.
_GAP = 4


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


def labeled_image_grid(
    rows,
    scale=1,
    row_labels=None,
    column_labels=None,
    title=None,
    padding=2,
    pad_value=255,
):
    """Tiles rows of images into one uint8 image with caption strips.

    The grid of `image_grid` is upscaled by `scale`, then framed by white
    strips holding dark text: `row_labels` on the left (each vertically
    centred on its row, right-aligned towards the images), `column_labels`
    on top (each centred over its column; written vertically when a label
    is too wide for its column even in a smaller font), and `title` above
    everything. The font is Pillow's built-in one, sized to the rows. A
    grayscale grid stays grayscale. The images are not drawn over: the
    grid sits unchanged at `offset` in the result.

    Args:
        rows: list of uint8 arrays `(N, H, W, C)`, all of one shape; each
            becomes a row of the grid.
        scale: integer upscaling (nearest neighbour) of the grid, before
            the captions are added (so the text is not blocky).
        row_labels: optional list of strings, one per row.
        column_labels: optional list of strings, one per column (`N`).
        title: optional string written above the grid.
        padding: pixels between images, before upscaling.
        pad_value: grey level of the padding.

    Returns:
        a tuple `(image, offset)`: `image` is a uint8 array
        `(top + grid_height, left + grid_width (or the title's width if
        wider), C)`, and `offset` is `(top, left)`, where the upscaled
        `image_grid(rows, padding, pad_value)` starts in it (`(0, 0)`
        without captions).

    Example:

    ```python
    rows = [images[:8], images[8:16]]
    image, (top, left) = labeled_image_grid(
        rows, scale=2, row_labels=["first", "second"]
    )
    ```
    """
    rows = [np.asarray(row) for row in rows]
    if not rows:
        raise ValueError("`rows` must hold at least one row of images.")
    count, height, width, channels = rows[0].shape
    row_labels = _check_labels("row_labels", row_labels, len(rows), "row")
    column_labels = _check_labels(
        "column_labels", column_labels, count, "column"
    )
    scale = int(scale)
    if scale < 1:
        raise ValueError(f"`scale` must be an integer >= 1, received {scale}.")
    grid = image_grid(rows, padding=padding, pad_value=pad_value)
    if scale > 1:
        grid = grid.repeat(scale, axis=0).repeat(scale, axis=1)
    if row_labels is None and column_labels is None and title is None:
        return grid, (0, 0)

    # Geometry of the upscaled grid, in output pixels.
    pad = padding * scale
    cell_h, cell_w = height * scale, width * scale
    row_pitch, column_pitch = cell_h + pad, cell_w + pad
    font = _fitting_font(
        _base_font_size(cell_h), max_height=min(row_pitch, column_pitch)
    )

    row_masks = (
        [_text_mask(label, font) for label in row_labels] if row_labels else []
    )
    left = max((m.width for m in row_masks), default=0)
    left = left + 2 * _GAP if row_labels is not None else 0

    column_masks = []
    if column_labels is not None:
        column_masks = _column_masks(column_labels, font, column_pitch - _GAP)
    column_strip = (
        max(m.height for m in column_masks) + 2 * _GAP
        if column_labels is not None
        else 0
    )

    title_mask = None
    title_strip = 0
    if title is not None:
        title_font = _font((_font_size(font) or _MAX_FONT_SIZE) + 2)
        title_mask = _text_mask(str(title), title_font)
        title_strip = title_mask.height + 2 * _GAP

    top = title_strip + column_strip
    grid_h, grid_w = grid.shape[:2]
    total_w = left + grid_w
    if title_mask is not None:
        total_w = max(total_w, title_mask.width + 2 * _GAP)
    canvas = np.full((top + grid_h, total_w, channels), 255, "uint8")
    canvas[top : top + grid_h, left : left + grid_w] = grid

    image = _to_pil(canvas)
    ink = _ink(image.mode)
    for r, mask in enumerate(row_masks):
        if not mask.width:
            continue
        centre = top + pad + r * row_pitch + cell_h // 2
        x = left - _GAP - mask.width
        image.paste(ink, (x, centre - mask.height // 2), mask)
    for c, mask in enumerate(column_masks):
        if not mask.width or not mask.height:
            continue
        centre = left + pad + c * column_pitch + cell_w // 2
        y = top - _GAP - mask.height
        image.paste(ink, (centre - mask.width // 2, y), mask)
    if title_mask is not None and title_mask.width:
        # Centred over the images, unless that would push it off an edge.
        x = left + (grid_w - title_mask.width) // 2
        x = max(_GAP, min(x, total_w - _GAP - title_mask.width))
        image.paste(ink, (x, _GAP), title_mask)
    return _from_pil(image, channels), (top, left)


def save_image_grid(
    path,
    rows,
    scale=1,
    columns=None,
    row_labels=None,
    column_labels=None,
    title=None,
):
    """Writes an image grid as PNG, optionally with captions.

    With `row_labels`, a strip on the left gives each row's label,
    vertically centred on the row; with `column_labels`, a strip on top
    gives each column's; `title` is a line above everything (see
    `labeled_image_grid`). The images' pixels are kept: each grid cell
    holds its image, upscaled by `scale`. Grayscale images give a
    grayscale PNG, RGB images an RGB one.

    Args:
        path: output file.
        rows: list of uint8 arrays `(N, H, W, C)` (see `image_grid`), or a
            single array with `columns` set to wrap it into rows (the last
            row is filled up with white).
        scale: integer upscaling (nearest neighbour) for small images.
        columns: images per row when `rows` is a single array.
        row_labels: optional list of strings, one per row (after wrapping).
        column_labels: optional list of strings, one per column.
        title: optional string written above the grid.

    Returns:
        the path written.

    Example:

    ```python
    rows = reconstruction_rows(images, reconstructions, per_row=8)
    save_image_grid(
        "reconstructions.png",
        rows,
        scale=2,
        row_labels=reconstruction_row_labels(len(rows)),
    )
    ```
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
    grid, _ = labeled_image_grid(
        rows,
        scale=scale,
        row_labels=row_labels,
        column_labels=column_labels,
        title=title,
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _to_pil(grid).save(path)
    return path


# Colour map of spectrograms: quiet is dark blue, loud is yellow.
_SPECTROGRAM_COLOURS = np.array(
    [
        [0, 0, 4],
        [40, 11, 84],
        [136, 34, 106],
        [212, 72, 66],
        [249, 142, 9],
        [252, 255, 164],
    ],
    "float32",
)


def spectrogram_image(audio, sample_rate, height=128, dynamic_range_db=80):
    """A clip's log-magnitude spectrogram as an RGB uint8 image, low
    frequencies at the bottom, one column per 8 ms (32 ms windows), the
    loudest bin at the top of the colour map and `dynamic_range_db`
    below it at the bottom."""
    from scipy.signal import stft

    window = int(0.032 * sample_rate)
    _, _, spectrum = stft(
        np.asarray(audio, "float64"),
        nperseg=window,
        noverlap=window - window // 4,
    )
    db = 20 * np.log10(np.abs(spectrum) + 1e-10)
    level = np.clip((db - db.max() + dynamic_range_db) / dynamic_range_db, 0, 1)
    rows = np.linspace(0, level.shape[0] - 1, height).round().astype(int)
    level = level[rows][::-1]
    anchors = np.linspace(0, 1, len(_SPECTROGRAM_COLOURS))
    rgb = np.stack(
        [
            np.interp(level, anchors, _SPECTROGRAM_COLOURS[:, c])
            for c in range(3)
        ],
        axis=-1,
    )
    return rgb.round().astype("uint8")


def save_spectrograms(path, clips, labels, sample_rate):
    """Writes the spectrograms of equal-length clips as one PNG, one row
    per clip with its label on the left."""
    images = [spectrogram_image(clip, sample_rate) for clip in clips]
    return save_image_grid(
        path, [image[None] for image in images], row_labels=labels
    )


def save_animation(path, frames, scale=1, duration_ms=200):
    """Writes uint8 frames `(T, H, W, C)` as an animated GIF that loops.

    Args:
        path: output file (`.gif`).
        frames: sequence of uint8 images of one shape.
        scale: integer upscaling (nearest neighbour).
        duration_ms: how long each frame shows.

    Returns:
        the path written.
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.dtype != np.uint8 or len(frames) == 0:
        raise ValueError(
            "`frames` must be uint8 images (T, H, W, C) with T >= 1. "
            f"Received: dtype {frames.dtype}, shape {frames.shape}"
        )
    if scale > 1:
        frames = frames.repeat(scale, axis=1).repeat(scale, axis=2)
    images = [_to_pil(frame) for frame in frames]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    images[0].save(
        path,
        save_all=True,
        append_images=images[1:],
        duration=int(duration_ms),
        loop=0,
    )
    return path


def save_images(folder, images):
    """Writes each uint8 image `(N, H, W, C)` as `folder/<i>.png`.

    Returns:
        The list of paths written.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, image in enumerate(np.asarray(images)):
        path = folder / f"{i}.png"
        Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(
            path
        )
        paths.append(path)
    return paths


def reconstruction_rows(originals, reconstructions, per_row=8):
    """Interleaves rows of originals and their reconstructions.

    A last, incomplete row of `per_row` images is left out, with its
    reconstructions.

    Args:
        originals: uint8 array `(N, H, W, C)`.
        reconstructions: uint8 array `(N, H, W, C)`, one per original.
        per_row: images per row.

    Returns:
        list of arrays `(per_row, H, W, C)`: a row of originals, the row of
        their reconstructions, the next row of originals, and so on (label
        them with `reconstruction_row_labels(len(rows))`).
    """
    rows = []
    for start in range(0, len(originals), per_row):
        rows.append(originals[start : start + per_row])
        rows.append(reconstructions[start : start + per_row])
    if len(rows[-1]) < per_row:
        rows = rows[:-2]
    return rows


def reconstruction_row_labels(num_rows):
    """Row labels for the rows `reconstruction_rows` makes.

    Args:
        num_rows: the number of rows, `len(reconstruction_rows(...))`.

    Returns:
        list of `num_rows` strings: `"original"`, `"reconstruction"`,
        `"original"`, ...

    Example:

    ```python
    >>> reconstruction_row_labels(4)
    ['original', 'reconstruction', 'original', 'reconstruction']
    ```
    """
    num_rows = _check_count("num_rows", num_rows, minimum=0)
    return [
        "original" if r % 2 == 0 else "reconstruction" for r in range(num_rows)
    ]


def class_grid_columns(num_classes, count, min_columns=8):
    """Columns for a sample grid whose images cycle through the classes.

    Sample `i` of a class-conditional prior drawn without labels has class
    `i % num_classes` (see `workflows.sample_images`). Laid out in rows of
    `columns`, column `c` then holds samples of class `c % num_classes`
    only, when `columns` is a multiple of `num_classes`, or when all
    samples fit in one row. This returns the smallest multiple of
    `num_classes` that is at least `min_columns` (10 for 10 classes, 8 for
    2 or 4, 9 for 3), or `count` when the samples fit in one row of fewer
    columns (more classes than samples: one sample per class). Label the
    columns with `class_labels_for_columns`.

    Args:
        num_classes: the prior's number of classes.
        count: the number of samples.
        min_columns: the fewest columns wanted (fewer only when there are
            fewer samples).

    Returns:
        the number of images per row, an int.

    Example:

    ```python
    >>> class_grid_columns(10, 32)
    10
    ```
    """
    num_classes = _check_count("num_classes", num_classes)
    count = _check_count("count", count)
    min_columns = _check_count("min_columns", min_columns)
    columns = num_classes * -(-min(min_columns, count) // num_classes)
    return min(columns, count)


def class_labels_for_columns(
    num_classes, columns, class_names=None, count=None
):
    """Column labels for a sample grid whose images cycle through classes.

    Sample `i` has class `i % num_classes` and sits in column
    `i % columns`. Every column then holds one class when `columns` is a
    multiple of `num_classes` (in particular `columns == num_classes`), or
    when all `count` samples fit in one row; `class_grid_columns` picks
    such a `columns`. Other layouts mix classes within a column, and raise
    a `ValueError`.

    Args:
        num_classes: the prior's number of classes.
        columns: images per row of the grid.
        class_names: optional list of `num_classes` names; by default
            class `k` is called `"class k"`.
        count: optional number of samples; lets a single row of fewer than
            `num_classes` columns be labelled.

    Returns:
        list of `columns` strings, the class of each column.

    Example:

    ```python
    columns = class_grid_columns(10, len(images))  # 10
    save_image_grid(
        "samples.png",
        images,
        columns=columns,
        column_labels=class_labels_for_columns(10, columns, count=len(images)),
    )
    ```
    """
    num_classes = _check_count("num_classes", num_classes)
    columns = _check_count("columns", columns)
    if class_names is not None:
        class_names = [str(name) for name in class_names]
        if len(class_names) != num_classes:
            raise ValueError(
                f"`class_names` must have one name per class: expected "
                f"{num_classes}, received {len(class_names)}."
            )
    one_row = count is not None and _check_count("count", count) <= columns
    if columns % num_classes and not one_row:
        raise ValueError(
            f"With {columns} columns and {num_classes} classes cycling, "
            f"a column holds samples of several classes: `columns` must be "
            f"a multiple of `num_classes` (e.g. "
            f"`class_grid_columns({num_classes}, count)`), or all samples "
            f"must fit in one row; received columns={columns}, "
            f"num_classes={num_classes}, count={count}."
        )
    classes = [c % num_classes for c in range(columns)]
    if class_names is not None:
        return [class_names[k] for k in classes]
    return [f"class {k}" for k in classes]


# --- Captions ----------------------------------------------------------------


def _check_count(name, value, minimum=1):
    if isinstance(value, bool) or int(value) != value or value < minimum:
        raise ValueError(
            f"`{name}` must be an integer >= {minimum}, received {value!r}."
        )
    return int(value)


def _check_labels(name, labels, expected, what):
    if labels is None:
        return None
    if isinstance(labels, str):
        raise ValueError(
            f"`{name}` must be a list of {expected} strings, one per {what}; "
            f"received the string {labels!r}."
        )
    labels = [str(label) for label in labels]
    if len(labels) != expected:
        raise ValueError(
            f"`{name}` must have one label per {what}: expected {expected}, "
            f"received {len(labels)}."
        )
    return labels


def _base_font_size(cell_height):
    return max(10, min(_MAX_FONT_SIZE, cell_height // 4))


@functools.lru_cache(maxsize=32)
def _font(size):
    """Pillow's default font at `size` pixels, or its fixed bitmap font.

    A scalable default font needs Pillow >= 10.1 built with FreeType;
    otherwise the fixed-size bitmap font (about 11 pixels) is used.
    """
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, ImportError, OSError, AttributeError):
        return ImageFont.load_default()


def _font_size(font):
    """The size of a font from `_font`, or None for the bitmap font."""
    return getattr(font, "size", None)


def _scalable(font):
    return isinstance(_font_size(font), (int, float))


def _line_box(font):
    """Top and bottom of a line of text: the same for every label."""
    _, top, _, bottom = _measure("Ag|", font)
    return top, bottom


def _measure(text, font):
    draw = ImageDraw.Draw(Image.new("L", (1, 1)))
    return draw.textbbox((0, 0), text, font=font)


def _fitting_font(
    size, max_height=None, max_width=None, texts=(), minimum=None
):
    """The largest default font of at most `size` whose text fits."""
    minimum = _MIN_FONT_SIZE if minimum is None else minimum
    size = max(int(size), minimum)
    while True:
        font = _font(size)
        if not _scalable(font) or size <= minimum:
            return font
        top, bottom = _line_box(font)
        fits = max_height is None or bottom - top <= max_height
        if fits and max_width is not None:
            fits = all(_text_width(t, font) <= max_width for t in texts)
        if fits:
            return font
        size -= 1


def _text_width(text, font):
    left, _, right, _ = _measure(text, font)
    return right - left


def _text_mask(text, font):
    """An "L" image of `text` (255 = ink), one line high."""
    left, _, right, _ = _measure(text, font) if text else (0, 0, 0, 0)
    top, bottom = _line_box(font)
    mask = Image.new("L", (max(right - left, 0), bottom - top), 0)
    if text:
        ImageDraw.Draw(mask).text((-left, -top), text, fill=255, font=font)
    return mask


def _column_masks(labels, font, max_width):
    """Masks of column labels: horizontal if they fit, else vertical."""
    fitted = _fitting_font(
        _font_size(font) or _MAX_FONT_SIZE,
        max_width=max_width,
        texts=labels,
        minimum=min(_MIN_COLUMN_FONT_SIZE, _font_size(font) or 0),
    )
    if all(_text_width(label, fitted) <= max_width for label in labels):
        return [_text_mask(label, fitted) for label in labels]
    # Too wide even in a small font: write the labels bottom to top.
    return [_text_mask(label, font).rotate(90, expand=True) for label in labels]


def _to_pil(array):
    if array.shape[-1] == 1:
        array = array[..., 0]
    return Image.fromarray(array)


def _from_pil(image, channels):
    array = np.asarray(image, dtype="uint8")
    if channels == 1:
        array = array[..., None]
    return array


def _ink(mode):
    """Black, opaque, in `mode`."""
    return {"L": 0, "LA": (0, 255), "RGB": (0, 0, 0), "RGBA": (0, 0, 0, 255)}[
        mode
    ]
