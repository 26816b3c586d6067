r"""Duque et al. 2024, "Improving Analog Neural Network Robustness: A Noise-Agnostic Approach with
Explainable Regularizations", Eqs. 1-3, 5 and 6 (Sec. 3, pp. 3-4).

Eqs. 4 and 7 are training penalties: they live in :mod:`refnet.regularizers`.

Noise levels are **variances** here, as in the paper (``n ~ N(0, sigma_n^2)``) and in refnet's
contract; Fig. 3a's ``N(mu, 0.2)`` has variance 0.2.

Index (Eq. -> function -> test in ``tests/test_propagation_duque.py``)
--------------------------------------------------------------------
=====  ==================================  =====================================================
Eq.    function                            test
=====  ==================================  =====================================================
1      :func:`noisy_preactivation`         test_duque_eq1_matches_refnet_forward
2      :func:`error_factor`                test_duque_eq2_decomposition
3      :func:`correlated_error_factor`     test_duque_eq3_cancels_when_row_sums_vanish
4      ``refnet.regularizers`` (correlated regularizer, another module)
5      :func:`preactivation_mean`          test_duque_eq5_mean_matches_mc
6      :func:`activation_pdf`              test_duque_eq6_normalised, test_duque_eq6_matches_histogram
7      ``refnet.regularizers`` (uncorrelated regularizer, another module)
(der.) :func:`error_factor_variance`       test_duque_error_factor_variance_mc
=====  ==================================  =====================================================
"""
from __future__ import annotations

import numpy as np

from ..activations import Activation, get_activation

__all__ = ["noisy_preactivation", "error_factor", "correlated_error_factor",
           "preactivation_mean", "error_factor_variance", "activation_pdf"]

Array = np.ndarray


def noisy_preactivation(weight_matrix: Array, activations: Array, noise: Array, bias: Array) -> Array:
    r"""``z_i^(l) = sum_j w_ij^(l) (a_j^(l-1) + n_j^(l-1)) + b_i^(l)`` (Duque 2024, Eq. 1, p. 3).

    weight_matrix (n_out, n_in); activations, noise (n_batch, n_in) (noise broadcastable, e.g.
    (n_batch, 1) for correlated noise); bias (n_out,) -> (n_batch, n_out).
    """
    w, a, n_hat, b = (np.asarray(v, float) for v in (weight_matrix, activations, noise, bias))
    return (a + n_hat) @ w.T + b


def error_factor(weight_matrix: Array, noise: Array) -> Array:
    r"""The error factor ``sum_j w_ij n_j``, the noise part of Eq. 2 (Duque 2024, Eq. 2, p. 3).

    ``z = (sum_j w_ij a_j + b_i) + sum_j w_ij n_j``. weight_matrix (n_out, n_in);
    noise (n_batch, n_in) -> (n_batch, n_out).
    """
    w, n_hat = np.asarray(weight_matrix, float), np.asarray(noise, float)
    return np.broadcast_to(n_hat, n_hat.shape[:-1] + (w.shape[1],)) @ w.T


def correlated_error_factor(weight_matrix: Array, shared_noise: Array) -> Array:
    r"""``sum_j w_ij n = n sum_j w_ij`` for noise shared by a layer (Duque 2024, Eq. 3, p. 3).

    Zero for every row whose weights sum to zero. weight_matrix (n_out, n_in);
    shared_noise (n_batch, 1) -> (n_batch, n_out).
    """
    w, n_hat = np.asarray(weight_matrix, float), np.asarray(shared_noise, float)
    return n_hat * w.sum(axis=1)


def preactivation_mean(weight_matrix: Array, activations: Array, bias: Array) -> Array:
    r"""``mu_i^(l) = sum_j w_ij^(l) a_j^(l-1) + b_i^(l)`` (Duque 2024, Eq. 5, p. 3).

    The mean of the noisy pre-activation (the error factor has zero mean).
    weight_matrix (n_out, n_in); activations (n_batch, n_in); bias (n_out,) -> (n_batch, n_out).
    """
    w, a, b = (np.asarray(v, float) for v in (weight_matrix, activations, bias))
    return a @ w.T + b


def error_factor_variance(weight_matrix: Array, noise_variance: float, correlated: bool) -> Array:
    r"""Variance of the error factor: ``sigma_n^2 sum_j w_ij^2`` (uncorrelated) or
    ``sigma_n^2 (sum_j w_ij)^2`` (correlated).

    Derived: from (Duque 2024, Eqs. 2-3, p. 3) with independent (resp. identical) zero-mean
    noise of variance ``sigma_n^2``. The paper writes ``z ~ N(mu, sigma_n^2)`` (p. 3); the
    variance is in fact scaled by the squared weights as here, and Fig. 3a simply takes the
    pre-activation variance to be 0.2. weight_matrix (n_out, n_in) -> (n_out,).
    """
    w = np.asarray(weight_matrix, float)
    var = float(noise_variance)
    if not np.isfinite(var) or var < 0:
        raise ValueError(f"noise_variance: must be finite and >= 0, got {noise_variance}")
    return var * (w.sum(axis=1) ** 2 if correlated else (w ** 2).sum(axis=1))


def activation_pdf(activation_values: Array, activation: str | Activation,
                   preactivation_mean_: float | Array, preactivation_variance: float | Array) -> Array:
    r"""PDF of ``a = f(z)`` for ``z ~ N(mu, sigma^2)``: ``p_a(a) = p_z(f^{-1}(a)) / |f'(f^{-1}(a))|``.

    (Duque 2024, Eq. 6, p. 3), valid for monotonic ``f`` with an inverse ("sigmoid",
    "shifted_sigmoid(alpha=A)", "cubic" on [0, 1], "identity").

    Parameters
    ----------
    activation_values : array, any shape
        Points ``a`` at which to evaluate; 0 outside the range of ``f``.
    preactivation_mean_, preactivation_variance : float or array broadcastable with ``a``
        ``mu`` of Eq. 5 and the **variance** of ``z`` (Fig. 3a uses 0.2).

    Returns
    -------
    ndarray, the broadcast shape: the density in ``a``.
    """
    act = get_activation(activation)
    if act.inverse is None:
        raise ValueError(f"activation: {act.spec!r} has no inverse")
    var = np.asarray(preactivation_variance, float)
    if np.any(~np.isfinite(var)) or np.any(var <= 0):
        raise ValueError("preactivation_variance: must be finite and > 0")
    a = np.asarray(activation_values, float)
    mu = np.asarray(preactivation_mean_, float)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        z = act.inverse(a)  # f^{-1}(a); NaN or inf outside the range
        p_z = np.exp(-((z - mu) ** 2) / (2 * var)) / np.sqrt(2 * np.pi * var)
        p_a = p_z / np.abs(act.d1(z))
    return np.where(np.isfinite(p_a), p_a, 0.0)
