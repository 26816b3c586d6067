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
``settings["interpolation_error"]`` is an a-posteriori estimate: the largest change of any
variance's mean accuracy (over every ``ESTIMATE_STRIDE``-th input) when every other grid
point is dropped (measured: 5-10 times the error against ``method="full"``).
"""
from __future__ import annotations

import numpy as np
from scipy.special import ndtr

from ..activations import get_activation
from .gaussian_argmax import rank_one_argmax_probability
from .moment_steps import TAIL_NODE, normal_panel_rule

__all__ = ["rank_one_shared_slope", "correlated_curve", "GRID_POINTS"]

Array = np.ndarray
#: Grid points over the shared draw of correlated noise (odd: tau = 0 is a grid point).
GRID_POINTS = 17
#: The interpolation error is estimated on every this-many-th input.
ESTIMATE_STRIDE = 4


def _hermite_interpolate(H: Array, dH: Array, grid: Array, tau: Array) -> Array:
    """Cubic Hermite interpolation on an equally spaced grid: H, dH (G, B, K); tau (M,) ->
    (M, B, K). The weights depend on ``tau`` only, shared by all inputs."""
    h = grid[1] - grid[0]
    i = np.clip(np.floor((tau - grid[0]) / h).astype(np.intp), 0, len(grid) - 2)
    s = (tau - grid[i]) / h
    s2, s3 = s * s, s * s * s
    c = [(2 * s3 - 3 * s2 + 1), h * (s3 - 2 * s2 + s), (-2 * s3 + 3 * s2), h * (s3 - s2)]
    c = [x[:, None, None] for x in c]
    return c[0] * H[i] + c[1] * dH[i] + c[2] * H[i + 1] + c[3] * dH[i + 1]


def rank_one_shared_slope(c: Array, u: Array, y: Array) -> Array:
    """:func:`~refnet.propagation.gaussian_argmax.rank_one_argmax_probability` when every row
    has the same slope ``u`` (additive correlated noise on the last layer: ``u = sd W3 1``):
    which classes' lines rise faster than the label's then depends on the label only, so each
    label's rows take fixed columns and no masks. The same operations, so the same bits
    (tested). c (M, B, K); u (K,); y (B,). Returns (M, B)."""
    M, B, K = c.shape
    out = np.empty((M, B))
    cols = np.arange(K)
    for g in np.unique(y):
        idx = np.flatnonzero(y == g)
        cg = c[:, idx]
        b = cg - cg[..., g:g + 1]                       # wins where a_k xi > b_k
        a = u[g] - u
        pos, neg = (a > 0) & (cols != g), (a < 0) & (cols != g)
        zero = (a == 0) & (cols != g)
        with np.errstate(divide="ignore", invalid="ignore"):
            lo = ((b[..., pos] / a[pos]).max(axis=-1) if pos.any()
                  else np.full(b.shape[:2], -np.inf))
            hi = ((b[..., neg] / a[neg]).min(axis=-1) if neg.any()
                  else np.full(b.shape[:2], np.inf))
        never = (b[..., zero] >= 0).any(axis=-1)
        p = np.where(lo > 0, ndtr(-lo) - ndtr(-hi), ndtr(hi) - ndtr(lo))
        out[:, idx] = np.where(never | (hi <= lo), 0.0, np.clip(p, 0.0, 1.0))
    return out


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
    z = np.empty_like(z2)
    for g, t in enumerate(grid):
        np.multiply(u, t, out=z)
        z += z2
        X[:B] = act.f(z)
        if sigmoid:                                    # sigma' = sigma (1 - sigma)
            np.subtract(1.0, X[:B], out=X[B:])
            X[B:] *= X[:B]
        else:
            X[B:] = act.d1(z)
        X[B:] *= u
        HdH = X @ W3.T
        H[g], dH[g] = HdH[:B], HdH[B:]
    outside = {float(x) for sd, r in zip(sds, rules) if r is not None for x in sd * r[0]
               if abs(x) > grid[-1]}
    direct = {x: act.f(z2 + x * u) @ W3.T for x in sorted(outside)}
    # the error estimate: every other grid point dropped, on every ESTIMATE_STRIDE-th input
    sub = slice(None, None, ESTIMATE_STRIDE)
    Hc, dHc, gc = (np.ascontiguousarray(H[::2, sub]), np.ascontiguousarray(dH[::2, sub]),
                   grid[::2])
    one = W3.sum(axis=1)
    per, est = np.empty((len(sds), B)), 0.0
    for j, (sd, rule) in enumerate(zip(sds, rules)):
        if rule is None:  # variance 0: the clean logits
            c = H[G // 2]
            per[j] = rank_one_argmax_probability(c + b3, np.zeros_like(c), y)
            continue
        t, w = rule
        accs = []
        for Hg, dHg, gg, rows in ((H, dH, grid, slice(None)), (Hc, dHc, gc, sub)):
            yy = y[rows]
            tau = sd * t
            inside = np.abs(tau) <= grid[-1]
            h = np.empty((len(t), len(yy), K))
            h[inside] = _hermite_interpolate(Hg, dHg, gg, tau[inside])  # (M, B, K)
            for m in np.flatnonzero(~inside):
                h[m] = direct[float(tau[m])][rows]
            if mul:  # the slope sd h(tau) differs per row
                v = sd * h
                h += b3
                p = rank_one_argmax_probability(h.reshape(-1, K), v.reshape(-1, K),
                                                np.tile(yy, len(t))).reshape(len(t), len(yy))
            else:
                h += b3
                p = rank_one_shared_slope(h, sd * one, yy)
            accs.append(w @ p)
        per[j] = accs[0]
        est = max(est, abs(float(accs[0][sub].mean() - accs[1].mean())))
    return per, est
