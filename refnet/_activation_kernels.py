"""The float64 logistic sigmoid and its derivatives in one numba pass, where that gives
NumPy's bits.

:func:`refnet.activations.sigmoid` is four NumPy passes (``-z``, ``exp``, ``+ 1``, ``1 / .``),
its derivatives six to nine (``exp(-|z|)``, ``expm1``, products). NumPy's float64 ``exp`` is
either its own SIMD code (with AVX-512) or a loop over the C library's ``exp`` (without: most
laptops), and ``expm1`` is always the C library's; numba's ``math.exp`` and ``math.expm1`` call
the C library. Where they are the same functions, a numba loop of the same operations per
element, in the same order, without fastmath, gives the same bits as the NumPy passes, in one
pass and on numba's threads. On a 2-core AVX2 machine the C library's ``exp`` costs about 6 ns
per value and is most of the sigmoid's time (docs/benchmarks.md has the measured epochs).

Whether a loop agrees with its NumPy twin is checked once per process and build
(:func:`same_bits_as_numpy`), never assumed: both run on a probe of 65,536 values (normal and
uniform over the whole range, both overflow edges, signed zeros, subnormals, infinities) and
must agree bit for bit. Where they do not (NumPy's AVX-512 ``exp``, or a numba that vectorises
``exp`` through SVML) the NumPy passes run, as before. The parallel builds run only inside
:func:`refnet._blas.fixed_blas_threads` (training, ``forward()``, the first-order
propagation), where numba's threads are the only pool; elsewhere the serial ones, still one
pass instead of several.
"""
from __future__ import annotations

import contextlib
import functools
import math
import threading

import numpy as np

from . import _numba
from ._blas import in_fixed_blas_threads

__all__ = ["sigmoid_float64", "sigmoid_prime_float64", "sigmoid_prime_and_second_float64",
           "same_bits_as_numpy", "numpy_passes_only", "MIN_SIZE"]

#: Smaller arrays take the NumPy passes (a handful of values gains nothing).
MIN_SIZE = 1024
_off = threading.local()   # numpy_passes_only() of this thread


@contextlib.contextmanager
def numpy_passes_only():
    """Within the block this thread runs the NumPy passes only (the same bits, the NumPy
    speed): what the benchmarks time as "straightforward NumPy", and a way to compare."""
    before = getattr(_off, "on", False)
    _off.on = True
    try:
        yield
    finally:
        _off.on = before


# Each body: NumPy's operations in their order (float64 only: the literals are float64).
def _sigmoid_body(z, out):
    for i in _numba.prange(z.size):                 # 1 / (1 + exp(-z))
        out[i] = 1.0 / (math.exp(-z[i]) + 1.0)


def _prime_body(z, prime):
    for i in _numba.prange(z.size):                 # e r r, e = exp(-|z|), r = 1 / (1 + e)
        e = math.exp(-abs(z[i]))
        r = 1.0 / (1.0 + e)
        prime[i] = e * r * r


def _prime_and_second_body(z, prime, second):
    for i in _numba.prange(z.size):                 # and sign(z) (e expm1(-|z|)) r^3
        zi = z[i]
        a = -abs(zi)
        e = math.exp(a)
        r = 1.0 / (1.0 + e)
        prime[i] = e * r * r
        sign = 1.0 if zi > 0.0 else (-1.0 if zi < 0.0 else (zi if zi != zi else 0.0))  # np.sign
        second[i] = sign * (e * math.expm1(a)) * (r * r * r)


def _builds(body, n_out: int):
    """The parallel and the serial build of one body (own cache entries: see
    :func:`refnet._numba.variant`), and how many arrays it writes."""
    return (_numba.njit(body, parallel=True, cache=True, error_model="numpy"),
            _numba.njit(_numba.variant(body, "_serial"), cache=True, error_model="numpy"),
            n_out)


#: name -> (parallel build, serial build, arrays written); the twin is ``activations.<name>_numpy``
_KERNELS = {"sigmoid": _builds(_sigmoid_body, 1), "sigmoid_prime": _builds(_prime_body, 1),
            "sigmoid_prime_and_second": _builds(_prime_and_second_body, 2)}


def _probe() -> np.ndarray:
    """65,536 float64 values where two implementations of ``exp`` would show a difference."""
    rng = np.random.default_rng(20261207)
    # signed zeros, subnormals, where exp(-z) overflows (z near -709.78) and underflows to a
    # subnormal and to 0 (z near 708.4 and 745.13), infinities
    edges = np.array([0.0, -0.0, 5e-324, -5e-324, 1e-300, -709.782712893384,
                      -709.7827128933841, -709.78, 708.3964185322641, 708.4, 745.1332191019411,
                      745.1332191019412, 745.2, -745.2, 1e4, -1e4, np.inf, -np.inf])
    n = (1 << 16) - len(edges)
    return np.concatenate([edges, rng.standard_normal(n // 2) * 12.0,
                           rng.uniform(-750.0, 750.0, n - n // 2)])


@functools.lru_cache(maxsize=None)
def same_bits_as_numpy(name: str, parallel: bool) -> bool:
    """Whether the numba build of ``name`` gives its NumPy twin's bits
    (:func:`refnet.activations.sigmoid_numpy` and the like) on :func:`_probe`. Cached: one
    probe per process and build. False without compiled numba (under ``NUMBA_DISABLE_JIT=1``
    the body would run as Python, far too slow for whole layers)."""
    if not _numba.HAVE_NUMBA or _numba.jit_disabled():
        return False
    from . import activations  # the twins (that module imports this one)

    z = _probe()
    want = getattr(activations, name + "_numpy")(z)
    want = want if isinstance(want, tuple) else (want,)
    got = tuple(np.empty_like(z) for _ in want)
    _KERNELS[name][0 if parallel else 1](z, *got)
    return all(np.array_equal(g.view(np.uint64), w.view(np.uint64)) for g, w in zip(got, want))


def _run(name: str, z):
    """The new arrays the numba pass of ``name`` writes over ``z`` (a tuple), or None when the
    NumPy passes must run (another dtype or layout, a small array, no numba, or a build that
    does not give NumPy's bits here)."""
    if (not _numba.HAVE_NUMBA or z.dtype != np.float64 or z.size < MIN_SIZE
            or not z.flags.c_contiguous or getattr(_off, "on", False)):
        return None
    parallel = in_fixed_blas_threads()
    if not same_bits_as_numpy(name, parallel):
        return None
    *builds, n_out = _KERNELS[name]
    out = tuple(np.empty_like(z) for _ in range(n_out))
    builds[0 if parallel else 1](z.reshape(-1), *(o.reshape(-1) for o in out))
    return out


def sigmoid_float64(z):
    """``1 / (1 + exp(-z))`` (a new array) by the numba pass, or None (see :func:`_run`)."""
    out = _run("sigmoid", z)
    return None if out is None else out[0]


def sigmoid_prime_float64(z):
    """``sigma'(z) = e / (1 + e)^2``, ``e = exp(-|z|)``, by the numba pass, or None."""
    out = _run("sigmoid_prime", z)
    return None if out is None else out[0]


def sigmoid_prime_and_second_float64(z):
    """``(sigma'(z), sigma''(z))`` by the numba pass, or None."""
    return _run("sigmoid_prime_and_second", z)
