"""The plain NumPy Monte-Carlo: noisy passes of :func:`refnet.model.forward`, nothing else.

No kernels, no shortcuts, no chunk seeding: each call repeats every input ``n_trials`` times and
runs the reference forward pass with fresh noise from one generator. It is the slow, readable
check that the analytic predictions of :mod:`refnet.propagation.sensitivity` are compared with,
and an independent oracle for the engine's accuracy sweeps (``tests/montecarlo``).
"""
from __future__ import annotations

import numpy as np

from ..model import Architecture, Params, check_input, forward
from ..noise import NoiseConfig

__all__ = ["monte_carlo_outputs"]

Array = np.ndarray


def monte_carlo_outputs(arch: Architecture, params: Params, inputs: Array, noise: NoiseConfig,
                        n_trials: int, rng=None, max_rows: int = 200_000) -> Array:
    """Noisy outputs of ``n_trials`` forward passes of each input with the NumPy reference.

    inputs (n_batch, sizes[0]); returns (n_trials, n_batch, n_out). Rows are processed in
    chunks of at most ``max_rows`` (each chunk ``n_trials`` copies of some inputs), all drawing
    in turn from ``np.random.default_rng(rng)``.
    """
    X = check_input(inputs, arch.sizes[0], "inputs")
    rng = np.random.default_rng(rng)
    K = int(n_trials)
    if K < 2:
        raise ValueError(f"n_trials: need >= 2, got {n_trials}")
    per = max(1, int(max_rows) // K)
    chunks = []
    for i in range(0, len(X), per):
        x = X[i:i + per]
        y, _ = forward(arch, params, np.repeat(x, K, axis=0), noise, rng)
        chunks.append(y.reshape(len(x), K, -1))
    return np.concatenate(chunks).transpose(1, 0, 2)
