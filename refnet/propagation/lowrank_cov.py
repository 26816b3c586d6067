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
"""
from __future__ import annotations

import numpy as np

__all__ = ["ppca_gram", "lowrank_gram_term", "total_variation_bound"]

Array = np.ndarray


def ppca_gram(weight_matrix: Array, rank: int) -> tuple[Array, Array, float, float]:
    """``(U_r, S_r, c, eta)`` of ``G = W W^T`` for ``W = weight_matrix`` (n_out, n_in): the top
    ``rank`` left singular vectors (n_out, r) and singular values (r,) of ``W``, the mean ``c``
    of the discarded eigenvalues of ``G`` (Tipping & Bishop 1999, Eq. 8: the maximum-likelihood
    isotropic variance of the discarded directions; ``n_out - r`` of them, zeros included) and
    ``eta``, the spectral norm of ``G - G_r``. ``rank >= n_out`` gives ``G`` exactly
    (``c = eta = 0``)."""
    W = weight_matrix
    U, S, _ = np.linalg.svd(W, full_matrices=True)
    n = W.shape[0]
    r = int(min(rank, n))
    lam = np.zeros(n)
    lam[:len(S)] = S * S
    if r >= n:
        return U, np.sqrt(lam), 0.0, 0.0
    c = float(lam[r:].mean())
    return U[:, :r], S[:r], c, float(max(c, lam[r] - c))


def lowrank_gram_term(B: Array, U_r: Array, S_r: Array, c: float) -> tuple[Array, Array]:
    """``B G_r B^T`` (n, m, m) and ``C_perp = B (I - U_r U_r^T) B^T`` (n, m, m) for rows
    B (n, m, n_out): ``(B U_r S_r)(B U_r S_r)^T + c C_perp`` (Tipping & Bishop 1999, Eq. 8
    form of ``G``; see the module docstring)."""
    BU = B @ U_r                                              # (n, m, r)
    C_perp = B @ B.transpose(0, 2, 1) - BU @ BU.transpose(0, 2, 1)
    F = BU * S_r
    return F @ F.transpose(0, 2, 1) + c * C_perp, C_perp


def total_variation_bound(sigma: Array, C_perp: Array, variance_scale: float, eta: float
                          ) -> Array:
    """Per row, an upper bound of ``TV(N(mu, sigma), N(mu, sigma + Delta))`` for any
    ``Delta = s B M B^T`` with ``M = P M P`` (``P`` the discarded-subspace projector) and
    ``||M||_2 <= eta``: ``1.5 s eta tr(sigma^{-1} C_perp)``.

    Devroye, Mehrabian & Reddad, "The total variation distance between high-dimensional
    Gaussians with the same mean", arXiv:1810.08693 (2018), Theorem 1.1: ``TV <= 1.5 ||sigma^{-1/2}
    Delta sigma^{-1/2}||_F``; derived: ``||sigma^{-1/2} s B P M P B^T sigma^{-1/2}||_F <=
    s eta ||sigma^{-1/2} B P||_F^2 = s eta tr(sigma^{-1} C_perp)``. sigma, C_perp (n, m, m);
    returns (n,), capped at 1 (the theorem's ``min(1, .)``)."""
    t = np.einsum("nii->n", np.linalg.solve(sigma, C_perp))
    return np.minimum(1.0, 1.5 * variance_scale * eta * np.clip(t, 0.0, None))
