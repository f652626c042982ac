"""The error types keras-vqvae raises for problems a user can fix.

Each message says what was wrong and what to do. The CLI prints them as
one line and exits with status 1; any other exception is a bug and keeps
its traceback.
"""


class PresetError(ValueError):
    """A preset cannot be found, read or trusted."""


class ConfigError(ValueError):
    """A model configuration (`--config` file, `--set` value) is invalid."""


class DataError(ValueError):
    """A data source cannot be read, or holds data of the wrong kind."""


class UploadError(RuntimeError):
    """A preset cannot be published as asked."""


class CheckpointError(RuntimeError):
    """A training checkpoint cannot be read (damaged or half-written)."""


class NaNLossError(RuntimeError):
    """Training stopped because the loss became NaN or infinite."""
