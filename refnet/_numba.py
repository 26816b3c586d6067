"""numba as an accelerator, not a gate.

Kernel modules import ``njit``, ``prange`` and ``HAVE_NUMBA`` from here instead of from numba.
With numba installed these are numba's own. Without it (a new Python release numba has no
wheel for yet, PyPy, Pyodide) ``njit`` returns the plain Python function and ``prange`` is
``range``: the kernels still run, and the entry points choose the NumPy twins instead (same
numbers, slower), after :func:`warn_fallback` has said so once.
"""
from __future__ import annotations

import warnings

try:  # pragma: no branch - which branch runs depends on the environment
    import numba as _numba
except ImportError:  # numba is optional at run time
    _numba = None

__all__ = ["HAVE_NUMBA", "njit", "prange", "warn_fallback"]

HAVE_NUMBA = _numba is not None
_warned = False

if HAVE_NUMBA:
    njit = _numba.njit
    prange = _numba.prange
else:
    def njit(*args, **kwargs):
        """Stand-in for ``numba.njit``: the function itself, compiled by nothing."""
        if len(args) == 1 and callable(args[0]) and not kwargs:
            return args[0]
        return lambda f: f

    prange = range


def warn_fallback(what: str) -> None:
    """Warn once per process that ``what`` runs on its NumPy twin because numba is absent."""
    global _warned
    if not _warned:
        _warned = True
        warnings.warn(f"numba is not installed: {what} and the other kernels run on their "
                      "NumPy twins (same results, slower). `pip install numba` to speed "
                      "them up.", RuntimeWarning, stacklevel=3)
