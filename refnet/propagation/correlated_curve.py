r"""Correlated noise after both hidden layers: the predicted accuracy curve in one pass.

Part of :mod:`refnet.propagation.moment_curve` (the one-pass curve of
:func:`refnet.propagation.moments.predicted_accuracy_curve`, ``method="auto"``).

The first hidden layer's draw enters the second layer's pre-activation as ``tau u`` (``tau = sd xi``; ``u = W2 1`` for additive,
``W2 a1`` for multiplicative noise), so the logits ``h(tau) = W3 f(W2 a1 + b2 + tau u)`` are
one curve per input for *all* variances. It is evaluated with its derivative
``W3 (f'(.) o u)`` on ``grid_points`` (default 17) equally spaced ``tau`` covering every
variance's panel nodes (the two tail nodes at ``+-4 sd``, weights ~1e-3, are evaluated
directly where they fall outside) and interpolated by cubic Hermite polynomials (error
``<= h^4 / 384 max |h''''|``, h the spacing; C. de Boor, *A Practical Guide to Splines*,
Springer 1978, Ch. IV). Each variance then integrates exactly the nodes and weights
``method="full"`` uses (:func:`~refnet.propagation.moments.normal_panel_rule`), the second
draw staying exact (:func:`~refnet.propagation.gaussian_argmax.rank_one_argmax_probability`).
The grid's sigmoid passes and the per-variance sums over the nodes run in numba kernels
beside their NumPy twins (:mod:`~refnet.propagation._curve_kernels`).
``settings["interpolation_error"]`` is an a-posteriori estimate: the largest change of any
variance's mean accuracy (over every ``ESTIMATE_STRIDE``-th input) when every other grid
point is dropped (measured: 5-10 times the error against ``method="full"``).
"""
from __future__ import annotations

import numpy as np

from ..activations import get_activation
from ._curve_kernels import (level_probability, rank_one_shared_slope,  # noqa: F401
                             sigmoid_values_and_slopes)
from .gaussian_argmax import rank_one_argmax_probability
from .moment_steps import TAIL_NODE, normal_panel_rule

__all__ = ["rank_one_shared_slope", "correlated_curve", "GRID_POINTS"]

Array = np.ndarray
#: Grid points over the shared draw of correlated noise (odd: tau = 0 is a grid point).
GRID_POINTS = 17
#: The interpolation error is estimated on every this-many-th input.
ESTIMATE_STRIDE = 4


def correlated_curve(arch, params, a1: Array, y: Array, noise_type: str, variances: Array, *,
                     quadrature_nodes: int = 16, grid_points: int = GRID_POINTS
                     ) -> tuple[Array, float]:
    """Per-input ``P(argmax = label)`` (n_levels, B) for add_cor or mul_cor after both hidden
    layers, and the interpolation error estimate (see the module docstring).

    a1 (B, n1): the clean first hidden layer; y (B,); variances (n_levels,).
    """
    W2, b2, W3, b3 = params.W[1], params.b[1], params.W[2], params.b[2]
    act = get_activation(arch.activations[1])
    mul = noise_type == "mul_cor"
    P = a1 @ W2.T
    z2 = P + b2                                        # (B, n2)
    u = P if mul else W2.sum(axis=1)[None, :]          # (B, n2) or (1, n2)
    sds = np.sqrt(variances)
    rules = [normal_panel_rule(quadrature_nodes, -1.0 / sd if mul else None) if sd > 0 else None
             for sd in sds]
    # the grid covers the panel nodes; the two tail nodes (weights ~1e-3) of the variances
    # that reach beyond it are evaluated directly
    T = max([float(np.abs(sd * r[0][np.abs(r[0]) < TAIL_NODE]).max(initial=0.0))
             for sd, r in zip(sds, rules) if r is not None], default=0.0)
    G = max(3, int(grid_points) | 1)
    grid = np.linspace(-T, T, G) if T > 0 else np.linspace(-1.0, 1.0, G)
    B, K = len(a1), W3.shape[0]
    H, dH = np.empty((G, B, K)), np.empty((G, B, K))
    sigmoid = act.spec == "sigmoid"
    X = np.empty((2 * B, z2.shape[1]))                 # values over slopes: one GEMM for both
    z = np.empty_like(z2)                              # z, or -z for the sigmoid kernel

    def curve_point(t):                                # h(t), h'(t) (B, K), bias apart
        if sigmoid:
            sigmoid_values_and_slopes(z2, u, t, X, work=z)
        else:
            np.multiply(u, t, out=z)
            np.add(z, z2, out=z)                       # in place; `z +=` would rebind z here
            X[:B] = act.f(z)
            X[B:] = act.d1(z)
            X[B:] *= u
        HdH = X @ W3.T
        return HdH[:B], HdH[B:]

    for g, t in enumerate(grid):
        H[g], dH[g] = curve_point(t)
    outside = sorted({float(x) for sd, r in zip(sds, rules) if r is not None for x in sd * r[0]
                      if abs(x) > grid[-1]})
    direct = (np.stack([curve_point(x)[0] for x in outside]) if outside
              else np.empty((0, B, K)))                # (n_direct, B, K)
    slot_of = {x: i for i, x in enumerate(outside)}
    # the error estimate: every other grid point dropped, on every ESTIMATE_STRIDE-th input
    sub = slice(None, None, ESTIMATE_STRIDE)
    Hc, dHc, gc = (np.ascontiguousarray(H[::2, sub]), np.ascontiguousarray(dH[::2, sub]),
                   grid[::2])
    direct_c = np.ascontiguousarray(direct[:, sub])
    one = W3.sum(axis=1)
    per, est = np.empty((len(sds), B)), 0.0
    for j, (sd, rule) in enumerate(zip(sds, rules)):
        if rule is None:  # variance 0: the clean logits
            c = H[G // 2]
            per[j] = rank_one_argmax_probability(c + b3, np.zeros_like(c), y)
            continue
        t, w = rule
        tau = sd * t
        slot = np.array([slot_of[float(x)] if abs(x) > grid[-1] else -1 for x in tau])
        per[j] = level_probability(H, dH, grid, tau, w, direct, slot, b3, sd * one, y, mul, sd)
        coarse = level_probability(Hc, dHc, gc, tau, w, direct_c, slot, b3, sd * one, y[sub],
                                   mul, sd)
        est = max(est, abs(float(per[j][sub].mean() - coarse.mean())))
    return per, est
