"""Semenova 2022, Sec. III: the symmetric network, analytic vs Monte-Carlo (Figs. 3 and 4).

Network (reading documented in ``symmetric.symmetric_network_moments``): 1-200-...-200-1,
``W_ij = 1/I_{n-1}``, zero biases, shifted sigmoid in hidden layers, linear input and output
neurons, Eq. 3 noise on every layer's output (refnet's "semenova" preset), simulated with the
NumPy reference ``refnet.model.forward`` by repeating each input K times.

Statistics: fixed seeds; variance standard errors from the sample fourth moment; z = 5 gives a
two-sided false-positive rate of ~6e-7 per comparison (normal approximation).
"""
import numpy as np
import pytest

from refnet.activations import get_activation
from refnet.model import Params, forward, mlp
from refnet.noise import NoiseSpec, noise_config
from refnet.propagation.semenova import nonlinear_variance_order_M
from refnet.propagation.symmetric import symmetric_network_moments
from refnet.propagation.taylor import (activation_taylor_coefficients,
                                       gauss_hermite_mean_variance, gaussian_central_moments)

Z = 5.0
# Fig. 3 (p. 4): D_A = 1e-4, D_M = 1e-3, alpha = 4; top row uncorrelated, bottom correlated
FIG3_PANELS = {  # (D_A_U, D_A_C, D_M_U, D_M_C) intensities
    "a_additive_uncorrelated": (1e-4, 0, 0, 0),
    "b_multiplicative_uncorrelated": (0, 0, 1e-3, 0),
    "c_mixed_uncorrelated": (1e-4, 0, 1e-3, 0),
    "d_additive_correlated": (0, 1e-4, 0, 0),
    "e_multiplicative_correlated": (0, 0, 0, 1e-3),
    "f_mixed_correlated": (0, 1e-4, 0, 1e-3),
}


def symmetric_mc(u, alpha, n_layers, D, K, seed):
    """Monte-Carlo of the symmetric network: internal states x~_n (n = 2..N) and output y_N,
    each an array (n_layers - 1 or 1, len(u), K)."""
    sizes = (1,) + (200,) * (n_layers - 2) + (1,)
    arch = mlp(sizes, f"shifted_sigmoid(alpha={alpha})", "identity")
    W = tuple(np.full((n_out, n_in), 1.0 / n_in) for n_in, n_out in zip(sizes[:-1], sizes[1:]))
    P = Params(W, tuple(np.zeros(n) for n in sizes[1:]))
    cfg = noise_config("semenova", NoiseSpec.from_intensities(*D), n_layers - 1)
    out, cache = forward(arch, P, np.repeat(np.asarray(u, float), K)[:, None], cfg, rng=seed)
    states = np.stack([z[:, 0].reshape(len(u), K) for z in cache.Z])
    return states, out[:, 0].reshape(len(u), K)


def mean_var_se(s):
    n = s.shape[-1]
    d = s - s.mean(-1, keepdims=True)
    m2 = (d ** 2).mean(-1)
    return (s.mean(-1), s.std(-1) / np.sqrt(n), s.var(-1, ddof=1),
            np.sqrt(((d ** 4).mean(-1) - m2 ** 2) / n))


U = np.array([0.05, 0.3, 0.5, 0.7, 0.95])


@pytest.mark.parametrize("panel", list(FIG3_PANELS))
def test_semenova_fig3_analytic_vs_mc(panel):
    D = FIG3_PANELS[panel]
    _, y = symmetric_mc(U, 4, 4, D, K=6000, seed=sorted(FIG3_PANELS).index(panel))
    m, se_m, v, se_v = mean_var_se(y)
    # (1) Eqs. 6, 17, 23 with F and E f(x~) integrated exactly for Gaussian x~: the
    #     remaining approximation (x~ Gaussian) is far below the statistical error here.
    gh = symmetric_network_moments(U, "shifted_sigmoid(alpha=4)", 4, 200, *D, method="gauss_hermite")
    assert np.all(np.abs(gh["mean_output"][-1] - m) <= Z * se_m)
    assert np.all(np.abs(gh["var_output"][-1] - v) <= Z * se_v)
    # (2) the paper's first-order closure (Eq. 9, black lines of Fig. 3) is approximate: it
    #     drops the O(alpha^2 Var x~) curvature terms, largest at the inflection u = 0.5 where
    #     we measured up to ~9 % SNR error. Tolerance: 12 % + z standard errors of the MC SNR.
    fo = symmetric_network_moments(U, "shifted_sigmoid(alpha=4)", 4, 200, *D, method="first_order")
    snr_mc = m / np.sqrt(v)
    rel_se = np.sqrt((se_m / m) ** 2 + (se_v / (2 * v)) ** 2)
    assert np.all(np.abs(fo["snr"][-1] / snr_mc - 1) <= 0.12 + Z * rel_se)


def test_semenova_fig3_linear_network_is_single_neuron():
    # gray dashed lines of Fig. 3: a linear network (identity hidden layers) has the SNR of one
    # noisy neuron at the output, up to the O(1/I) averaged uncorrelated terms
    D = FIG3_PANELS["c_mixed_uncorrelated"]
    lin = symmetric_network_moments(U, "identity", 4, 200, *D)
    assert np.all(lin["var_output"][-1] >= lin["var_output"][0])
    np.testing.assert_allclose(lin["var_output"][-1], lin["var_output"][0] * (1 + 2 * D[2])
                               + 2 * D[0] + 2 * D[2] * U ** 2, rtol=0.02)


@pytest.fixture(scope="module")
def deep_mc():
    """Fig. 4b: 12-layer network, D_A^U = 1e-4, input u = 0.5 (largest variance)."""
    return {alpha: symmetric_mc([0.5], alpha, 12, (1e-4, 0, 0, 0), K=6000, seed=40 + alpha)[0][:, 0]
            for alpha in (2, 3)}


def test_semenova_fig4b_alpha2_no_accumulation(deep_mc):
    _, _, v, se_v = mean_var_se(deep_mc[2])
    # slope f'(1/2) = alpha/2 = 1: the variance stays at the single-neuron level
    assert v[-1] / v[0] < 1.25 and v[-1] / v[0] > 0.8
    fo = symmetric_network_moments([0.5], "shifted_sigmoid(alpha=2)", 12, 200, 1e-4)
    assert np.all(np.abs(fo["var_state"][1:, 0] - v) <= 0.05 * v + Z * se_v)


def test_semenova_fig4b_alpha3_accumulates_and_first_order_drifts(deep_mc):
    _, _, v, se_v = mean_var_se(deep_mc[3])
    assert v[-1] / v[0] > 50  # noise accumulates, (3/2)^2 per layer at first
    fo = symmetric_network_moments([0.5], "shifted_sigmoid(alpha=3)", 12, 200, 1e-4)
    rel = fo["var_state"][1:, 0] / v - 1
    assert abs(rel[1]) < 0.02 + Z * se_v[1] / v[1]  # layer 3: still accurate
    assert rel[-1] > 1.0  # "discrepancy increases ... towards the deeper layers" (p. 5)
    assert np.all(np.diff(rel[2:]) > 0)


def test_semenova_fig4c_growth_slows_with_depth(deep_mc):
    # Lamerey diagram: S_n / S_{n-1} falls towards 1 as S_n approaches the diagonal
    _, _, v, se_v = mean_var_se(deep_mc[3])
    ratio = v[1:] / v[:-1]
    assert ratio[1] > 2.0 and ratio[-1] < 0.75 * ratio[1]


@pytest.mark.parametrize("variance", [1e-3, 3e-3])
def test_semenova_fig4d_taylor_error_falls_in_pairs(variance):
    """Error of Eq. 12 vs the exact Gaussian variance at the inflection x~ = 1/2: every even
    derivative vanishes there, so orders 2k-1 and 2k give the same value (p. 6)."""
    act = get_activation("shifted_sigmoid(alpha=3)")
    T = activation_taylor_coefficients(act, 0.5, 15)
    V = gaussian_central_moments(variance, 30)
    _, exact = gauss_hermite_mean_variance(act.f, 0.5, variance)
    err = np.array([abs(nonlinear_variance_order_M(T[: M + 1], V) / exact - 1) for M in range(1, 16)])
    np.testing.assert_allclose(err[1::2], err[0:-1:2], rtol=1e-9)  # M = 2k equals M = 2k - 1
    odd = err[0::2]
    assert np.all(np.diff(odd) < 0) and err[-1] < 1e-3 * err[0]


def test_semenova_fig4d_taylor_series_is_asymptotic():
    """At larger variance (alpha^2 Var ~ 0.1) the sequence still falls globally but later orders
    get worse again: with Gaussian V_m (V_2m = (2m-1)!! Var^m) the series diverges, as the
    paper remarks for Fig. 4d (p. 6)."""
    act = get_activation("shifted_sigmoid(alpha=3)")
    T = activation_taylor_coefficients(act, 0.5, 15)
    V = gaussian_central_moments(1e-2, 30)
    _, exact = gauss_hermite_mean_variance(act.f, 0.5, 1e-2)
    err = np.array([abs(nonlinear_variance_order_M(T[: M + 1], V) / exact - 1) for M in range(1, 16)])
    assert err.min() < 0.05 * err[0] and err[-1] > 2 * err.min()


def test_semenova_fig4d_network_taylor_pairs():
    # the same pairing through a 6-layer network (mean stays at 1/2 by symmetry)
    act = "shifted_sigmoid(alpha=3)"
    gh = symmetric_network_moments([0.5], act, 6, 200, 1e-4, method="gauss_hermite")["var_output"][-1, 0]
    err = np.array([abs(symmetric_network_moments([0.5], act, 6, 200, 1e-4, method="taylor", order=M)
                        ["var_output"][-1, 0] / gh - 1) for M in range(1, 16)])
    np.testing.assert_allclose(err[1::2], err[0:-1:2], rtol=1e-6)
    assert np.all(np.diff(err[0::2]) < 0) and err[-1] < 1e-5
