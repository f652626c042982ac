import numpy as np
import pytest
from PIL import Image
from PIL import ImageFont

from keras_vqvae import visualization
from keras_vqvae.visualization import class_grid_columns
from keras_vqvae.visualization import class_labels_for_columns
from keras_vqvae.visualization import image_grid
from keras_vqvae.visualization import labeled_image_grid
from keras_vqvae.visualization import reconstruction_row_labels
from keras_vqvae.visualization import reconstruction_rows
from keras_vqvae.visualization import save_image_grid

SHAPES = {
    "mnist": (28, 28, 1),
    "cifar": (32, 32, 3),
    "large": (128, 128, 3),
}


def _images(count, shape, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (count,) + shape, dtype="uint8")


def _upscaled(grid, scale):
    return grid.repeat(scale, axis=0).repeat(scale, axis=1)


def _read(path):
    array = np.asarray(Image.open(path))
    return array[..., None] if array.ndim == 2 else array


def _cell(grid, r, c, shape, scale, padding=2):
    height, width = shape[0] * scale, shape[1] * scale
    top = (padding + r * (shape[0] + padding)) * scale
    left = (padding + c * (shape[1] + padding)) * scale
    return grid[top : top + height, left : left + width]


def test_image_grid_and_reconstruction_rows_unchanged():
    originals = _images(20, (4, 5, 1))
    reconstructions = _images(20, (4, 5, 1), seed=1)
    rows = reconstruction_rows(originals, reconstructions, per_row=8)
    # The last 4 images do not fill a row: left out with their pair.
    assert len(rows) == 4
    np.testing.assert_array_equal(rows[0], originals[:8])
    np.testing.assert_array_equal(rows[1], reconstructions[:8])
    np.testing.assert_array_equal(rows[3], reconstructions[8:16])
    grid = image_grid(rows, padding=1, pad_value=7)
    assert grid.shape == (4 * 5 + 1, 8 * 6 + 1, 1)
    assert grid[0, 0, 0] == 7
    np.testing.assert_array_equal(grid[1:5, 1:6], originals[0])


def test_reconstruction_row_labels():
    assert reconstruction_row_labels(4) == [
        "original",
        "reconstruction",
        "original",
        "reconstruction",
    ]
    assert reconstruction_row_labels(0) == []
    with pytest.raises(ValueError, match="num_rows"):
        reconstruction_row_labels(-1)


@pytest.mark.parametrize("name", sorted(SHAPES))
@pytest.mark.parametrize("scale", [1, 2])
def test_labels_add_strips_and_keep_cells(tmp_path, name, scale):
    shape = SHAPES[name]
    originals = _images(8, shape)
    reconstructions = _images(8, shape, seed=1)
    rows = reconstruction_rows(originals, reconstructions, per_row=4)
    plain = _upscaled(image_grid(rows), scale)

    path = save_image_grid(
        tmp_path / "grid.png",
        rows,
        scale=scale,
        row_labels=reconstruction_row_labels(len(rows)),
        column_labels=["a", "b", "c", "d"],
    )
    saved = _read(path)
    labelled, (top, left) = labeled_image_grid(
        rows,
        scale=scale,
        row_labels=reconstruction_row_labels(len(rows)),
        column_labels=["a", "b", "c", "d"],
    )
    np.testing.assert_array_equal(saved, labelled)
    assert Image.open(path).mode == ("L" if shape[-1] == 1 else "RGB")

    # Larger than the plain grid by exactly the strips, which hold text.
    assert top > 0 and left > 0
    assert saved.shape == (
        plain.shape[0] + top,
        plain.shape[1] + left,
        shape[-1],
    )
    np.testing.assert_array_equal(saved[top:, left:], plain)
    assert (saved[top:, :left] < 128).any(), "no row label drawn"
    assert (saved[:top, left:] < 128).any(), "no column label drawn"
    assert (saved[:top, :left] == 255).all()

    # Each cell holds its image, upscaled.
    np.testing.assert_array_equal(
        _cell(saved[top:, left:], 1, 2, shape, scale),
        _upscaled(reconstructions[2], scale),
    )
    np.testing.assert_array_equal(
        _cell(saved[top:, left:], 2, 3, shape, scale),
        _upscaled(originals[7], scale),
    )


def test_without_labels_the_png_is_the_plain_grid(tmp_path):
    images = _images(10, SHAPES["mnist"])
    path = save_image_grid(tmp_path / "plain.png", images, scale=2, columns=4)
    saved = _read(path)
    padded = np.concatenate([images, np.full((2, 28, 28, 1), 255, "uint8")])
    rows = [padded[0:4], padded[4:8], padded[8:12]]
    np.testing.assert_array_equal(saved, _upscaled(image_grid(rows), 2))


def test_row_labels_are_centred_on_their_rows():
    shape = SHAPES["cifar"]
    rows = [_images(3, shape, seed=s) for s in range(3)]
    labelled, (top, left) = labeled_image_grid(
        rows, scale=2, row_labels=["", "middle", ""]
    )
    assert top == 0
    ink = np.nonzero((labelled[:, :left] < 128).any(axis=(1, 2)))[0]
    cell_top = (2 + 1 * (32 + 2)) * 2
    cell_bottom = cell_top + 32 * 2
    assert cell_top <= ink.min() and ink.max() < cell_bottom
    middle = (ink.min() + ink.max()) / 2
    assert abs(middle - (cell_top + cell_bottom) / 2) <= 4


def test_title_strip(tmp_path):
    images = _images(8, SHAPES["cifar"])
    plain, _ = labeled_image_grid([images], scale=2)
    labelled, (top, left) = labeled_image_grid(
        [images], scale=2, title="samples"
    )
    assert left == 0 and top > 0
    assert labelled.shape == (plain.shape[0] + top,) + plain.shape[1:]
    np.testing.assert_array_equal(labelled[top:], plain)
    assert (labelled[:top] < 128).any()

    # A title wider than the grid widens the image, to the right.
    small = _images(1, (4, 4, 1))
    labelled, (top, left) = labeled_image_grid([small], title="a long title")
    assert labelled.shape[1] > image_grid([small]).shape[1]
    np.testing.assert_array_equal(
        labelled[top:, left : left + 8], image_grid([small])
    )


def test_wide_column_labels_are_written_vertically():
    images = _images(10, SHAPES["mnist"])
    names = [f"a long class name {k}" for k in range(10)]
    labelled, (top, left) = labeled_image_grid(
        [images], scale=1, column_labels=names
    )
    # Taller than wide: the strip is as high as the longest name is long.
    assert top > 60
    np.testing.assert_array_equal(labelled[top:], image_grid([images]))
    assert (labelled[:top] < 128).any()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            {"row_labels": ["original"]},
            "`row_labels` must have one label per row: expected 2, received 1",
        ),
        (
            {"column_labels": ["a", "b", "c", "d"]},
            "`column_labels` must have one label per column: expected 3, "
            "received 4",
        ),
        ({"row_labels": "ab"}, "received the string 'ab'"),
    ],
)
def test_wrong_label_count_raises(tmp_path, kwargs, message):
    rows = [_images(3, SHAPES["cifar"]), _images(3, SHAPES["cifar"])]
    with pytest.raises(ValueError, match=message):
        save_image_grid(tmp_path / "grid.png", rows, **kwargs)
    assert not (tmp_path / "grid.png").exists()


def test_row_labels_count_rows_after_wrapping(tmp_path):
    images = _images(10, SHAPES["mnist"])
    with pytest.raises(ValueError, match="expected 3, received 2"):
        save_image_grid(
            tmp_path / "grid.png", images, columns=4, row_labels=["a", "b"]
        )


def test_class_grid_columns():
    assert class_grid_columns(10, 32) == 10
    assert class_grid_columns(2, 32) == 8
    assert class_grid_columns(3, 32) == 9
    assert class_grid_columns(1, 32) == 8
    assert class_grid_columns(100, 32) == 32
    assert class_grid_columns(10, 4) == 4


def test_class_labels_for_columns():
    assert class_labels_for_columns(10, 10) == [f"class {k}" for k in range(10)]
    assert class_labels_for_columns(2, 4, class_names=["cat", "dog"]) == [
        "cat",
        "dog",
        "cat",
        "dog",
    ]
    # One row of fewer columns than classes: one class per column.
    assert class_labels_for_columns(10, 4, count=4) == [
        "class 0",
        "class 1",
        "class 2",
        "class 3",
    ]
    with pytest.raises(ValueError, match="columns=8, num_classes=10"):
        class_labels_for_columns(10, 8, count=32)
    with pytest.raises(ValueError, match="expected 10, received 2"):
        class_labels_for_columns(10, 10, class_names=["cat", "dog"])


def test_labels_match_the_classes_of_cycling_samples():
    # Sample i has class i % num_classes (workflows.sample_images).
    num_classes, count = 10, 32
    columns = class_grid_columns(num_classes, count)
    labels = class_labels_for_columns(num_classes, columns, count=count)
    for i in range(count):
        assert labels[i % columns] == f"class {i % num_classes}"


def test_class_conditional_sample_grid(tmp_path):
    images = _images(32, SHAPES["mnist"])
    columns = class_grid_columns(10, len(images))
    path = save_image_grid(
        tmp_path / "samples.png",
        images,
        columns=columns,
        scale=2,
        column_labels=class_labels_for_columns(10, columns, count=len(images)),
        title="samples",
    )
    saved = _read(path)
    assert saved.shape[1] == (10 * 30 + 2) * 2
    assert saved.shape[0] > (4 * 30 + 2) * 2
    top = saved.shape[0] - (4 * 30 + 2) * 2
    np.testing.assert_array_equal(
        _cell(saved[top:], 1, 3, SHAPES["mnist"], 2), _upscaled(images[13], 2)
    )


def test_old_pillow_falls_back_to_the_bitmap_font(monkeypatch):
    load_default = ImageFont.load_default

    def old_load_default(*args, **kwargs):
        if args or kwargs:
            raise TypeError("load_default() takes no arguments")
        return load_default()

    monkeypatch.setattr(ImageFont, "load_default", old_load_default)
    visualization._font.cache_clear()
    try:
        rows = [_images(4, SHAPES["cifar"]), _images(4, SHAPES["cifar"])]
        labelled, (top, left) = labeled_image_grid(
            rows,
            scale=2,
            row_labels=reconstruction_row_labels(2),
            column_labels=list("abcd"),
            title="title",
        )
        plain = _upscaled(image_grid(rows), 2)
        np.testing.assert_array_equal(labelled[top:, left:], plain)
        assert (labelled[top:, :left] < 128).any()
        assert (labelled[:top, left:] < 128).any()
    finally:
        visualization._font.cache_clear()
