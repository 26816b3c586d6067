"""Ceilings on sizes a user gives, in one place, so that the command line, the sweep spec and the
library refuse the same values before any memory is allocated or any work is done.

No imports: the command line's flag parsers read these at start-up.
"""
from __future__ import annotations

__all__ = ["MAX_BATCH_SIZE", "MAX_LEVELS", "MAX_REPETITIONS"]

#: The most noise variances one Monte-Carlo evaluation measures (each costs repetitions x the
#: data).
MAX_LEVELS = 10_000
#: The most passes per level (a result holds levels x repetitions x noise types numbers, and
#: each pass is a full pass over the data).
MAX_REPETITIONS = 10_000
#: The most rows per batch (training, and each Monte-Carlo pass); a :class:`~refnet.train.
#: TrainConfig` read back from a file is held to it too.
MAX_BATCH_SIZE = 10**9
