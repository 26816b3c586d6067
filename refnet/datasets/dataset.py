"""The value every loader returns: arrays plus a record of where they came from."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError


@dataclass(frozen=True)
class Dataset:
    """A loaded split.

    ``info`` is plain JSON-able data that reports and result files can store as is: dataset,
    split, source used, files and their sha256, classes, per-class counts, normalisation.
    """
    X: np.ndarray   #: inputs, shape (n_samples, n_features), float64 (or float32 if asked)
    y: np.ndarray   #: targets: int64 class indices, shape (n_samples,) (float for regression)
    classes: tuple  #: class names; index k is label k (empty for regression)
    info: dict      #: provenance and preprocessing record


def check_dtype(dtype) -> np.dtype:
    """``dtype`` as a numpy dtype, float64 or float32; else a ConfigError naming it."""
    try:
        dt = np.dtype(dtype)
    except (TypeError, ValueError):
        dt = None
    if dt not in (np.float64, np.float32):
        raise ConfigError(f"dtype: expected float64 or float32, got {dtype!r}")
    return dt


def check_split(split: str, allowed=("train", "test")) -> str:
    if not isinstance(split, str) or split not in allowed:
        raise ConfigError(f"split: expected one of {', '.join(allowed)}, got {split!r}")
    return split
