"""Semenova 2022, Eqs. 1-13 and 16-23: values, properties and Monte-Carlo checks.

Statistical checks use fixed seeds and z = 5 (two-sided false-positive rate ~6e-7 per
comparison under a normal approximation of the estimator).
"""
import math

import hypothesis
import numpy as np
from hypothesis import strategies as st
import pytest

from refnet.activations import get_activation
from refnet.model import Params, forward, mlp
from refnet.noise import LayerNoise, NoiseSpec, apply_noise, noise_config
from refnet.propagation import semenova as S
from refnet.propagation.taylor import (activation_taylor_coefficients, gauss_hermite_mean_variance,
                                       gaussian_central_moments)

Z = 5.0
D4 = dict(D_A_U_intensity=1e-4, D_A_C_intensity=2e-4, D_M_U_intensity=1e-3, D_M_C_intensity=3e-3)


def _var_se(samples, axis=0):
    """Sample variance and its standard error sqrt((m4 - s^4) / n)."""
    n = samples.shape[axis]
    d = samples - samples.mean(axis=axis, keepdims=True)
    s2 = (d ** 2).mean(axis=axis)
    return samples.var(axis=axis, ddof=1), np.sqrt(((d ** 4).mean(axis=axis) - s2 ** 2) / n)


def _draw(rng, T, I):
    return (rng.standard_normal((T, I)), rng.standard_normal((T, 1)),
            rng.standard_normal((T, I)), rng.standard_normal((T, 1)))


def test_semenova_eq1_eq2_match_forward(rng):
    arch = mlp((3, 5, 2), "shifted_sigmoid(alpha=3)", "identity")
    W = (rng.normal(size=(5, 3)), rng.normal(size=(2, 5)))
    b = (rng.normal(size=5), rng.normal(size=2))
    X = rng.uniform(size=(4, 3))
    out, cache = forward(arch, Params(W, b), X)
    x_t = S.internal_state(W[0], X, b[0])
    np.testing.assert_allclose(x_t, cache.Z[0], rtol=1e-15)
    np.testing.assert_allclose(S.neuron_output(arch.activations[0], x_t), cache.A[1], rtol=1e-15)


def test_semenova_eq3_matches_refnet_noise(rng):
    x = rng.uniform(size=(6, 4))
    xi = _draw(rng, 6, 4)
    y = S.noise_operator(x, *D4.values(), *xi)
    spec = NoiseSpec.from_intensities(*D4.values())
    draws = LayerNoise(add_unc=xi[0], add_cor=xi[1], mul_unc=xi[2], mul_cor=xi[3])
    np.testing.assert_allclose(y, apply_noise(x, spec, draws), rtol=1e-14)
    with pytest.raises(ValueError, match="D_A_U_intensity"):
        S.noise_operator(x, -1.0, 0, 0, 0, *xi)


def test_semenova_eq4_snr():
    assert S.signal_to_noise_ratio(2.0, 4.0) == 1.0
    np.testing.assert_allclose(S.signal_to_noise_ratio([1.0, 3.0], [0.25, 9.0]), [2.0, 1.0])
    with pytest.raises(ValueError, match="variance"):
        S.signal_to_noise_ratio(1.0, -1.0)


def _single_neuron_samples(seed, n=400_000):
    """x = sigmoid(x~), x~ ~ N(0.3, 0.5), then the four noises of Eq. 3 (D4)."""
    rng = np.random.default_rng(seed)
    act = get_activation("sigmoid")
    x = act.f(rng.normal(0.3, math.sqrt(0.5), (n, 1)))
    y = S.noise_operator(x, *D4.values(), *_draw(rng, n, 1))[:, 0]
    E_x, Var_x = gauss_hermite_mean_variance(act.f, 0.3, 0.5)
    return y, float(E_x), float(Var_x)


def test_semenova_eq5_single_neuron_mc():
    y, E_x, F = _single_neuron_samples(11)
    var, se = _var_se(y)
    assert abs(var - S.neuron_output_variance(E_x, F, *D4.values())) <= Z * se


def test_semenova_eq16_eq17_single_neuron_mc():
    y, E_x, Var_x = _single_neuron_samples(12)
    assert abs(y.mean() - S.output_expectation(E_x)) <= Z * y.std() / math.sqrt(y.size)
    var, se = _var_se(y)
    assert abs(var - S.output_variance(E_x, Var_x, *D4.values())) <= Z * se
    # Eq. 17 is Eq. 5 written out: (1 + sigma_x^2) = (1 + 2 D_M^U)(1 + 2 D_M^C)
    assert S.output_variance(0.7, 0.01, *D4.values()) == pytest.approx(
        S.neuron_output_variance(0.7, 0.01, *D4.values()), rel=1e-14)


def test_semenova_eq6_exact_for_symmetric_layer():
    """A layer of I identical clean outputs x (random, shared), Eq. 3 noise, W = 1/I."""
    rng = np.random.default_rng(3)
    n, I = 200_000, 40
    x = rng.normal(0.6, 0.05, (n, 1)) * np.ones((1, I))
    y = S.noise_operator(x, *D4.values(), *_draw(rng, n, I))
    W = np.full((3, I), 1.0 / I)
    x_next = S.internal_state(W, y, np.zeros(3))[:, 0]
    var, se = _var_se(x_next)
    N_C, N_U, N_prev = S.noise_terms(W, np.full(I, 0.6), np.full(I, 0.05 ** 2), *D4.values())
    assert abs(var - (N_C + N_U + N_prev)) <= Z * se
    # Eq. 7 drops N^U; here it is a few percent of the total, i.e. visible at this precision
    assert N_U > 0 and N_U / (N_C + N_prev) < 0.1


def test_semenova_eq6_properties(rng):
    W = rng.normal(0.1, 0.3, (20, 30))
    E_y, F = rng.uniform(0, 1, 30), rng.uniform(0, 0.01, 30)
    zero = S.noise_terms(W, E_y, F, 0, 0, 0, 0)
    assert zero[0] == 0 and zero[1] == 0  # no noise -> no new variance
    assert zero[2] == pytest.approx(W.shape[1] ** 2 * W.mean() ** 2 * F.mean())
    # linear in the additive intensities
    a1 = S.noise_terms(W, E_y, 0 * F, 1e-3, 2e-3, 0, 0)
    a2 = S.noise_terms(W, E_y, 0 * F, 2e-3, 4e-3, 0, 0)
    np.testing.assert_allclose(np.array(a2), 2 * np.array(a1), rtol=1e-14)
    # correlated terms follow row sums (mu^2), uncorrelated ones sums of squares (eta):
    W0 = W - W.mean()  # zero mean: correlated contributions vanish
    N_C, N_U, _ = S.noise_terms(W0, E_y, F, *D4.values())
    assert abs(N_C) < 1e-25 and N_U > 0
    N_C1, N_U1, _ = S.noise_terms(W, E_y, F, *D4.values())
    N_C2, N_U2, _ = S.noise_terms(3 * W, E_y, F, *D4.values())
    assert N_C2 == pytest.approx(9 * N_C1) and N_U2 == pytest.approx(9 * N_U1)


def test_semenova_eq7_neglects_uncorrelated():
    I = 200
    W = np.full((I, I), 1.0 / I)
    N_C, N_U, N_prev = S.noise_terms(W, np.full(I, 0.5), np.full(I, 1e-3), *D4.values())
    full, approx = N_C + N_U + N_prev, S.internal_state_variance_approx(N_C, N_prev)
    assert approx < full and (full - approx) / full < 1.0 / I  # N^U = O(1/I)


def test_semenova_eq8_eq23_input_layer():
    """Reading of Eq. 23 settled by Monte-Carlo: the input neuron's output is noisy, so
    Var(x~_2) = sigma_+^2 + sigma_x^2 u^2 (not 0)."""
    arch = mlp((1, 20, 1), "shifted_sigmoid(alpha=4)", "identity")
    P = Params((np.ones((20, 1)), np.full((1, 20), 1 / 20)), (np.zeros(20), np.zeros(1)))
    u = np.array([0.0, 0.3, 0.8])
    K = 100_000
    cfg = noise_config("semenova", NoiseSpec.from_intensities(*D4.values()), 2)
    _, cache = forward(arch, P, np.repeat(u, K)[:, None], cfg, rng=5)
    x2 = cache.Z[0][:, 0].reshape(3, K)
    var, se = _var_se(x2, axis=1)
    want = S.second_layer_variance(u, *D4.values())
    assert np.all(np.abs(var - want) <= Z * se)
    var_x1, var_x2 = S.initial_variances(u, *D4.values())
    assert np.all(var_x1 == 0) and np.all(var_x2 == want)


def test_semenova_eq9_linear_activation_exact():
    m, v = np.array([-1.0, 0.5, 3.0]), np.array([0.1, 0.2, 0.3])
    np.testing.assert_array_equal(S.nonlinear_variance_first_order("identity", m, v), v)
    # for a smooth f the first-order error vanishes as Var -> 0, relative error O(Var)
    for var in (1e-2, 1e-4):
        _, exact = gauss_hermite_mean_variance(get_activation("sigmoid").f, 0.8, var)
        rel = abs(S.nonlinear_variance_first_order("sigmoid", 0.8, var) / exact - 1)
        assert rel < 2 * var


def test_semenova_eq10_eq11_reduce():
    slope, prev = np.array([0.5, 1.0, 1.5]), np.array([1e-3, 2e-3, 3e-3])
    np.testing.assert_allclose(S.symmetric_variance_recurrence(0.0, 0.0, slope, prev),
                               S.geometric_variance_step(slope, prev), rtol=1e-15)
    assert np.all(S.symmetric_variance_recurrence(1e-4, 1e-3, slope, prev)
                  > S.geometric_variance_step(slope, prev))


@pytest.mark.parametrize("alpha,behaviour", [(1.5, "shrinks"), (2.0, "constant"), (3.0, "grows")])
def test_semenova_eq11_bifurcation_at_alpha_2(alpha, behaviour):
    """f'(z) <= alpha/2 with equality at the inflection z = 1/2: S_n shrinks or stays for
    alpha <= 2 at every state, and grows at the inflection for alpha > 2."""
    act = get_activation(f"shifted_sigmoid(alpha={alpha})")
    z = np.linspace(-1, 2, 301)
    S_n = np.full_like(z, 1e-3)
    for _ in range(10):
        S_n = S.geometric_variance_step(act.d1(z), S_n)
    mid = S_n[150]  # z = 0.5
    if behaviour == "shrinks":
        assert np.all(S_n < 1e-3)
    elif behaviour == "constant":
        assert mid == pytest.approx(1e-3) and np.all(S_n <= 1e-3 * (1 + 1e-12))
    else:
        assert mid == pytest.approx(1e-3 * 1.5 ** 20)


def test_semenova_eq12_exact_for_cubic():
    mu, var = np.array([0.3, 0.5]), np.array([0.01, 0.04])
    T = activation_taylor_coefficients("cubic", mu, 3)
    V = gaussian_central_moments(var, 6)
    _, exact = gauss_hermite_mean_variance(get_activation("cubic").f, mu, var, n_nodes=8)
    np.testing.assert_allclose(S.nonlinear_variance_order_M(T, V), exact, rtol=1e-11)
    # orders above the degree add nothing
    T6 = activation_taylor_coefficients("cubic", mu, 6)
    np.testing.assert_allclose(S.nonlinear_variance_order_M(T6, gaussian_central_moments(var, 12)),
                               exact, rtol=1e-11)


def test_semenova_eq13_equals_eq12():
    """Eq. 13's recurrence reaches Eq. 12 at every order (Eqs. 27-28 have their own test in
    test_propagation_taylor.py)."""
    mu, var = np.array([0.45, 0.5]), np.array([2e-3, 5e-3])
    T = activation_taylor_coefficients("shifted_sigmoid(alpha=3)", mu, 15)
    V = gaussian_central_moments(var, 30)
    F = 0.0
    for M in range(1, 16):
        F = S.nonlinear_variance_order_M_recurrent(F, T[: M + 1], V)
        np.testing.assert_allclose(F, S.nonlinear_variance_order_M(T[: M + 1], V), rtol=1e-9)


def test_semenova_eq18_eq19_mc():
    rng = np.random.default_rng(21)
    n, I = 200_000, 12
    W = rng.normal(0.05, 0.4, (4, I))
    m = rng.uniform(0.2, 0.9, I)
    A = rng.normal(0, 0.05, (I, I))
    C = A @ A.T
    x = m + rng.standard_normal((n, I)) @ np.linalg.cholesky(C).T
    y = S.noise_operator(x, *D4.values(), *_draw(rng, n, I))
    x_next = y @ W.T
    var, se = _var_se(x_next)
    assert np.all(np.abs(var - S.internal_state_variance_exact(W, m, C, *D4.values())) <= Z * se)
    # Eq. 18 is the identity Var(W y) = diag(W Cov(y) W^T)
    np.testing.assert_allclose(S.internal_state_variance_from_outputs(W, np.cov(y.T)), var,
                               rtol=1e-10)


def test_semenova_eq20_symmetric_equals_eq19():
    I, m, v = 50, 0.4, 2e-3
    W = np.full((7, I), 1.0 / I)
    exact = S.internal_state_variance_exact(W, np.full(I, m), np.full((I, I), v), *D4.values())
    mf = S.internal_state_variance_mean_field(W, m, v, *D4.values())
    np.testing.assert_allclose(exact, mf, rtol=1e-12)


def test_semenova_eq21_large_width_limit():
    m, v = 0.4, 2e-3
    lim = S.internal_state_variance_symmetric(m, v, D4["D_A_C_intensity"], D4["D_M_C_intensity"])
    errs = []
    for I in (10, 100, 1000):
        mf = S.internal_state_variance_mean_field(np.full((2, I), 1.0 / I), m, v, *D4.values())
        errs.append(mf - lim)
    assert errs[0] > 0 and errs[1] == pytest.approx(errs[0] / 10) and errs[2] == pytest.approx(errs[0] / 100)


def test_semenova_eq22_equals_eq5():
    W = np.ones((5, 1))
    exact = S.internal_state_variance_exact(W, np.array([0.7]), np.array([[3e-3]]), *D4.values())
    np.testing.assert_allclose(S.internal_state_variance_single_input(0.7, 3e-3, *D4.values()),
                               exact, rtol=1e-13)


def test_semenova_eq6_eq17_property_scaling():
    """Hypothesis: Eq. 17 is affine in each additive intensity with slope 2 and Eq. 6's
    correlated term follows (row sum)^2 while the uncorrelated one follows sums of squares."""
    @hypothesis.given(st.floats(0, 1e-2), st.floats(0, 1e-2), st.floats(0, 1e-2), st.floats(0, 1e-2),
               st.floats(-2, 2), st.floats(0, 1), st.floats(0.1, 10))
    def check(dau, dac, dmu, dmc, m, v, scale):
        base = S.output_variance(m, v, 0, dac, dmu, dmc)
        assert S.output_variance(m, v, dau, dac, dmu, dmc) == pytest.approx(base + 2 * dau,
                                                                             rel=1e-12, abs=1e-15)
        W = np.array([[0.3, -0.1, 0.5], [0.2, 0.2, -0.6]])
        E_y, F = np.array([0.2, 0.5, 0.9]), np.array([1e-3, 2e-3, 0.0])
        N1 = np.array(S.noise_terms(W, E_y, F, dau, dac, dmu, dmc))
        N2 = np.array(S.noise_terms(scale * W, E_y, F, dau, dac, dmu, dmc))
        np.testing.assert_allclose(N2, scale ** 2 * N1, rtol=1e-10, atol=1e-300)
        # I^2 mu^2(W) = (sum W)^2 / I_n^2 and I eta(W) = sum W^2 / I_n
        assert N1[0] == pytest.approx(W.sum() ** 2 / W.shape[0] ** 2
                                      * (2 * dac + 2 * dmc * E_y.mean() ** 2), abs=1e-18)
        assert N1[1] == pytest.approx((W ** 2).sum() / W.shape[0]
                                      * (2 * dau + 2 * dmu * (1 + 2 * dmc) * np.mean(E_y ** 2)),
                                      abs=1e-18)

    check()
