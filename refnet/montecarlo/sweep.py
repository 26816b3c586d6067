"""Accuracy of a trained classifier under noise: each noise type alone over a grid of variances.

The protocol of the authors' code of Duque 2024 (../shared/notes/reference-code-facts.md):
each type alone, 100 log-spaced variances in [1e-3, 1], 3 repetitions over the whole test set
with fresh noise per batch, plotted as mean +- 2 std. The noisy passes run on the engine of
:mod:`refnet.montecarlo.engine`, which agrees with :func:`refnet.model.forward` on the same
draws and adds exact shortcuts; ``tests/montecarlo/test_mc_sweep.py`` also compares the sweep
with independent noisy :func:`refnet.model.forward` passes.
"""
from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, fields, replace

import numpy as np

from .._blas import on_fixed_blas_threads
from ..errors import ConfigError
from ..limits import MAX_LEVELS, MAX_REPETITIONS, passes_problem
from ..losses import check_labels
from ..model import Architecture, Params, check_input
from ..noise import NOISE_TYPES, NoiseSpec
from .chunks import check_workers, chunk_generator, iter_chunks, resolve_seed, worker_pool
from .engine import (Workspace, check_backend, check_dtype, clean_state, count_correct,
                     draw_noise, parse_shortcuts, prepare, propagate, resolve_config)

__all__ = ["SweepSettings", "SweepResult", "accuracy_sweep", "DEFAULT_VARIANCES"]

Array = np.ndarray
#: The authors' grid: 100 log-spaced variances in [1e-3, 1] (reference-code-facts.md).
DEFAULT_VARIANCES = np.logspace(-3, 0, 100)


@dataclass(frozen=True, kw_only=True)
class SweepSettings:
    """How :func:`accuracy_sweep` samples; keyword-only, checked once here and normalised.

    ``noise_types``: names from :data:`refnet.noise.NOISE_TYPES`, each swept alone (distinct);
    ``variances``: noise variances (not std), finite and >= 0, stored as a tuple of floats
    (default :data:`DEFAULT_VARIANCES`); ``repetitions``: full passes over the data per level,
    with fresh noise per batch of ``batch_size`` rows; ``backend``, ``dtype``, ``shortcuts``:
    see :func:`refnet.montecarlo.prepare` (``shortcuts`` becomes a frozenset); ``workers``:
    threads working on the batches of a pass (:func:`refnet.montecarlo.worker_pool`), which
    do not change any number.
    """

    noise_types: tuple[str, ...] = NOISE_TYPES
    variances: tuple[float, ...] = tuple(DEFAULT_VARIANCES.tolist())
    repetitions: int = 3
    batch_size: int = 1000
    backend: str = "numba"
    dtype: np.dtype = np.dtype(np.float64)
    shortcuts: frozenset | str = "all"
    workers: int = 1

    def __post_init__(self):
        if isinstance(self.noise_types, str):
            raise ConfigError(f"noise_types: need a sequence of names, e.g. "
                              f"({self.noise_types!r},), got the string {self.noise_types!r}")
        types = tuple(self.noise_types)
        for t in types:
            if t not in NOISE_TYPES:
                raise ConfigError(f"noise_types: unknown {t!r}; known: {', '.join(NOISE_TYPES)}")
        if not types or len(set(types)) != len(types):
            raise ConfigError(f"noise_types: need distinct names, got {types}")
        v = np.asarray(self.variances, dtype=np.float64)
        if v.ndim != 1 or v.size == 0 or not np.all(np.isfinite(v)) or np.any(v < 0):
            raise ConfigError("variances: need a non-empty 1-D array of finite variances >= 0")
        if v.size > MAX_LEVELS:
            raise ConfigError(f"variances: at most {MAX_LEVELS}, got {v.size}")
        for name in ("repetitions", "batch_size"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name}: must be >= 1, got {getattr(self, name)}")
        if int(self.repetitions) > MAX_REPETITIONS:   # before the results array is allocated
            raise ConfigError(f"repetitions: at most {MAX_REPETITIONS}, got {self.repetitions}")
        problem = passes_problem(v.size, int(self.repetitions), len(types))
        if problem:
            raise ConfigError(f"variances/repetitions/noise_types: {problem}")
        backend = check_backend(self.backend)
        normal = dict(noise_types=types, variances=tuple(v.tolist()),
                      repetitions=int(self.repetitions), batch_size=int(self.batch_size),
                      dtype=check_dtype(self.dtype), shortcuts=parse_shortcuts(self.shortcuts),
                      workers=check_workers(self.workers, backend))
        for name, value in normal.items():
            object.__setattr__(self, name, value)


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


@on_fixed_blas_threads
def accuracy_sweep(arch: Architecture, params: Params, X, y, noise="duque",
                   settings: SweepSettings | None = None, *, rng=None, progress=None,
                   **setting_overrides) -> SweepResult:
    """Classification accuracy under each noise type alone at each variance.

    The protocol of the authors' code of Duque 2024 (reference-code-facts.md): each type alone
    on the layers of ``noise`` (a :class:`NoiseConfig`, whose spec is ignored, or a preset name;
    default "duque": after the activation of every hidden layer), ``repetitions`` full passes
    over ``X`` with fresh noise per batch of ``batch_size`` rows.

    Parameters
    ----------
    X : array (n_samples, sizes[0]); y : int array (n_samples,)
    settings : SweepSettings or None
        Types, variances, repetitions, batch size, backend, dtype, shortcuts, workers
        (default ``SweepSettings()``: the authors' grid, 3 repetitions).
    rng : Generator, int or None
        Root seed (recorded). Batch ``c`` of repetition ``k`` at level ``j`` of type ``i``
        draws from :func:`refnet.montecarlo.chunk_generator` ``(seed, (i, j, k, c))``.
    progress : callable(done, total) or None
        Called after each pass.
    **setting_overrides
        Fields of :class:`SweepSettings` replacing those of ``settings``, e.g.
        ``accuracy_sweep(arch, params, X, y, "duque", variances=[0.1, 1.0], rng=0)``.
    """
    if settings is None:
        settings = SweepSettings()
    if not isinstance(settings, SweepSettings):
        raise TypeError(f"settings: expected a SweepSettings, got {type(settings).__name__} "
                        "(pass noise types, variances, ... as keywords or in a SweepSettings)")
    unknown = set(setting_overrides) - {f.name for f in fields(SweepSettings)}
    if unknown:
        raise TypeError(f"accuracy_sweep: unknown setting(s) {', '.join(sorted(unknown))}; "
                        f"known: {', '.join(f.name for f in fields(SweepSettings))}")
    if setting_overrides:
        settings = replace(settings, **setting_overrides)
    cfg = resolve_config(noise, arch)
    X = check_input(X, arch.sizes[0])
    y = check_labels(y, len(X), arch.sizes[-1])
    seed = resolve_seed(rng)
    types, v = settings.noise_types, np.array(settings.variances, dtype=np.float64)
    engine = prepare(arch, params, cfg, settings.backend, settings.shortcuts, settings.dtype)
    reps, bs = settings.repetitions, settings.batch_size
    acc = np.empty((len(types), len(v), reps))
    total = acc.size
    starts = range(0, len(X), bs)
    engines = {(i, j): engine.with_spec(NoiseSpec.single(t, var))
               for i, t in enumerate(types) for j, var in enumerate(v)}
    # the chunks of every pass in one stream: a pool never idles at the end of a pass; results
    # come back in chunk order, so the counts (and the numbers) are those of one chunk at a
    # time. Lazy: (i, j, k, c) in this order, a few per worker in flight (iter_chunks)
    chunks = itertools.product(range(len(types)), range(len(v)), range(reps), range(len(starts)))

    local = threading.local()      # one Workspace per thread of this call, freed with it
    state = None

    def clean_accuracy():
        quiet = engine.with_spec(NoiseSpec())   # zero variances: the clean network, same state
        out, _ = propagate(quiet, state, np.arange(len(X)), draw_noise(quiet, state, len(X), None))
        return float(np.mean(np.argmax(out, axis=1) == y)) if len(X) else float("nan")

    def n_correct(key):
        i, j, _, c = key
        rows = slice(starts[c], min(starts[c] + bs, len(X)))
        if not hasattr(local, "ws"):
            local.ws = Workspace()
        return count_correct(engines[i, j], state, rows, y[rows], chunk_generator(seed, key),
                             local.ws)

    with worker_pool(settings.workers, settings.backend) as pool:
        state = clean_state(engine, X, pool=pool)
        # the clean pass is one more task: it runs beside the first noisy chunks
        clean = pool.submit(clean_accuracy) if pool is not None else None
        clean_acc = clean_accuracy() if pool is None else None
        counts = iter_chunks(n_correct, chunks, pool)
        for p in range(total):
            correct = sum(next(counts) for _ in starts)
            acc.flat[p] = correct / len(X) if len(X) else float("nan")
            if progress is not None:
                progress(p + 1, total)
        if clean is not None:
            clean_acc = clean.result()
    record = {"layers": list(engine.noisy), "position": cfg.position, "repetitions": reps,
              "batch_size": bs, "backend": engine.backend, "dtype": str(settings.dtype),
              "shortcuts": sorted(engine.shortcuts), "n_samples": int(len(X)),
              "std_ddof": 1 if reps > 1 else 0, "workers": settings.workers}
    return SweepResult(types, v, acc, clean_acc, seed, record)
