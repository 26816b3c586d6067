"""Semenova 2022, Eqs. 14, 15, 29 (trained networks). Fixed seeds throughout."""
import numpy as np
import pytest

from refnet.activations import get_activation
from refnet.model import Params, forward, init_params, mlp
from refnet.noise import NoiseSpec, noise_config
from refnet.propagation import semenova as S
from refnet.propagation.trained import (NetworkStatistics, exp_quartic_density,
                                        fit_exp_quartic, network_statistics, normal_density,
                                        state_density, state_expectations,
                                        trained_network_variances, trained_variance_step,
                                        uniform_density, variance_step_from_weight_statistics,
                                        variances_from_statistics)

D4 = (1e-4, 1e-4, 1e-3, 1e-3)


def test_semenova_eq14_reduces_to_symmetric():
    # one input neuron, W = 1: Eq. 14 from S_1 = 0 is the paper's S_2 = sigma_+^2 + sigma_x^2 u^2
    u = 0.7
    S2 = trained_variance_step(np.ones((200, 1)), 0.0, u, u ** 2, 1.0, *D4)
    assert S2 == pytest.approx(float(S.second_layer_variance(u, *D4)), rel=1e-12)
    # zero noise: no variance; additive part linear in D_A
    assert trained_variance_step(np.ones((5, 4)), 0.0, 0.5, 0.3, 0.2, 0, 0, 0, 0) == 0.0
    a = trained_variance_step(np.ones((5, 4)) / 4, 0.0, 0.5, 0.3, 0.2, 1e-3, 2e-3, 0, 0)
    b = trained_variance_step(np.ones((5, 4)) / 4, 0.0, 0.5, 0.3, 0.2, 2e-3, 4e-3, 0, 0)
    assert b == pytest.approx(2 * a)


def test_semenova_eq14_correlated_needs_row_sums():
    rng = np.random.default_rng(0)
    W = rng.normal(size=(30, 40))
    W0 = W - W.mean()  # mu(W) = 0: correlated noise drops out of Eq. 14
    only_cor = trained_variance_step(W0, 0.0, 0.5, 0.3, 0.2, 0, 1e-3, 0, 1e-3)
    assert abs(only_cor) < 1e-20
    assert trained_variance_step(W0, 0.0, 0.5, 0.3, 0.2, 1e-3, 0, 0, 0) > 0


def test_semenova_eq15_matches_sample_averages():
    rng = np.random.default_rng(1)
    z = rng.normal(0.5, 1.5, 400_000)
    act = get_activation("sigmoid")
    grid = np.linspace(-10, 11, 20001)
    got = state_expectations(act, grid, normal_density(z, grid))
    want = (act.f(z).mean(), (act.f(z) ** 2).mean(), (act.d1(z) ** 2).mean())
    np.testing.assert_allclose(got, want, rtol=3e-3)  # sampling error of the mean/var ~1e-3
    zu = rng.uniform(-1, 2, 400_000)
    got = state_expectations(act, grid, uniform_density(zu, grid))
    want = (act.f(zu).mean(), (act.f(zu) ** 2).mean(), (act.d1(zu) ** 2).mean())
    np.testing.assert_allclose(got, want, rtol=3e-3)


def _sample_exp_quartic(c, lo, hi, n, rng):
    grid = np.linspace(lo, hi, 20001)
    cdf = np.cumsum(exp_quartic_density(c, grid))
    return np.interp(rng.uniform(size=n), cdf / cdf[-1], grid)


@pytest.mark.parametrize("shape", ["normal", "bimodal", "flat"])
def test_semenova_eq29_fit_recovers_density(shape):
    """Eq. 29 covers normal, bimodal and near-uniform p* (p. 10). Samples from a known g:
    the maximum-likelihood fit reproduces g's Eq. 15 integrals within 0.5 % (n = 200000)."""
    rng = np.random.default_rng(2)
    true = {"normal": [-0.78125, -1.5625, -0.78125, 0, 0],       # N(-1, 0.8^2) up to c0
            "bimodal": [0.0, 0.3, 2.0, 0.0, -0.8],               # two modes near +-1.1
            "flat": [0.0, 0.0, 0.0, 0.0, -0.1]}[shape]           # plateau, steep edges
    z = _sample_exp_quartic(true, -5, 5, 200_000, rng)
    c, grid = fit_exp_quartic(z)
    g = exp_quartic_density(c, grid)
    assert np.trapezoid(g, grid) == pytest.approx(1.0, abs=1e-9)
    act = get_activation("sigmoid")
    tg = np.linspace(-5, 5, 20001)
    want = state_expectations(act, tg, exp_quartic_density(true, tg))
    np.testing.assert_allclose(state_expectations(act, grid, g), want, rtol=5e-3)
    if shape == "bimodal":  # the normal approximation misses the slope statistic
        gn, pn = state_density(z, "normal")
        assert abs(state_expectations(act, gn, pn)[2] / want[2] - 1) > 0.05


def test_bad_input():
    with pytest.raises(ValueError, match="coefficients"):
        exp_quartic_density([1, 2], 0.0)
    with pytest.raises(ValueError, match="states"):
        fit_exp_quartic(np.ones(100))
    with pytest.raises(ValueError, match="density"):
        state_density(np.arange(100.0), "cauchy")
    with pytest.raises(ValueError, match="state_grid"):
        state_expectations("sigmoid", np.array([1.0, 0.0]), np.array([1.0, 1.0]))


@pytest.mark.parametrize("output", ["sigmoid", "identity"])
def test_semenova_eq14_trained_network_vs_mc(output):
    """Eq. 14 is a mean-field estimate (one S_n per layer, cross-neuron correlations dropped):
    it predicts the typical output variance, not each neuron's. On a random 50-200-200-10
    sigmoid network we measured a median relative error of ~10 % (sigmoid output) and ~25 %
    (linear output); the test allows 40 % on the median and a factor 3 at the 90 % quantile."""
    rng = np.random.default_rng(3)
    arch = mlp((50, 200, 200, 10), "sigmoid", output)
    P = init_params(arch, "normal", rng=1, std=0.15)
    P = Params((3 * P.W[0],) + P.W[1:], tuple(rng.normal(0, 1, b.shape) for b in P.b))
    X = rng.uniform(0, 1, (30, 50))
    K = 600
    out, _ = forward(arch, P, np.repeat(X, K, 0), noise_config(
        "semenova", NoiseSpec.from_intensities(*D4), 3), rng=4)
    out = out.reshape(30, K, 10)
    m, v = out.mean(1), out.var(1, ddof=1)
    for density in ("exp_quartic", "normal", "uniform"):
        pred = trained_network_variances(arch, P, X, *D4, density=density)["output_variance"](m)
        rel = np.abs(pred / v - 1)
        assert np.median(rel) < 0.4 and np.quantile(rel, 0.9) < 2.0


def test_semenova_eq29_fit_survives_heavy_tails_and_reports_failure():
    """Heavy tails made the undamped Newton step hit a singular matrix (network B's states)."""
    import numpy as np
    import pytest

    from refnet.propagation.trained import exp_quartic_density, fit_exp_quartic

    rng = np.random.default_rng(0)
    s = rng.standard_t(5, size=100_000)  # kurtosis 9: spans about +-15 std
    c, grid = fit_exp_quartic(s)
    p = exp_quartic_density(c, grid)
    for k in (1, 2, 3, 4):  # maximum likelihood matches the first four sample moments
        np.testing.assert_allclose(np.trapezoid(grid ** k * p, grid), np.mean(s ** k),
                                   rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="did not converge"):
        fit_exp_quartic(rng.standard_t(3, size=100_000))  # infinite fourth moment


def _chain_by_steps(arch, P, X, D, density):
    """The Eq. 14-15 chain written out with trained_variance_step, as the driver was before
    it was split into network_statistics and variances_from_statistics."""
    _, cache = forward(arch, P, X)
    S_n, prev, out = 0.0, (float(X.mean()), float(np.mean(X ** 2)), 1.0), []
    for l in range(1, arch.n_layers + 1):
        S_n = trained_variance_step(P.W[l - 1], S_n, *prev, *D)
        out.append(S_n)
        prev = state_expectations(arch.activations[l - 1], *state_density(cache.Z[l - 1], density))
    return np.array(out)


@pytest.mark.parametrize("density", ["exp_quartic", "normal"])
def test_semenova_eq14_from_statistics_is_bitwise(density):
    """The split (statistics once, then any noise) gives the step-by-step chain's bits, and
    one NetworkStatistics serves several noise levels exactly as separate calls do."""
    rng = np.random.default_rng(5)
    arch = mlp((20, 30, 12, 4), "sigmoid", "sigmoid")
    P = init_params(arch, "normal", rng=2, std=0.3)
    X = rng.uniform(0, 1, (40, 20))
    W = P.W[1]
    for D in (D4, (0, 2e-3, 0, 0), (0, 0, 1e-3, 5e-4)):
        assert variance_step_from_weight_statistics(
            W.shape[1], S.weight_mean(W), S.weight_mean_square(W), 0.1, 0.5, 0.3, 0.2, *D
        ) == trained_variance_step(W, 0.1, 0.5, 0.3, 0.2, *D)
    stats = network_statistics(arch, P, X, density)
    assert isinstance(stats, NetworkStatistics) and stats.fan_in == (20, 30, 12)
    with pytest.raises(AttributeError):
        stats.density = "normal"  # frozen: one statistics object, shared safely
    y = rng.uniform(0.1, 0.9, (40, 4))
    for D in (D4, (0, 2e-3, 0, 0), (3e-4, 0, 0, 1e-3)):
        a = variances_from_statistics(stats, *D)
        b = trained_network_variances(arch, P, X, *D, density=density)
        np.testing.assert_array_equal(a["S"], _chain_by_steps(arch, P, X, D, density))
        np.testing.assert_array_equal(a["S"], b["S"])
        np.testing.assert_array_equal(a["expectations"], b["expectations"])
        np.testing.assert_array_equal(a["output_variance"](y), b["output_variance"](y))
    with pytest.raises(ValueError):
        trained_network_variances(arch, P, X, -1.0)
