"""Same as `keras-vqvae upload`; see `python tools/upload_preset.py --help`."""

import sys

from keras_vqvae.cli import main

if __name__ == "__main__":
    sys.exit(main(["upload", *sys.argv[1:]]))
