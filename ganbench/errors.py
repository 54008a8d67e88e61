"""User-facing errors: one line that names the file or value at fault; the CLI turns them into exit code 2."""


class GanbenchError(Exception):
    """A problem with the user's input or environment, reported as one line without a traceback."""


class DataError(GanbenchError):
    """A dataset that cannot be read: empty, corrupt, non-image, mixed channels, bad resolution."""


class CheckpointError(GanbenchError):
    """A checkpoint that is truncated, corrupt, or not a ganbench checkpoint."""


class AssetError(GanbenchError):
    """A pretrained weight file that is missing, cannot be downloaded, or fails its sha256 check."""


class ConfigError(GanbenchError):
    """A bad option value, unknown name, or malformed config file."""
