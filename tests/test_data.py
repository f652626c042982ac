import gzip
import struct
import sys
import types

import keras
import numpy as np
import pytest
from PIL import Image
from real_data import FASHION_MNIST
from real_data import dataset
from real_data import require

from keras_vqvae import data
from keras_vqvae.metrics import mse01
from keras_vqvae.metrics import psnr


def shared_dataset(name):
    return dataset(name)


def write_idx(path, array):
    array = np.asarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(
        f">{array.ndim}I", *array.shape
    )
    with gzip.open(path, "wb") as f:
        f.write(header + array.tobytes())


def write_png(path, color, size=(12, 10)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)


# --- normalization ---------------------------------------------------------


def test_normalize_denormalize_round_trip_is_exact():
    pixels = np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1)
    x = data.normalize(pixels)
    assert x.dtype == np.float32
    assert x.min() == -0.5 and x.max() == 0.5
    np.testing.assert_array_equal(data.denormalize(x), pixels)
    custom = {"scale": 2.0 / 255.0, "offset": -1.0}
    y = data.normalize(pixels, custom)
    np.testing.assert_allclose([y.min(), y.max()], [-1.0, 1.0], atol=1e-6)
    np.testing.assert_array_equal(data.denormalize(y, custom), pixels)


def test_denormalize_rounds_clips_and_handles_nan():
    x = np.array([-1.0, -0.5, 0.0, 0.5, 2.0, np.nan], np.float32)
    out = data.denormalize(x)
    assert out.dtype == np.uint8
    # 0.0 is the tie 127.5; in float32 (the arithmetic of tensors and of the
    # models' outputs alike) it is 127.49998, so it rounds down.
    np.testing.assert_array_equal(out, [0, 0, 127, 255, 255, 0])
    tensor = keras.ops.convert_to_numpy(data.denormalize(keras.ops.array(x)))
    np.testing.assert_array_equal(tensor, out)


def test_normalize_backend_tensors():
    pixels = np.arange(256, dtype=np.uint8)
    x = data.normalize(keras.ops.convert_to_tensor(pixels))
    assert keras.ops.is_tensor(x)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(x), data.normalize(pixels), atol=1e-7
    )
    back = keras.ops.convert_to_numpy(data.denormalize(x))
    np.testing.assert_array_equal(back, pixels)


def test_default_normalization_and_bad_config():
    assert data.DEFAULT_NORMALIZATION == {"scale": 1 / 255, "offset": -0.5}
    with pytest.raises(ValueError, match="scale"):
        data.normalize(np.zeros(3, np.uint8), {"offset": 0.0})


# --- load_arrays -----------------------------------------------------------


def test_load_arrays_mnist_test():
    images, labels = data.load_arrays(shared_dataset("mnist"), "test")
    assert images.shape == (10000, 28, 28, 1) and images.dtype == np.uint8
    assert labels.shape == (10000,) and labels.dtype == np.int64
    np.testing.assert_array_equal(labels[:10], [7, 2, 1, 0, 4, 1, 4, 9, 5, 9])


def test_load_arrays_cifar10_jpeg_test():
    folder = shared_dataset("cifar10_jpeg")
    images, labels = data.load_arrays(folder, "test")
    assert images.shape == (10000, 32, 32, 3) and images.dtype == np.uint8
    assert labels.shape == (10000,) and set(np.unique(labels)) == set(range(10))
    means = images.reshape(-1, 3).mean(axis=0) / 255.0
    np.testing.assert_allclose(means, [0.4941, 0.4851, 0.4504], atol=1e-3)
    first, first_labels = data.load_arrays(folder, "test", limit=5)
    np.testing.assert_array_equal(first, images[:5])
    np.testing.assert_array_equal(first_labels, labels[:5])


def test_load_arrays_sklearn_digits_rescaled():
    folder = shared_dataset("sklearn_digits")
    images, labels = data.load_arrays(folder, "test", value_range=(0, 16))
    assert images.shape == (360, 8, 8, 1) and images.max() == 255
    allowed = np.rint(np.arange(17) * 255 / 16).astype(np.uint8)
    assert set(np.unique(images)) <= set(allowed)
    raw, _ = data.load_arrays(folder, "test", value_range=(0, 255))
    assert raw.max() == 16
    np.testing.assert_array_equal(
        images, np.rint(raw * (255 / 16)).astype("uint8")
    )


def test_load_arrays_dark_image_is_not_rescaled(tmp_path):
    dark = np.arange(11, dtype=np.uint8).reshape(1, 1, 11, 1)
    np.savez(tmp_path / "dark.npz", images=dark)
    images, _ = data.load_arrays(tmp_path / "dark.npz")
    np.testing.assert_array_equal(images, dark)
    images, _ = data.load_split(tmp_path / "dark.npz")
    np.testing.assert_array_equal(images, dark)
    images, _ = data.load_split(tmp_path / "dark.npz", value_range=(0, 10))
    assert images.min() == 0 and images.max() == 255


def test_load_arrays_single_npz_layouts(tmp_path):
    x_test = np.arange(2 * 4 * 4, dtype=np.int64).reshape(2, 4, 4) + 100
    np.savez(
        tmp_path / "keras.npz",
        x_train=np.zeros((3, 4, 4), np.uint8),
        y_train=np.zeros(3),
        x_test=x_test,
        y_test=np.array([5, 6]),
    )
    images, labels = data.load_arrays(tmp_path / "keras.npz", "test")
    assert images.shape == (2, 4, 4, 1) and images.dtype == np.uint8
    np.testing.assert_array_equal(images[..., 0], x_test)
    np.testing.assert_array_equal(labels, [5, 6])
    np.savez(
        tmp_path / "unlabelled.npz", images=np.full((3, 2, 2, 3), 200, np.uint8)
    )
    images, labels = data.load_arrays(tmp_path / "unlabelled.npz")
    assert images.shape == (3, 2, 2, 3)
    np.testing.assert_array_equal(labels, [-1, -1, -1])


def test_load_arrays_idx_folder(tmp_path):
    rng = np.random.default_rng(0)
    train = rng.integers(0, 256, (5, 6, 7), dtype=np.uint8)
    test = rng.integers(0, 256, (3, 6, 7), dtype=np.uint8)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", train)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", [0, 1, 2, 3, 4])
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", test)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", [9, 8, 7])
    images, labels = data.load_arrays(tmp_path, "test")
    np.testing.assert_array_equal(images[..., 0], test)
    np.testing.assert_array_equal(labels, [9, 8, 7])
    images, labels = data.load_arrays(tmp_path, "train", limit=2)
    np.testing.assert_array_equal(images[..., 0], train[:2])
    assert labels.dtype == np.int64


def test_load_arrays_fashion_mnist_debian_package():
    require(FASHION_MNIST)
    images, labels = data.load_arrays(FASHION_MNIST, "test")
    assert images.shape == (10000, 28, 28, 1) and images.dtype == np.uint8
    np.testing.assert_array_equal(labels[:5], [9, 2, 1, 1, 6])
    assert abs(images.mean() / 255 - 0.2868) < 1e-3


def test_load_arrays_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="No such file"):
        data.load_arrays(tmp_path / "nope")
    (tmp_path / "train.npz").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match=r"test\.npz.*train\.npz"):
        data.load_arrays(tmp_path, "test")
    np.savez(tmp_path / "float.npz", images=np.zeros((2, 4, 4, 3), np.float32))
    with pytest.raises(ValueError, match="uint8"):
        data.load_arrays(tmp_path / "float.npz")
    np.savez(tmp_path / "shape.npz", images=np.zeros((2, 4, 4, 5), np.uint8))
    with pytest.raises(ValueError, match="shape"):
        data.load_arrays(tmp_path / "shape.npz")
    np.savez(tmp_path / "keys.npz", pixels=np.zeros((2, 4, 4), np.uint8))
    with pytest.raises(ValueError, match="'images'"):
        data.load_arrays(tmp_path / "keys.npz")


# --- image folders -----------------------------------------------------------


def test_load_image_folder_labels_and_resize(tmp_path):
    write_png(tmp_path / "cats" / "a.png", (255, 0, 0))
    write_png(tmp_path / "cats" / "b.jpg", (0, 255, 0))
    write_png(tmp_path / "dogs" / "deep" / "c.PNG", (0, 0, 255))
    write_png(tmp_path / "loose.bmp", (10, 20, 30))
    (tmp_path / "notes.txt").write_text("not an image")
    images, labels = data.load_image_folder(tmp_path, image_size=(8, 6))
    assert images.shape == (4, 8, 6, 3) and images.dtype == np.uint8
    assert data.image_folder_classes(tmp_path) == ["cats", "dogs"]
    np.testing.assert_array_equal(labels, [0, 0, 1, -1])
    np.testing.assert_array_equal(
        images[0], np.broadcast_to([255, 0, 0], (8, 6, 3))
    )
    np.testing.assert_array_equal(
        images[3], np.broadcast_to([10, 20, 30], (8, 6, 3))
    )
    gray, _ = data.load_image_folder(tmp_path, channels=1, limit=2)
    assert gray.shape == (2, 10, 12, 1)


def test_load_image_folder_crop_and_size_mismatch(tmp_path):
    write_png(tmp_path / "wide.png", (0, 0, 0), size=(20, 10))
    image = Image.open(tmp_path / "wide.png")
    image.paste((255, 255, 255), (0, 0, 5, 10))  # white left quarter
    image.save(tmp_path / "wide.png")
    write_png(tmp_path / "small.png", (0, 0, 0), size=(4, 4))
    with pytest.raises(ValueError, match="image_size"):
        data.load_image_folder(tmp_path)
    cropped, _ = data.load_image_folder(
        tmp_path, image_size=10, crop_to_aspect_ratio=True
    )
    assert cropped.shape == (2, 10, 10, 3)
    assert (
        cropped[1].max() == 0
    )  # the centered 10x10 crop misses the white part


def test_load_image_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="No such folder"):
        data.load_image_folder(tmp_path / "missing")
    (tmp_path / "readme.txt").write_text("no images here")
    with pytest.raises(FileNotFoundError, match="No image files.*readme.txt"):
        data.load_image_folder(tmp_path)
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="broken.png"):
        data.load_image_folder(tmp_path)


# --- load_split / load_tfds -----------------------------------------------


def test_load_split_dispatch(tmp_path):
    write_png(
        tmp_path / "photos" / "train" / "x" / "a.png", (1, 2, 3), size=(6, 6)
    )
    write_png(
        tmp_path / "photos" / "test" / "x" / "b.png", (4, 5, 6), size=(6, 6)
    )
    images, labels = data.load_split(tmp_path / "photos", "test", image_size=4)
    assert images.shape == (1, 4, 4, 3) and images[0, 0, 0].tolist() == [
        4,
        5,
        6,
    ]
    np.testing.assert_array_equal(labels, [0])

    np.savez(
        tmp_path / "test.npz", images=np.zeros((2, 8, 8, 1), np.uint8) + 200
    )
    images, labels = data.load_split(
        tmp_path, "test", image_size=16, channels=3
    )
    assert images.shape == (2, 16, 16, 3) and images.max() == 200
    with pytest.raises(FileNotFoundError, match="tfds:NAME"):
        data.load_split(tmp_path / "missing")


def test_load_classes_of_each_source_kind(tmp_path):
    write_png(tmp_path / "photos" / "train" / "owl" / "a.png", (1, 2, 3))
    write_png(tmp_path / "photos" / "train" / "cat" / "b.png", (1, 2, 3))
    assert data.load_classes(tmp_path / "photos") == [
        {"id": "cat", "name": "cat"},
        {"id": "owl", "name": "owl"},
    ]
    arrays = tmp_path / "arrays"
    arrays.mkdir()
    np.savez(arrays / "train.npz", images=np.zeros((1, 4, 4, 1), np.uint8))
    assert data.load_classes(arrays) is None
    assert data.load_classes(arrays / "train.npz") is None
    (arrays / "classes.json").write_text(
        '[["n01440764", "tench", "imagenette"], "plain", '
        '{"id": "n2", "name": "dict"}]'
    )
    assert data.load_classes(arrays) == [
        {"id": "n01440764", "name": "tench"},
        {"id": "plain", "name": "plain"},
        {"id": "n2", "name": "dict"},
    ]
    (arrays / "classes.json").write_text('{"tench": 0}')
    with pytest.raises(ValueError, match="JSON list of classes"):
        data.load_classes(arrays)
    (arrays / "classes.json").write_text("[[1]]")
    with pytest.raises(ValueError, match=r"\[id, name, ...\] list"):
        data.load_classes(arrays)
    (arrays / "classes.json").write_text("[")
    with pytest.raises(ValueError, match="Cannot read .*classes.json"):
        data.load_classes(arrays)


def test_load_classes_of_the_shared_imagenet_subsets():
    classes = data.load_classes(dataset("imagenet_subsets_128"))
    assert len(classes) == 20
    assert classes[0] == {"id": "n01440764", "name": "tench"}
    assert classes[19] == {"id": "n03888257", "name": "parachute"}


def test_load_split_model_sets_image_size_and_channels(tmp_path):
    np.savez(tmp_path / "test.npz", images=np.full((2, 8, 8, 1), 9, np.uint8))
    model = types.SimpleNamespace(image_shape=(16, 12, 3))
    images, labels = data.load_split(tmp_path, "test", model=model)
    assert images.shape == (2, 16, 12, 3) and (images == 9).all()
    np.testing.assert_array_equal(labels, [-1, -1])
    with pytest.raises(ValueError, match="not both"):
        data.load_split(tmp_path, "test", model=model, channels=3)
    with pytest.raises(ValueError, match="image_shape"):
        data.load_split(tmp_path, "test", model=object())


def test_load_tfds_without_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)
    with pytest.raises(ImportError, match="pip install tensorflow-datasets"):
        data.load_tfds("mnist", "test")
    with pytest.raises(ImportError, match="tensorflow-datasets"):
        data.load_split("tfds:mnist", "test")


def test_load_tfds_offline_not_prepared(monkeypatch, tmp_path):
    calls = {}

    def fake_load(name, **kwargs):
        calls.update(kwargs)
        raise AssertionError(
            f"Dataset {name}: could not find data in {tmp_path}."
        )

    fake = types.ModuleType("tensorflow_datasets")
    fake.load = fake_load
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", fake)
    with pytest.raises(FileNotFoundError, match="tfds build mnist"):
        data.load_tfds("mnist", "test", data_dir=tmp_path, limit=10)
    assert calls["download"] is False and calls["split"] == "test[:10]"
    with pytest.raises(FileNotFoundError, match="does not exist"):
        data.load_tfds("mnist", "test", data_dir=tmp_path / "missing")


# --- make_dataset -------------------------------------------------------------


def indexed_images(n, size=4):
    """Images whose pixels all equal their index, to track order."""
    return np.broadcast_to(
        np.arange(n, dtype=np.uint8)[:, None, None, None], (n, size, size, 1)
    ).copy()


def batch_indices(dataset):
    return [
        np.rint((np.asarray(x)[:, 0, 0, 0] + 0.5) * 255).astype(int).tolist()
        for x in dataset
    ]


def test_make_dataset_batches():
    images = indexed_images(10)
    dataset = data.make_dataset(images, batch_size=4, seed=1)
    batches = list(dataset)
    assert [b.shape[0] for b in batches] == [4, 4, 2]
    assert all(
        b.dtype == "float32" and b.shape[1:] == (4, 4, 1) for b in batches
    )
    x = np.concatenate([np.asarray(b) for b in batches])
    assert x.min() >= -0.5 and x.max() <= 0.5
    assert sorted(sum(batch_indices(dataset), [])) == list(range(10))
    ordered = data.make_dataset(images, batch_size=4, shuffle=False)
    assert batch_indices(ordered) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    np.testing.assert_allclose(
        next(iter(ordered)), data.normalize(images[:4]), atol=1e-7
    )


def test_make_dataset_is_reproducible_with_seed():
    images = indexed_images(64)
    first = batch_indices(data.make_dataset(images, batch_size=16, seed=3))
    again = batch_indices(data.make_dataset(images, batch_size=16, seed=3))
    other = batch_indices(data.make_dataset(images, batch_size=16, seed=4))
    assert first == again and first != other


def test_make_dataset_labels_resize_repeat():
    images = indexed_images(10)
    labels = np.arange(10) * 10
    dataset = data.make_dataset(
        images,
        batch_size=4,
        labels=labels,
        seed=0,
        repeat=True,
        image_size=(8, 6),
        drop_remainder=True,
    )
    assert dataset.element_spec[0].shape == (4, 8, 6, 1)
    for x, y in dataset.take(5):
        assert x.shape == (4, 8, 6, 1) and y.dtype == "int64"
        index = np.rint((np.asarray(x)[:, 0, 0, 0] + 0.5) * 255).astype(int)
        np.testing.assert_array_equal(np.asarray(y), index * 10)


def test_make_dataset_augment_flips():
    images = np.zeros((32, 2, 2, 1), np.uint8)
    images[:, :, 0] = 255  # white left column
    dataset = data.make_dataset(images, batch_size=32, augment=True, seed=0)
    x = np.asarray(next(iter(dataset)))
    flipped = x[:, 0, 1, 0] == 0.5
    assert 0 < flipped.sum() < 32
    np.testing.assert_array_equal(x[flipped, :, 0], -0.5)


def test_make_dataset_rejects_float_images():
    with pytest.raises(ValueError, match="uint8"):
        data.make_dataset(np.zeros((4, 2, 2, 3), np.float32), batch_size=2)


# --- helpers and metrics ------------------------------------------------------


def test_convert_channels_and_resize_images():
    gray = np.full((2, 5, 5, 1), 77, np.uint8)
    rgb = data.convert_channels(gray, 3)
    assert rgb.shape == (2, 5, 5, 3) and (rgb == 77).all()
    np.testing.assert_array_equal(data.convert_channels(rgb, 1), gray)
    resized = data.resize_images(rgb, (7, 9))
    assert resized.shape == (2, 7, 9, 3) and (resized == 77).all()


def test_psnr_and_mse01():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 255, (3, 8, 8, 3), dtype=np.uint8)
    assert psnr(a, a) == float("inf") and mse01(a, a) == 0.0
    assert psnr(a, a + 1) == pytest.approx(20 * np.log10(255), abs=1e-9)
    assert mse01(a, a + 1) == pytest.approx(1 / 255**2)
    b = a.copy()
    b[0] += 1
    per_image = psnr(a, b, per_image=True)
    assert per_image.shape == (3,) and per_image[0] == pytest.approx(
        48.1308, abs=1e-4
    )
    assert np.isinf(per_image[1:]).all()
    np.testing.assert_allclose(mse01(a, b, per_image=True), [1 / 255**2, 0, 0])
    with pytest.raises(ValueError, match="denormalize"):
        psnr(a, a.astype(np.float32))
    with pytest.raises(ValueError, match="Shapes differ"):
        mse01(a, a[:2])


def test_maximum_likelihood_scale_beats_the_rms_scale():
    from keras_vqvae import metrics

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (64, 8, 8, 1)).astype("uint8")
    targets = data.normalize(images)
    means = targets + rng.normal(0, 0.004, targets.shape)  # ~1 grey level
    norm = data.DEFAULT_NORMALIZATION
    rms = float(np.sqrt(np.mean((targets - means) ** 2)))
    best = metrics.fit_discretized_gaussian_scale(images, means, norm)

    def nll(scale):
        return metrics.discretized_gaussian_nll(
            images, means, scale, norm
        ).mean()

    assert nll(best) < nll(rms)
    assert nll(best) <= min(nll(best * 0.9), nll(best * 1.1))
