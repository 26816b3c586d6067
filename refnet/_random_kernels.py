"""Standard normals through numba's ``np.random.Generator``, beside the NumPy twin.

numba implements NumPy's Generator algorithms (the ziggurat of ``standard_normal`` on the same
bit generator), so a kernel that fills an array one ``gen.standard_normal()`` at a time gives
the numbers of ``gen.standard_normal(n)`` and leaves the generator in the same state (tested)
at about three times NumPy's speed (a 128 x 300 float64 batch: 0.12 ms against 0.36 ms,
measured on the 2-core machine of the README's benchmarks). Float64 only: a float32 array gets
the float64 normals rounded, which is not NumPy's float32 stream (``standard_normal(dtype=
np.float32)`` uses a float32 ziggurat). numba's own float32 ``standard_normal`` is not it
either: its array form, 1.6x faster than NumPy's, gave NumPy's numbers for 20 million draws and
then one value fewer (numba 0.68, NumPy 2.4, found by comparing trained networks), so float32
draws stay with NumPy. The float64 stream was compared over 154 million values (two seeds)
without a difference, and the suite checks five million. numba comes through
:mod:`refnet._numba`: without it the twin runs (the same numbers).
"""
from __future__ import annotations

import numpy as np

from . import _numba

__all__ = ["fill_normal", "fill_normal_numpy", "standard_normal"]


def _fill_normal_body(gen, out):
    # out: 1-D; one draw per element, in order
    for i in range(out.size):
        out[i] = gen.standard_normal()


fill_normal = _numba.njit(_fill_normal_body, cache=True, nogil=True)


def fill_normal_numpy(gen, out):
    """The NumPy twin of :func:`fill_normal`: ``out`` (1-D) filled with
    ``gen.standard_normal(out.size)`` (rounded for a float32 ``out``)."""
    if out.dtype == np.float64:
        gen.standard_normal(out=out)
    else:
        out[...] = gen.standard_normal(out.size)


def standard_normal(rng: np.random.Generator, shape, dtype=np.float64) -> np.ndarray:
    """``rng.standard_normal(shape, dtype=dtype)``: the same numbers and the same generator
    state afterwards; float64 through :func:`fill_normal` (faster), float32 by NumPy (its own
    float32 stream)."""
    if (np.dtype(dtype) != np.float64 or not _numba.HAVE_NUMBA
            or type(rng) is not np.random.Generator):
        return rng.standard_normal(shape, dtype=dtype)
    out = np.empty(shape, dtype=np.float64)
    fill_normal(rng, out.reshape(-1))
    return out
