"""User-facing errors.

Every error a user can cause (bad data, bad config, bad paths) is a :class:`SeqtagError`. The CLI prints its
message as one paragraph and exits non-zero, without a traceback. Messages say what was wrong, where (file,
line, key) and what to do.
"""

from __future__ import annotations


class SeqtagError(Exception):
    """Base class of errors caused by user input; the CLI prints these without a traceback."""


class ConfigError(SeqtagError, ValueError):
    """A configuration key, type or value is invalid."""


class DataError(SeqtagError, ValueError):
    """An input data file is malformed. The message names the file and line."""


class LossConfigError(ConfigError):
    """An unknown loss name or an invalid loss parameter."""


class ExportError(SeqtagError):
    """A run that cannot be exported, an export directory that cannot be written or loaded."""


def where(path: object, line: int | None = None) -> str:
    """Format a location for error messages: ``'file.txt'`` or ``'file.txt:12'``.

    >>> where("train.txt", 12)
    'train.txt:12'
    """
    return f"{path}:{line}" if line is not None else f"{path}"


class TrainingStopped(SeqtagError):
    """Training stopped on purpose (non-finite loss); the last good checkpoint is kept."""


class Interrupted(SeqtagError):
    """SIGINT/SIGTERM during training: a resumable checkpoint was saved. ``signum`` is the signal (2 or 15)."""

    def __init__(self, message: str, signum: int = 2):
        super().__init__(message)
        self.signum = signum
