r"""The layer-1 noise share of the logit-difference covariance through a low-rank Gram matrix.

For additive uncorrelated noise of variance ``s`` after the first hidden layer, the differences
``D_k = Y_y - Y_k`` of :func:`refnet.propagation.moment_curve.uncorrelated_curve` carry
``s B G B^T`` with ``B = A D`` (rows ``(W3[y] - W3[k]) o d``, shape ``(m, n2)`` per input) and
``G = W2 W2^T``. Forming it exactly costs ``m n2 n1`` per input, as much as ten Monte-Carlo
passes through ``W2``. Here ``G`` is replaced by its probabilistic-PCA form

    ``G_r = U_r Lambda_r U_r^T + c (I - U_r U_r^T)``,  ``c`` = mean of the discarded eigenvalues

(Tipping & Bishop, "Probabilistic principal component analysis", J. R. Stat. Soc. B 61, 611-622,
1999, Eq. 8 for ``c``; ``U_r``, ``Lambda_r = S_r^2`` the top ``r`` left singular vectors and
squared singular values of ``W2``), which costs ``m n2 r`` per input. ``G - G_r`` has its
eigenvalues in ``[-c, lambda_{r+1} - c]`` on the discarded subspace only, so with
``eta = max(c, lambda_{r+1} - c)`` and ``C_perp = B (I - U_r U_r^T) B^T`` the total variation
distance between the exact and the approximate Gaussian of ``D`` is at most
``1.5 s eta tr(Sigma^{-1} C_perp)`` (:func:`total_variation_bound`), which bounds the change of
every probability of ``D``, the argmax probability included.

Everything per input is then formed from ``K x K`` and ``K x r`` matrices shared by the kept
classes (:func:`class_forms`, :func:`class_projector`), not from ``m x n2`` rows.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .gaussian_argmax import orthant_probability_and_variance

__all__ = ["PPCAGram", "ppca_gram", "class_forms", "class_projector", "difference_forms",
           "lowrank_kept_covariance", "total_variation_bound", "lowrank_kept_probability"]

Array = np.ndarray


class PPCAGram(NamedTuple):
    """``G ~ U_r diag(S_r^2) U_r^T + c (I - U_r U_r^T)``, ``||G - G_r||_2 = eta``."""
    U_r: Array      # (n_out, r) top left singular vectors of W
    S_r: Array      # (r,) their singular values
    c: float        # mean discarded eigenvalue of W W^T
    eta: float      # spectral norm of the error


def ppca_gram(weight_matrix: Array, rank: int, *, svd: tuple | None = None) -> PPCAGram:
    """The probabilistic-PCA form of ``G = W W^T``, ``W = weight_matrix`` (n_out, n_in): the
    top ``rank`` left singular vectors and singular values of ``W``, the mean ``c`` of the
    discarded eigenvalues of ``G`` (Tipping & Bishop 1999, Eq. 8: the maximum-likelihood
    isotropic variance of the discarded directions; ``n_out - r`` of them, zeros included) and
    ``eta = max(c, lambda_{r+1} - c)``, the spectral norm of ``G - G_r``. ``rank >= n_out``
    gives ``G`` exactly (``c = eta = 0``). ``svd``: ``np.linalg.svd(W)``'s ``(U, S, Vt)``
    when the caller has it (with ``U`` square: ``full_matrices=True``, or any SVD of a ``W``
    no taller than wide)."""
    W = weight_matrix
    U, S, _ = np.linalg.svd(W, full_matrices=True) if svd is None else svd
    n = W.shape[0]
    r = int(min(rank, n))
    lam = np.zeros(n)
    lam[:len(S)] = S * S
    if r >= n:
        return PPCAGram(U, np.sqrt(lam), 0.0, 0.0)
    c = float(lam[r:].mean())
    return PPCAGram(U[:, :r], S[:r], c, float(max(c, lam[r] - c)))


def class_forms(x: Array, W3: Array) -> Array:
    """``W3 diag(x_b) W3^T`` per input: x (B, n2), W3 (K, n2) -> (B, K, K), one GEMM over
    the ``K (K + 1) / 2`` pairs ``k <= l`` (symmetric: each pair's value fills both places)."""
    K = W3.shape[0]
    k, l = np.triu_indices(K)
    upper = x @ (W3[k] * W3[l]).T                                # (B, K (K + 1) / 2)
    Q = np.empty((len(x), K, K))
    Q[:, k, l] = upper
    Q[:, l, k] = upper
    return Q


def class_projector(W3: Array, U_r: Array) -> Array:
    """``P[i, k r + j] = W3[k, i] U_r[i, j]`` (n2, K r), so that ``(d @ P)`` reshaped (K, r) is
    ``U_r^T (d o W3[k])`` for every class k at once."""
    K, n2 = W3.shape
    return (W3[:, :, None] * U_r[None]).transpose(1, 0, 2).reshape(n2, -1)


def difference_forms(Q: Array, y: Array, kept: Array) -> Array:
    """``M Q M^T`` with ``M`` the rows ``e_y - e_k``, k in ``kept``: the form of the differences
    ``D_k = Y_y - Y_k`` from that of ``Y``. Q (n, K, K) symmetric; y (n,); kept (n, m) ->
    (n, m, m)."""
    rows = np.arange(len(Q))
    a = Q[rows, y, y][:, None, None]
    b = np.take_along_axis(Q[rows, y], kept, axis=1)           # Q[y, k]
    Qkl = Q[rows[:, None, None], kept[:, :, None], kept[:, None, :]]
    return a - b[:, :, None] - b[:, None, :] + Qkl


def lowrank_kept_covariance(Qv: Array, Qd: Array, R: Array, variance_scale: float,
                            gram: PPCAGram, y: Array, kept: Array) -> tuple[Array, Array]:
    """Covariance (n, m, m) of the kept differences, ``A diag(v2) A^T + s B G_r B^T``, and
    ``C_perp`` (n, m, m), with ``B = A diag(d)``, ``A`` the rows ``W3[y] - W3[k]``: from
    ``Qv = W3 diag(v2) W3^T``, ``Qd = W3 diag(d^2) W3^T`` and ``R`` (n, K, r) the rows
    ``U_r^T (d o W3[k])`` (so ``B U_r = R[y] - R[k]``; Tipping & Bishop 1999, Eq. 8 form of
    ``G``, module docstring)."""
    rows = np.arange(len(R))
    BU = R[rows, y][:, None, :] - np.take_along_axis(R, kept[:, :, None], axis=1)
    C_perp = difference_forms(Qd, y, kept) - BU @ BU.transpose(0, 2, 1)
    F = BU * gram.S_r
    cov = difference_forms(Qv, y, kept)
    cov += variance_scale * (F @ F.transpose(0, 2, 1) + gram.c * C_perp)
    return cov, C_perp


def total_variation_bound(sigma: Array, C_perp: Array, variance_scale: float, eta: float
                          ) -> Array:
    """Per row, an upper bound of ``TV(N(mu, sigma), N(mu, sigma + Delta))`` for any
    ``Delta = s B M B^T`` with ``M = P M P`` (``P`` the discarded-subspace projector) and
    ``||M||_2 <= eta``: ``1.5 s eta tr(sigma^{-1} C_perp)``.

    Devroye, Mehrabian & Reddad, "The total variation distance between high-dimensional
    Gaussians with the same mean", arXiv:1810.08693 (2018), Theorem 1.1: ``TV <= 1.5
    ||sigma^{-1/2} Delta sigma^{-1/2}||_F``; derived: ``||sigma^{-1/2} s B P M P B^T
    sigma^{-1/2}||_F <= s eta ||sigma^{-1/2} B P||_F^2 = s eta tr(sigma^{-1} C_perp)``.
    sigma, C_perp (n, m, m); returns (n,), capped at 1 (a probability moves by at most 1)."""
    t = np.einsum("nii->n", np.linalg.solve(sigma, C_perp))
    return np.minimum(1.0, 1.5 * variance_scale * eta * np.clip(t, 0.0, None))


def lowrank_kept_probability(mu: Array, Qv: Array, Qd: Array, dP: Array,
                             variance_scale: float, gram: PPCAGram, y: Array, kept: Array, *,
                             log2_points: int, shifts: Array | None = None
                             ) -> tuple[Array, Array, Array]:
    """``P(argmax = y)`` over the kept classes (kept (n, K) bool, the label included) with the
    covariance of :func:`lowrank_kept_covariance`, its total variation bound per input and
    the integration variance of
    :func:`~refnet.propagation.gaussian_argmax.orthant_probability_and_variance` (``shifts``
    (n, K-1): rotated points). mu (n, K) the logit means; dP (n, K r) =
    ``d @ class_projector(W3, U_r)``. Returns three (n,)."""
    n, K = mu.shape
    R = dP.reshape(n, K, -1)
    p, tv, var = np.empty(n), np.empty(n), np.empty(n)
    m_of = kept.sum(axis=1) - 1                                # kept classes besides the label
    for m in np.unique(m_of):
        idx = np.flatnonzero(m_of == m)
        others = np.where(kept[idx], np.arange(K), K)
        others[np.arange(len(idx)), y[idx]] = K
        S = np.sort(others, axis=1)[:, :m]                     # (n, m) kept non-labels
        cov, C_perp = lowrank_kept_covariance(Qv[idx], Qd[idx], R[idx], variance_scale, gram,
                                              y[idx], S)
        md = mu[idx, y[idx]][:, None] - np.take_along_axis(mu[idx], S, axis=1)
        p[idx], var[idx] = orthant_probability_and_variance(
            md, cov, log2_points=log2_points, shifts=None if shifts is None else shifts[idx])
        tv[idx] = total_variation_bound(cov, C_perp, variance_scale, gram.eta)
    return p, tv, var
