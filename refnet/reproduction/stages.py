"""Where a script's compute time goes: named parts (training, Monte-Carlo ...) timed inside it.

``refnet reproduce`` prints the time per stage at the end of a run (issue #15: a user sees where
time goes). A script's compute is one stage; the long ones (``duque_fig4``: three datasets'
training and sweeps, 84 % of a full run) say inside it which part took what::

    with part("training mnist"):
        models = train_models(...)

The parts are recorded only while the command collects them (:func:`collecting`); called
from a script run on its own, :func:`part` times nothing and costs nothing.
"""
from __future__ import annotations

import threading
import time
from contextlib import contextmanager

__all__ = ["part", "record", "collecting"]

_local = threading.local()   # the list being filled, per thread (None: not collecting)


@contextmanager
def part(name: str):
    """Time the block as the part ``name`` of the stage being collected (if any)."""
    parts = getattr(_local, "parts", None)
    if parts is None:
        yield
        return
    t = time.perf_counter()
    try:
        yield
    finally:
        parts.append((name, time.perf_counter() - t))


def record(name: str, seconds: float, *, workers: int = 1) -> None:
    """Record the part ``name`` timed elsewhere. With ``workers > 1`` the seconds are what that
    many worker processes spent on it, summed over them: the part is named ", N workers" and
    marked busy (it overlaps the stage's other parts, so the table does not subtract it)."""
    parts = getattr(_local, "parts", None)
    if parts is not None:
        parts.append((name, float(seconds)) if workers == 1
                     else (f"{name}, {workers} workers", float(seconds), "busy"))


@contextmanager
def collecting():
    """Collect the parts timed inside the block; yields the list of ``(name, seconds)`` (and
    ``(name, seconds, "busy")`` for :func:`record`'s worker time), in the order they ended (a
    part named twice, e.g. in a loop, appears twice)."""
    saved = getattr(_local, "parts", None)
    _local.parts = parts = []
    try:
        yield parts
    finally:
        _local.parts = saved
