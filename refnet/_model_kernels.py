"""Fused element-wise pieces of the forward and backward passes (numba), beside their NumPy twins.

``dA * (s * (1 - s))``, the sigmoid layer's ``dL/dz`` from its output ``s``, is three NumPy
passes and two temporaries per layer and batch; additive noise ``x + c xi`` (noise-aware
training's) is a copy, a product and a sum. Each kernel makes one pass. Same operations in
the same order per element and no fastmath (no fused multiply-add), so the results equal the
twin's (tested, and the trainer's bit-for-bit tests run through it). numba comes through
:mod:`refnet._numba`: without it the twin runs (same numbers) after one warning.
"""
from __future__ import annotations

import numpy as np

from . import _numba
from .activations import sigmoid_prime_from_output

__all__ = ["times_sigmoid_prime", "times_sigmoid_prime_numpy", "plus_scaled", "plus_scaled_numpy",
           "add_row_values", "add_row_values_numpy"]


def _times_sigmoid_prime_body(dA, s, one, out):
    # ``one`` has the arrays' dtype: a literal 1.0 would make numba compute float32 input in
    # float64 (NumPy keeps ``1.0 - s`` in float32), and round differently
    for i in range(out.size):
        out[i] = dA[i] * (s[i] * (one - s[i]))


# Serial, like the optimizer kernels: a numba thread pool between BLAS calls fights
# OpenBLAS's threads for the cores.
_times_sigmoid_prime_serial = _numba.njit(_times_sigmoid_prime_body, cache=True,
                                          error_model="numpy")


def times_sigmoid_prime_numpy(dA, s):
    """The NumPy twin: ``dA * sigmoid_prime_from_output(s)``, a new array."""
    return dA * sigmoid_prime_from_output(s)


def times_sigmoid_prime(dA, s):
    """``dA * (s (1 - s))`` as a new array shaped like ``s`` (``(n_batch, n_neurons)``)."""
    dA, s = np.asarray(dA), np.asarray(s)
    if (not _numba.HAVE_NUMBA or dA.shape != s.shape or dA.dtype != s.dtype
            or s.dtype.kind != "f" or not (dA.flags.c_contiguous and s.flags.c_contiguous)):
        if not _numba.HAVE_NUMBA:
            _numba.warn_fallback("the fused sigmoid backward")
        return times_sigmoid_prime_numpy(dA, s)
    out = np.empty_like(s)
    _times_sigmoid_prime_serial(dA.reshape(-1), s.reshape(-1), s.dtype.type(1.0), out.reshape(-1))
    return out


def _plus_scaled_body(x, c, d, out):
    for i in range(out.size):
        out[i] = x[i] + c * d[i]


_plus_scaled_serial = _numba.njit(_plus_scaled_body, cache=True, error_model="numpy")


def plus_scaled_numpy(x, c: float, d):
    """The NumPy twin: ``x + c * d`` as :func:`refnet.noise.apply_noise` computes it (a copy
    of ``x``, then ``c * d`` added)."""
    y = x.copy()
    y += c * d
    return y


def plus_scaled(x, c: float, d):
    """``x + c * d`` as a new array (``x``, ``d``: the same shape). The kernel runs for
    C-contiguous arrays of one float dtype, with ``c`` rounded to that dtype first as NumPy
    does for a Python float times an array; anything else takes the twin."""
    x, d = np.asarray(x), np.asarray(d)
    if (not _numba.HAVE_NUMBA or x.shape != d.shape or x.dtype != d.dtype
            or x.dtype.kind != "f" or not (x.flags.c_contiguous and d.flags.c_contiguous)):
        if not _numba.HAVE_NUMBA:
            _numba.warn_fallback("the fused additive noise")
        return plus_scaled_numpy(x, c, d)
    out = np.empty_like(x)
    _plus_scaled_serial(x.reshape(-1), x.dtype.type(c), d.reshape(-1), out.reshape(-1))
    return out


def _add_row_values_body(g, c):
    # g (n_rows, n_cols) C-contiguous, c (n_rows,): one read of c per row, g[i, j] + c[i] for
    # every element, the one rounding NumPy's ``g += c[:, None]`` makes
    n_rows, n_cols = g.shape
    for i in range(n_rows):
        ci = c[i]
        for j in range(n_cols):
            g[i, j] += ci


_add_row_values_serial = _numba.njit(_add_row_values_body, cache=True, error_model="numpy")


def add_row_values_numpy(g, c):
    """The NumPy twin: ``g += c[:, None]``."""
    g += c[:, None]


def add_row_values(g, c):
    """Add ``c[i]`` to every entry of row ``i`` of ``g`` in place: ``g`` (n_rows, n_cols),
    ``c`` (n_rows,). The gradient of the row-sum penalty (Duque 2024, Eq. 4, p. 3) is one
    value per row; NumPy's broadcast add of it took 32-37 us for a 300 x 300 float64 layer
    here, the kernel 12 us (once per training step). The kernel runs for a C-contiguous
    ``g`` and ``c`` of one float dtype; anything else takes the twin (same numbers)."""
    c = np.asarray(c)
    if (not _numba.HAVE_NUMBA or g.ndim != 2 or c.shape != g.shape[:1] or c.dtype != g.dtype
            or g.dtype.kind != "f" or not g.flags.c_contiguous or not g.flags.writeable):
        if not _numba.HAVE_NUMBA:
            _numba.warn_fallback("the row-sum penalty's gradient")
        add_row_values_numpy(g, c)
        return
    _add_row_values_serial(g, np.ascontiguousarray(c))
