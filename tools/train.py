"""Same as `keras-vqvae train`; see `python tools/train.py --help`."""

import sys

from keras_vqvae.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
