"""Duque 2024, Eqs. 1-3, 5, 6. Statistical checks: fixed seeds, z = 5 (false-positive rate
~6e-7 per comparison) and a chi-square test at p = 1e-6."""
import math

import numpy as np
import pytest
from scipy import integrate, stats

from refnet.activations import get_activation
from refnet.model import Params, forward, mlp
from refnet.noise import LayerNoise, NoiseConfig, NoiseSpec
from refnet.propagation import duque as D


def test_duque_eq1_matches_refnet_forward(rng):
    # noise after the hidden activation (Duque preset), the next layer's pre-activation is Eq. 1
    arch = mlp((3, 4, 2), "sigmoid", "identity")
    P = Params((rng.normal(size=(4, 3)), rng.normal(size=(2, 4))), (rng.normal(size=4), rng.normal(size=2)))
    X = rng.normal(size=(5, 3))
    xi = rng.standard_normal((5, 4))
    spec = NoiseSpec(add_unc=0.3)
    _, cache = forward(arch, P, X, NoiseConfig(spec, (1,), "post"),
                       draws=[None, LayerNoise(add_unc=xi), None])
    a1 = get_activation("sigmoid").f(cache.Z[0])
    z2 = D.noisy_preactivation(P.W[1], a1, math.sqrt(0.3) * xi, P.b[1])
    np.testing.assert_allclose(z2, cache.Z[1], rtol=1e-13)


def test_duque_eq2_decomposition(rng):
    w, a, n, b = rng.normal(size=(3, 6)), rng.normal(size=(4, 6)), rng.normal(size=(4, 6)), rng.normal(size=3)
    np.testing.assert_allclose(D.noisy_preactivation(w, a, n, b),
                               D.preactivation_mean(w, a, b) + D.error_factor(w, n), rtol=1e-13)


def test_duque_eq3_cancels_when_row_sums_vanish(rng):
    w = rng.normal(size=(3, 6))
    n = rng.normal(size=(4, 1))
    np.testing.assert_allclose(D.correlated_error_factor(w, n), D.error_factor(w, n), rtol=1e-13)
    w0 = w - w.mean(axis=1, keepdims=True)  # each row sums to zero
    assert np.max(np.abs(D.correlated_error_factor(w0, n))) < 1e-14
    assert np.max(np.abs(D.error_factor(w0, rng.normal(size=(4, 6))))) > 0.1  # not for uncorrelated


def test_duque_eq5_mean_matches_mc():
    rng = np.random.default_rng(4)
    w, a, b = rng.normal(size=(3, 8)), rng.uniform(size=(1, 8)), rng.normal(size=3)
    n = 200_000
    noise = rng.normal(0, math.sqrt(0.2), (n, 8))
    z = D.noisy_preactivation(w, np.repeat(a, n, 0), noise, b)
    se = z.std(0) / math.sqrt(n)
    assert np.all(np.abs(z.mean(0) - D.preactivation_mean(w, a, b)[0]) <= 5 * se)


@pytest.mark.parametrize("correlated", [False, True])
def test_duque_error_factor_variance_mc(correlated):
    rng = np.random.default_rng(5)
    w, n = rng.normal(size=(3, 8)), 200_000
    noise = rng.normal(0, math.sqrt(0.2), (n, 1 if correlated else 8))
    e = D.error_factor(w, noise)
    var = e.var(0, ddof=1)
    se = var * math.sqrt(2 / n)  # Gaussian error factor
    assert np.all(np.abs(var - D.error_factor_variance(w, 0.2, correlated)) <= 5 * se)


@pytest.mark.parametrize("spec,mu", [("sigmoid", 0.0), ("sigmoid", 2.0), ("sigmoid", -4.0),
                                     ("shifted_sigmoid(alpha=4)", 0.4), ("identity", 1.0)])
def test_duque_eq6_normalised(spec, mu):
    act = get_activation(spec)
    sd = math.sqrt(0.2)
    lo, hi = act.f(np.array(mu - 12 * sd)), act.f(np.array(mu + 12 * sd))
    mode = float(act.f(np.array(mu)))
    total, _ = integrate.quad(lambda a: float(D.activation_pdf(a, act, mu, 0.2)), float(lo), float(hi),
                              points=[mode], limit=500, epsabs=1e-12, epsrel=1e-10)
    assert total == pytest.approx(1.0, abs=1e-7)


@pytest.mark.parametrize("mu", [0.0, 1.0, 2.5])
def test_duque_eq6_matches_histogram(mu):
    """Histogram of sigmoid(N(mu, 0.2)) (0.2 is a variance) vs bin integrals of Eq. 6.

    Pearson chi-square against its 1 - 1e-6 quantile: false-positive rate 1e-6."""
    rng = np.random.default_rng(8)
    n = 200_000
    a = get_activation("sigmoid").f(rng.normal(mu, math.sqrt(0.2), n))
    edges = np.quantile(a, np.linspace(0, 1, 41))[1:-1]  # 40 equiprobable bins of the data
    edges = np.concatenate([[0.0], edges, [1.0]])
    counts, _ = np.histogram(a, edges)
    expected = np.array([integrate.quad(lambda t: float(D.activation_pdf(t, "sigmoid", mu, 0.2)),
                                        lo, hi, epsabs=1e-13)[0]
                         for lo, hi in zip(edges[:-1], edges[1:])]) * n
    chi2 = np.sum((counts - expected) ** 2 / expected)
    assert chi2 < stats.chi2.ppf(1 - 1e-6, df=len(counts) - 1)
    # a wrong reading (0.2 as a standard deviation) is rejected by the same test
    wrong = np.array([integrate.quad(lambda t: float(D.activation_pdf(t, "sigmoid", mu, 0.04)),
                                     lo, hi, epsabs=1e-13)[0]
                      for lo, hi in zip(edges[:-1], edges[1:])]) * n
    assert np.sum((counts - wrong) ** 2 / np.maximum(wrong, 1e-9)) > stats.chi2.ppf(1 - 1e-6, 39)


def test_duque_eq6_fig3a_variance_shrinks_away_from_origin():
    # Fig. 3a: input distributions centred further from 0 give outputs of smaller variance
    a = np.linspace(1e-6, 1 - 1e-6, 200_001)
    var = []
    for mu in (0.0, 1.0, 2.0, 4.0):
        p = D.activation_pdf(a, "sigmoid", mu, 0.2)
        m = np.trapezoid(a * p, a)
        var.append(np.trapezoid((a - m) ** 2 * p, a))
    assert all(v1 > v2 for v1, v2 in zip(var, var[1:]))


def test_duque_bad_input():
    with pytest.raises(ValueError, match="preactivation_variance"):
        D.activation_pdf(0.5, "sigmoid", 0.0, 0.0)
    with pytest.raises(ValueError, match="noise_variance"):
        D.error_factor_variance(np.ones((2, 2)), -0.1, False)
