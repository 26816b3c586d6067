r"""Semenova 2022, Sec. IV and Methods VII B: noise in trained networks from weight statistics,
Eqs. 14, 15 and 29 (plus the uniform and normal approximations of ``p*``).

Noise levels are Semenova's intensities ``D`` (variance ``2 D``), as in
:mod:`refnet.propagation.semenova`.

Index (Eq. -> function -> test in ``tests/test_propagation_trained.py``)
----------------------------------------------------------------------
=====  ==============================================  =========================================
Eq.    function                                        test
=====  ==============================================  =========================================
14     :func:`trained_variance_step`                   test_semenova_eq14_reduces_to_symmetric,
                                                       test_semenova_eq14_correlated_needs_row_sums,
                                                       test_semenova_eq14_trained_network_vs_mc
14     :func:`variance_step_from_weight_statistics`    test_semenova_eq14_from_statistics_is_bitwise
15     :func:`state_expectations`                      test_semenova_eq15_matches_sample_averages
29     :func:`exp_quartic_density`                     test_semenova_eq29_fit_recovers_density
29     :func:`fit_exp_quartic`                         test_semenova_eq29_fit_recovers_density
=====  ==============================================  =========================================
Also here: the uniform and normal approximations of ``p*`` (Methods VII B, p. 10),
:func:`uniform_density` and :func:`normal_density` (test_semenova_eq15_matches_sample_averages),
and the derived driver :func:`trained_network_variances`
(test_semenova_eq14_trained_network_vs_mc), split for timing into
:func:`network_statistics` (the weights' and clean states' statistics, a
:class:`NetworkStatistics`, computed once) and :func:`variances_from_statistics` (the Eq. 14
chain for given noise intensities; test_semenova_eq14_from_statistics_is_bitwise).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..activations import Activation, get_activation
from ..model import Architecture, Params, check_input, forward
from .semenova import sigma_plus_squared, sigma_times_squared, weight_mean, weight_mean_square

__all__ = ["trained_variance_step", "variance_step_from_weight_statistics", "NetworkStatistics",
           "network_statistics", "variances_from_statistics", "state_expectations",
           "exp_quartic_density", "fit_exp_quartic", "uniform_density", "normal_density",
           "DENSITIES", "state_density", "trained_network_variances"]

Array = np.ndarray
#: Approximations of ``p*_n`` (Methods VII B, p. 10).
DENSITIES = ("exp_quartic", "normal", "uniform")


def trained_variance_step(weight_matrix: Array, previous_S: float, mean_expected_output: float,
                          mean_square_expected_output: float, mean_square_slope: float,
                          D_A_U_intensity: float, D_A_C_intensity: float,
                          D_M_U_intensity: float, D_M_C_intensity: float) -> float:
    r"""``S_n`` of a trained network from weight statistics (Semenova 2022, Eq. 14, p. 7)::

        S_n ~ I^2 mu^2(W^n) [2D_A^C + 2D_M^C mu^2(E y_{n-1})]
            + I eta(W^n) [2D_A^U + 2D_M^U (1 + 2D_M^C) eta(E y_{n-1})]
            + I eta(W^n) (1 + sigma_x^2) eta(f'(f^{-1}(E y_{n-1}))) S_{n-1}

    with ``I = I_{n-1}``. The last term treats the previous layer's fluctuations as
    uncorrelated across neurons (weights of mixed sign average out the cross terms), unlike
    Eq. 6's ``N^prev`` for the symmetric net.

    Parameters
    ----------
    weight_matrix : (I_n, I_{n-1})
    previous_S : ``S_{n-1}``, the variance of the previous layer's internal states
    mean_expected_output, mean_square_expected_output, mean_square_slope :
        ``mu(E y_{n-1})``, ``eta(E y_{n-1})``, ``eta(f')`` of Eq. 15
    D_* : intensities (variance 2 D)
    """
    W = np.asarray(weight_matrix, float)
    return variance_step_from_weight_statistics(
        W.shape[1], weight_mean(W), weight_mean_square(W), previous_S, mean_expected_output,
        mean_square_expected_output, mean_square_slope, D_A_U_intensity, D_A_C_intensity,
        D_M_U_intensity, D_M_C_intensity)


def variance_step_from_weight_statistics(fan_in: int, weight_mean: float,
                                         weight_mean_square: float, previous_S: float,
                                         mean_expected_output: float,
                                         mean_square_expected_output: float,
                                         mean_square_slope: float, D_A_U_intensity: float,
                                         D_A_C_intensity: float, D_M_U_intensity: float,
                                         D_M_C_intensity: float) -> float:
    r"""``S_n`` from the weight statistics themselves (Semenova 2022, Eq. 14, p. 7).

    :func:`trained_variance_step` with ``I = fan_in`` (``I_{n-1}``, the columns of ``W^n``),
    ``mu(W^n) = weight_mean`` and ``eta(W^n) = weight_mean_square`` given instead of the
    matrix, so that a network's statistics are taken once (:func:`network_statistics`) and
    reused for every noise level; the same arithmetic in the same order, so the same bits.
    """
    I, mu_W, eta_W = fan_in, weight_mean, weight_mean_square
    D_A_U, D_A_C, D_M_U, D_M_C = D_A_U_intensity, D_A_C_intensity, D_M_U_intensity, D_M_C_intensity
    s_x = sigma_times_squared(D_M_U, D_M_C)
    sigma_plus_squared(D_A_U, D_A_C)  # validates the additive intensities
    return (I ** 2 * mu_W ** 2 * (2 * D_A_C + 2 * D_M_C * mean_expected_output ** 2)
            + I * eta_W * (2 * D_A_U + 2 * D_M_U * (1 + 2 * D_M_C) * mean_square_expected_output)
            + I * eta_W * (1 + s_x) * mean_square_slope * previous_S)


def state_expectations(activation: str | Activation, state_grid: Array,
                       state_density: Array) -> tuple[float, float, float]:
    r"""``(mu(E y_n), eta(E y_n), eta(f'))`` as integrals over ``p*_n`` (Semenova 2022, Eq. 15, p. 7)::

        mu(E y_n)  = int f(z) p*_n(z) dz
        eta(E y_n) = int f(z)^2 p*_n(z) dz
        eta(f')    = int f'(z)^2 p*_n(z) dz

    state_grid (n_grid,) increasing ``z``; state_density (n_grid,) ``p*_n(z)`` (normalised on the
    grid here, trapezoid rule).
    """
    act = get_activation(activation)
    z, p = np.asarray(state_grid, float), np.asarray(state_density, float)
    if z.ndim != 1 or z.shape != p.shape or np.any(np.diff(z) <= 0):
        raise ValueError("state_grid: must be 1-D, increasing, and match state_density")
    if np.any(p < 0) or not np.all(np.isfinite(p)):
        raise ValueError("state_density: must be finite and >= 0")
    p = p / np.trapezoid(p, z)
    f, d1 = act.f(z), act.d1(z)
    return (float(np.trapezoid(f * p, z)), float(np.trapezoid(f ** 2 * p, z)),
            float(np.trapezoid(d1 ** 2 * p, z)))


def exp_quartic_density(coefficients: Array, z: Array) -> Array:
    r"""``g(z) = exp(c_4 z^4 + c_3 z^3 + c_2 z^2 + c_1 z + c_0)`` (Semenova 2022, Eq. 29, p. 10).

    coefficients ``(c_0, c_1, c_2, c_3, c_4)``; z any shape.
    """
    c = np.asarray(coefficients, float)
    if c.shape != (5,):
        raise ValueError(f"coefficients: expected (c0, c1, c2, c3, c4), got shape {c.shape}")
    return np.exp(np.polynomial.polynomial.polyval(np.asarray(z, float), c))


def fit_exp_quartic(states: Array, n_bins: int = 60, n_newton: int = 50) -> tuple[Array, Array]:
    r"""Fit Eq. 29 to samples of ``x~_n`` by maximum likelihood; returns ``(coefficients, grid)``.

    Derived: from (Semenova 2022, Eq. 29, p. 10). Eq. 29 is an exponential family in ``(z, z^2, z^3, z^4)``, so the maximum-likelihood
    ``g`` matches the first four sample moments. Newton's method on the log-likelihood, in the
    standardised variable ``t = (z - mean) / std`` for conditioning, started from a weighted
    least-squares fit of the log histogram. ``g`` is normalised on ``grid`` (the data range plus
    one bin each side) and used only there, so a positive ``c_4`` is harmless.
    states: any shape (flattened).
    """
    s = np.asarray(states, float).ravel()
    if s.size < 10 or not np.all(np.isfinite(s)):
        raise ValueError("states: need >= 10 finite samples")
    m, sd = s.mean(), s.std()
    if sd == 0:
        raise ValueError("states: all samples are equal")
    t_s = (s - m) / sd
    counts, edges = np.histogram(t_s, bins=int(n_bins))
    centres, width = 0.5 * (edges[1:] + edges[:-1]), edges[1] - edges[0]
    keep = counts > 0
    log_p = np.log(counts[keep] / (s.size * width))
    c_t = np.polynomial.polynomial.polyfit(centres[keep], log_p, 4, w=np.sqrt(counts[keep]))
    t = np.linspace(edges[0] - width, edges[-1] + width, 2001)
    phi = np.vstack([t ** k for k in range(1, 5)])  # (4, n_grid)
    target = np.array([np.mean(t_s ** k) for k in range(1, 5)])

    def objective(c):
        """Negative mean log-likelihood ``log Z(c) - c . target`` (convex) and the density."""
        e = c @ phi
        w = np.exp(e - e.max())
        Z = np.trapezoid(w, t)
        return np.log(Z) + e.max() - c @ target, w / Z

    c = c_t[1:].copy()
    f, w = objective(c)
    for _ in range(int(n_newton)):
        mean_phi = np.trapezoid(phi * w, t, axis=1)
        d = phi - mean_phi[:, None]
        cov = np.trapezoid(d[:, None] * d[None] * w, t, axis=2)
        grad = mean_phi - target
        # Newton direction; least squares because heavy tails make cov nearly singular
        step = -np.linalg.lstsq(cov, grad, rcond=1e-13)[0]
        a = 1.0  # backtracking (Armijo) line search: the likelihood never gets worse
        while a > 1e-10:
            f_new, w_new = objective(c + a * step)
            if np.isfinite(f_new) and f_new <= f + 1e-4 * a * (grad @ step):
                break
            a *= 0.5
        else:
            break  # no descent possible: at the optimum to rounding
        c, f, w = c + a * step, f_new, w_new
        if np.max(np.abs(a * step)) < 1e-12:
            break
    residual = np.trapezoid(phi * w, t, axis=1) - target
    if not np.all(np.abs(residual) <= 1e-6 * (1.0 + np.abs(target))):
        raise ValueError("states: the exp-quartic fit (Eq. 29) did not converge (moment residual "
                         f"{np.max(np.abs(residual)):.3g}); the samples are too heavy-tailed for "
                         "Eq. 29 on their range: use the normal or uniform p* instead")
    # z = m + sd t: expand the quartic in t into powers of z
    poly_z = np.polynomial.Polynomial(np.concatenate([[0.0], c]))(
        np.polynomial.Polynomial([-m / sd, 1 / sd]))
    coef = np.zeros(5)
    coef[: len(poly_z.coef)] = poly_z.coef
    grid = m + sd * t
    coef[0] -= np.log(np.trapezoid(exp_quartic_density(coef, grid), grid))
    return coef, grid


def uniform_density(states: Array, grid: Array) -> Array:
    r"""Uniform ``p*`` with the samples' mean and variance (Semenova 2022, Sec. VII B, p. 10)."""
    s = np.asarray(states, float).ravel()
    half = np.sqrt(3.0) * s.std()
    return np.where(np.abs(np.asarray(grid) - s.mean()) <= half, 1.0 / (2 * half), 0.0)


def normal_density(states: Array, grid: Array) -> Array:
    r"""Normal ``p*`` with the samples' mean and variance (Semenova 2022, Sec. VII B, p. 10)."""
    s = np.asarray(states, float).ravel()
    m, v = s.mean(), s.var()
    return np.exp(-((np.asarray(grid) - m) ** 2) / (2 * v)) / np.sqrt(2 * np.pi * v)


def state_density(states: Array, kind: str) -> tuple[Array, Array]:
    """``(grid, p*)`` for the clean internal states of a layer by one of :data:`DENSITIES`."""
    s = np.asarray(states, float).ravel()
    if kind == "exp_quartic":
        c, grid = fit_exp_quartic(s)
        return grid, exp_quartic_density(c, grid)
    pad = 6 * s.std()
    grid = np.linspace(s.min() - pad, s.max() + pad, 4001)
    if kind == "normal":
        return grid, normal_density(s, grid)
    if kind == "uniform":
        return grid, uniform_density(s, grid)
    raise ValueError(f"density: unknown {kind!r}; known: {', '.join(DENSITIES)}")


@dataclass(frozen=True)
class NetworkStatistics:
    """What Eqs. 14-15 need of a network and its inputs, independent of the noise.

    Built by :func:`network_statistics`; :func:`variances_from_statistics` turns it into the
    ``S_n`` chain for any noise intensities without touching the weights or the inputs again.
    """

    fan_in: tuple[int, ...]  #: (L,) ``I_{n-1}``, the columns of each ``W^n``
    weight_mean: tuple[float, ...]  #: (L,) ``mu(W^n)``
    weight_mean_square: tuple[float, ...]  #: (L,) ``eta(W^n)``
    input_expectations: tuple[float, float, float]  #: ``(mu(x), eta(x), 1)`` of the inputs
    expectations: Array  #: (L, 3) the Eq. 15 triples of layers 1..L
    output_activation: str  #: the output layer's activation (for the output variance)
    density: str  #: the ``p*`` approximation used (:data:`DENSITIES`)


def network_statistics(arch: Architecture, params: Params, inputs: Array,
                       density: str = "exp_quartic") -> NetworkStatistics:
    r"""The weight statistics (Sec. VII A) and the Eq. 15 expectations of every layer.

    Derived (Semenova 2022, Eqs. 14-15, pp. 6-7): one clean forward pass of ``inputs``
    (n_batch, sizes[0]); ``p*_n`` approximated from each layer's clean internal states by
    ``density`` (Methods VII B). The noise-independent half of :func:`trained_network_variances`.
    """
    X = check_input(inputs, arch.sizes[0], "inputs")
    _, cache = forward(arch, params, X)
    fan_in, mu, eta, exps = [], [], [], []
    for l in range(1, arch.n_layers + 1):
        W = np.asarray(params.W[l - 1], float)
        fan_in.append(W.shape[1])
        mu.append(weight_mean(W))
        eta.append(weight_mean_square(W))
        grid, p = state_density(cache.Z[l - 1], density)
        exps.append(state_expectations(arch.activations[l - 1], grid, p))
    return NetworkStatistics(tuple(fan_in), tuple(mu), tuple(eta),
                             (float(X.mean()), float(np.mean(X ** 2)), 1.0),  # linear inputs
                             np.array(exps), arch.activations[-1], density)


def variances_from_statistics(stats: NetworkStatistics, D_A_U_intensity: float = 0.0,
                              D_A_C_intensity: float = 0.0, D_M_U_intensity: float = 0.0,
                              D_M_C_intensity: float = 0.0) -> dict:
    r"""``S_n`` for every layer and the output-variance curve from a :class:`NetworkStatistics`.

    Derived: Eq. 14 chained layer by layer (Semenova 2022, Sec. IV, pp. 6-7), Eq. 5 at the
    output; the noise-dependent half of :func:`trained_network_variances` (same returns, same
    bits). Costs a few scalar operations per layer: the per-input work is only evaluating
    ``output_variance`` at the outputs.
    """
    D = (D_A_U_intensity, D_A_C_intensity, D_M_U_intensity, D_M_C_intensity)
    S = []
    prev = stats.input_expectations
    S_prev = 0.0
    for l in range(len(stats.fan_in)):
        S_prev = variance_step_from_weight_statistics(
            stats.fan_in[l], stats.weight_mean[l], stats.weight_mean_square[l], S_prev, *prev, *D)
        S.append(S_prev)
        prev = tuple(float(e) for e in stats.expectations[l])
    act_out = get_activation(stats.output_activation)
    s_p, s_x = sigma_plus_squared(*D[:2]), sigma_times_squared(*D[2:])
    S_L = S[-1]

    def output_variance(y):
        y = np.asarray(y, float)
        slope = 1.0 if act_out.name == "identity" else act_out.d1(act_out.inverse(y))
        return s_p + s_x * y ** 2 + (1 + s_x) * slope ** 2 * S_L

    return {"S": np.array(S), "output_variance": output_variance,
            "expectations": np.array(stats.expectations)}


def trained_network_variances(arch: Architecture, params: Params, inputs: Array,
                              D_A_U_intensity: float = 0.0, D_A_C_intensity: float = 0.0,
                              D_M_U_intensity: float = 0.0, D_M_C_intensity: float = 0.0,
                              density: str = "exp_quartic") -> dict:
    r"""``S_n`` for every layer of a trained network, and the output-variance curve.

    Derived: Eqs. 14 and 15 chained layer by layer (Semenova 2022, Sec. IV, pp. 6-7), with
    ``p*_n`` approximated from the clean internal states of the given inputs (Methods VII B).
    Noise as refnet's "semenova" preset: Eq. 3 on every layer's output, the input included.
    Reading for the first weight layer: Eq. 14 with ``S_1 = 0`` and the input's statistics in
    place of ``E y_1`` (this is the paper's ``S_2 = sigma_+^2 + sigma_x^2 mu^2(u)`` when
    ``I_1 = 1`` and ``W^2 = 1``).

    inputs : (n_batch, sizes[0]). Returns dict: ``S`` (L,) for weight layers 1..L;
    ``output_variance(y)`` a function of the output mean (Eq. 5 with
    ``F = f'(f^{-1}(y))^2 S_L``); ``expectations`` (L, 3) the Eq. 15 triples used.
    :func:`network_statistics` then :func:`variances_from_statistics`.
    """
    sigma_plus_squared(D_A_U_intensity, D_A_C_intensity)  # bad intensities fail before the
    sigma_times_squared(D_M_U_intensity, D_M_C_intensity)  # density fits, as they always did
    return variances_from_statistics(network_statistics(arch, params, inputs, density),
                                     D_A_U_intensity, D_A_C_intensity, D_M_U_intensity,
                                     D_M_C_intensity)
