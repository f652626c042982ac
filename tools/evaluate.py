"""Same as `keras-vqvae evaluate`; see `python tools/evaluate.py --help`."""

import sys

from keras_vqvae.cli import main

if __name__ == "__main__":
    sys.exit(main(["evaluate", *sys.argv[1:]]))
