"""Chunks of Monte-Carlo work: root seeds, one generator per chunk, and the worker pool.

Every chunk of work (a batch of one sweep pass, a block of repeats of some inputs) has its own
generator, ``np.random.SeedSequence(seed, spawn_key=key)`` (identical to the ``key``-th nested
``SeedSequence(seed).spawn`` child), and fixed chunk sizes, so results depend only on the seed
and the chunk sizes, never on the number of threads or their scheduling: chunks may run on any
thread of :func:`worker_pool` in any order, and :func:`map_chunks` returns their results in
chunk order.
"""
from __future__ import annotations

import ctypes
import functools
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np

from ..errors import ConfigError

__all__ = ["resolve_seed", "chunk_generator", "check_workers", "worker_pool", "map_chunks",
           "single_threaded_blas"]


def resolve_seed(rng) -> int:
    """An integer root seed from ``rng`` (Generator, int or None), recorded in results.

    An int is used as is; ``None`` takes fresh OS entropy; a Generator gives one draw.
    """
    if rng is None:
        return int(np.random.SeedSequence().entropy)
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        if rng < 0:
            raise ValueError(f"rng: a seed must be >= 0, got {rng}")
        return int(rng)
    if isinstance(rng, np.random.Generator):
        return int(rng.integers(0, 2**63))
    raise TypeError("rng: expected a numpy Generator, an int seed or None, got "
                    f"{type(rng).__name__}")


def chunk_generator(seed: int, key: tuple[int, ...]) -> np.random.Generator:
    """The generator of one chunk of work: ``SeedSequence(seed).spawn`` child at ``key``."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=tuple(int(k) for k in key)))


def check_workers(workers: int, backend: str) -> int:
    """``workers`` as an int >= 1; several workers need a serial kernel backend."""
    workers = int(workers)
    if workers < 1:
        raise ConfigError(f"workers: must be >= 1, got {workers}")
    if workers > 1 and backend == "numba-parallel":
        raise ConfigError("workers: use backend 'numba' with several workers ('numba-parallel' "
                          "threads over rows instead)")
    return workers


@contextmanager
def worker_pool(workers: int, backend: str):
    """``None`` for one worker, else a thread pool of ``workers`` threads for whole chunks.

    Chunks are independent (own generator, own rows) and their results are combined in chunk
    order, so any number of workers gives the same numbers. The compiled kernels release the
    GIL, as do NumPy's matrix products. Not with ``"numba-parallel"`` kernels (threads inside
    threads; numba's workqueue layer forbids concurrent parallel calls).
    The matrix products of the chunks run on one BLAS thread each (:func:`single_threaded_blas`).
    """
    workers = check_workers(workers, backend)
    if workers == 1:
        with single_threaded_blas():
            yield None
        return
    setter = _openblas_local_threads()
    init = (lambda: setter(1)) if setter is not None else None
    with ThreadPoolExecutor(workers, thread_name_prefix="refnet-mc", initializer=init) as pool:
        yield pool


def map_chunks(fn, items, pool) -> list:
    """``[fn(x) for x in items]``, on ``pool``'s threads when given; results in order."""
    return list(pool.map(fn, items)) if pool is not None else [fn(x) for x in items]


@functools.lru_cache(maxsize=1)
def _openblas_local_threads():
    """OpenBLAS's ``openblas_set_num_threads_local`` (per calling thread, OpenBLAS >= 0.3.27)
    from the library NumPy loaded, or ``None`` (another BLAS, or not Linux)."""
    try:
        with open("/proc/self/maps") as fh:
            paths = sorted({ln.split()[-1] for ln in fh if "openblas" in ln.lower() and "/" in ln})
    except OSError:
        return None
    for path in paths:
        try:
            f = ctypes.CDLL(path).openblas_set_num_threads_local
        except (OSError, AttributeError):
            continue
        f.argtypes, f.restype = [ctypes.c_int], ctypes.c_int
        return f
    return None


@contextmanager
def single_threaded_blas():
    """Run the calling thread's matrix products on one BLAS thread, then reset it to the
    process-wide setting. Speed only, best effort (a no-op without OpenBLAS >= 0.3.27): the
    engine's products are small (a chunk of rows times one layer), where BLAS threads cost
    more than they give (2.4x fewer samples per second measured on 2 shared cores), and
    several :func:`worker_pool` threads are the better way to use more cores."""
    setter = _openblas_local_threads()
    if setter is None:
        yield
        return
    setter(1)
    try:
        yield
    finally:
        setter(0)
