r"""Which inputs are settled at a variance, before any Gauss-Hermite moment is computed.

:func:`refnet.propagation.moment_curve.uncorrelated_curve` settles an input when Boole's
inequality pins its model probability ``P(argmax = y)`` to within ``settle_tol``; that test
needs the level's moments of all ``B x n2`` neurons. At small variances most inputs settle, so
this module bounds the same model quantities from the clean pass alone, once per curve, as
polynomials in the variance ``s`` with per-(input, class) coefficients (derived; sigmoid
hidden layer, noise after both hidden layers, ``D_k = Y_y - Y_k``, ``w = W3[y] - W3[k]``,
``z ~ N(z2, s q2)`` per neuron):

* mean: ``|E s(z) - s(z2)| <= (sup |s''| / 2) s q2`` (Taylor's theorem with the Lagrange
  remainder; ``sup |s''| = 1 / (6 sqrt 3)``), so
  ``E D_k >= w . s(z2) + b3[y] - b3[k] - s (sup |s''| / 2) |w| . q2``;
* the model's neuron variance ``v2 = res + s (...)`` with ``0 <= res <= Var s(z) <= s q2 / 16``
  (``s`` is 1/4-Lipschitz) and, for multiplicative noise, ``E s^2 <= 1`` and
  ``(E s')^2 Var z <= s q2 / 16``;
* the slopes ``|E s'(z) - s'(z2)| <= (sup |s'''| / 2) s q2`` (``sup |s'''| = 1/8``), so the
  layer-1 share ``||sqrt(g1) o W2^T (w o d)||`` is at most the clean slopes' bound
  (:class:`DenseBound`) plus
  ``sqrt(max g1) ||W2||_2 (s / 16) ||w o q2||`` (triangle inequality).

Each moment also carries the Gauss-Hermite rule's error (at most ``moment_tol`` per moment).
An input whose bounds give ``sum_k Phi(-z_k) <= settle_tol`` is settled as the label winning:
the same test, with looser numbers, as the per-level one, so the same error bound
(``<= settle_tol / 2``).
"""
from __future__ import annotations

import numpy as np
from scipy.special import ndtr

from .lowrank_cov import class_forms, class_projector

__all__ = ["SIGMOID_D2_MAX", "SIGMOID_D3_MAX", "SIGMOID_D4_MAX", "CleanSettleBound",
           "DenseBound", "pair_forms", "pair_diagonal"]

Array = np.ndarray
#: sup |s''| of the logistic sigmoid s (at s = 1/2 +- 1/sqrt(12)).
SIGMOID_D2_MAX = 1.0 / (6.0 * np.sqrt(3.0))
#: sup |s'''| of the logistic sigmoid (at 0).
SIGMOID_D3_MAX = 1.0 / 8.0
#: sup |s''''| of the logistic sigmoid. With ``p = s (1 - s)`` and ``u = 1 - 2 s``,
#: ``s'''' = p u (1 - 12 p) = u (1 - u^2) (3 u^2 - 2) / 4``, extreme where
#: ``15 u^4 - 15 u^2 + 2 = 0``: at ``u^2 = (15 - sqrt(105)) / 30``, where it is about 0.1277.
_U4 = np.sqrt((15.0 - np.sqrt(105.0)) / 30.0)
SIGMOID_D4_MAX = float(_U4 * (1.0 - _U4 ** 2) * (2.0 - 3.0 * _U4 ** 2) / 4.0)


def _label_forms(x: Array, F: Array, y: Array) -> Array:
    """``x_b . F[y_b, k]`` per input and class: x (B, n2) or (n2,), F (K, K, n2) -> (B, K)."""
    if x.ndim == 1:
        return (F @ x)[y]
    out = np.empty((len(x), F.shape[0]))
    for g in np.unique(y):
        idx = np.flatnonzero(y == g)
        out[idx] = x[idx] @ F[g].T
    return out


class CleanSettleBound:
    """The module's bounds for one curve. z2 (B, n2) clean pre-activations of the second
    hidden layer; q2 (B, n2) or (n2,) with ``Var z = s q2``; g1max (B,) the largest ``g1``
    (1 for additive noise); dense0 (B, K): the bound of ``||sqrt(g1) o W2^T (w o s'(z2))||^2``;
    W2norm ``||W2||_2``; mul: multiplicative noise."""

    def __init__(self, z2: Array, q2: Array, g1max: Array, dense0: Array, W2norm: float,
                 W3: Array, b3: Array, y: Array, *, mul: bool, moment_tol: float):
        a2 = 1.0 / (1.0 + np.exp(-z2))
        pairs = W3[:, None, :] - W3[None, :, :]                 # (K, K, n2): W3[y] - W3[k]
        rows = np.arange(len(z2))
        mu0 = a2 @ W3.T + b3
        self.D0 = mu0[rows, y][:, None] - mu0                   # w . s(z2) + b3 diff
        self.abs_w = np.abs(pairs).sum(axis=-1)[y]              # ||w||_1, (B, K)
        self.mean_slope = SIGMOID_D2_MAX / 2.0 * _label_forms(q2, np.abs(pairs), y)
        self.w2 = (pairs * pairs).sum(axis=-1)[y]               # ||w||^2
        self.w2q2 = _label_forms(q2, pairs * pairs, y)          # sum w^2 q2
        self.w2q22 = _label_forms(q2 * q2, pairs * pairs, y)    # sum w^2 q2^2
        self.dense0 = np.sqrt(np.clip(dense0, 0.0, None))
        self.gscale = np.sqrt(g1max)[:, None] * W2norm
        self.mul, self.tol, self.y = mul, float(moment_tol), y

    def tails(self, s: float) -> Array:
        """(B, K) upper bounds of the model's ``Phi(-E D_k / sd D_k)`` at variance ``s`` (1 where
        the mean's lower bound is not positive; 0 at the label)."""
        t = self.tol
        lower = self.D0 - s * self.mean_slope - t * self.abs_w
        # v2 <= s + s q2 / 16 (+ s^2 q2 / 8 multiplicative), each moment's rule error t
        # entering at most (4 + 8 s) t times
        v2_sum = s * self.w2 + (s / 16.0) * self.w2q2 + (4.0 + 8.0 * s) * t * self.w2
        if self.mul:
            v2_sum = v2_sum + (s * s / 8.0) * self.w2q2
        slope = (SIGMOID_D3_MAX / 2.0) * s * np.sqrt(self.w2q22) + t * np.sqrt(self.w2)
        layer1 = (self.dense0 + self.gscale * slope) ** 2
        sd = np.sqrt(v2_sum + s * layer1)
        with np.errstate(divide="ignore", invalid="ignore"):
            out = np.where(lower > 0, ndtr(-lower / sd), 1.0)
        out[np.arange(len(out)), self.y] = 0.0
        return out


# --- the layer-1 noise's share of Var D_k, bounded through a low-rank split of W2 ----
def pair_forms(x: Array, W3: Array, y: Array) -> Array:
    """``sum_i (W3[y, i] - W3[k, i])^2 x_i`` per input and class k: x (B, n2) -> (B, K)."""
    return pair_diagonal(class_forms(x, W3), y)


def pair_diagonal(Q: Array, y: Array) -> Array:
    """``Q[y, y] + Q[k, k] - 2 Q[y, k]`` per input and class k: Q (B, K, K) -> (B, K)."""
    rows = np.arange(len(Q))
    diag = np.einsum("bkk->bk", Q)
    return diag[rows, y][:, None] + diag - 2.0 * Q[rows, y, :]


class DenseBound:
    """Upper bound of ``||sqrt(g1) o (W2^T x_k)||^2``, ``x_k = d o (W3[y] - W3[k])``, per input
    and class (the layer-1 noise's share of ``Var D_k``, over ``s``) from a rank-``r`` split
    ``W2 = U_r S_r V_r^T + E``:
    ``||sqrt(g1) o (V_r S_r U_r^T x)|| + sqrt(max g1) sigma_{r+1} ||x||``
    (triangle inequality, ``||E^T||_2 = sigma_{r+1}``), r the singular values above
    ``sigma_1 / 4`` (at most 32). Exact for ``r = rank W2``; costs ``K r n`` per input
    instead of ``K n^2``."""

    def __init__(self, W2: Array, W3: Array, g1: Array, *, svd: tuple | None = None):
        U, S, Vt = np.linalg.svd(W2, full_matrices=False) if svd is None else svd
        r = int(min(32, np.count_nonzero(S > S[0] / 4.0), len(S)))
        K, n2 = W3.shape
        US = U[:, :r] * S[:r]                                  # (n2, r)
        self.WUS = class_projector(W3, US)                      # (n2, K r)
        self.tail = float(S[r]) if r < len(S) else 0.0
        self.uniform = bool(np.all(g1 == 1.0))
        self.gmax = g1.max(axis=1)
        # V_r^T diag(g1) V_r per input (r x r), once for the whole curve
        self.Gr = None if self.uniform else (Vt[:r][None] * g1[:, None, :]) @ Vt[:r].T
        self.W3, self.r, self.norm = W3, r, float(S[0])

    def squared(self, d: Array, y: Array, dd_pairs: Array, *, rows=slice(None)) -> Array:
        """d (B, n2) the effective slopes of the inputs ``rows`` (of those given at
        construction), dd_pairs (B, K) = ``||x_k||^2`` -> (B, K) bounds."""
        B, K = len(d), self.W3.shape[0]
        R = (d @ self.WUS).reshape(B, K, self.r)               # U_r^T S_r (d o W3[k])
        P = R[np.arange(B), y][:, None, :] - R
        if self.uniform:                                       # ||V_r p|| = ||p||
            head2 = (P * P).sum(axis=-1)
        else:
            head2 = np.einsum("bkr,brs,bks->bk", P, self.Gr[rows], P)
        tail = (np.sqrt(self.gmax[rows])[:, None] * self.tail
                * np.sqrt(np.clip(dd_pairs, 0.0, None)))
        return (np.sqrt(np.clip(head2, 0.0, None)) + tail) ** 2
