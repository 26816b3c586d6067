"""Losses, each returning its value and its gradient with respect to the network output.

Both reduce by the batch mean, as PyTorch's ``nn.CrossEntropyLoss`` and ``nn.MSELoss`` do.
"""
from __future__ import annotations

import numpy as np

__all__ = ["cross_entropy", "mse", "get_loss", "LOSSES", "check_labels"]

Array = np.ndarray


def check_labels(y, n_batch: int, n_classes: int, name: str = "y") -> Array:
    """Integer class labels, shape ``(n_batch,)``, each in ``0..n_classes-1``."""
    y = np.asarray(y)
    if y.ndim != 1 or y.shape[0] != n_batch:
        raise ValueError(f"{name}: expected shape ({n_batch},), got {y.shape}")
    if y.dtype.kind not in "iu":
        if y.dtype.kind == "f" and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
            y = y.astype(np.int64)
        else:
            raise ValueError(f"{name}: class labels must be integers, got dtype {y.dtype}")
    if y.size and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError(f"{name}: labels must lie in 0..{n_classes - 1}, "
                         f"got range {y.min()}..{y.max()}")
    return y


def cross_entropy(logits, y) -> tuple[float, Array]:
    """Softmax cross-entropy, batch mean: ``-(1/n) sum_k log softmax(logits_k)[y_k]``.

    Parameters
    ----------
    logits : ndarray, shape (n_batch, n_classes)
    y : int array, shape (n_batch,)

    Returns
    -------
    value : float
    grad : ndarray, shape (n_batch, n_classes)
        ``(softmax(logits) - onehot(y)) / n_batch``.

    Stable: the row maximum is subtracted before exponentiating (log-sum-exp).
    """
    logits = np.asarray(logits)
    if logits.ndim != 2:
        raise ValueError(f"logits: expected shape (n_batch, n_classes), got {logits.shape}")
    n = logits.shape[0]
    y = check_labels(y, n, logits.shape[1])
    shifted = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    s = e.sum(axis=1, keepdims=True)
    log_p = shifted - np.log(s)
    rows = np.arange(n)
    value = -log_p[rows, y].sum() / n
    grad = e / s
    grad[rows, y] -= 1.0
    grad /= n
    return float(value), grad


def mse(output, target) -> tuple[float, Array]:
    """Mean squared error over all elements: ``mean((output - target)^2)``.

    Parameters
    ----------
    output, target : ndarray, shape (n_batch, n_out)   (a 1-D target is taken as one column)

    Returns
    -------
    value : float
    grad : ndarray, shape (n_batch, n_out)
        ``2 (output - target) / output.size``.
    """
    output = np.asarray(output)
    target = np.asarray(target, dtype=output.dtype)
    if target.ndim == 1 and output.ndim == 2 and output.shape[1] == 1:
        target = target[:, None]
    if target.shape != output.shape:
        raise ValueError(f"target: expected shape {output.shape}, got {target.shape}")
    if not np.all(np.isfinite(target)):
        raise ValueError("target: contains NaN or inf")
    r = output - target
    return float(np.mean(r * r)), (2.0 / r.size) * r


LOSSES = {"cross_entropy": cross_entropy, "mse": mse}


def get_loss(name: str):
    """The loss function called ``name`` (``"cross_entropy"`` or ``"mse"``)."""
    try:
        return LOSSES[name]
    except KeyError:
        raise ValueError(f"loss: unknown loss {name!r}; known: {', '.join(LOSSES)}") from None
