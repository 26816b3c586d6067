"""Seeded splits: train/validation (the authors' 48k/12k) and a per-class train/test split."""
from __future__ import annotations

import numpy as np


def train_val_split(X, y, n_val: int = 12_000, rng=None):
    """Split (X, y) into a training and a validation part at random.

    The authors' code uses an unseeded 80/20 ``random_split`` of the 60k training set (48k/12k);
    here the permutation comes from ``rng`` (a seed or ``np.random.Generator``), so it is
    reproducible.

    Parameters
    ----------
    X : ndarray, shape (n_samples, n_features)
    y : ndarray, shape (n_samples,)
    n_val : int
        Validation size, 0 < n_val < n_samples.
    rng : int | np.random.Generator | None

    Returns
    -------
    X_train, y_train, X_val, y_val
        Shapes (n_samples - n_val, n_features), (n_samples - n_val,), (n_val, n_features),
        (n_val,); rows keep their original order within each part.
    """
    X, y = np.asarray(X), np.asarray(y)
    n = X.shape[0]
    if y.shape[0] != n:
        raise ValueError(f"y: {y.shape[0]} rows, X has {n}")
    if not 0 < n_val < n:
        raise ValueError(f"n_val: expected 0 < n_val < {n}, got {n_val}")
    perm = np.random.default_rng(rng).permutation(n)
    val, train = np.sort(perm[:n_val]), np.sort(perm[n_val:])
    return X[train], y[train], X[val], y[val]


def per_class_split(y, test_fraction: float, rng=None):
    """Indices of a stratified train/test split: in each class, a seeded random
    ``round(test_fraction * n_k)`` of its rows go to the test part.

    Returns (train_idx, test_idx), each sorted, together a partition of range(len(y)).
    """
    y = np.asarray(y)
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction: expected 0 < test_fraction < 1, got {test_fraction}")
    gen = np.random.default_rng(rng)
    test = []
    for k in np.unique(y):
        rows = np.flatnonzero(y == k)
        n_test = int(round(test_fraction * rows.size))
        test.append(gen.permutation(rows)[:n_test])
    test_idx = np.sort(np.concatenate(test)) if test else np.empty(0, dtype=np.int64)
    mask = np.ones(y.size, dtype=bool)
    mask[test_idx] = False
    return np.flatnonzero(mask), test_idx
