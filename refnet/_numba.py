"""numba as an accelerator, not a gate.

Kernel modules import ``njit``, ``prange`` and ``HAVE_NUMBA`` from here instead of from numba.
With numba installed these are numba's own. Without it (a new Python release numba has no
wheel for yet, PyPy, Pyodide) ``njit`` returns the plain Python function and ``prange`` is
``range``: the kernels still run, and the entry points choose the NumPy twins instead (same
numbers, slower), after :func:`warn_fallback` has said so once.
"""
from __future__ import annotations

import types
import warnings

try:  # pragma: no branch - which branch runs depends on the environment
    import numba as _numba
except ImportError:  # numba is optional at run time
    _numba = None

__all__ = ["HAVE_NUMBA", "njit", "prange", "warn_fallback", "jit_disabled", "max_threads",
           "threads", "set_threads", "variant"]

HAVE_NUMBA = _numba is not None
_warned = False

if HAVE_NUMBA:
    njit = _numba.njit
    prange = _numba.prange
else:
    def njit(*args, **kwargs):
        """Stand-in for ``numba.njit``: the function itself, compiled by nothing, in all three
        call forms (``njit(f)``, ``njit(**options)(f)``, ``njit(f, **options)``)."""
        if len(args) == 1 and callable(args[0]):
            return args[0]
        return lambda f: f

    prange = range


#: How the warning below begins (a ``-W ignore:...`` filter matches it).
FALLBACK_MESSAGE = "numba is not installed"


def warn_fallback(what: str) -> None:
    """Warn once per process that ``what`` runs on its NumPy twin because numba is absent."""
    global _warned
    if not _warned:
        _warned = True
        warnings.warn(f"{FALLBACK_MESSAGE}: {what} and the other kernels run on their "
                      "NumPy twins (same results, slower). `pip install numba` to speed "
                      "them up.", RuntimeWarning, stacklevel=3)


def jit_disabled() -> bool:
    """True under ``NUMBA_DISABLE_JIT=1``: the kernels then run as Python (how coverage sees
    their bodies), correct but far too slow for whole layers."""
    return HAVE_NUMBA and bool(_numba.config.DISABLE_JIT)


def max_threads() -> int:
    """How many threads numba's parallel kernels may use (1 without numba)."""
    return int(_numba.config.NUMBA_NUM_THREADS) if HAVE_NUMBA else 1


def threads() -> int:
    """How many threads numba's parallel kernels use now (1 without numba)."""
    return int(_numba.get_num_threads()) if HAVE_NUMBA else 1


def set_threads(n: int) -> None:
    """Use ``n`` threads in numba's parallel kernels; a no-op without numba, where the
    NumPy twins run instead. ``ValueError`` if ``n`` is outside 1..:func:`max_threads`."""
    if not 1 <= int(n) <= max_threads():
        raise ValueError(f"threads: must lie in 1..{max_threads()}, got {n}")
    if HAVE_NUMBA:
        _numba.set_num_threads(int(n))


def variant(body, suffix: str, helpers: dict | None = None):
    """A copy of the kernel body ``body`` (new qualified name, so its own cache entry) whose
    global names in ``helpers`` point at other dispatchers, for compiling one body twice
    (serial and ``parallel=True``). Sharing the Python function or its helpers between the two
    builds made the serial one 3x (noisy_activation) to 30x (row_sum_affine) slower whenever
    the parallel one had been compiled first in the process (numba 0.68). Without numba the
    copies are plain functions and work the same way."""
    g = dict(body.__globals__)
    g.update(helpers or {})
    f = types.FunctionType(body.__code__, g, body.__name__ + suffix, body.__defaults__)
    f.__qualname__, f.__doc__ = body.__qualname__ + suffix, body.__doc__
    return f
