"""Ceilings on sizes a user gives, in one place, so that the command line, the sweep spec and the
library refuse the same values before any memory is allocated or any work is done.

No imports: the command line's flag parsers read these at start-up.
"""
from __future__ import annotations

__all__ = ["MAX_BATCH_SIZE", "MAX_LEVELS", "MAX_REPETITIONS", "MAX_PASSES", "passes_problem"]

#: The most noise variances one Monte-Carlo evaluation measures (each costs repetitions x the
#: data).
MAX_LEVELS = 10_000
#: The most passes per level (a result holds levels x repetitions x noise types numbers, and
#: each pass is a full pass over the data).
MAX_REPETITIONS = 10_000
#: The most rows per batch (training, and each Monte-Carlo pass); a :class:`~refnet.train.
#: TrainConfig` read back from a file is held to it too.
MAX_BATCH_SIZE = 10**9
#: The most noisy passes one Monte-Carlo evaluation makes in all (variances x repetitions x
#: noise types): each is a pass over the data and one number of the result. Each factor alone
#: is held to its own ceiling above, but their product reached 4 x 10^8 passes (a 3.2 GB result
#: array, allocated before the first pass, and a run that would not end).
MAX_PASSES = 10_000_000


def passes_problem(levels: int, repetitions: int, noise_types: int) -> str | None:
    """What is wrong with ``levels x repetitions x noise_types`` passes, or None if they are
    within :data:`MAX_PASSES` (a message for the caller's error, naming no flag)."""
    n = int(levels) * int(repetitions) * int(noise_types)
    if n <= MAX_PASSES:
        return None
    return (f"{levels} variances x {repetitions} repetitions x {noise_types} noise types = "
            f"{n:,} passes, at most {MAX_PASSES:,} (each is a pass over the data); measure "
            "fewer variances or repetitions")
