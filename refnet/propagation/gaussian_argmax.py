r"""``P(argmax Y = label)`` for Gaussian logits ``Y``, without random sampling.

Used by :mod:`refnet.propagation.moments` to turn predicted logit moments into a predicted
accuracy. Three cases, cheapest first:

* **rank one** (:func:`rank_one_argmax_probability`): ``Y = c + xi u`` with one scalar
  ``xi ~ N(0, 1)``. The label wins on the set of ``xi`` where its line ``c_y + xi u_y`` lies above
  every other line: an intersection of half-lines, i.e. an interval ``(lo, hi)``, so the
  probability is exactly ``Phi(hi) - Phi(lo)``. This is what correlated noise on the last noisy
  layer gives when nothing else is random (derived).
* **decided** inputs: with ``D_k = Y_y - Y_k`` (k != y) and ``z_k = E D_k / sd D_k``, the
  Bonferroni bounds ``1 - sum_k Phi(-z_k) <= P <= min_k Phi(z_k)`` (Boole's inequality) pin the
  probability to within ``tol``; the midpoint is returned.
* **general**: ``P(D > 0)`` for the ``(K-1)``-dimensional Gaussian ``D`` by Genz's
  separation-of-variables transform (A. Genz, "Numerical computation of multivariate normal
  probabilities", J. Comput. Graph. Stat. 1, 141-149, 1992), variables ordered most constraining
  first (Genz & Bretz, *Computation of Multivariate Normal and t Probabilities*, Springer 2009,
  Sec. 4.1.3), its smooth integrand averaged over a **fixed** scrambled Sobol point set
  (``scipy.stats.qmc.Sobol``, seed 0): deterministic, the same points for every input and call.
"""
from __future__ import annotations

import functools

import numpy as np
from scipy.special import ndtr, ndtri

__all__ = ["rank_one_argmax_probability", "gaussian_argmax_probability",
           "positive_orthant_probability", "rotated_orthant_probability",
           "orthant_probability_and_variance", "sobol_points", "other_classes", "z_scores"]

Array = np.ndarray


def rank_one_argmax_probability(c: Array, u: Array, labels: Array) -> Array:
    """Exact ``P(argmax(c + xi u) = label)``, ``xi ~ N(0, 1)``, per row.

    c, u : (n_rows, K); labels : (n_rows,) ints. Returns (n_rows,). ``u = 0`` gives the
    indicator of ``argmax c = label`` (ties count as losses).
    """
    rows = np.arange(len(c))
    a = u[rows, labels][:, None] - u      # label line minus line k: slope ...
    b = c - c[rows, labels][:, None]      # ... wins where a_k xi > b_k
    a[rows, labels] = 1.0                 # the label against itself: xi > -inf
    b[rows, labels] = -np.inf
    with np.errstate(divide="ignore", invalid="ignore"):
        r = b / a
    lo = np.where(a > 0, r, -np.inf).max(axis=1)
    hi = np.where(a < 0, r, np.inf).min(axis=1)
    never = ((a == 0) & (b >= 0)).any(axis=1)   # a parallel line at or above the label's
    # upper tail with ndtr(-x): no cancellation when both ends are far out on the right
    p = np.where(lo > 0, ndtr(-lo) - ndtr(-hi), ndtr(hi) - ndtr(lo))
    return np.where(never | (hi <= lo), 0.0, np.clip(p, 0.0, 1.0))


@functools.lru_cache(maxsize=8)
def sobol_points(dim: int, log2_n: int) -> Array:
    """Fixed scrambled Sobol points in ``(0, 1)^dim``, shape ``(2**log2_n, dim)`` (seed 0).

    Read-only and cached: every call with the same arguments returns the same points.
    """
    from scipy.stats import qmc

    pts = qmc.Sobol(d=int(dim), scramble=True, seed=0).random_base2(int(log2_n))
    pts = np.clip(pts, 1e-12, 1 - 1e-12)
    pts.setflags(write=False)
    return pts


def other_classes(labels: Array, K: int) -> Array:
    """(n, K-1): each row's classes other than its label, ascending."""
    rest = np.broadcast_to(np.arange(K), (len(labels), K))
    return rest[rest != np.asarray(labels)[:, None]].reshape(len(labels), K - 1)


def z_scores(md: Array, sd: Array) -> Array:
    """``md / sd`` elementwise, with ``+-inf`` (the sign of ``md``) where ``sd`` is 0: the
    standardised means of the differences that Boole's bounds and Genz's ordering read."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(sd > 0, md / sd, np.where(md > 0, np.inf, -np.inf))


def _difference_moments(mean: Array, cov: Array, labels: Array) -> tuple[Array, Array]:
    """Mean (n, K-1) and covariance (n, K-1, K-1) of ``D_k = Y_label - Y_k``, k != label."""
    n, K = mean.shape
    others = other_classes(labels, K)                                              # (n, K-1)
    M = -np.eye(K)[others]                          # (n, K-1, K): row k picks -Y_k ...
    M[np.arange(n), :, labels] += 1.0               # ... plus Y_label
    md = np.einsum("nij,nj->ni", M, mean)
    Cd = M @ cov @ M.transpose(0, 2, 1)
    return md, Cd


def _genz_probability(md: Array, Cd: Array, log2_n: int, shifts: Array | None = None):
    """``P(D > 0)`` for ``D ~ N(md, Cd)`` per row by Genz's transform on fixed Sobol points.

    md (n, m); Cd (n, m, m) positive semi-definite. Returns (n,). With ``shifts`` (n, >= m-1)
    in [0, 1) the points are rotated by ``shifts[row]`` modulo 1 (module docstring) and the
    return is ``(mean, variance of the point values / N)`` per row.
    """
    n, m = md.shape
    z = z_scores(md, np.sqrt(np.clip(np.einsum("nii->ni", Cd), 0.0, None)))
    order = np.argsort(z, axis=1)                   # most constraining first (Genz & Bretz)
    md = np.take_along_axis(md, order, axis=1)
    Cd = np.take_along_axis(np.take_along_axis(Cd, order[:, :, None], axis=1), order[:, None, :],
                            axis=2)
    # a tiny ridge keeps the Cholesky factor defined for singular covariances (e.g. rank 2)
    ridge = 1e-12 * np.maximum(np.einsum("nii->n", Cd), 1e-300)
    C = np.linalg.cholesky(Cd + ridge[:, None, None] * np.eye(m))
    w = sobol_points(max(m - 1, 1), log2_n)         # (N, m-1); the last variable needs none
    N = len(w)
    if shifts is not None:                          # (n, N, m-1): each row its own rotation
        w = w[None] + shifts[:, None, :w.shape[1]]  # in [0, 2): modulo 1 is minus 1 above 1,
        w -= w >= 1.0                               # exact there (Sterbenz), as % gives it
        np.clip(w, 1e-12, 1 - 1e-12, out=w)
    f = np.ones((n, N))
    e = np.zeros((n, N, m))                         # the standard normals chosen so far
    for i in range(m):
        s = e[:, :, :i] @ C[:, i, :i, None] if i else np.zeros((n, N, 1))
        # X_i = s + C_ii e_i > -md_i  <=>  e_i > a_i
        a = (-md[:, i, None] - s[..., 0]) / C[:, i, i, None]
        q = ndtr(-a)                                # P(e_i > a_i)
        f *= q
        if i < m - 1:                               # e_i from N(0,1) truncated to (a_i, inf)
            e[:, :, i] = -ndtri(np.clip((1.0 - w[..., i]) * q, 1e-300, 1.0))
    if shifts is not None:
        return f.mean(axis=1), f.var(axis=1, ddof=1) / N
    return f.mean(axis=1)


def gaussian_argmax_probability(mean: Array, cov: Array, labels: Array, *, tol: float = 1e-7,
                                log2_points: int = 7) -> Array:
    """``P(argmax Y = label)`` for ``Y ~ N(mean, cov)`` per row.

    mean (n, K); cov (n, K, K) positive semi-definite; labels (n,) ints. Returns (n,).
    Rows whose Bonferroni bounds are within ``tol`` take the bounds' midpoint; the others use
    Genz's transform on ``2**log2_points`` fixed Sobol points (see the module docstring).
    """
    mean = np.asarray(mean, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.intp)
    n, K = mean.shape
    if K == 1:
        return np.ones(n)
    md, Cd = _difference_moments(mean, np.asarray(cov, dtype=np.float64), labels)
    return positive_orthant_probability(md, Cd, tol=tol, log2_points=log2_points)


def _bonferroni(md: Array, Cd: Array) -> tuple[Array, Array]:
    """Boole's inequality: ``1 - sum_k Phi(-z_k) <= P(D > 0) <= min_k Phi(z_k)``,
    ``z_k = md_k / sd_k``; returns (upper, lower) per row."""
    z = z_scores(md, np.sqrt(np.clip(np.einsum("nii->ni", Cd), 0.0, None)))
    return ndtr(z).min(axis=1), np.clip(1.0 - ndtr(-z).sum(axis=1), 0.0, None)


def positive_orthant_probability(md: Array, Cd: Array, *, tol: float = 1e-7,
                                 log2_points: int = 7) -> Array:
    """``P(D > 0)`` for ``D ~ N(md, Cd)`` per row: md (n, m), Cd (n, m, m). The Bonferroni
    midpoint where the bounds are within ``tol``, else Genz's transform (module docstring)."""
    upper, lower = _bonferroni(md, Cd)
    p = 0.5 * (upper + lower)
    open_ = upper - lower > tol
    if open_.any():
        p[open_] = _genz_probability(md[open_], Cd[open_], log2_points)
    return p


def rotated_orthant_probability(md: Array, Cd: Array, shifts: Array, *, tol: float = 1e-7,
                                log2_points: int = 4) -> tuple[Array, Array]:
    """:func:`positive_orthant_probability` with each row's Sobol points rotated by its own
    ``shifts`` row (n, >= m-1), uniform in [0, 1): randomized quasi-Monte Carlo.

    A Cranley-Patterson rotation (R. Cranley & T. N. L. Patterson, "Randomization of number
    theoretic methods for multiple integration", SIAM J. Numer. Anal. 13, 904-914, 1976) makes
    each row's estimate unbiased; with independent rotations the rows' errors are independent,
    so the error of a mean over many rows falls like ``1 / sqrt(rows)`` instead of adding up
    the fixed point set's shared bias. For Genz's transform itself see the module docstring.
    Returns ``(p, point_var)`` (n,): ``point_var`` is the plain Monte-Carlo variance
    ``Var(f) / N`` of the row's estimate (0 where the Bonferroni midpoint is used), a
    conservative stand-in for the rotated rule's variance (checked in the tests).
    """
    upper, lower = _bonferroni(md, Cd)
    p, var = 0.5 * (upper + lower), np.zeros(len(md))
    open_ = upper - lower > tol
    if open_.any():
        p[open_], var[open_] = _genz_probability(md[open_], Cd[open_], log2_points,
                                                 shifts[open_])
    return p, var


def orthant_probability_and_variance(md: Array, Cd: Array, *, log2_points: int,
                                     shifts: Array | None = None) -> tuple[Array, Array]:
    """:func:`rotated_orthant_probability` when ``shifts`` is given, else
    :func:`positive_orthant_probability` (fixed points) with a zero variance."""
    if shifts is None:
        return positive_orthant_probability(md, Cd, log2_points=log2_points), np.zeros(len(md))
    return rotated_orthant_probability(md, Cd, shifts, log2_points=log2_points)
