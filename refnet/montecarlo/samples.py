"""Raw Monte-Carlo samples of every layer's noisy output, for any network and noise placement.

:func:`refnet.montecarlo.neuron_statistics` streams moments; distribution tests (e.g.
:mod:`refnet.crosscheck.stat`) need the samples themselves. Same engine, same seeding scheme:
repeat block ``k`` draws from ``chunk_generator(seed, (k,))``, so the samples depend only on
the seed and ``repeat_block``. (:func:`refnet.montecarlo.monte_carlo_outputs` is the plain
NumPy oracle for the output layer; this is the engine, for any layer.)
"""
from __future__ import annotations

import numpy as np

from ..model import Architecture, Params, check_input, forward
from ..noise import NoiseConfig
from .._blas import fixed_blas_threads
from .chunks import chunk_generator, resolve_seed
from .engine import clean_state, draw_noise, prepare, propagate

__all__ = ["layer_samples"]


def layer_samples(arch: Architecture, params: Params, X, noise: NoiseConfig, K: int, rng=None,
                  layers=None, repeat_block: int = 64, backend: str = "numba",
                  shortcuts=("clean_prefix", "row_sums")) -> tuple[dict, int]:
    """Noisy outputs of ``layers`` for K repeats of each of the T inputs ``X``.

    Parameters
    ----------
    X : array (T, sizes[0])
    noise : NoiseConfig
        Placement and variances (``layer_specs`` honoured).
    layers : iterable of int or None
        Layers 0..L (negative from the end); default the output layer only.
    shortcuts
        Engine shortcuts; the default keeps the exact ones (same law and same draws as
        :func:`refnet.model.forward`).

    Returns
    -------
    samples : dict {l: ndarray (K, T, sizes[l])}
        Clean layers (before the first noisy one) repeat their clean value K times.
    seed : int
        The root seed used (recorded for reproduction).
    """
    if not isinstance(noise, NoiseConfig):
        raise TypeError(f"noise: expected a NoiseConfig, got {type(noise).__name__}")
    X = check_input(X, arch.sizes[0])
    K, kb = int(K), int(repeat_block)
    if K < 1 or kb < 1:
        raise ValueError(f"K, repeat_block: must be >= 1, got {K}, {repeat_block}")
    L = arch.n_layers
    want = (L,) if layers is None else tuple(layers)
    keep = tuple(sorted({l + L + 1 if l < 0 else l for l in want}))
    if not keep or any(not 0 <= l <= L for l in keep):
        raise ValueError(f"layers: must be non-empty and lie in 0..{L}, got {want}")
    seed = resolve_seed(rng)
    engine = prepare(arch, params, noise, backend, shortcuts)
    state = clean_state(engine, X)
    T = len(X)
    out = {l: np.empty((K, T, arch.sizes[l]), dtype=engine.dtype) for l in keep}
    clean = [l for l in keep if l < engine.first_noisy]
    if clean:
        A = forward(arch, engine.params, X)[1].A
        for l in clean:
            out[l][:] = A[l]
    live = tuple(l for l in keep if l >= engine.first_noisy)
    with fixed_blas_threads():
        for ki, k0 in enumerate(range(0, K, kb) if live else ()):
            k = min(kb, K - k0)
            idx = np.tile(np.arange(T), k)  # rows ordered (repeat, input)
            draws = draw_noise(engine, state, len(idx), chunk_generator(seed, (ki,)), live)
            _, kept = propagate(engine, state, idx, draws, live)
            for l in live:
                out[l][k0:k0 + k] = kept[l].reshape(k, T, -1)
    return out, seed
