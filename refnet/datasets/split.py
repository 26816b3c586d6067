"""Seeded splits that never leave the rows in class order.

The authors split the 60k training images with torch's ``random_split`` (80/20, unseeded) and
train without shuffling; ``random_split`` returns each part in the order of its random
permutation, so their batches mix the classes. Every function here does the same from an
explicit seed, and stratifies (the same share of every class in each part) on request, which
matters for a dataset stored class after class (QuickDraw): there a plain split still mixes the
batches, but a truncation to the first rows would keep only the first classes.

===========================  =================================================================
``train_val_split``          (X, y) -> train part, validation part, both in permutation order
``split_indices``            the indices behind it (optionally stratified)
``stratified_subset``        n row indices, every class in proportion, in permutation order
``per_class_split``          per-class train/test indices of a loader (sorted: file order)
===========================  =================================================================
"""
from __future__ import annotations

import numpy as np

__all__ = ["train_val_split", "split_indices", "stratified_subset", "per_class_split",
           "class_shares"]


def class_shares(counts, n: int) -> np.ndarray:
    """How many of ``n`` rows each class gets, in proportion to ``counts`` (largest remainder).

    Every class with rows gets at least one when ``n`` >= the number of such classes, so a
    small subset never drops a class. Returns int64 of shape (n_classes,), summing to ``n``.
    """
    counts = np.asarray(counts, dtype=np.int64)
    total = int(counts.sum())
    if not 0 <= n <= total:
        raise ValueError(f"n: expected 0 <= n <= {total} (rows available), got {n}")
    exact = counts * (n / total) if total else np.zeros(counts.shape)
    share = np.minimum(np.floor(exact).astype(np.int64), counts)
    present = counts > 0
    if n >= present.sum():
        share[present & (share == 0)] = 1
    # hand out (or take back) the remainder by largest fractional part, within each class's rows
    order = np.argsort(-(exact - np.floor(exact)), kind="stable")
    while share.sum() < n:
        for k in order:
            if share.sum() == n:
                break
            if share[k] < counts[k]:
                share[k] += 1
    while share.sum() > n:
        for k in order[::-1]:
            if share.sum() == n:
                break
            if share[k] > 1:
                share[k] -= 1
    return share


def _check_labels(y, n=None):
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"y: expected labels of shape (n_samples,), got shape {y.shape}")
    if n is not None and y.shape[0] != n:
        raise ValueError(f"y: {y.shape[0]} rows, X has {n}")
    return y


def stratified_subset(y, n: int, rng=None) -> np.ndarray:
    """Indices of ``n`` rows of ``y``, every class in proportion (:func:`class_shares`).

    Which rows of a class are taken is seeded; the result is in the order of one seeded
    permutation of all rows (as ``random_split``), so consecutive rows mix the classes.

    Returns int64 of shape (n,).
    """
    y = _check_labels(y)
    perm = np.random.default_rng(rng).permutation(y.size)
    classes, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
    share = class_shares(counts, int(n))
    # rank of each row within its class, counted along the permutation
    yp = inverse[perm]
    rank = np.empty(y.size, dtype=np.int64)
    for k in range(classes.size):
        where = np.flatnonzero(yp == k)
        rank[where] = np.arange(where.size)
    keep = rank < share[yp]
    return perm[keep]


def split_indices(y, n_val: int, rng=None, stratify: bool = False):
    """``(train_idx, val_idx)``: a seeded split of ``range(len(y))``, each part in the order of
    one random permutation (what ``torch.utils.data.random_split`` returns).

    ``stratify=True`` gives each class its share of ``n_val`` (:func:`class_shares`), so both
    parts hold every class in the proportions of ``y``; the parts are still in permutation
    order. Shapes (len(y) - n_val,) and (n_val,), int64.
    """
    y = _check_labels(y)
    n = y.size
    if not 0 < n_val < n:
        raise ValueError(f"n_val: expected 0 < n_val < {n}, got {n_val}")
    gen = np.random.default_rng(rng)
    if not stratify:
        perm = gen.permutation(n)
        return perm[n_val:], perm[:n_val]
    val = stratified_subset(y, n_val, gen)
    perm = gen.permutation(n)
    is_val = np.zeros(n, dtype=bool)
    is_val[val] = True
    return perm[~is_val[perm]], val


def train_val_split(X, y, n_val: int = 12_000, rng=None, stratify: bool = False):
    """Split (X, y) into a training and a validation part at random (:func:`split_indices`).

    The authors' code uses an unseeded 80/20 ``random_split`` of the 60k training set (48k/12k);
    here the permutation comes from ``rng`` (a seed or ``np.random.Generator``), so it is
    reproducible. Rows come out in the permutation's order, as ``random_split``'s do: training
    on them without shuffling sees mixed batches even when (X, y) is stored class by class.

    Parameters
    ----------
    X : ndarray, shape (n_samples, n_features)
    y : ndarray, shape (n_samples,)
    n_val : int
        Validation size, 0 < n_val < n_samples.
    rng : int | np.random.Generator | None
    stratify : bool
        Give every class its share of the validation part (for class-sorted data).

    Returns
    -------
    X_train, y_train, X_val, y_val
        Shapes (n_samples - n_val, n_features), (n_samples - n_val,), (n_val, n_features),
        (n_val,).
    """
    X = np.asarray(X)
    y = _check_labels(y, X.shape[0])
    train, val = split_indices(y, n_val, rng, stratify)
    return X[train], y[train], X[val], y[val]


def per_class_split(y, test_fraction: float, rng=None):
    """Indices of a stratified train/test split: in each class, a seeded random
    ``round(test_fraction * n_k)`` of its rows go to the test part.

    Returns (train_idx, test_idx), each sorted (file order: a loader's output, to be mixed by
    :func:`train_val_split` before training), together a partition of range(len(y)).
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
