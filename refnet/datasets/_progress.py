"""Plain-text progress on stderr for downloads and extraction (standard library only).

On a terminal the line is redrawn in place at most ten times a second; otherwise (CI logs,
pipes) only one line per file is written, when it is done, so logs stay short.
"""
from __future__ import annotations

import sys
import time


class Progress:
    """Progress of one file: ``update(n_bytes)`` as bytes arrive, ``close()`` when done."""

    def __init__(self, label: str, total: int | None = None, stream=None):
        self.label, self.total, self.done = label, total, 0
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._last = 0.0
        self._t0 = time.monotonic()

    def _text(self) -> str:
        mb = self.done / 1e6
        if self.total:
            pct = 100 * self.done / self.total
            return f"{self.label}: {mb:.1f}/{self.total / 1e6:.1f} MB ({pct:.0f}%)"
        return f"{self.label}: {mb:.1f} MB"

    def update(self, n_bytes: int) -> None:
        self.done += n_bytes
        now = time.monotonic()
        if self.tty and now - self._last > 0.1:
            self._last = now
            self.stream.write("\r" + self._text())
            self.stream.flush()

    def close(self, note: str = "") -> None:
        secs = time.monotonic() - self._t0
        line = f"{self._text()} in {secs:.1f} s{(' ' + note) if note else ''}"
        self.stream.write(("\r" if self.tty else "") + line + "\n")
        self.stream.flush()
