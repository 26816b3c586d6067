"""Noise for the next batch drawn on a helper thread while the current batch computes.

Noise-aware training draws fresh standard normals for every batch (two 128 x 300 arrays for
784-300-300-10), a fifth of a float32 epoch when drawn in line. NumPy's generators release the
GIL while they fill an array, so one helper thread can draw batch ``b + 1``'s noise while the
main thread runs batch ``b``'s matrix products.

The numbers do not change: the helper takes them from the epoch's own generator, batch after
batch, in the order of :func:`refnet.noise.draw_network_noise` (the order
:func:`refnet.model.forward` draws in), and nothing else uses that generator during the
epoch; at most one draw is outstanding, so the stream is never read by two threads at once.
Off by default (``train(..., draw_ahead=True)`` turns it on; the same bits either way): it
paid when training's products ran on OpenBLAS's own threads, but they now run in fixed blocks
on every core (:mod:`refnet._gemm`), and on 2 cores the helper thread only competed with them
(noise-aware epochs 1-12 % slower, measured; :func:`refnet.train.train`).
"""
from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from .noise import LayerNoise, NoiseConfig, draw_network_noise

__all__ = ["DrawAhead"]


class DrawAhead:
    """Per-batch noise draws of one epoch, each drawn while the previous batch computes.

    ``batch_rows`` lists the rows of every batch of the epoch in order (the last may be
    short); :meth:`next` returns the draws of the next batch (one entry per layer 0..L,
    ``None`` for clean layers) and starts drawing the one after. Use as a context manager:
    leaving it waits for an outstanding draw and stops the thread.
    """

    def __init__(self, config: NoiseConfig, sizes, batch_rows, rng: np.random.Generator,
                 dtype):
        self._args = (config, tuple(sizes), rng, np.dtype(dtype))
        self._rows = list(batch_rows)
        self._i = 0
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="refnet-draw-ahead")
        self._pending: Future | None = self._submit(0)

    def _submit(self, i: int) -> Future | None:
        if i >= len(self._rows):
            return None
        config, sizes, rng, dtype = self._args
        return self._pool.submit(draw_network_noise, config, sizes, self._rows[i], rng, dtype)

    def next(self) -> list[LayerNoise | None]:
        """The next batch's draws (waits for them if the helper has not finished)."""
        if self._pending is None:
            raise IndexError(f"DrawAhead: all {len(self._rows)} batches were drawn")
        draws = self._pending.result()
        self._i += 1
        self._pending = self._submit(self._i)   # the stream is free again: start the next
        return draws

    def close(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
        self._pool.shutdown(wait=True)

    def __enter__(self) -> "DrawAhead":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
