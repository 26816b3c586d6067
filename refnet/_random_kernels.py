"""Standard normals through numba's ``np.random.Generator``, beside the NumPy twin.

numba implements NumPy's Generator algorithms (the ziggurat of ``standard_normal`` on the same
bit generator), so a kernel that fills an array one ``gen.standard_normal()`` at a time gives
the numbers of ``gen.standard_normal(n)`` and leaves the generator in the same state (tested)
at about three times NumPy's speed (a 128 x 300 float64 batch: 0.12 ms against 0.36 ms,
measured on the 2-core machine of the README's benchmarks).

Float32 is another stream: ``standard_normal(dtype=np.float32)`` runs a float32 ziggurat
(NumPy's ``random_standard_normal_f``), not the float64 normals rounded. numba's own float32
``standard_normal`` is not it either: it gave NumPy's numbers for 20 million draws and then
one value fewer (numba 0.68, NumPy 2.4, found by comparing trained networks), because its
rejection step compares ``exp(-x^2/2)`` in float32 where NumPy's C compares it in double.
:func:`standard_normal_f32` is that C function again, step for step, with the double
comparison and NumPy's ``log1pf`` tail, on numba's ``next_uint32`` / ``next_float`` of the same
bit generator: NumPy's numbers and generator state, 2.6x faster on a 128 x 300 batch (0.12 ms
against 0.33 ms on an AMD EPYC 2-core machine). It uses two numba modules that are not public
API (the bit generator's ``next_*`` and the ziggurat tables); without them, or without numba,
float32 draws are NumPy's own call (the same numbers).

Both kernels were compared with NumPy over 2.7 billion values per dtype (16 seeds, 0.68
million of them from the ziggurat's tail) without a difference, by
``benchmarks/check_normal_streams.py``, which also times them; the suite checks five million
per dtype. numba comes through :mod:`refnet._numba`: without it the twins run (the same
numbers).
"""
from __future__ import annotations

import numpy as np

from . import _numba

__all__ = ["fill_normal", "fill_normal_numpy", "fill_normal_f32", "fill_normal_f32_numpy",
           "standard_normal"]


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


try:  # numba's bit-generator calls and ziggurat tables (not public API: see above)
    from numba import float32 as _f32
    from numba.np.random._constants import (fi_float, ki_float, wi_float, ziggurat_nor_inv_r_f,
                                            ziggurat_nor_r_f)
    from numba.np.random.generator_core import next_float, next_uint32
    HAVE_F32_KERNEL = _numba.HAVE_NUMBA
except ImportError:  # no numba, or a numba that moved them: NumPy's own call
    HAVE_F32_KERNEL = False


if HAVE_F32_KERNEL:
    @_numba.njit(inline="always")
    def standard_normal_f32(bitgen):
        """One float32 standard normal: NumPy's ``random_standard_normal_f``
        (``numpy/random/src/distributions/distributions.c``), step for step. ``r`` gives the
        strip ``idx`` (8 bits), the sign (1) and ``rabs`` (23); inside the strip's rectangle
        (99.3 %) ``x`` is returned; strip 0's tail is sampled by Marsaglia's method; else a
        rejection test against ``exp(-x^2/2)`` in double precision, as the C computes it
        (``-0.5 * x * x`` has a double literal)."""
        while True:
            r = next_uint32(bitgen)
            idx = r & 0xFF
            sign = (r >> 8) & 0x1
            rabs = (r >> 9) & 0x7FFFFF
            x = _f32(_f32(rabs) * wi_float[idx])
            if sign & 0x1:
                x = -x
            if rabs < ki_float[idx]:
                return x
            if idx == 0:
                while True:
                    xx = _f32(-ziggurat_nor_inv_r_f * np.log1p(_f32(-next_float(bitgen))))
                    yy = _f32(-np.log1p(_f32(-next_float(bitgen))))
                    if _f32(yy + yy) > _f32(xx * xx):
                        if (rabs >> 8) & 0x1:
                            return -_f32(ziggurat_nor_r_f + xx)
                        return _f32(ziggurat_nor_r_f + xx)
            else:
                u = _f32(_f32((fi_float[idx - 1] - fi_float[idx]) * next_float(bitgen))
                         + fi_float[idx])
                if u < np.exp(-0.5 * np.float64(x) * np.float64(x)):
                    return x

    @_numba.njit(cache=True, nogil=True)
    def fill_normal_f32(gen, out):
        """``out`` (1-D float32) filled with ``gen.standard_normal(out.size, dtype=np.float32)``,
        one :func:`standard_normal_f32` per element, in order."""
        bitgen = gen.bit_generator
        for i in range(out.size):
            out[i] = standard_normal_f32(bitgen)
else:
    fill_normal_f32 = None


def fill_normal_f32_numpy(gen, out):
    """The NumPy twin of :func:`fill_normal_f32`: NumPy's own float32 normals into ``out``."""
    gen.standard_normal(out=out, dtype=np.float32)


def standard_normal(rng: np.random.Generator, shape, dtype=np.float64) -> np.ndarray:
    """``rng.standard_normal(shape, dtype=dtype)``: the same numbers and the same generator
    state afterwards, through :func:`fill_normal` (float64) or :func:`fill_normal_f32`
    (float32), both faster than NumPy's call; anything else by NumPy."""
    dtype = np.dtype(dtype)
    kernel = {np.dtype(np.float64): fill_normal if _numba.HAVE_NUMBA else None,
              np.dtype(np.float32): fill_normal_f32}.get(dtype)
    if kernel is None or type(rng) is not np.random.Generator:
        return rng.standard_normal(shape, dtype=dtype)
    out = np.empty(shape, dtype=dtype)
    kernel(rng, out.reshape(-1))
    return out
