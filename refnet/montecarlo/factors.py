"""Noise carried in a layer's output dimensions through a triangular factor (opt-in shortcut).

Uncorrelated additive noise ``xi ~ N(0, s^2 I)`` on the output ``a`` of layer ``l`` reaches the
next pre-activation as ``W xi`` with ``W = W_{l+1}`` of shape (m, n), ``m <= n``:
``W xi ~ N(0, s^2 W W^T)`` (Derived: from (Semenova 2022, Eqs. 1 and 3, p. 3) by linearity
of Eq. 1).
With ``W W^T = L L^T`` and ``L`` lower triangular (m, m), ``s L eps`` with ``eps ~ N(0, I_m)``
has the same law: ``m`` normals and a triangular product (``m^2`` flops per sample, half of
the dense ``2 n m`` when ``m == n``) instead of ``n`` normals and a dense product. Equal in
distribution, different draws: the ``"triangular_draws"`` shortcut of
:mod:`refnet.montecarlo.engine` is therefore not a default (it changes the random stream) and
must be named explicitly.
"""
from __future__ import annotations

import numpy as np

from .._gemm import lower_triangular_mix

__all__ = ["triangular_factor", "triangular_mix", "triangular_mix_numpy"]

Array = np.ndarray


def triangular_factor(W: Array, dtype) -> Array:
    """Lower-triangular ``L`` (m, m), Fortran order, with ``L L^T = W W^T`` for ``W`` (m, n).

    From the QR decomposition ``W^T = Q R`` (``R`` upper, m x m): ``W W^T = R^T R``, so
    ``L = R^T``; unlike a Cholesky factorisation this also works when ``W`` is rank deficient.
    Computed in float64, then rounded to ``dtype``."""
    W = np.asarray(W, dtype=np.float64)
    if W.shape[0] > W.shape[1]:
        raise ValueError(f"W: need at most as many rows as columns, got {W.shape}")
    R = np.linalg.qr(W.T, mode="r")
    return np.asfortranarray(R.T.astype(dtype))


def triangular_mix(L: Array, s, eps: Array) -> Array:
    """``s * eps @ L.T`` for ``eps`` (n_batch, m), computed in place in ``eps`` (returned).

    One BLAS triangular product (``trmm``): ``eps.T`` is ``eps`` read in column-major order, so
    ``L @ eps.T`` in column-major is ``eps @ L.T`` in row-major, without a copy. Called from
    numba without the GIL (:func:`refnet._gemm.lower_triangular_mix`), so that chunks on
    several workers run it at once."""
    return lower_triangular_mix(L, s, eps)


def triangular_mix_numpy(L: Array, s, eps: Array) -> Array:
    """NumPy twin of :func:`triangular_mix` (a dense product; equal to rounding)."""
    eps[...] = s * (eps @ np.tril(L).T)
    return eps
