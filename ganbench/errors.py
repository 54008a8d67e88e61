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


class ResumeMismatch(ConfigError):
    """A run folder holds a run of other settings than the ones asked for; `why` says which (training's resume
    check: `bench` reports it as a suite whose settings changed)."""

    def __init__(self, message: str, why: str = "") -> None:
        super().__init__(message)
        self.why = why or message


class NotApplicable(ConfigError):
    """A metric that does not apply to this model (EQ on a non-StyleGAN3, PPL in W on ProGAN): expected, not a fault."""


class NonFiniteError(GanbenchError):
    """NaN or inf where a metric needs numbers: generator output, features or a value (a diverged run).

    `source` says where: 'generator', 'features' or 'value'.
    """

    def __init__(self, message: str, source: str = "value") -> None:
        super().__init__(message)
        self.source = source


class OutputError(GanbenchError):
    """An output file or folder that cannot be written (read-only, full, not a folder)."""
