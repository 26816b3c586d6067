"""Fused element-wise optimizer updates (numba), each beside its NumPy twin.

The NumPy twins in :mod:`refnet.optim` make several passes over memory per parameter array
(square, add, sqrt, add, multiply, divide, add); the kernels below make one. Same operations
in the same order per element and no fastmath, so the results equal the twins' (tested).
numba comes through :mod:`refnet._numba`: without it :func:`adagrad_update` runs its NumPy twin
(same numbers) after one warning.
"""
from __future__ import annotations

import numpy as np

from . import _numba
from ._blas import in_fixed_blas_threads

__all__ = ["adagrad_update", "adagrad_update_inplace", "adagrad_update_numpy",
           "adam_update_inplace"]


def _adagrad_inplace_body(p, g, s, clr, eps, limit):
    # Flat views of C-contiguous arrays: one pass, PyTorch's operation order per element, the
    # results over the inputs. The only kernel: a separate-outputs kernel would repeat this
    # body, and calling one with outputs aliasing inputs makes LLVM's runtime overlap check
    # send every element down the scalar loop (measured 2 ms per 784-300-300-10 step).
    # Returns how many updated values are not within +-limit (NaN and inf never are): the
    # trainer's divergence check, counted while the value is in a register instead of in a
    # pass of its own over every parameter. A count is the same whatever the threads' split.
    bad = 0
    for i in _numba.prange(p.size):
        si = g[i] * g[i] + s[i]
        std = np.sqrt(si) + eps
        pi = (g[i] * -clr) / std + p[i]
        p[i] = pi
        s[i] = si
        bad += 0 if abs(pi) <= limit else 1
    return bad


# error_model="numpy": no Python zero-division check, which would keep LLVM from vectorizing
# the loop (division by sqrt(s) + eps > 0 cannot fail anyway). Two builds of the one body,
# element by element the same operations (so the same bits): the serial one for callers
# outside refnet._blas.fixed_blas_threads, where a numba thread pool would fight a
# multi-threaded OpenBLAS's spinning threads for the cores (measured on 2 cores: whole epochs
# several times slower, when training still ran its products on OpenBLAS's threads); the
# parallel one inside it (training), where numba's threads are the only pool. The update is
# bound by its square roots and divisions, not by memory: on 2 cores the parallel build
# took 0.54-0.58x (float64) and 0.59-0.66x (float32) of the serial one's time on the
# 784-300-300-10 arrays (375 steps, 3 interleaved rounds, one process). A parallel build
# that cut the arrays into two blocks of its own, tried first, did not vectorize its inner
# loop and was slower than the serial one; this one splits the flat loop by prange.
_adagrad_inplace = _numba.njit(_adagrad_inplace_body, parallel=True, cache=True,
                               error_model="numpy")
_adagrad_inplace_serial = _numba.njit(_numba.variant(_adagrad_inplace_body, "_serial"),
                                      cache=True, error_model="numpy")


def adagrad_update_numpy(p, g, s_old, clr, eps, p_new, s_new):
    """The NumPy twin of :func:`adagrad_update` (same signature, same outputs)."""
    s = g * g
    s += s_old
    std = np.sqrt(s)
    std += eps
    upd = g * (-clr)
    upd /= std
    upd += p
    p_new[...] = upd
    s_new[...] = s


def adagrad_update(p, g, s_old, clr, eps, p_new, s_new):
    """Adagrad step for one array: ``s = s_old + g^2``; ``p_new = p - clr g / (sqrt(s) + eps)``.

    All arrays C-contiguous with the same shape and dtype; writes ``p_new`` and ``s_new``.
    """
    if not _numba.HAVE_NUMBA:
        _numba.warn_fallback("the fused Adagrad update")
        return adagrad_update_numpy(p, g, s_old, clr, eps, p_new, s_new)
    p_new[...] = p        # the in-place kernel on the outputs: the same operations, so the
    s_new[...] = s_old    # same bits, for two copies on this (functional, not training) path
    adagrad_update_inplace(p_new, g, s_new, clr, eps)


def _count_limit(dtype, limit):
    """The kernels' ``limit`` in ``dtype``, at most its largest number: ``abs(x) <= limit``
    then fails for inf as it does for NaN, so both are counted."""
    return np.dtype(dtype).type(min(limit, np.finfo(dtype).max))


def adagrad_update_inplace(p, g, s, clr, eps, limit=np.inf) -> int:
    """:func:`adagrad_update` writing ``p`` and ``s`` in place (the same numbers, tested).
    Returns how many values of the updated ``p`` are not within ``+-limit`` (by default: how
    many are NaN or infinite)."""
    lim = _count_limit(p.dtype, limit)
    if not _numba.HAVE_NUMBA:
        _numba.warn_fallback("the fused Adagrad update")
        adagrad_update_numpy(p, g, s, clr, eps, p, s)
        return int(p.size - np.count_nonzero(np.abs(p) <= lim))
    dt = p.dtype.type
    kernel = _adagrad_inplace if in_fixed_blas_threads() else _adagrad_inplace_serial
    return int(kernel(p.reshape(-1), g.reshape(-1), s.reshape(-1), dt(clr), dt(eps), lim))


def _adam_inplace_body(p, g, m, v, w, from_g, c2, beta2, neg_step, sqrt_bc2, eps, limit):
    # Flat views, one pass, the operations of refnet.optim.Adam._update (its NumPy twin: the
    # tests compare their bits) per element in its order: m by PyTorch's lerp (from m when
    # the weight 1 - beta1 is below 1/2, else from g: ``w`` is then beta1), v = (g c2) g +
    # v beta2, p + (m (-step)) / (sqrt(v) / sqrt(bc2) + eps). Returns the count of updated
    # values beyond +-limit, as the Adagrad kernel does.
    bad = 0
    for i in _numba.prange(p.size):
        gi = g[i]
        mi = gi + (m[i] - gi) * w if from_g else (gi - m[i]) * w + m[i]
        vi = (gi * c2) * gi + v[i] * beta2
        pi = (mi * neg_step) / (np.sqrt(vi) / sqrt_bc2 + eps) + p[i]
        m[i] = mi
        v[i] = vi
        p[i] = pi
        bad += 0 if abs(pi) <= limit else 1
    return bad


_adam_inplace = _numba.njit(_adam_inplace_body, parallel=True, cache=True,
                            error_model="numpy")
_adam_inplace_serial = _numba.njit(_numba.variant(_adam_inplace_body, "_serial"), cache=True,
                                   error_model="numpy")


def adam_update_inplace(p, g, m, v, *, beta1, beta2, step_size, bias_correction2, eps,
                        limit=np.inf) -> int | None:
    """One Adam step (no weight decay, no AMSGrad) on C-contiguous arrays of one dtype, writing
    ``p``, ``m`` (exp_avg) and ``v`` (exp_avg_sq) in place with the bits of
    :meth:`refnet.optim.Adam._update`. Returns how many values of the new ``p`` lie beyond
    ``+-limit`` (by default: are NaN or infinite), or None without numba (the caller then runs
    ``_update``, the NumPy twin). Scalars are cast to the arrays' dtype first, as NumPy casts
    a Python float against a float32 array."""
    if not _numba.HAVE_NUMBA:
        return None
    dt = p.dtype.type
    w = 1 - beta1
    from_g = not w < 0.5
    kernel = _adam_inplace if in_fixed_blas_threads() else _adam_inplace_serial
    return int(kernel(p.reshape(-1), g.reshape(-1), m.reshape(-1), v.reshape(-1),
                      dt(1 - w if from_g else w), from_g, dt(1 - beta2), dt(beta2),
                      dt(-step_size), dt(bias_correction2 ** 0.5), dt(eps),
                      _count_limit(p.dtype, limit)))
