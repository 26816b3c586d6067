"""Per-neuron statistics of a noisy network: mean, variance and SNR over K repeats per input.

(Semenova 2022, Eq. 4, p. 3): ``SNR(y) = E(y) / Var(y)^{1/2}``, estimated for each of T inputs
by repeating the input K times (Semenova: T = 1000, K = 300). Streaming: repeats are processed
in fixed-size blocks and combined with the pairwise update of Chan, Golub and LeVeque (1979),
so memory does not grow with K.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._blas import on_fixed_blas_threads
from ..model import Architecture, Params, check_input, forward
from ..noise import NoiseConfig
from .chunks import chunk_generator, map_chunks, resolve_seed, worker_pool
from .engine import clean_state, draw_noise, prepare, propagate

__all__ = ["LayerStatistics", "NeuronStatistics", "neuron_statistics", "combine_moments",
           "confidence_intervals"]

Array = np.ndarray


def combine_moments(n_a: int, mean_a: Array, M2_a: Array, n_b: int, mean_b: Array, M2_b: Array):
    """Merge two sets of (count, mean, sum of squared deviations) (Chan et al. 1979).

    ``delta = mean_b - mean_a``; ``mean = mean_a + delta n_b / n``;
    ``M2 = M2_a + M2_b + delta^2 n_a n_b / n`` with ``n = n_a + n_b``. Arrays of any one shape.
    """
    n = n_a + n_b
    delta = mean_b - mean_a
    mean = mean_a + delta * (n_b / n)
    M2 = M2_a + M2_b + delta * delta * (n_a * n_b / n)
    return n, mean, M2


@dataclass(frozen=True)
class LayerStatistics:
    """Statistics of one layer's noisy output; every array has shape (T, n_neurons).

    ``variance`` is the unbiased sample variance over the K repeats; ``snr = mean /
    sqrt(variance)`` (Semenova 2022, Eq. 4, p. 3), ``inf`` where the variance is 0 and the mean
    is not, ``nan`` for 0/0. ``*_ci`` are ``(low, high)`` pairs at level ``confidence``:
    see :func:`confidence_intervals`.
    """

    layer: int
    mean: Array
    variance: Array
    snr: Array
    mean_ci: tuple[Array, Array]
    variance_ci: tuple[Array, Array]
    snr_ci: tuple[Array, Array]


@dataclass(frozen=True)
class NeuronStatistics:
    """``layers[l]``: :class:`LayerStatistics` of layer ``l``; the seed and settings used."""

    layers: dict
    K: int
    T: int
    confidence: float
    seed: int
    settings: dict


def confidence_intervals(mean: Array, variance: Array, K: int, confidence: float = 0.95):
    """Two-sided intervals for the mean, variance and SNR of a neuron from K repeats.

    * mean: Student t, ``mean +- t_{K-1} sqrt(variance / K)``;
    * variance: chi-square, ``[(K-1) s^2 / chi2_{hi}, (K-1) s^2 / chi2_{lo}]``;
    * SNR: delta method, ``snr +- z sqrt((1 + snr^2 / 2) / K)``.

    All three are exact (mean, variance) or asymptotic (SNR) for Gaussian outputs; for skewed
    or heavy-tailed outputs (saturated sigmoids, multiplicative noise) they are
    approximations, the variance interval being the most sensitive.
    """
    from scipy import stats as _st  # here: importing scipy.stats costs every command 1-2 s

    a = 1.0 - confidence
    with np.errstate(divide="ignore", invalid="ignore"):  # var = 0 gives inf/nan SNR, by design
        snr = mean / np.sqrt(variance)
        half = _st.t.ppf(1 - a / 2, K - 1) * np.sqrt(variance / K)
        v_lo = (K - 1) * variance / _st.chi2.ppf(1 - a / 2, K - 1)
        v_hi = (K - 1) * variance / _st.chi2.ppf(a / 2, K - 1)
        s_half = _st.norm.ppf(1 - a / 2) * np.sqrt((1 + snr * snr / 2) / K)
        return snr, (mean - half, mean + half), (v_lo, v_hi), (snr - s_half, snr + s_half)


@on_fixed_blas_threads
def neuron_statistics(arch: Architecture, params: Params, X, noise, *, K: int = 300, rng=None,
                      layers=None, confidence: float = 0.95, repeat_block: int = 32,
                      rows_per_chunk: int = 4096, backend: str = "numba", dtype=np.float64,
                      shortcuts="all", workers: int = 1) -> NeuronStatistics:
    """Mean, variance and SNR of every neuron of ``layers`` for each input, over K repeats.

    Parameters
    ----------
    X : array (T, sizes[0])
        The T inputs (Semenova: T = 1000).
    noise : NoiseConfig
        Where and how much noise, e.g. ``noise_config("semenova", spec, L)``.
    K : int
        Repeats per input (Semenova: K = 300), at least 2.
    layers : iterable of int or None
        Layers 0..L (negative from the end) to report; default every weight layer 1..L.
    repeat_block, rows_per_chunk
        Work is split into blocks of ``repeat_block`` repeats of
        ``max(1, rows_per_chunk // repeat_block)`` inputs; block ``(t, k)`` draws from
        :func:`refnet.montecarlo.chunk_generator` ``(seed, (t, k))``. Results depend on these
        two sizes and the seed only; memory is O(T n + workers rows_per_chunk n), flat in K.
    workers : int
        Threads working on blocks (:func:`refnet.montecarlo.worker_pool`); the result
        does not depend on it.
    """
    if not isinstance(noise, NoiseConfig):
        raise TypeError(f"noise: expected a NoiseConfig (placement and variances), got "
                        f"{type(noise).__name__}")
    cfg = noise
    X = check_input(X, arch.sizes[0])
    K = int(K)
    if K < 2:
        raise ValueError(f"K: need at least 2 repeats for a variance, got {K}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence: must lie in (0, 1), got {confidence}")
    workers = int(workers)
    if int(repeat_block) < 1 or int(rows_per_chunk) < 1:
        raise ValueError("repeat_block, rows_per_chunk: must be >= 1")
    L = arch.n_layers
    want = tuple(range(1, L + 1)) if layers is None else tuple(layers)
    keep = tuple(sorted({l + L + 1 if l < 0 else l for l in want}))
    if any(not 0 <= l <= L for l in keep) or not keep:
        raise ValueError(f"layers: must be non-empty and lie in 0..{L}, got {want}")
    seed = resolve_seed(rng)
    engine = prepare(arch, params, cfg, backend, shortcuts, dtype)
    state = clean_state(engine, X)
    T, kb = len(X), int(repeat_block)
    tb = max(1, int(rows_per_chunk) // kb)
    acc = {l: (np.zeros((T, arch.sizes[l])), np.zeros((T, arch.sizes[l]))) for l in keep}
    l0 = engine.first_noisy
    if any(l < l0 for l in keep):  # layers before the first noisy one are clean: variance 0
        A = forward(arch, params.astype(engine.dtype), X)[1].A
        for l in keep:
            if l < l0:
                acc[l][0][:] = A[l]
    live = tuple(l for l in keep if l >= l0)
    def block_moments(ti, t0, t1, ki, k):
        """Mean and M2 over the ``k`` repeats of block (ti, ki), per layer: (t1 - t0, n_l)."""
        idx = np.repeat(np.arange(t0, t1), k)
        draws = draw_noise(engine, state, len(idx), chunk_generator(seed, (ti, ki)), live)
        _, kept = propagate(engine, state, idx, draws, live)
        out = {}
        for l in live:
            Y = kept[l].astype(np.float64).reshape(t1 - t0, k, -1)
            m_b = Y.mean(axis=1)
            out[l] = m_b, ((Y - m_b[:, None, :]) ** 2).sum(axis=1)
        return out

    k_blocks = [(ki, k0, min(kb, K - k0)) for ki, k0 in enumerate(range(0, K, kb))]
    with worker_pool(workers, backend) as pool:
        for ti, t0 in enumerate(range(0, T, tb) if live else ()):
            t1, n_done = min(t0 + tb, T), 0
            # waves of one block per worker: memory stays flat in K
            for w in range(0, len(k_blocks), workers):
                wave = k_blocks[w:w + workers]
                res = map_chunks(lambda blk: block_moments(ti, t0, t1, blk[0], blk[2]), wave, pool)
                for (_, _, k), moments in zip(wave, res):
                    for l in live:
                        mean, M2 = acc[l]
                        _, mean[t0:t1], M2[t0:t1] = combine_moments(
                            n_done, mean[t0:t1], M2[t0:t1], k, *moments[l])
                    n_done += k
    out = {}
    for l in keep:
        mean, M2 = acc[l]
        var = M2 / (K - 1)
        snr, m_ci, v_ci, s_ci = confidence_intervals(mean, var, K, confidence)
        out[l] = LayerStatistics(l, mean, var, snr, m_ci, v_ci, s_ci)
    settings = {"layers_noisy": list(engine.noisy), "position": cfg.position,
                "spec": cfg.spec.as_dict(),
                "layer_specs": {str(l): sp.as_dict() for l, sp in cfg.layer_specs},
                "repeat_block": kb, "inputs_per_block": tb,
                "backend": engine.backend, "dtype": str(np.dtype(dtype)),
                "shortcuts": sorted(engine.shortcuts), "workers": workers}
    return NeuronStatistics(out, K, T, float(confidence), seed, settings)
