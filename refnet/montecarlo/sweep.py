"""Accuracy of a trained classifier under noise: each noise type alone over a grid of variances.

The protocol of the authors' code of Duque 2024 (../shared/notes/reference-code-facts.md):
each type alone, 100 log-spaced variances in [1e-3, 1], 3 repetitions over the whole test set
with fresh noise per batch, plotted as mean +- 2 std. The noisy passes run on the engine of
:mod:`refnet.montecarlo_engine` (re-exported here), which agrees with
:func:`refnet.model.forward` on the same draws and adds exact shortcuts.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .losses import check_labels
from .model import Architecture, Params, check_input
from .montecarlo_engine import (BACKENDS, SHORTCUTS, CleanState, Engine, chunk_generator,
                                clean_state, draw_noise, map_chunks, prepare, propagate,
                                resolve_config, resolve_seed, worker_pool)
from .noise import NOISE_TYPES, NoiseSpec

__all__ = ["SweepResult", "accuracy_sweep", "DEFAULT_VARIANCES", "BACKENDS", "SHORTCUTS",
           "Engine", "CleanState", "prepare", "clean_state", "draw_noise", "propagate",
           "chunk_generator", "resolve_seed", "resolve_config"]

Array = np.ndarray
#: The authors' grid: 100 log-spaced variances in [1e-3, 1] (reference-code-facts.md).
DEFAULT_VARIANCES = np.logspace(-3, 0, 100)


@dataclass(frozen=True)
class SweepResult:
    """Accuracy of a classifier under each noise type alone, over a grid of variances.

    ``accuracy[i, j, k]``: type ``noise_types[i]`` at variance ``variances[j]``, repetition
    ``k`` (a full pass over the data with fresh noise per batch). ``std`` is the sample standard
    deviation over repetitions (ddof 1; 0 for a single repetition).
    """

    noise_types: tuple[str, ...]
    variances: Array
    accuracy: Array
    clean_accuracy: float
    seed: int
    settings: dict

    @property
    def mean(self) -> Array:
        """(n_types, n_levels)."""
        return self.accuracy.mean(axis=2)

    @property
    def std(self) -> Array:
        """(n_types, n_levels)."""
        n = self.accuracy.shape[2]
        return self.accuracy.std(axis=2, ddof=1) if n > 1 else np.zeros(self.accuracy.shape[:2])


def _check_sweep_args(noise_types, variances, repetitions, batch_size):
    types = tuple(noise_types)
    for t in types:
        if t not in NOISE_TYPES:
            raise ValueError(f"noise_types: unknown {t!r}; known: {', '.join(NOISE_TYPES)}")
    if not types or len(set(types)) != len(types):
        raise ValueError(f"noise_types: need distinct names, got {types}")
    v = np.asarray(variances, dtype=np.float64)
    if v.ndim != 1 or v.size == 0 or not np.all(np.isfinite(v)) or np.any(v < 0):
        raise ValueError("variances: need a non-empty 1-D array of finite variances >= 0")
    if int(repetitions) < 1:
        raise ValueError(f"repetitions: must be >= 1, got {repetitions}")
    if int(batch_size) < 1:
        raise ValueError(f"batch_size: must be >= 1, got {batch_size}")
    return types, v


def accuracy_sweep(arch: Architecture, params: Params, X, y, noise="duque",
                   noise_types=NOISE_TYPES, variances=DEFAULT_VARIANCES, repetitions: int = 3,
                   batch_size: int = 1000, rng=None, backend: str = "numba", dtype=np.float64,
                   shortcuts="all", progress=None, workers: int = 1) -> SweepResult:
    """Classification accuracy under each noise type alone at each variance.

    The protocol of the authors' code of Duque 2024 (reference-code-facts.md): each type alone
    on the layers of ``noise`` (a :class:`NoiseConfig`, whose spec is ignored, or a preset name;
    default "duque": after the activation of every hidden layer), ``repetitions`` full passes
    over ``X`` with fresh noise per batch of ``batch_size`` rows.

    Parameters
    ----------
    X : array (n_samples, sizes[0]); y : int array (n_samples,)
    variances : array (n_levels,)
        Noise variances (not std); default 100 log-spaced in [1e-3, 1].
    rng : Generator, int or None
        Root seed (recorded). Batch ``c`` of repetition ``k`` at level ``j`` of type ``i``
        draws from :func:`chunk_generator` ``(seed, (i, j, k, c))``.
    progress : callable(done, total) or None
        Called after each pass.
    workers : int
        Threads working on the batches of a pass (:func:`worker_pool`); the result does not
        depend on it.
    """
    cfg = resolve_config(noise, arch)
    types, v = _check_sweep_args(noise_types, variances, repetitions, batch_size)
    X = check_input(X, arch.sizes[0])
    y = check_labels(y, len(X), arch.sizes[-1])
    seed = resolve_seed(rng)
    engine = prepare(arch, params, cfg, backend, shortcuts, dtype)
    state = clean_state(engine, X)
    quiet = engine.with_spec(NoiseSpec())   # zero variances: the clean network, same state
    rows = np.arange(len(X))
    clean_out, _ = propagate(quiet, state, rows, draw_noise(quiet, state, len(X), None))
    clean_acc = float(np.mean(np.argmax(clean_out, axis=1) == y)) if len(X) else float("nan")
    reps, bs = int(repetitions), int(batch_size)
    acc = np.empty((len(types), len(v), reps))
    total, done = acc.size, 0
    starts = range(0, len(X), bs)

    def n_correct(eng, key, start):
        rows = np.arange(start, min(start + bs, len(X)))
        draws = draw_noise(eng, state, len(rows), chunk_generator(seed, key))
        out, _ = propagate(eng, state, rows, draws)
        return int(np.count_nonzero(np.argmax(out, axis=1) == y[rows]))

    with worker_pool(workers, backend) as pool:
        for i, t in enumerate(types):
            for j, var in enumerate(v):
                eng = engine.with_spec(NoiseSpec.single(t, var))
                for k in range(reps):
                    counts = map_chunks(lambda c: n_correct(eng, (i, j, k, c), starts[c]),
                                        range(len(starts)), pool)
                    acc[i, j, k] = sum(counts) / len(X) if len(X) else float("nan")
                    done += 1
                    if progress is not None:
                        progress(done, total)
    settings = {"layers": list(engine.noisy), "position": cfg.position, "repetitions": reps,
                "batch_size": bs, "backend": backend, "dtype": str(np.dtype(dtype)),
                "shortcuts": sorted(engine.shortcuts), "n_samples": int(len(X)),
                "std_ddof": 1 if reps > 1 else 0, "workers": int(workers)}
    return SweepResult(types, v.copy(), acc, clean_acc, seed, settings)
