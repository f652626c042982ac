"""`make_dataset`: a batched, normalized `tf.data.Dataset` of uint8 images."""

import numpy as np

from keras_vqvae.data.arrays import check_images
from keras_vqvae.data.arrays import check_labels
from keras_vqvae.data.arrays import to_size
from keras_vqvae.errors import DataError
from keras_vqvae.normalization import check_normalization


def make_dataset(
    images,
    batch_size=32,
    *,
    labels=None,
    shuffle=True,
    seed=None,
    repeat=False,
    image_size=None,
    drop_remainder=False,
    augment=False,
    normalization=None,
):
    """Builds a batched `tf.data.Dataset` of normalized float32 images.

    The images stay in memory as uint8; the pipeline shuffles indices (each
    epoch anew), gathers batches with NumPy, then casts, optionally resizes,
    and normalizes them (by default to [-0.5, 0.5]) with TensorFlow ops, and
    prefetches (`AUTOTUNE`). It yields `x` only, for unsupervised training
    with `model.fit(dataset)`, or `(x, labels)` if `labels` is given (e.g.
    for a class-conditional prior). Works with every Keras backend; needs
    TensorFlow installed for `tf.data`.

    Args:
        images: uint8 array `(N, H, W, C)` (or `(N, H, W)`).
        batch_size: int. Images per batch.
        labels: optional int array `(N,)`. If given, batches are
            `(x, labels)` with int64 labels.
        shuffle: bool. Shuffle the order every epoch.
        seed: int or None. Seed for shuffling and augmentation; the same seed
            gives the same batches.
        repeat: bool. Repeat forever (then pass `steps_per_epoch` to `fit`).
        image_size: None, int or `(height, width)`. Resize batches on the fly
            (bilinear, anti-aliased) when the images have another size.
        drop_remainder: bool. Drop the last partial batch of each epoch, so
            all batches have static shape `batch_size`.
        augment: bool. Random horizontal flips. Suited to natural images,
            not to digits or text.
        normalization: dict with `"scale"` and `"offset"`. Defaults to
            `DEFAULT_NORMALIZATION`.

    Returns:
        `tf.data.Dataset` of float32 batches `(batch, H, W, C)`, or
        `(x, labels)` pairs.

    Example:

    >>> images = np.zeros((100, 28, 28, 1), "uint8")
    >>> dataset = make_dataset(images, batch_size=32, seed=0)
    >>> next(iter(dataset)).shape
    TensorShape([32, 28, 28, 1])
    """
    tf = _import_tf()
    images = check_images(images, "make_dataset images")
    if labels is not None:
        labels = check_labels(labels, len(images), "make_dataset labels")
    if int(batch_size) < 1:
        raise DataError(
            f"`batch_size` must be >= 1. Received: batch_size={batch_size}"
        )
    if len(images) == 0:
        raise DataError("make_dataset() received no images.")
    batch = batch_size if drop_remainder else None
    dataset = tf.data.Dataset.range(len(images))
    if shuffle:
        dataset = dataset.shuffle(
            len(images), seed=seed, reshuffle_each_iteration=True
        )
    if repeat:
        dataset = dataset.repeat()
    dataset = dataset.batch(int(batch_size), drop_remainder=drop_remainder)
    # Sequential gather keeps augmentation reproducible; the float
    # conversion runs in parallel (order is preserved).
    dataset = dataset.map(_load_fn(tf, images, labels, augment, seed, batch))
    dataset = dataset.map(
        _to_float_fn(tf, images.shape, batch, image_size, normalization),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    return dataset.prefetch(tf.data.AUTOTUNE)


def _import_tf():
    try:
        import tensorflow as tf
    except ImportError as e:
        raise ImportError(
            "make_dataset() needs TensorFlow for tf.data: `pip install "
            "tensorflow-cpu`."
        ) from e
    return tf


def _gather_fn(images, labels, augment, seed):
    """Returns a NumPy function: batch of indices -> uint8 batch (+labels)."""
    rng = np.random.default_rng(seed)

    def gather(indices):
        batch = images[indices]
        if augment:
            flip = rng.random(len(indices)) < 0.5
            batch[flip] = batch[flip, :, ::-1]
        if labels is None:
            return batch
        return batch, labels[indices]

    return gather


def _load_fn(tf, images, labels, augment, seed, batch):
    """Returns a tf.data map function: indices -> uint8 batch (+labels)."""
    gather = _gather_fn(images, labels, augment, seed)
    tout = [tf.uint8] if labels is None else [tf.uint8, tf.int64]

    def load(indices):
        outputs = tf.numpy_function(gather, [indices], tout)
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        outputs[0].set_shape((batch,) + images.shape[1:])
        if labels is not None:
            outputs[1].set_shape((batch,))
        return tuple(outputs)

    return load


def _to_float_fn(tf, shape, batch, image_size, normalization):
    """Returns a tf.data map function: uint8 batch -> normalized float32."""
    scale, offset = check_normalization(normalization)
    size = to_size(image_size)
    resize = size is not None and tuple(shape[1:3]) != size
    out_shape = (batch,) + (size or tuple(shape[1:3])) + (shape[-1],)

    def to_float(x, *rest):
        x = tf.cast(x, tf.float32)
        if resize:
            x = tf.image.resize(x, size, method="bilinear", antialias=True)
            x = tf.clip_by_value(x, 0.0, 255.0)
        x = x * scale + offset
        x.set_shape(out_shape)
        return (x, *rest) if rest else x

    return to_float
