"""Publish a preset folder to the Hugging Face Hub.

    python tools/upload_preset.py presets/mnist owner/vqvae-mnist [--dry-run]

The token comes from --token, HF_TOKEN, or `huggingface-cli login`.
"""

import argparse
import sys

from keras_vqvae.upload import UploadError
from keras_vqvae.upload import upload_preset


def build_parser(parser=None):
    parser = parser or argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="preset folder (config.json, metadata.json, weights)")
    parser.add_argument("repo_id", help="Hub repository, owner/name")
    parser.add_argument("--token", help="Hub token (default: HF_TOKEN or the login cache)")
    parser.add_argument("--private", action="store_true", help="create the repository as private")
    parser.add_argument("--revision", help="branch to commit to (default main)")
    parser.add_argument("--message", help="commit message")
    parser.add_argument("--dry-run", action="store_true", help="list the files; send nothing")
    parser.add_argument("--force", action="store_true", help="overwrite a repo holding a different architecture")
    return parser


def run(args):
    try:
        upload_preset(
            args.folder, args.repo_id, token=args.token, private=args.private,
            revision=args.revision, commit_message=args.message,
            dry_run=args.dry_run, force=args.force,
        )
    except UploadError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


def main(argv=None):
    return run(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
