"""Moment propagation (refnet.propagation.moments) and its predicted accuracy.

Exact where the answer is known (zero noise, linear networks, single neurons, Gaussian argmax
probabilities); against Monte-Carlo with bounds from its standard errors elsewhere.
"""
import math

import numpy as np
import pytest
from scipy.special import ndtr

from refnet.activations import Activation, sigmoid
from refnet.errors import ConfigError
from refnet.model import Params, forward, init_params, mlp
from refnet.noise import NOISE_TYPES, NoiseConfig, NoiseSpec, noise_config
from refnet.propagation.gaussian_argmax import (gaussian_argmax_probability,
                                                rank_one_argmax_probability)
from refnet.propagation.moments import (layer_moments, normal_panel_rule, predicted_accuracy,
                                        predicted_accuracy_curve)
from refnet.propagation.neuron_moments import (PROBIT_SCALE, gauss_hermite_activation_moments,
                                               probit_gaussian_moments)


def small_net(sizes=(6, 12, 10, 4), hidden="sigmoid", scale=3.0, seed=0):
    """A torch-initialised net with weights x ``scale`` so the sigmoids are used nonlinearly."""
    arch = mlp(sizes, hidden, "identity")
    p = init_params(arch, "torch", rng=seed)
    return arch, Params(tuple(scale * w for w in p.W), tuple(scale * b for b in p.b))


# --- single neurons -------------------------------------------------------------------------
PROBIT = Activation("probit", lambda z: ndtr(PROBIT_SCALE * np.asarray(z)),
                    lambda z: PROBIT_SCALE * np.exp(-0.5 * (PROBIT_SCALE * np.asarray(z)) ** 2)
                    / math.sqrt(2 * math.pi), lambda z: None, None)
GRID_MU, GRID_V = np.meshgrid(np.linspace(-6, 6, 25), [0.0, 1e-3, 0.1, 1.0, 4.0, 9.0])


def test_gauss_hermite_equals_closed_form_for_the_probit_surrogate():
    gh = gauss_hermite_activation_moments(PROBIT, GRID_MU, GRID_V, n_nodes=120)
    cf = probit_gaussian_moments(GRID_MU, GRID_V)
    for a, b in zip(gh, cf):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)


def test_sigmoid_moments_within_the_probit_surrogates_error():
    """|E g1 - E g2| <= sup |g1 - g2|: the closed form is off by at most the surrogate's error."""
    z = np.linspace(-40, 40, 400001)
    s = sigmoid(z)
    phi = ndtr(PROBIT_SCALE * z)
    d0 = np.abs(s - phi).max()
    d2 = np.abs(s * s - phi * phi).max()
    d1 = np.abs(s * (1 - s) - PROBIT.d1(z)).max()
    gh = gauss_hermite_activation_moments("sigmoid", GRID_MU, GRID_V, n_nodes=120)
    cf = probit_gaussian_moments(GRID_MU, GRID_V)
    for a, b, bound in zip(gh, cf, (d0, d2, d1)):
        assert np.abs(a - b).max() <= bound + 1e-12
    assert 0.01 < d0 < 0.02  # the surrogate is an approximation, not the sigmoid


@pytest.mark.parametrize("mu,v", [(0.3, 0.5), (-2.0, 4.0), (4.0, 9.0), (0.0, 16.0), (-6.0, 25.0),
                                  (1.0, 0.0)])
def test_gauss_hermite_sigmoid_matches_adaptive_quadrature(mu, v):
    """The documented accuracy: 24 nodes within 2e-4 up to variance 9; 96 within 1e-5 to 25."""
    from scipy.integrate import quad
    if v == 0:
        ref = [sigmoid(mu), sigmoid(mu) ** 2, sigmoid(mu) * (1 - sigmoid(mu))]
    else:
        def dens(z):
            return math.exp(-(z - mu) ** 2 / (2 * v)) / math.sqrt(2 * math.pi * v)
        ref = [quad(lambda z: g(z) * dens(z), -80, 80, epsabs=1e-14, limit=400)[0]
               for g in (sigmoid, lambda z: sigmoid(z) ** 2,
                         lambda z: sigmoid(z) * (1 - sigmoid(z)))]
    for n, tol, v_max in ((24, 2e-4, 9.0), (96, 1e-5, 25.0)):
        if v <= v_max:
            got = gauss_hermite_activation_moments("sigmoid", np.array(mu), np.array(v), n_nodes=n)
            np.testing.assert_allclose(got, ref, rtol=0, atol=tol)


def test_panel_rule_is_a_probability_rule():
    """Positive weights summing to 1, and the mean and variance of N(0, 1) exactly."""
    for n, split in ((16, None), (9, None), (16, -1.0), (16, -30.0), (64, -1.5), (1, None)):
        t, w = normal_panel_rule(n, split)
        assert np.all(w > 0) and abs(w.sum() - 1) < 1e-14
        assert np.all(np.isfinite(t))
        assert abs(w @ t) < 1e-14 and abs(w @ t ** 2 - 1) < 1e-14


# --- Gaussian argmax probabilities -----------------------------------------------------------
def test_rank_one_argmax_is_exact():
    rng = np.random.default_rng(1)
    n, K = 40, 5
    c, u = rng.normal(size=(n, K)), rng.normal(size=(n, K))
    u[0] = 0.7  # parallel lines: the ordering of c decides
    labels = rng.integers(0, K, n)
    p = rank_one_argmax_probability(c, u, labels)
    # exact by brute force: the winner on a fine grid of xi, weighted by the normal density
    xi = np.linspace(-9, 9, 180001)
    dens = np.exp(-xi ** 2 / 2) / math.sqrt(2 * math.pi) * (xi[1] - xi[0])
    for i in range(n):
        win = (c[i][None] + xi[:, None] * u[i][None]).argmax(1) == labels[i]
        assert abs(p[i] - dens[win].sum()) < 2e-4
    assert p[0] == float(c[0].argmax() == labels[0])


def test_gaussian_argmax_matches_sampling():
    rng = np.random.default_rng(2)
    n, K, S = 30, 6, 40000
    mean = rng.normal(size=(n, K))
    A = rng.normal(size=(n, K, K)) * rng.uniform(0.1, 1.5, (n, 1, 1))
    cov = A @ A.transpose(0, 2, 1)
    labels = rng.integers(0, K, n)
    p = gaussian_argmax_probability(mean, cov, labels)
    Y = mean[:, None] + rng.standard_normal((n, S, K)) @ np.linalg.cholesky(cov).transpose(0, 2, 1)
    ref = (Y.argmax(-1) == labels[:, None]).mean(1)
    se = np.sqrt(ref * (1 - ref) / S) + 1 / S
    # Genz on 128 fixed Sobol points: error well below 1e-2 per input (measured)
    assert np.all(np.abs(p - ref) <= 5 * se + 5e-3)
    assert abs(p.mean() - ref.mean()) <= 5 * np.sqrt((se ** 2).sum()) / n + 1e-3


# --- zero noise, linear networks -------------------------------------------------------------
@pytest.mark.parametrize("preset", ["duque", "semenova"])
def test_zero_noise_is_the_clean_forward(preset):
    arch, P = small_net()
    X = np.random.default_rng(3).normal(size=(20, 6))
    cfg = noise_config(preset, NoiseSpec(), arch.n_layers)
    lm = layer_moments(arch, P, X, cfg)
    _, cache = forward(arch, P, X)
    for l in range(arch.n_layers + 1):
        np.testing.assert_allclose(lm.means[l], cache.A[l], rtol=0, atol=1e-13)
        assert np.all(lm.variances[l] == 0)
    y = np.random.default_rng(4).integers(0, 4, 20)
    p = predicted_accuracy(arch, P, X, y, cfg)
    np.testing.assert_array_equal(p, (cache.A[-1].argmax(1) == y).astype(float))


def exact_linear_moments(arch, P, X, cfg):
    """Mean and full covariance of every layer of a LINEAR network, by the plain recursion
    ``Cov y = (C + m m^T) * (1 + s_MU I)(1 + s_MC) + s_AU I + s_AC 1 1^T - m m^T``."""
    layers = cfg.resolved_layers(arch.n_layers)
    s = cfg.spec
    out = []
    for x in X:
        m, C = x.astype(float), np.zeros((len(x), len(x)))
        per = []
        for l in range(arch.n_layers + 1):
            if l > 0:
                m, C = P.W[l - 1] @ m + P.b[l - 1], P.W[l - 1] @ C @ P.W[l - 1].T
            if l in layers:
                n = len(m)
                S2 = (C + np.outer(m, m)) * (1 + s.mul_unc * np.eye(n)) * (1 + s.mul_cor)
                C = S2 + s.add_unc * np.eye(n) + s.add_cor - np.outer(m, m)
            per.append((m, C))
        out.append(per)
    return out


LINEAR_SPECS = [NoiseSpec(add_unc=0.3), NoiseSpec(add_cor=0.2), NoiseSpec(0.3, 0.2, 0, 0),
                NoiseSpec(mul_unc=0.4), NoiseSpec(mul_cor=0.5), NoiseSpec(0.1, 0.2, 0.3, 0.4)]


@pytest.mark.parametrize("spec", LINEAR_SPECS)
@pytest.mark.parametrize("preset,position", [("duque", "post"), ("semenova", "post"),
                                             ("duque", "pre")])
def test_linear_network_moments_are_exact(spec, preset, position):
    arch, P = small_net((5, 7, 6, 3), hidden="identity", scale=1.0)
    X = np.random.default_rng(5).normal(size=(4, 5))
    base = noise_config(preset, spec, arch.n_layers)
    cfg = NoiseConfig(spec, base.layers, position)
    lm = layer_moments(arch, P, X, cfg)
    ref = exact_linear_moments(arch, P, X, cfg)
    for i in range(len(X)):
        for l in range(arch.n_layers + 1):
            m, C = ref[i][l]
            np.testing.assert_allclose(lm.means[l][i], m, rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(lm.variances[l][i], np.diag(C), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(lm.output_covariance[i], ref[i][-1][1], rtol=1e-10, atol=1e-12)


def test_linear_network_mul_cor_on_one_layer_is_exact():
    arch, P = small_net((5, 7, 6, 3), hidden="identity", scale=1.0)
    X = np.random.default_rng(6).normal(size=(4, 5))
    cfg = NoiseConfig(NoiseSpec(mul_cor=0.5), (2,), "post")
    lm = layer_moments(arch, P, X, cfg)
    ref = exact_linear_moments(arch, P, X, cfg)
    for i in range(len(X)):
        np.testing.assert_allclose(lm.output_covariance[i], ref[i][-1][1], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("spec", [NoiseSpec(add_unc=0.5), NoiseSpec(add_cor=0.5),
                                  NoiseSpec(0.3, 0.4, 0, 0)])
def test_linear_network_accuracy_is_the_exact_gaussian_one(spec):
    """Additive noise on a linear network: the logits ARE Gaussian; compare with sampling."""
    arch, P = small_net((5, 7, 6, 3), hidden="identity", scale=1.0)
    rng = np.random.default_rng(7)
    X, y = rng.normal(size=(6, 5)), rng.integers(0, 3, 6)
    cfg = noise_config("semenova", spec, arch.n_layers)
    p = predicted_accuracy(arch, P, X, y, cfg)
    K = 20000
    out, _ = forward(arch, P, np.repeat(X, K, axis=0), cfg, rng=8)
    ref = (out.argmax(1).reshape(6, K) == y[:, None]).mean(1)
    se = np.sqrt(ref * (1 - ref) / K) + 1 / K
    assert np.all(np.abs(p - ref) <= 5 * se + 5e-3)


# --- a nonlinear net against Monte-Carlo -----------------------------------------------------
def mc_layer_stats(arch, P, X, cfg, K, seed):
    """Per-layer means, variances and their standard errors from K noisy passes per input."""
    _, cache = forward(arch, P, np.repeat(X, K, axis=0), cfg, rng=seed)
    out = []
    for A in cache.A:
        A = A.reshape(len(X), K, -1)
        m, v = A.mean(1), A.var(1, ddof=1)
        se_m = np.sqrt(v / K)
        se_v = ((A - m[:, None]) ** 2).std(1) / np.sqrt(K)
        out.append((m, v, se_m, se_v))
    return out


@pytest.mark.parametrize("noise_type", NOISE_TYPES)
@pytest.mark.parametrize("layers,variance", [((1, 2), 0.2), ((1,), 1.0)])
def test_hidden_moments_match_monte_carlo(noise_type, layers, variance):
    """Noise after hidden layers: layer 1's signal is Gaussian-exact and layer 2's per-neuron
    moments are Gauss-Hermite-exact (uncorrelated noise) or quadrature-exact (correlated), so
    every hidden neuron must agree with Monte-Carlo within its standard errors (plus 1e-4 for
    the quadratures). Noise on layer 1 alone leaves layer 2's nonlinear variance bare."""
    arch, P = small_net()
    X = np.random.default_rng(9).normal(size=(5, 6))
    cfg = NoiseConfig(NoiseSpec.single(noise_type, variance), layers, "post")
    lm = layer_moments(arch, P, X, cfg, quadrature_nodes=64)
    mc = mc_layer_stats(arch, P, X, cfg, 40000, 10)
    for l in (1, 2):
        m, v, se_m, se_v = mc[l]
        assert np.all(np.abs(lm.means[l] - m) <= 5 * se_m + 1e-4), l
        assert np.all(np.abs(lm.variances[l] - v) <= 5 * se_v + 1e-4), l


@pytest.mark.parametrize("noise_type", NOISE_TYPES)
def test_output_moments_close_to_monte_carlo(noise_type):
    """The output mean is exact up to Monte-Carlo error; the output variance carries the
    first-order cross-covariance closure: within 5 % of Monte-Carlo here (measured <= 1.5 %)."""
    arch, P = small_net()
    X = np.random.default_rng(11).normal(size=(5, 6))
    cfg = noise_config("duque", NoiseSpec.single(noise_type, 0.2), arch.n_layers)
    lm = layer_moments(arch, P, X, cfg, quadrature_nodes=64)
    m, v, se_m, se_v = mc_layer_stats(arch, P, X, cfg, 40000, 12)[-1]
    assert np.all(np.abs(lm.means[-1] - m) <= 5 * se_m + 1e-4)
    assert np.all(np.abs(lm.variances[-1] / v - 1) <= 0.05 + 5 * se_v / v)


# --- the accuracy curve on a small trained net ------------------------------------------------
@pytest.fixture(scope="module")
def trained_blobs(make_blobs_net):
    return make_blobs_net(seed=13, d=20, k=4, n=1600, n_train=1200, hidden=(32, 32),
                          scale=0.6, epochs=15)


@pytest.mark.parametrize("noise_type", NOISE_TYPES)
def test_predicted_curve_agrees_with_monte_carlo(trained_blobs, noise_type):
    """Issue 14's target (1 pp) on a small trained net, with Monte-Carlo's own 3 SE on top."""
    from refnet.montecarlo import accuracy_sweep
    arch, P, X, y = trained_blobs
    v = [1e-3, 3e-2, 0.3, 1.0]
    pred = predicted_accuracy_curve(arch, P, X, y, "duque", noise_type, v)
    reps = 30
    mc = accuracy_sweep(arch, P, X, y, "duque", noise_types=(noise_type,), variances=v,
                        repetitions=reps, rng=14)
    se = mc.std[0] / math.sqrt(reps)
    assert pred.clean_accuracy == mc.clean_accuracy
    assert 0.6 < mc.clean_accuracy < 0.98  # noise must matter for the test to mean anything
    assert np.all(np.abs(pred.accuracy - mc.mean[0]) <= 0.01 + 3 * se)
    assert mc.mean[0, -1] < mc.clean_accuracy - 0.03


def test_curve_is_deterministic_and_checks_its_arguments(trained_blobs):
    arch, P, X, y = trained_blobs
    a = predicted_accuracy_curve(arch, P, X[:50], y[:50], "duque", "add_cor", [0.1, 0.5])
    b = predicted_accuracy_curve(arch, P, X[:50], y[:50], "duque", "add_cor", [0.1, 0.5])
    c = predicted_accuracy_curve(arch, P, X[:50], y[:50], "duque", "add_cor", [0.1, 0.5],
                                 chunk=7)
    np.testing.assert_array_equal(a.per_input, b.per_input)
    np.testing.assert_allclose(a.per_input, c.per_input, rtol=0, atol=1e-14)  # BLAS blocking
    with pytest.raises(ConfigError, match="noise_type"):
        predicted_accuracy_curve(arch, P, X, y, "duque", "add_wrong", [0.1])
    with pytest.raises(ConfigError, match="variances"):
        predicted_accuracy_curve(arch, P, X, y, "duque", "add_unc", [-0.1])
    with pytest.raises(ConfigError, match="quadrature_nodes"):
        predicted_accuracy_curve(arch, P, X, y, "duque", "add_unc", [0.1], quadrature_nodes=0)
