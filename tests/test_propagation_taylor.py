"""Jets, Gaussian moments, Gauss-Hermite reference and Semenova 2022 Eqs. 24-28."""
import math

import numpy as np
import pytest

from refnet.activations import get_activation
from refnet.propagation.taylor import (activation_derivative, activation_taylor_coefficients,
                                       gauss_hermite_mean_variance, gaussian_central_moments,
                                       jet_power, jet_variable, taylor_mean,
                                       taylor_polynomial, taylor_second_moment, taylor_variance,
                                       taylor_variance_recurrent)


def _complex_f(name, alpha=None):
    if name == "sigmoid":
        return lambda z: 1.0 / (1.0 + np.exp(-z))
    if name == "shifted_sigmoid":
        return lambda z: 0.5 + 0.5 * alpha * (z - 0.5) / np.sqrt(1 + (alpha * (z - 0.5)) ** 2)
    return lambda z: 3 * z ** 2 - 2 * z ** 3


def _cauchy_coefficients(f, mu, radius, order, n=256):
    """Independent oracle: c_m = (1/2 pi i) \\oint f(z) / (z - mu)^{m+1} dz by the trapezoid
    rule on a circle inside the domain of analyticity (exponentially accurate)."""
    theta = 2 * np.pi * np.arange(n) / n
    vals = f(mu + radius * np.exp(1j * theta))
    c = np.fft.fft(vals) / n
    return np.real(c[: order + 1]) / radius ** np.arange(order + 1)


@pytest.mark.parametrize("spec,points,radius", [
    ("sigmoid", [-30.0, -3.0, 0.0, 1.2, 5.0], 1.5),          # poles at +-i pi
    ("shifted_sigmoid(alpha=2)", [0.1, 0.5, 0.9], 0.3),      # branch points at u = +-i/alpha
    ("shifted_sigmoid(alpha=4)", [0.2, 0.5, 0.77], 0.15),
    ("cubic", [0.0, 0.5, 2.0], 1.0),
])
def test_jet_matches_cauchy_integral(spec, points, radius):
    act = get_activation(spec)
    T = activation_taylor_coefficients(act, np.array(points), 15)
    for k, mu in enumerate(points):
        ref = _cauchy_coefficients(_complex_f(act.name, act.alpha), mu, radius, 15)
        # rounding in the oracle is ~1e-16 max|f| / radius^m; allow 1e-11 of that scale
        bound = 1e-11 * max(1.0, abs(mu) ** 3) * radius ** -np.arange(16.0)
        assert np.all(np.abs(T[:, k] - ref) <= bound), list((T[:, k] - ref) / bound)


def test_sigmoid_series_at_zero():
    # sigma(z) = 1/2 + tanh(z/2)/2 and tanh x = x - x^3/3 + 2x^5/15 - 17x^7/315
    want = [0.5, 0.25, 0, -1 / 48, 0, 1 / 480, 0, -17 / 80640]
    np.testing.assert_allclose(activation_taylor_coefficients("sigmoid", 0.0, 7), want,
                               rtol=1e-14, atol=1e-16)


@pytest.mark.parametrize("spec", ["sigmoid", "shifted_sigmoid(alpha=3)", "cubic", "identity"])
def test_jet_low_orders_match_activation_module(spec, rng):
    act = get_activation(spec)
    z = rng.uniform(-2, 2, 17)
    np.testing.assert_allclose(activation_derivative(act, z, 0), act.f(z), rtol=1e-13)
    np.testing.assert_allclose(activation_derivative(act, z, 1), act.d1(z), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(activation_derivative(act, z, 2), act.d2(z), rtol=1e-11, atol=1e-14)


@pytest.mark.parametrize("alpha", [1.0, 2.0, 3.0, 4.0])
def test_shifted_sigmoid_even_derivatives_vanish_at_inflection(alpha):
    T = activation_taylor_coefficients(f"shifted_sigmoid(alpha={alpha})", 0.5, 16)
    assert np.all(T[2::2] == 0)
    assert T[1] == pytest.approx(alpha / 2)


def test_jet_power_matches_closed_form():
    a = jet_variable(2.0, 6)  # (z)^p at z = 2: c_k = binom(p, k) 2^{p-k}
    p = -0.5
    want = [math.prod(p - i for i in range(k)) / math.factorial(k) * 2.0 ** (p - k) for k in range(7)]
    np.testing.assert_allclose(jet_power(a, p), want, rtol=1e-14)


def test_gaussian_central_moments_match_quadrature():
    var = np.array([0.0, 1e-3, 0.5, 2.0])
    V = gaussian_central_moments(var, 12)
    for m in range(13):
        E, _ = gauss_hermite_mean_variance(lambda x, m=m: x ** m, 0.0, var, n_nodes=20)
        assert np.all(np.abs(V[m] - E) <= 1e-12 * np.abs(V[m]) + 1e-15 * (1 + var) ** m)
    assert V[4][2] == pytest.approx(3 * 0.5 ** 2)  # Semenova Methods VII A, p. 10
    assert V[6][2] == pytest.approx(15 * 0.5 ** 3)


def test_gauss_hermite_matches_closed_forms():
    mu, var = np.array([-1.0, 0.3, 2.0]), np.array([0.1, 0.5, 2.0])
    E, V = gauss_hermite_mean_variance(lambda x: x, mu, var)
    np.testing.assert_allclose(E, mu, rtol=1e-13)
    np.testing.assert_allclose(V, var, rtol=1e-12)
    E, V = gauss_hermite_mean_variance(lambda x: x ** 2, mu, var)
    np.testing.assert_allclose(E, mu ** 2 + var, rtol=1e-12)
    np.testing.assert_allclose(V, 4 * mu ** 2 * var + 2 * var ** 2, rtol=1e-12)


def test_gauss_hermite_sigmoid_matches_sampling():
    """Monte-Carlo, n = 400000, z = 5: false-positive rate ~6e-7 per comparison."""
    rng = np.random.default_rng(7)
    mu, var = 0.7, 1.3
    x = rng.normal(mu, math.sqrt(var), 400_000)
    y = get_activation("sigmoid").f(x)
    E, V = gauss_hermite_mean_variance(get_activation("sigmoid").f, mu, var)
    n = y.size
    assert abs(y.mean() - E) <= 5 * y.std() / math.sqrt(n)
    se_var = math.sqrt(np.mean((y - y.mean()) ** 4) - y.var() ** 2) / math.sqrt(n)
    assert abs(y.var(ddof=1) - V) <= 5 * se_var


def test_bad_input_is_rejected():
    with pytest.raises(ValueError, match="variance"):
        gaussian_central_moments(-1.0, 4)
    with pytest.raises(ValueError, match="variance"):
        gauss_hermite_mean_variance(np.sin, 0.0, -1.0)
    with pytest.raises(ValueError, match="order"):
        jet_variable(0.0, -1)
    with pytest.raises(ValueError, match="point"):
        activation_taylor_coefficients("sigmoid", np.nan, 3)
    with pytest.raises(ValueError, match="central_moments"):
        taylor_variance(np.ones((4,)), np.ones((5,)))


@pytest.mark.parametrize("spec", ["sigmoid", "shifted_sigmoid(alpha=4)"])
def test_semenova_eq24_polynomial_matches_f(spec):
    act = get_activation(spec)
    mu, M = 0.4, 9
    T = activation_taylor_coefficients(act, mu, M)
    for h in (1e-2, 2e-2):
        err = abs(taylor_polynomial(T, mu + h, mu) - act.f(mu + h))
        assert err < 10 * (h / 0.2) ** (M + 1) + 1e-15  # remainder inside the radius


def test_semenova_eq25_eq26_exact_for_cubic():
    # f is a cubic: the order-3 Taylor polynomial is f itself, so Eqs. 25-27 are exact.
    mu, var = np.array([0.2, 0.5, 0.9]), np.array([0.01, 0.05, 0.2])
    T = activation_taylor_coefficients("cubic", mu, 3)
    V = gaussian_central_moments(var, 6)
    f = get_activation("cubic").f
    E, Var = gauss_hermite_mean_variance(f, mu, var, n_nodes=8)
    E2, _ = gauss_hermite_mean_variance(lambda x: f(x) ** 2, mu, var, n_nodes=8)
    np.testing.assert_allclose(taylor_mean(T, V), E, rtol=1e-12)
    np.testing.assert_allclose(taylor_second_moment(T, V), E2, rtol=1e-12)
    np.testing.assert_allclose(taylor_variance(T, V), Var, rtol=1e-10)
    # Methods VII A, p. 10: T_1 = 6(mu - mu^2), T_2 = 3(1 - 2 mu), T_3 = -2
    np.testing.assert_allclose(T[1:], [6 * (mu - mu ** 2), 3 * (1 - 2 * mu), -2 + 0 * mu],
                               rtol=1e-13, atol=1e-15)


def test_semenova_eq27_eq28_agree():
    mu = np.array([0.3, 0.5, 0.62])
    T = activation_taylor_coefficients("shifted_sigmoid(alpha=3)", mu, 15)
    V = gaussian_central_moments(np.array([1e-3, 4e-3, 2e-3]), 30)
    rec = taylor_variance_recurrent(T, V)
    for M in range(1, 16):
        np.testing.assert_allclose(rec[M - 1], taylor_variance(T[: M + 1], V), rtol=1e-9)
