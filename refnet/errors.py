"""refnet's exception types: one per failure family, all subclasses of :class:`RefnetError`.

Every loader catches what its parsers can raise and re-raises one of these, with a message
that names the file (or argument, or command-line flag), says what was wrong and what to do.
The command line turns any :class:`RefnetError` into one line on stderr and exit status 2.

Each family also subclasses the built-in type that callers caught before it existed
(``ValueError`` for bad content, ``FloatingPointError`` for divergence), so code written
against those keeps working.
"""
from __future__ import annotations

__all__ = ["RefnetError", "ConfigError", "DataError", "ModelFileError", "CheckpointError",
           "ResultFileError", "TrainingDiverged"]


class RefnetError(Exception):
    """Base of every error refnet raises on purpose."""


class ConfigError(RefnetError, ValueError):
    """A setting, argument or configuration file is invalid (names the setting and the fix)."""


class DataError(RefnetError, ValueError):
    """Input data (a dataset file, an input array, labels) is unusable."""


class ModelFileError(RefnetError, ValueError):
    """A model file (``.npz``/``.safetensors`` weights with metadata) is unreadable or invalid."""


class CheckpointError(RefnetError, ValueError):
    """A training checkpoint is unreadable, invalid, or does not match its content hash."""


class ResultFileError(RefnetError, ValueError):
    """A result file of ``refnet reproduce``, ``evaluate`` or ``sweep`` is unreadable or invalid."""


class TrainingDiverged(RefnetError, FloatingPointError):
    """Training produced a non-finite loss, gradient or parameter (names epoch and batch)."""
