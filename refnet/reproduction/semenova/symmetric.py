"""Semenova's symmetric network (Semenova 2022, Sec. III, p. 4) for the validation scripts.

``1 - I - ... - I - 1``: one linear input neuron (``x~_1 = u``), ``n_layers - 2`` hidden layers
of ``width`` shifted-sigmoid neurons, one linear output neuron, ``W^n_ij = 1 / I_{n-1}``, zero
biases, the noise of Eq. 3 on every layer's output (refnet's ``"semenova"`` noise preset;
intensities ``D``, variance ``2 D``). The same reading as
:func:`refnet.propagation.symmetric.symmetric_network_moments`, which gives its analytic moments.
"""
from __future__ import annotations

import numpy as np

from ...model import Architecture, Params, forward, mlp
from ...montecarlo import chunk_generator, resolve_seed
from ...noise import NoiseSpec, noise_config

__all__ = ["symmetric_network", "symmetric_state_moments"]


def symmetric_network(alpha: float, n_layers: int = 4, width: int = 200) -> tuple[Architecture, Params]:
    """``(arch, params)`` of the ``n_layers``-layer symmetric network with slope ``alpha``.

    Semenova counts layers as neurons' layers (input = layer 1), so there are
    ``n_layers - 1`` weight layers.
    """
    if int(n_layers) < 3 or int(width) < 1:
        raise ValueError(f"n_layers, width: need n_layers >= 3 and width >= 1, got {n_layers}, {width}")
    sizes = (1,) + (int(width),) * (int(n_layers) - 2) + (1,)
    arch = mlp(sizes, f"shifted_sigmoid(alpha={float(alpha)!r})", "identity")
    W = tuple(np.full((n_out, n_in), 1.0 / n_in) for n_in, n_out in zip(sizes[:-1], sizes[1:]))
    return arch, Params(W, tuple(np.zeros(n) for n in sizes[1:]))


def symmetric_state_moments(input_signal, alpha: float, n_layers: int, intensities, K: int,
                            rng=None, width: int = 200, rows_per_chunk: int = 4096) -> dict:
    """Monte-Carlo mean and variance over ``K`` repeats of the internal state ``x~_n`` of
    layers ``n = 2..N`` and of the network output ``y_N``, for each input ``u``.

    All neurons of a layer share one internal state (equal rows of ``W``), so neuron 0 stands
    for the layer. Uses the NumPy reference :func:`refnet.model.forward`, in chunks of about
    ``rows_per_chunk`` rows; chunk ``c`` draws from ``chunk_generator(seed, (c,))``.

    input_signal: (T,); intensities: ``(D_A_U, D_A_C, D_M_U, D_M_C)`` (variance ``2 D``).
    Returns ``mean_state``, ``var_state`` of shape (N - 1, T) (row 0 is layer 2),
    ``mean_output``, ``var_output`` of shape (T,), the noisy outputs of every layer
    ``mean_layer``, ``var_layer`` of shape (N, T) (row ``l`` is weight layer ``l``'s output,
    row 0 the noisy input; neuron 0), plus the ``seed`` used.
    """
    u = np.atleast_1d(np.asarray(input_signal, float))
    K = int(K)
    if K < 2:
        raise ValueError(f"K: need at least 2 repeats for a variance, got {K}")
    arch, params = symmetric_network(alpha, n_layers, width)
    cfg = noise_config("semenova", NoiseSpec.from_intensities(*intensities), arch.n_layers)
    seed = resolve_seed(rng)
    per = max(1, int(rows_per_chunk) // K)  # inputs per chunk
    N1 = arch.n_layers
    out = {k: np.zeros((N1, u.size)) for k in ("mean_state", "var_state")}
    out.update(mean_output=np.zeros(u.size), var_output=np.zeros(u.size),
               mean_layer=np.zeros((N1 + 1, u.size)), var_layer=np.zeros((N1 + 1, u.size)))
    for c, t0 in enumerate(range(0, u.size, per)):
        t1 = min(t0 + per, u.size)
        X = np.repeat(u[t0:t1], K)[:, None]
        y, cache = forward(arch, params, X, cfg, rng=chunk_generator(seed, (c,)))
        Z = np.stack([z[:, 0] for z in cache.Z]).reshape(N1, t1 - t0, K)
        out["mean_state"][:, t0:t1], out["var_state"][:, t0:t1] = Z.mean(-1), Z.var(-1, ddof=1)
        A = np.stack([a[:, 0] for a in cache.A]).reshape(N1 + 1, t1 - t0, K)
        out["mean_layer"][:, t0:t1], out["var_layer"][:, t0:t1] = A.mean(-1), A.var(-1, ddof=1)
        Y = y[:, 0].reshape(t1 - t0, K)
        out["mean_output"][t0:t1], out["var_output"][t0:t1] = Y.mean(-1), Y.var(-1, ddof=1)
    out["seed"] = seed
    return out
