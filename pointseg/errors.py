"""User-facing errors: the CLI prints their message (no traceback) and exits non-zero."""


class PointsegError(Exception):
    """An error whose message tells the user what went wrong and how to fix it."""


class DataError(PointsegError):
    """Bad or missing input data (names the file, line and what was expected)."""


class ConfigError(PointsegError):
    """Unknown model, config key, or incompatible checkpoint."""
