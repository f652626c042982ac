"""Image files: folders of images (labelled by subfolder) and file lists."""

import os
from pathlib import Path

import numpy as np

from keras_vqvae.data.arrays import check_channels
from keras_vqvae.data.arrays import to_size
from keras_vqvae.errors import DataError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


def find_image_files(folder):
    """Returns the image files under `folder`, recursively, in path order.

    Hidden files and folders (names starting with `.`) are skipped.

    Args:
        folder: `Path` of an existing folder.

    Returns:
        List of `Path`s whose suffix is one of `IMAGE_EXTENSIONS` (any case).
    """
    files = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        files.extend(
            Path(root) / name
            for name in sorted(names)
            if not name.startswith(".")
            and name.lower().endswith(IMAGE_EXTENSIONS)
        )
    return sorted(files, key=lambda file: file.relative_to(folder).parts)


def folder_listing(folder, max_entries=20):
    """Returns the sorted entries of `folder` as text, for error messages."""
    names = sorted(
        p.name + ("/" if p.is_dir() else "") for p in folder.iterdir()
    )
    more = (
        f", ... ({len(names) - max_entries} more)"
        if len(names) > max_entries
        else ""
    )
    return ", ".join(names[:max_entries]) + more if names else "(empty)"


def _folder_image_files(folder):
    """Returns `(folder, files)`; raises if there is no image file."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"No such folder: {folder}")
    files = find_image_files(folder)
    if not files:
        raise FileNotFoundError(
            f"No image files ({', '.join(IMAGE_EXTENSIONS)}) found under "
            f"{folder}. It contains: {folder_listing(folder)}"
        )
    return folder, files


def _class_of(folder, file):
    """The first-level subfolder of `file` in `folder`, or None."""
    parts = file.relative_to(folder).parts
    return parts[0] if len(parts) > 1 else None


def _class_names(folder, files):
    return sorted({_class_of(folder, file) for file in files} - {None})


def image_folder_classes(folder):
    """Returns the class names of a folder of images: its subfolders.

    Only subfolders holding at least one image file (at any depth) count.
    The label `i` from `load_image_folder(folder)` means class
    `image_folder_classes(folder)[i]`.

    Args:
        folder: str or `Path`.

    Returns:
        Sorted list of str.

    Raises:
        FileNotFoundError: `folder` does not exist or holds no image file.

    Example:

    >>> image_folder_classes("my_photos")  # doctest: +SKIP
    ['cats', 'dogs']
    """
    return _class_names(*_folder_image_files(folder))


def load_image_folder(
    folder, image_size=None, channels=3, crop_to_aspect_ratio=False, limit=None
):
    """Loads a folder of image files (png, jpg, jpeg, bmp, webp) recursively.

    Files are read in sorted path order; hidden files and folders are
    skipped. The first-level subfolder of each file is its class, as in
    `keras.utils.image_dataset_from_directory`; `image_folder_classes`
    gives the class names:

    ```
    folder/
        cats/001.png     -> label 0 ("cats")
        dogs/a/002.jpg   -> label 1 ("dogs")
        loose.png        -> label -1 (no class)
    ```

    Args:
        folder: str or `Path`.
        image_size: None, int or `(height, width)`. If set, every image is
            resized to it (bicubic, anti-aliased); if None, all images must
            share one size.
        channels: 1 (grayscale) or 3 (RGB). Images are converted with PIL.
        crop_to_aspect_ratio: bool. If True, center-crop each image to the
            aspect ratio of `image_size` before resizing (no distortion).
        limit: int or None. Load at most this many files. Labels still index
            the classes of the whole folder.

    Returns:
        Tuple `(images, labels)`: uint8 `(N, H, W, channels)` and int64
        `(N,)` indexing into `image_folder_classes(folder)` (-1 for files
        directly in `folder`).

    Raises:
        FileNotFoundError: `folder` does not exist or holds no image file.
        ValueError: unreadable files, or differing sizes without
            `image_size`.

    Example:

    >>> images, labels = load_image_folder(
    ...     "my_photos", image_size=(64, 64))  # doctest: +SKIP
    """
    folder, files = _folder_image_files(folder)
    index = {name: i for i, name in enumerate(_class_names(folder, files))}
    files = files[:limit]
    labels = np.array(
        [index.get(_class_of(folder, file), -1) for file in files], np.int64
    )
    images = _stack_images(files, image_size, channels, crop_to_aspect_ratio)
    return images, labels


def load_image_files(
    files, image_size=None, channels=3, crop_to_aspect_ratio=False
):
    """Reads a list of image files into one uint8 array.

    Args:
        files: paths of PNG/JPEG/BMP/WebP files.
        image_size: None, int or `(height, width)` to resize to; required
            when the files differ in size.
        channels: 1 (grayscale) or 3 (RGB).
        crop_to_aspect_ratio: bool. If True, center-crop to the aspect ratio
            of `image_size` before resizing instead of stretching.

    Returns:
        uint8 array `(len(files), H, W, channels)`.

    Raises:
        FileNotFoundError: a file does not exist.
        ValueError: no files, unreadable files, or differing sizes without
            `image_size`.

    Example:

    >>> images = load_image_files(
    ...     ["a.png", "b.jpg"], image_size=(32, 32))  # doctest: +SKIP
    """
    files = [Path(file) for file in files]
    missing = [str(file) for file in files if not file.is_file()]
    if missing:
        raise FileNotFoundError(f"No such image file(s): {', '.join(missing)}")
    return _stack_images(files, image_size, channels, crop_to_aspect_ratio)


def _center_crop_box(width, height, target_width, target_height):
    """PIL box of the largest centered crop with the target aspect ratio."""
    crop_width = min(width, round(height * target_width / target_height))
    crop_height = min(height, round(width * target_height / target_width))
    left, top = (width - crop_width) // 2, (height - crop_height) // 2
    return (left, top, left + crop_width, top + crop_height)


def _read_image(file, size, mode, crop_to_aspect_ratio):
    from PIL import Image

    try:
        with Image.open(file) as image:
            image = image.convert(mode)
    except Exception as e:  # PIL raises several types for bad files.
        raise DataError(f"Could not read image file {file}: {e}") from e
    if size is not None and image.size != (size[1], size[0]):
        box = None
        if crop_to_aspect_ratio:
            box = _center_crop_box(image.width, image.height, size[1], size[0])
        image = image.resize(
            (size[1], size[0]), Image.Resampling.BICUBIC, box=box
        )
    return np.asarray(image)


def _stack_images(files, image_size, channels, crop_to_aspect_ratio):
    """Reads `files` into one uint8 array `(N, H, W, channels)`."""
    check_channels(channels)
    if not files:
        raise DataError("No image files given.")
    size, mode = to_size(image_size), "L" if channels == 1 else "RGB"
    first = _read_image(files[0], size, mode, crop_to_aspect_ratio)
    images = np.empty((len(files),) + first.shape[:2] + (channels,), np.uint8)
    images[0] = first.reshape(images.shape[1:])
    for i, file in enumerate(files[1:], start=1):
        image = _read_image(file, size, mode, crop_to_aspect_ratio)
        if image.shape[:2] != images.shape[1:3]:
            raise DataError(
                f"{file} is {image.shape[1]}x{image.shape[0]} but "
                f"{files[0]} is {images.shape[2]}x{images.shape[1]}. Pass "
                "`image_size` to resize all images to one size."
            )
        images[i] = image.reshape(images.shape[1:])
    return images
