"""One fixed BLAS threading regime, so that results do not depend on what ran before.

OpenBLAS splits a matrix product differently on 1 and on 2 threads, and float32 products of
a Monte-Carlo layer differ in their last bits between the two (float64 rarely, at ~1e-16).
Its thread count is one process-wide setting: ``openblas_set_num_threads_local``, despite its
name, changes it for every thread (checked on OpenBLAS 0.3.31), so a worker pool that sets 1
thread per worker changes the main thread's products too, and a computation's bits used to
depend on whether a multi-worker call had run before it.

:func:`fixed_blas_threads` runs a block on exactly one BLAS thread in every OpenBLAS the
process has loaded (NumPy's and SciPy's are separate libraries) and restores the previous
counts when the last block in any thread leaves (a reference count: blocks on several threads
overlap). One thread per product is also the faster choice for the engine's small products;
more cores are used by several workers instead. With another BLAS (MKL, Accelerate) the count
is not set and :func:`blas_controlled` is False: results may then depend on its threading.
"""
from __future__ import annotations

import ctypes
import functools
import sys
import threading
from contextlib import contextmanager

__all__ = ["fixed_blas_threads", "on_fixed_blas_threads", "blas_controlled", "blas_thread_counts",
           "set_blas_threads", "in_fixed_blas_threads"]

_GET = ("openblas_get_num_threads", "openblas_get_num_threads64_",
        "scipy_openblas_get_num_threads64_", "scipy_openblas_get_num_threads")
_SET = ("openblas_set_num_threads", "openblas_set_num_threads64_",
        "scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads")
_lock = threading.Lock()
_depth = 0
_saved: list = []
_here = threading.local()   # .depth: this thread's open fixed_blas_threads blocks
_libs: dict = {}   # path -> (get, set) or None, filled as libraries appear in the process
_scan: tuple = (-1, [])   # (len(sys.modules) at the last scan, its controls)


def _symbol(lib, names):
    for name in names:
        f = getattr(lib, name, None)
        if f is not None:
            return f
    return None


def _controls() -> list:
    """``(get, set)`` of every OpenBLAS loaded (read from /proc/self/maps; Linux only).

    Reading the maps takes milliseconds, so it is read again only after an import (a new
    extension module is how a new OpenBLAS arrives), not on every block."""
    global _scan
    if _scan[0] != len(sys.modules):
        _scan = (len(sys.modules), _read_controls())
    return _scan[1]


def _read_controls() -> list:
    try:
        with open("/proc/self/maps") as fh:
            paths = sorted({ln.split()[-1] for ln in fh if "openblas" in ln.lower() and "/" in ln})
    except OSError:
        return []
    for path in paths:
        if path not in _libs:
            try:
                lib = ctypes.CDLL(path)
            except OSError:
                _libs[path] = None
                continue
            get, set_ = _symbol(lib, _GET), _symbol(lib, _SET)
            if get is None or set_ is None:
                _libs[path] = None
                continue
            get.argtypes, get.restype = [], ctypes.c_int
            set_.argtypes, set_.restype = [ctypes.c_int], None
            _libs[path] = (get, set_)
    return [_libs[p] for p in paths if _libs[p] is not None]


def blas_controlled() -> bool:
    """True if NumPy's matrix products run on an OpenBLAS whose thread count refnet sets."""
    import numpy as np

    np.ones((2, 2)) @ np.ones((2, 2))   # make sure NumPy's BLAS is loaded
    return bool(_controls())


def blas_thread_counts() -> list[int]:
    """Current thread count of each OpenBLAS loaded (for tests and benchmark headers)."""
    return [get() for get, _ in _controls()]


def set_blas_threads(n: int) -> None:
    """Set every loaded OpenBLAS to ``n`` threads, process-wide (benchmarks compare libraries
    at one stated thread count); a no-op without OpenBLAS."""
    for _, set_ in _controls():
        set_(int(n))


@contextmanager
def fixed_blas_threads():
    """Run the block with every loaded OpenBLAS on one thread; restore the counts after the
    last overlapping block (on any thread) has left. Nestable and thread-safe."""
    global _depth, _saved
    with _lock:
        if _depth == 0:
            ctl = _controls()
            _saved = [(set_, get()) for get, set_ in ctl]
            for set_, _ in _saved:
                set_(1)
        _depth += 1
    _here.depth = getattr(_here, "depth", 0) + 1
    try:
        yield
    finally:
        _here.depth -= 1
        with _lock:
            _depth -= 1
            if _depth == 0:
                for set_, n in _saved:
                    set_(n)
                _saved = []


def in_fixed_blas_threads() -> bool:
    """True while some thread is inside :func:`fixed_blas_threads` (then no OpenBLAS pool
    works beside the caller's own threads)."""
    return _depth > 0


def inside_on_this_thread() -> bool:
    """True while the calling thread itself is inside :func:`fixed_blas_threads` (so the
    counts stay at one until it leaves, whatever other threads do): entering again can be
    skipped, which saves 3-4 us per call on the training step's hot path."""
    return getattr(_here, "depth", 0) > 0


def on_fixed_blas_threads(fn):
    """Decorator: ``fn`` runs inside :func:`fixed_blas_threads`."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if inside_on_this_thread():
            return fn(*args, **kwargs)
        with fixed_blas_threads():
            return fn(*args, **kwargs)
    return wrapper
