"""User-facing errors: the CLI prints ``error: <message>`` (one line) and exits with status 2."""


class SpecprobeError(Exception):
    """A problem with the user's input (file, option, data), explained in one line."""


class CheckpointError(SpecprobeError):
    """A checkpoint that cannot be read, is not trusted, or does not match what it declares."""


class DataError(SpecprobeError):
    """Data that does not fit the model: grid, channels, NaN, too few samples."""
