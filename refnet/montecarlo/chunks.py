"""Chunks of Monte-Carlo work: root seeds, one generator per chunk, and the worker pool.

Every chunk of work (a batch of one sweep pass, a block of repeats of some inputs) has its own
generator, ``np.random.SeedSequence(seed, spawn_key=key)`` (identical to the ``key``-th nested
``SeedSequence(seed).spawn`` child), and fixed chunk sizes, so results depend only on the seed
and the chunk sizes, never on the number of threads or their scheduling: chunks may run on any
thread of :func:`worker_pool` in any order, and :func:`iter_chunks` and :func:`map_chunks`
return their results in chunk order. They hand a pool a few chunks per worker at a time, not
all of them: an evaluation of millions of chunks holds a few futures, not millions.
"""
from __future__ import annotations

from collections import deque
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np

from .._blas import fixed_blas_threads
from ..errors import ConfigError

__all__ = ["resolve_seed", "chunk_generator", "check_workers", "worker_pool", "ChunkPool",
           "iter_chunks", "map_chunks", "single_threaded_blas", "CHUNKS_AHEAD_PER_WORKER"]

#: Chunks handed to a pool per worker thread, counting the one whose result is awaited: enough
#: that no worker idles while results are taken in order, few enough that memory does not grow
#: with the number of chunks (``Executor.map`` submits every item before the first result).
CHUNKS_AHEAD_PER_WORKER = 4


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
    Every matrix product inside the block, on any thread, runs on one BLAS thread
    (:func:`refnet._blas.fixed_blas_threads`): the same bits whatever ran before.
    """
    workers = check_workers(workers, backend)
    with fixed_blas_threads():
        if workers == 1:
            yield None
            return
        with ChunkPool(workers) as pool:
            try:
                yield pool
            except BaseException:
                # Ctrl-C or an error: drop the chunks not started. Leaving the block waits for
                # every chunk queued, and a Ctrl-C ran them all before the command could stop
                pool.shutdown(cancel_futures=True)
                raise


class ChunkPool(ThreadPoolExecutor):
    """The thread pool of :func:`worker_pool`: ``workers`` threads, a number
    :func:`iter_chunks` reads to bound the chunks it hands out."""

    def __init__(self, workers: int):
        super().__init__(workers, thread_name_prefix="refnet-mc")
        self.workers = workers


def iter_chunks(fn, items, pool: ChunkPool | None):
    """``fn(x) for x in items``, lazily and in order, on ``pool``'s threads when given.

    At most :data:`CHUNKS_AHEAD_PER_WORKER` x ``pool.workers`` chunks are submitted and not yet
    taken: the next is submitted as the oldest result is taken, so ``items`` may be a lazy
    iterable of any length. A result, or an error, comes out in the place its chunk has.
    Leaving early (an error, Ctrl-C, the caller closing the iterator) cancels the chunks not
    started.
    """
    if pool is None:
        yield from map(fn, items)
        return
    ahead = CHUNKS_AHEAD_PER_WORKER * pool.workers
    pending = deque()
    try:
        for x in items:
            pending.append(pool.submit(fn, x))
            if len(pending) == ahead:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()


def map_chunks(fn, items, pool: ChunkPool | None) -> list:
    """``[fn(x) for x in items]``, on ``pool``'s threads when given; results in order
    (:func:`iter_chunks`)."""
    return list(iter_chunks(fn, items, pool))


def single_threaded_blas():
    """Kept for callers of the old name: :func:`refnet._blas.fixed_blas_threads` (every
    OpenBLAS of the process on one thread for the block, restored afterwards)."""
    return fixed_blas_threads()
