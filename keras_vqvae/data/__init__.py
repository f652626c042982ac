"""Image data for keras-vqvae: loading, normalization and `tf.data` pipelines.

Every loader returns images as a `uint8` NumPy array of shape `(N, H, W, C)`
(`C` is 1 or 3) with values 0..255, and labels as an `int64` array of shape
`(N,)`; a label of -1 means the source carries no label for that image.
Models work on float32 images (by default in [-0.5, 0.5]); `normalize` and
`denormalize` convert between the two, and `make_dataset` builds a batched,
normalized `tf.data.Dataset` ready for `model.fit(dataset)`.

`load_split(source, split)` loads a split of any of these sources:

- a folder holding `{split}.npz` (`images`, `labels`) or `{split}_jpeg.npz`
  (`jpeg`, `offsets`, `labels`), as in the project's shared datasets, or a
  single `.npz` file (also the `keras.datasets` layout `x_{split}`,
  `y_{split}`): see `load_arrays`;
- an MNIST-style idx folder (`train-images-idx3-ubyte[.gz]`,
  `t10k-images-idx3-ubyte[.gz]`, ...), e.g. Fashion-MNIST from the Debian
  package `dataset-fashion-mnist` in `/usr/share/datasets/fashion-mnist`:
  see `load_arrays` and `read_idx`;
- a folder of image files (png, jpg, jpeg, bmp, webp), labelled by
  subfolder: see `load_image_folder` and `image_folder_classes`;
  `load_image_files` reads a list of files;
- `"tfds:NAME"`: a TensorFlow Datasets dataset (needs `tensorflow-datasets`):
  see `load_tfds`.

`load_classes(source)` gives the names of a source's labels (a folder's
`classes.json`, image subfolders, or the TFDS label names).
"""

from keras_vqvae.data.array_files import load_arrays
from keras_vqvae.data.array_files import read_idx
from keras_vqvae.data.arrays import convert_channels
from keras_vqvae.data.arrays import resize_images
from keras_vqvae.data.image_files import IMAGE_EXTENSIONS
from keras_vqvae.data.image_files import image_folder_classes
from keras_vqvae.data.image_files import load_image_files
from keras_vqvae.data.image_files import load_image_folder
from keras_vqvae.data.pipeline import make_dataset
from keras_vqvae.data.sources import load_classes
from keras_vqvae.data.sources import load_split
from keras_vqvae.data.tfds import load_tfds
from keras_vqvae.normalization import DEFAULT_NORMALIZATION
from keras_vqvae.normalization import denormalize
from keras_vqvae.normalization import normalize
