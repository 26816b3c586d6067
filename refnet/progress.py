"""Plain-text progress on a stream, with elapsed time and an ETA (standard library only).

The one progress display of refnet: downloads (``refnet fetch``), training epochs and
``refnet evaluate`` all use :class:`Progress`. On a terminal the line is redrawn in place at most
every ``interval`` seconds; otherwise (CI logs, pipes) only the final line is written, when the
task is done, so logs stay short.

Standard library only: ``python data/fetch.py`` imports it before numpy is installed.
"""
from __future__ import annotations

import sys
import time


class Progress:
    """Progress of one task of ``total`` units (``None``: unknown).

    ``update(n)`` adds ``n`` units, ``set(done)`` sets the count, ``close(note)`` writes the
    final line. Counts are shown divided by ``scale`` (e.g. ``unit="MB", scale=1e6`` for bytes).
    """

    def __init__(self, label: str, total: int | None = None, stream=None, *, unit: str = "",
                 scale: float = 1, interval: float = 0.1):
        self.label, self.total, self.done = label, total, 0
        self.unit, self.scale, self.interval = unit, scale, interval
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.note = ""
        self._last, self._drawn = 0.0, 0  # time and length of the last live line
        self._t0 = time.monotonic()

    def _count(self, n) -> str:
        return f"{n / self.scale:.1f}" if self.scale != 1 else f"{n}"

    def _text(self) -> str:
        unit = f" {self.unit}" if self.unit else ""
        if not self.total:
            return f"{self.label}: {self._count(self.done)}{unit}"
        return (f"{self.label}: {self._count(self.done)}/{self._count(self.total)}{unit} "
                f"({100 * self.done / self.total:.0f}%)")

    def _live_text(self, now: float) -> str:
        text = self._text()
        if self.total:
            frac = min(1.0, self.done / self.total)
            elapsed = now - self._t0
            eta = f"{elapsed * (1 - frac) / frac:.0f} s" if frac else "?"
            text += f" [{'#' * int(24 * frac):.<24}] {elapsed:.0f} s, eta {eta}"
        return text + (f" {self.note}" if self.note else "")

    def set(self, done: int, note: str = "") -> None:
        """The task has done ``done`` units; ``note`` (e.g. the running loss) ends the line."""
        self.done, self.note = done, note
        now = time.monotonic()
        if self.tty and now - self._last > self.interval:
            text = self._live_text(now)
            self._last, self._drawn = now, len(text)
            self.stream.write("\r" + text)
            self.stream.flush()

    def update(self, n: int = 1) -> None:
        """``n`` more units are done."""
        self.set(self.done + n, self.note)

    def close(self, note: str = "", *, line: str | None = None) -> None:
        """Write the final line: the count and time taken, then ``note``; or ``line`` instead."""
        if line is None:
            secs = time.monotonic() - self._t0
            line = f"{self._text()} in {secs:.1f} s{(' ' + note) if note else ''}"
        pad = " " * max(0, self._drawn - len(line))  # erase the rest of a longer live line
        self.stream.write(("\r" if self.tty else "") + line + pad + "\n")
        self.stream.flush()

    def __call__(self, done: int, total: int) -> None:
        """Callback form ``progress(done, total)`` (as :func:`accuracy_sweep` calls it)."""
        self.total = total
        self.set(done)
        if done >= total:
            self.close()
