r"""Semenova, Larger & Brunner 2022, "Understanding and mitigating noise in trained deep neural
networks", Eqs. 1-13 and the Methods derivation Eqs. 16-23.

Eqs. 14-15 and 29 (trained networks) are in :mod:`refnet.propagation.trained`; Eqs. 24-28 (Taylor
moments) in :mod:`refnet.propagation.taylor`. Page numbers are those of the arXiv version (the
stored text has none; inferred from the section layout: Sec. II pp. 2-3, Sec. III pp. 4-6,
Sec. IV pp. 6-8, Methods VII pp. 9-10).

Noise levels. The paper writes each source as ``sqrt(2 D) xi`` with ``xi ~ N(0, 1)``: ``D`` is an
*intensity* and the *variance* is ``2 D``. Functions here follow the paper and take the four
intensities ``D_A_U, D_A_C, D_M_U, D_M_C`` (named ``*_intensity`` in signatures); refnet's
contract (:class:`refnet.noise.NoiseSpec`) stores variances, and
``NoiseSpec.from_intensities`` converts.

Index (Eq. -> function -> test in ``tests/test_propagation_semenova.py`` unless noted)
-------------------------------------------------------------------------------------
=====  ===================================  ===============================================
Eq.    function                             test
=====  ===================================  ===============================================
1      :func:`internal_state`               test_semenova_eq1_eq2_match_forward
2      :func:`neuron_output`                test_semenova_eq1_eq2_match_forward
3      :func:`noise_operator`               test_semenova_eq3_matches_refnet_noise
4      :func:`signal_to_noise_ratio`        test_semenova_eq4_snr
5      :func:`neuron_output_variance`       test_semenova_eq5_single_neuron_mc
6      :func:`noise_terms`                  test_semenova_eq6_exact_for_symmetric_layer
7      :func:`internal_state_variance_approx`  test_semenova_eq7_neglects_uncorrelated
8      :func:`second_layer_variance`        test_semenova_eq8_eq23_input_layer
9      :func:`nonlinear_variance_first_order`  test_semenova_eq9_linear_activation_exact
10     :func:`symmetric_variance_recurrence`   test_semenova_eq10_eq11_reduce
11     :func:`geometric_variance_step`      test_semenova_eq11_bifurcation_at_alpha_2
12     :func:`nonlinear_variance_order_M`   test_semenova_eq12_exact_for_cubic
13     :func:`nonlinear_variance_order_M_recurrent`  test_semenova_eq13_equals_eq12
16     :func:`output_expectation`           test_semenova_eq16_eq17_single_neuron_mc
17     :func:`output_variance`              test_semenova_eq16_eq17_single_neuron_mc
18     :func:`internal_state_variance_from_outputs`  test_semenova_eq18_eq19_mc
19     :func:`internal_state_variance_exact`  test_semenova_eq18_eq19_mc
20     :func:`internal_state_variance_mean_field`  test_semenova_eq20_symmetric_equals_eq19
21     :func:`internal_state_variance_symmetric`   test_semenova_eq21_large_width_limit
22     :func:`internal_state_variance_single_input`  test_semenova_eq22_equals_eq5
23     :func:`initial_variances`            test_semenova_eq8_eq23_input_layer
=====  ===================================  ===============================================
The symmetric-network driver, which chains Eqs. 5, 6, 9, 12, 17 and 23 layer by layer, is
:func:`refnet.propagation.symmetric.symmetric_network_moments` (tests in
``tests/test_propagation_symmetric.py``).
"""
from __future__ import annotations

import numpy as np

from ..activations import Activation, get_activation
from ..noise import LayerNoise, NoiseSpec, apply_noise

__all__ = ["internal_state", "neuron_output", "noise_operator", "signal_to_noise_ratio",
           "sigma_plus_squared", "sigma_times_squared", "neuron_output_variance", "noise_terms",
           "internal_state_variance_approx", "second_layer_variance",
           "nonlinear_variance_first_order", "symmetric_variance_recurrence",
           "geometric_variance_step", "nonlinear_variance_order_M",
           "nonlinear_variance_order_M_recurrent", "output_expectation", "output_variance",
           "internal_state_variance_from_outputs", "internal_state_variance_exact",
           "internal_state_variance_mean_field", "internal_state_variance_symmetric",
           "internal_state_variance_single_input", "initial_variances", "weight_mean",
           "weight_mean_square"]

Array = np.ndarray


def _intensities(*pairs):
    out = []
    for name, d in pairs:
        d = float(d)
        if not np.isfinite(d) or d < 0:
            raise ValueError(f"{name}: a noise intensity must be finite and >= 0, got {d}")
        out.append(d)
    return out


# --- Sec. II: neurons and noise --------------------------------------------------------------
def internal_state(weight_matrix: Array, previous_outputs: Array, bias: Array) -> Array:
    r"""``x~_{n,i} = sum_j W^n_{ij} y_{n-1,j} + b_{n,i}`` (Semenova 2022, Eq. 1, p. 2).

    weight_matrix (I_n, I_{n-1}); previous_outputs (T, I_{n-1}); bias (I_n,) -> (T, I_n).
    """
    W, y_prev, b = np.asarray(weight_matrix), np.asarray(previous_outputs), np.asarray(bias)
    return y_prev @ W.T + b


def neuron_output(activation: str | Activation, internal_states: Array) -> Array:
    r"""``x_{n,i} = f(x~_{n,i})`` (Semenova 2022, Eq. 2, p. 2); any shape."""
    return get_activation(activation).f(np.asarray(internal_states, dtype=np.float64))


def noise_operator(clean_outputs: Array, D_A_U_intensity: float, D_A_C_intensity: float,
                   D_M_U_intensity: float, D_M_C_intensity: float, xi_U_A: Array, xi_C_A: Array,
                   xi_U_M: Array, xi_C_M: Array) -> Array:
    r"""Noisy output, (Semenova 2022, Eq. 3, p. 3)::

        y = sqrt(2 D_A^U) xi^{U,A} + sqrt(2 D_A^C) xi^{C,A}
            + x (1 + sqrt(2 D_M^U) xi^{U,M}) (1 + sqrt(2 D_M^C) xi^{C,M})

    clean_outputs x: (T, I_n); ``xi_U_*`` standard normals (T, I_n); ``xi_C_*`` (T, 1), shared
    by the layer's neurons. The ``D`` are intensities (variance ``2 D``): evaluated by
    :func:`refnet.noise.apply_noise` (refnet's one Eq. 3) with the variances ``2 D``.
    """
    D = _intensities(("D_A_U_intensity", D_A_U_intensity), ("D_A_C_intensity", D_A_C_intensity),
                     ("D_M_U_intensity", D_M_U_intensity), ("D_M_C_intensity", D_M_C_intensity))
    x = np.asarray(clean_outputs, dtype=np.float64)
    draws = LayerNoise(*(np.asarray(xi, dtype=np.float64)
                         for xi in (xi_U_A, xi_C_A, xi_U_M, xi_C_M)))
    return apply_noise(x, NoiseSpec.from_intensities(*D), draws)


def signal_to_noise_ratio(expectation: Array, variance: Array) -> Array:
    r"""``SNR = E(y) / Var(y)^{1/2}`` (Semenova 2022, Eq. 4, p. 3); broadcastable arrays.

    From K repeats of one input (the paper uses K = 300), pass the sample mean and variance.
    """
    var = np.asarray(variance, dtype=np.float64)
    if np.any(var < 0):
        raise ValueError("variance: must be >= 0")
    with np.errstate(divide="ignore"):
        return np.asarray(expectation, dtype=np.float64) / np.sqrt(var)


def sigma_plus_squared(D_A_U_intensity: float, D_A_C_intensity: float) -> float:
    r"""``sigma_+^2 = 2 D_A^C + 2 D_A^U`` (Semenova 2022, Eq. 5, p. 3), total additive variance."""
    D_A_U, D_A_C = _intensities(("D_A_U_intensity", D_A_U_intensity),
                                ("D_A_C_intensity", D_A_C_intensity))
    return 2 * D_A_C + 2 * D_A_U


def sigma_times_squared(D_M_U_intensity: float, D_M_C_intensity: float) -> float:
    r"""``sigma_x^2 = 2 D_M^C + 2 D_M^U + 4 D_M^C D_M^U`` (Semenova 2022, Eq. 5, p. 3)."""
    D_M_U, D_M_C = _intensities(("D_M_U_intensity", D_M_U_intensity),
                                ("D_M_C_intensity", D_M_C_intensity))
    return 2 * D_M_C + 2 * D_M_U + 4 * D_M_C * D_M_U


def neuron_output_variance(expected_output: Array, nonlinear_variance: Array,
                           D_A_U_intensity: float, D_A_C_intensity: float,
                           D_M_U_intensity: float, D_M_C_intensity: float) -> Array:
    r"""``Var(y) = sigma_+^2 + sigma_x^2 E(y)^2 + (1 + sigma_x^2) F(x~)`` (Semenova 2022, Eq. 5, p. 3).

    expected_output ``E(y) = E(x)`` and nonlinear_variance ``F(x~) = Var(x)``: broadcastable.
    """
    s_p = sigma_plus_squared(D_A_U_intensity, D_A_C_intensity)
    s_x = sigma_times_squared(D_M_U_intensity, D_M_C_intensity)
    E_y, F = np.asarray(expected_output, float), np.asarray(nonlinear_variance, float)
    return s_p + s_x * E_y ** 2 + (1 + s_x) * F


def weight_mean(weight_matrix: Array) -> float:
    r"""``mu(W) = (1 / (I_n I_{n-1})) sum_ij W_ij`` (Semenova 2022, Sec. VII A, p. 9)."""
    return float(np.mean(weight_matrix))


def weight_mean_square(weight_matrix: Array) -> float:
    r"""``eta(W) = (1 / (I_n I_{n-1})) sum_ij W_ij^2`` (Semenova 2022, Sec. VII A, p. 9)."""
    return float(np.mean(np.asarray(weight_matrix, float) ** 2))


def noise_terms(weight_matrix: Array, expected_previous_outputs: Array,
                previous_nonlinear_variance: Array, D_A_U_intensity: float,
                D_A_C_intensity: float, D_M_U_intensity: float, D_M_C_intensity: float
                ) -> tuple[Array, Array, Array]:
    r"""``(N^C_n, N^U_n, N^prev_n)``, with ``Var(x~_n) = N^C + N^U + N^prev`` (Semenova 2022, Eq. 6, p. 4).

    ::

        N^C    = I^2 mu^2(W) (2 D_A^C + 2 D_M^C mu^2(E y))
        N^U    = I eta(W) (2 D_A^U + 2 D_M^U (1 + 2 D_M^C) eta(E y))
        N^prev = I^2 mu^2(W) (1 + 2 D_M^U eta(W) / (I mu^2(W))) (1 + 2 D_M^C) mu(F(x~_{n-1}))

    with ``I = I_{n-1}``. Reading: Eq. 20 (p. 9) prints ``eta(W) / (I mu(W))`` and ``mu^2(E x)``
    in N^U; Eq. 6's ``eta(W) / (I mu^2(W))`` and ``eta(E y)`` are what the step from Eq. 19
    gives, and for the symmetric network (identical neurons in a layer) Eq. 6 is then *exact*
    given ``E(x)`` and ``Var(x)`` (test_semenova_eq6_exact_for_symmetric_layer). N^prev treats the
    previous layer's fluctuations as fully correlated across neurons, as in the symmetric net.

    Parameters
    ----------
    weight_matrix : (I_n, I_{n-1}) ``W^n``
    expected_previous_outputs : (..., I_{n-1}) ``E(y_{n-1})``
    previous_nonlinear_variance : (..., I_{n-1}) ``F(x~_{n-1}) = Var(x_{n-1})``
    D_* : intensities (variance 2 D)

    Returns three arrays of shape ``(...)`` (layer averages ``mu``, ``eta`` over the last axis).
    """
    D_A_U, D_A_C, D_M_U, D_M_C = _intensities(
        ("D_A_U_intensity", D_A_U_intensity), ("D_A_C_intensity", D_A_C_intensity),
        ("D_M_U_intensity", D_M_U_intensity), ("D_M_C_intensity", D_M_C_intensity))
    W = np.asarray(weight_matrix, float)
    E_y = np.asarray(expected_previous_outputs, float)
    F_prev = np.asarray(previous_nonlinear_variance, float)
    I = W.shape[1]
    mu_W, eta_W = weight_mean(W), weight_mean_square(W)
    N_C = I ** 2 * mu_W ** 2 * (2 * D_A_C + 2 * D_M_C * np.mean(E_y, axis=-1) ** 2)
    N_U = I * eta_W * (2 * D_A_U + 2 * D_M_U * (1 + 2 * D_M_C) * np.mean(E_y ** 2, axis=-1))
    N_prev = ((I ** 2 * mu_W ** 2 + 2 * D_M_U * I * eta_W) * (1 + 2 * D_M_C)
              * np.mean(F_prev, axis=-1))
    return N_C, N_U, N_prev


# --- Sec. III: symmetric networks ----------------------------------------------------------
def internal_state_variance_approx(N_C: float, N_prev: float) -> float:
    r"""``Var(x~_n) ~ N^C_n + N^prev_n`` for ``2 < n <= N`` (Semenova 2022, Eq. 7, p. 4).

    Neglects ``N^U``, which is ``O(1/I_{n-1})`` in a symmetric network.
    """
    return N_C + N_prev


def second_layer_variance(input_signal: Array, D_A_U_intensity: float, D_A_C_intensity: float,
                          D_M_U_intensity: float, D_M_C_intensity: float) -> Array:
    r"""``Var(x~_2) = N^C + N^U = sigma_+^2 + sigma_x^2 u^2`` (Semenova 2022, Eq. 8, p. 4).

    input_signal ``u``: any shape. Reading (shared with Eq. 23): the linear input neuron's output
    carries the full noise of Eq. 3 and the input layer has one neuron (``I_1 = 1``).
    """
    u = np.asarray(input_signal, float)
    return (sigma_plus_squared(D_A_U_intensity, D_A_C_intensity)
            + sigma_times_squared(D_M_U_intensity, D_M_C_intensity) * u ** 2)


def nonlinear_variance_first_order(activation: str | Activation, expected_internal_state: Array,
                                   internal_state_variance: Array) -> Array:
    r"""``F(x~) ~ [f'(E(x~))]^2 Var(x~)`` (Semenova 2022, Eq. 9, p. 5).

    The paper then substitutes ``E(x~) = f^{-1}(y)``, the clean internal state; pass that.
    For a linear neuron ``f(z) = z`` this is exact. Arrays broadcastable.
    """
    act = get_activation(activation)
    return act.d1(np.asarray(expected_internal_state, float)) ** 2 * np.asarray(
        internal_state_variance, float)


def symmetric_variance_recurrence(N_C: Array, D_M_C_intensity: float, slope: Array,
                                  previous_variance: Array) -> Array:
    r"""``Var(x~_n) = N^C_n + (1 + 2 D_M^C) [f'(f^{-1}(y_{n-1}))]^2 Var(x~_{n-1})`` (Semenova 2022, Eq. 10, p. 5).

    slope: ``f'`` at the previous layer's clean internal state; arrays broadcastable.
    """
    (D_M_C,) = _intensities(("D_M_C_intensity", D_M_C_intensity))
    return N_C + (1 + 2 * D_M_C) * np.asarray(slope, float) ** 2 * previous_variance


def geometric_variance_step(slope: Array, previous_S: Array) -> Array:
    r"""``S_n = [f'(f^{-1}(y_{n-1}))]^2 S_{n-1}`` (Semenova 2022, Eq. 11, p. 5).

    Eq. 10 with ``N^C`` and ``D_M^C`` neglected: noise shrinks with depth where ``|f'| < 1``.
    """
    return np.asarray(slope, float) ** 2 * previous_S


def nonlinear_variance_order_M(taylor_coefficients: Array, central_moments: Array) -> Array:
    r"""``F|_M = sum_m T_m^2 (V_2m - V_m^2) + 2 sum_m sum_{i<m} T_m T_i (V_{m+i} - V_m V_i)``.

    (Semenova 2022, Eq. 12, p. 6). ``T_m = f^{(m)}(mu)/m!`` (Eq. 24 reading, see
    :func:`refnet.propagation.taylor.activation_taylor_coefficients`), ``V_m`` the central
    moments of ``x~``. taylor_coefficients (M+1, *shape); central_moments (>= 2M+1, *shape).
    """
    T, V = taylor_coefficients, central_moments
    M = T.shape[0] - 1
    if V.shape[0] < 2 * M + 1:
        raise ValueError(f"central_moments: need V_0..V_{2 * M}, got {V.shape[0]} entries")
    out = sum(T[m] ** 2 * (V[2 * m] - V[m] ** 2) for m in range(1, M + 1))
    for m in range(1, M + 1):
        for i in range(1, m):
            out = out + 2 * T[m] * T[i] * (V[m + i] - V[m] * V[i])
    return out


def nonlinear_variance_order_M_recurrent(previous_order_variance: Array,
                                         taylor_coefficients: Array,
                                         central_moments: Array) -> Array:
    r"""``F|_M = F|_{M-1} + T_M^2 (V_2M - V_M^2) + 2 T_M sum_{i<M} T_i (V_{M+i} - V_M V_i)``.

    (Semenova 2022, Eq. 13, p. 6). ``M = len(taylor_coefficients) - 1``;
    previous_order_variance is ``F|_{M-1}`` (0 for M = 1).
    """
    T, V = taylor_coefficients, central_moments
    M = T.shape[0] - 1
    cross = sum(T[i] * (V[M + i] - V[M] * V[i]) for i in range(1, M))
    return previous_order_variance + T[M] ** 2 * (V[2 * M] - V[M] ** 2) + 2 * T[M] * cross


# --- Methods VII A (Eqs. 16-23) ---------------------------------------------------------------
def output_expectation(expected_clean_output: Array) -> Array:
    r"""``E[y_{n,i}] = E[x_{n,i}]`` (Semenova 2022, Eq. 16, p. 9): all noise has zero mean."""
    return np.asarray(expected_clean_output, float)


def output_variance(expected_clean_output: Array, clean_output_variance: Array,
                    D_A_U_intensity: float, D_A_C_intensity: float, D_M_U_intensity: float,
                    D_M_C_intensity: float) -> Array:
    r"""``Var[y] = 2D_A^U + 2D_A^C + (2D_M^U + 2D_M^C + 4 D_M^U D_M^C) E[x]^2
    + (1 + 2D_M^U)(1 + 2D_M^C) Var[x]`` (Semenova 2022, Eq. 17, p. 9). Exact for Eq. 3."""
    D_A_U, D_A_C, D_M_U, D_M_C = _intensities(
        ("D_A_U_intensity", D_A_U_intensity), ("D_A_C_intensity", D_A_C_intensity),
        ("D_M_U_intensity", D_M_U_intensity), ("D_M_C_intensity", D_M_C_intensity))
    E_x, Var_x = np.asarray(expected_clean_output, float), np.asarray(clean_output_variance, float)
    return (2 * D_A_U + 2 * D_A_C + (2 * D_M_U + 2 * D_M_C + 4 * D_M_U * D_M_C) * E_x ** 2
            + (1 + 2 * D_M_U) * (1 + 2 * D_M_C) * Var_x)


def internal_state_variance_from_outputs(weight_matrix: Array, output_covariance: Array) -> Array:
    r"""``Var[x~_{n+1,i}] = Var[sum_j W_ij y_{n,j} + b_i] = (W Cov(y) W^T)_{ii}`` (Semenova 2022, Eq. 18, p. 9).

    weight_matrix (I_{n+1}, I_n); output_covariance (I_n, I_n) -> (I_{n+1},). The bias drops out.
    """
    W, C = np.asarray(weight_matrix, float), np.asarray(output_covariance, float)
    return np.einsum("ij,jk,ik->i", W, C, W)


def internal_state_variance_exact(weight_matrix: Array, expected_clean_outputs: Array,
                                  clean_output_covariance: Array, D_A_U_intensity: float,
                                  D_A_C_intensity: float, D_M_U_intensity: float,
                                  D_M_C_intensity: float) -> Array:
    r"""Eq. 19 of (Semenova 2022, Eq. 19, p. 9)::

        Var[x~_{n+1,i}] = 2D_A^U sum_j W_ij^2 + 2D_A^C (sum_j W_ij)^2 + 2D_M^C (E[sum_j W_ij x_j])^2
                          + (1 + 2D_M^C) Var[sum_j W_ij (1 + sqrt(2D_M^U) xi_j) x_j]

    with the last variance written out as ``(W Cov(x) W^T)_ii + 2D_M^U sum_j W_ij^2 E[x_j^2]``
    (noise independent of ``x``). Exact given the first two moments of the clean outputs ``x``.

    weight_matrix (I_{n+1}, I_n); expected_clean_outputs (I_n,); clean_output_covariance (I_n, I_n).
    """
    D_A_U, D_A_C, D_M_U, D_M_C = _intensities(
        ("D_A_U_intensity", D_A_U_intensity), ("D_A_C_intensity", D_A_C_intensity),
        ("D_M_U_intensity", D_M_U_intensity), ("D_M_C_intensity", D_M_C_intensity))
    W = np.asarray(weight_matrix, float)
    E_x, C_x = np.asarray(expected_clean_outputs, float), np.asarray(clean_output_covariance, float)
    var_sum = np.einsum("ij,jk,ik->i", W, C_x, W) + 2 * D_M_U * (W ** 2) @ (E_x ** 2 + np.diag(C_x))
    return (2 * D_A_U * (W ** 2).sum(1) + 2 * D_A_C * W.sum(1) ** 2 + 2 * D_M_C * (W @ E_x) ** 2
            + (1 + 2 * D_M_C) * var_sum)


def internal_state_variance_mean_field(weight_matrix: Array, mean_expected_output: float,
                                       mean_output_variance: float, D_A_U_intensity: float,
                                       D_A_C_intensity: float, D_M_U_intensity: float,
                                       D_M_C_intensity: float) -> float:
    r"""Eq. 20 (Semenova 2022, Eq. 20, p. 9)::

        Var ~ I^2 mu^2(W) (2D_A^C + 2D_M^C mu^2(E x))
              + I eta(W) (2D_M^U (1 + 2D_M^C) mu^2(E x) + 2D_A^U)
              + I^2 mu^2(W) (1 + 2D_M^U eta(W) / (I mu^2(W))) (1 + 2D_M^C) mu(Var x)

    Readings: the first term is printed ``I_n mu^2(W)``; the step from Eq. 19,
    ``(sum_j W_ij)^2 ~ I^2 mu^2(W)``, and Eq. 6 give ``I^2``; the last term is printed with
    ``eta / (I mu)``, where Eq. 19 and Eq. 6 give ``eta / (I mu^2)``. With these readings Eq. 20
    equals Eq. 19 for a symmetric layer of identical neurons
    (test_semenova_eq20_symmetric_equals_eq19). ``mu(E x)``, ``mu(Var x)`` are layer averages.
    """
    D_A_U, D_A_C, D_M_U, D_M_C = _intensities(
        ("D_A_U_intensity", D_A_U_intensity), ("D_A_C_intensity", D_A_C_intensity),
        ("D_M_U_intensity", D_M_U_intensity), ("D_M_C_intensity", D_M_C_intensity))
    W = np.asarray(weight_matrix, float)
    I = W.shape[1]
    mu_W, eta_W = weight_mean(W), weight_mean_square(W)
    m, v = float(mean_expected_output), float(mean_output_variance)
    return (I ** 2 * mu_W ** 2 * (2 * D_A_C + 2 * D_M_C * m ** 2)
            + I * eta_W * (2 * D_M_U * (1 + 2 * D_M_C) * m ** 2 + 2 * D_A_U)
            + (I ** 2 * mu_W ** 2 + 2 * D_M_U * I * eta_W) * (1 + 2 * D_M_C) * v)


def internal_state_variance_symmetric(mean_expected_output: Array, mean_output_variance: Array,
                                      D_A_C_intensity: float, D_M_C_intensity: float) -> Array:
    r"""``Var[x~_{n+1}] ~ 2D_A^C + 2D_M^C mu^2(E x) + (1 + 2D_M^C) mu(Var x)`` (Semenova 2022, Eq. 21, p. 9).

    Eq. 20 for ``W_ij = 1/I_n`` with the ``O(1/I_n)`` terms dropped; arrays broadcastable.
    """
    D_A_C, D_M_C = _intensities(("D_A_C_intensity", D_A_C_intensity),
                                ("D_M_C_intensity", D_M_C_intensity))
    m, v = np.asarray(mean_expected_output, float), np.asarray(mean_output_variance, float)
    return 2 * D_A_C + 2 * D_M_C * m ** 2 + (1 + 2 * D_M_C) * v


def internal_state_variance_single_input(expected_output: Array, output_variance_: Array,
                                         D_A_U_intensity: float, D_A_C_intensity: float,
                                         D_M_U_intensity: float, D_M_C_intensity: float) -> Array:
    r"""``Var[x~_{n+1}] = sigma_+^2 + sigma_x^2 E[x_n]^2 + (1 + sigma_x^2) mu(Var[x_n])`` for ``I_n = 1``.

    (Semenova 2022, Eq. 22, p. 9): the layer feeding a single neuron through ``W = 1``.
    """
    return neuron_output_variance(expected_output, output_variance_, D_A_U_intensity,
                                  D_A_C_intensity, D_M_U_intensity, D_M_C_intensity)


def initial_variances(input_signal: Array, D_A_U_intensity: float, D_A_C_intensity: float,
                      D_M_U_intensity: float, D_M_C_intensity: float) -> tuple[Array, Array]:
    r"""``Var[x~_1] = Var[x_1] = 0`` and ``Var[x~_2] = sigma_+^2 + sigma_x^2 E[x_1]^2``.

    (Semenova 2022, Eq. 23, p. 9). Reading: the input neuron is linear and noise-free in its
    state (``x_1 = u``) and its *output* ``y_1`` carries the noise of Eq. 3 (refnet's
    ``"semenova"`` noise preset includes layer 0); with ``W^2 = 1`` that gives Eq. 8.
    test_semenova_eq8_eq23_input_layer settles it against Monte-Carlo: the variance of
    ``x~_2`` is ``sigma_+^2 + sigma_x^2 u^2``, not 0. Returns ``(Var x_1, Var x~_2)``.
    """
    u = np.asarray(input_signal, float)
    return np.zeros_like(u), second_layer_variance(u, D_A_U_intensity, D_A_C_intensity,
                                                   D_M_U_intensity, D_M_C_intensity)
