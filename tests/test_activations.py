import numpy as np
import pytest
from scipy.special import expit

from refnet.activations import get_activation

SPECS = ["sigmoid", "shifted_sigmoid(alpha=4)", "shifted_sigmoid(alpha=0.5)", "cubic", "identity"]


@pytest.mark.parametrize("spec", SPECS)
def test_first_and_second_derivative_match_central_differences(spec):
    act = get_activation(spec)
    z = np.linspace(-3, 3, 61) + 0.013  # avoid exact kinks of nothing, but off-grid points
    h = 1e-5
    d1_fd = (act.f(z + h) - act.f(z - h)) / (2 * h)
    d2_fd = (act.d1(z + h) - act.d1(z - h)) / (2 * h)
    np.testing.assert_allclose(act.d1(z), d1_fd, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(act.d2(z), d2_fd, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("spec", SPECS)
def test_no_overflow_or_nan_up_to_1e4(spec):
    act = get_activation(spec)
    if act.name == "cubic":  # a polynomial: finite, but grows like z^3 outside [0, 1]
        z = np.array([-1e4, -30.0, 0.0, 0.5, 30.0, 1e4])
    else:
        z = np.array([-1e4, -800.0, -30.0, 0.0, 0.5, 30.0, 800.0, 1e4])
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # underflow to 0 is fine
        for fn in (act.f, act.d1, act.d2):
            v = fn(z)
            assert np.all(np.isfinite(v)), (spec, fn, v)


def test_sigmoid_matches_expit_to_rounding_and_saturates():
    act = get_activation("sigmoid")
    z = np.concatenate([np.linspace(-50, 50, 10001), [-745.0, -700.0, 700.0]])
    s, t = expit(z), expit(-z)
    np.testing.assert_allclose(act.f(z), s, rtol=1e-15, atol=1e-300)
    np.testing.assert_allclose(act.d1(z), s * t, rtol=2e-15, atol=1e-300)
    # s t (t - s) cancels near z = 0; refnet's form uses expm1 and is the more accurate one
    np.testing.assert_allclose(act.d2(z), s * t * (t - s), rtol=1e-12, atol=1e-300)
    assert act.f(np.array([1e4]))[0] == 1.0 and act.d1(np.array([1e4]))[0] == 0.0
    assert act.f(np.array([-1e4]))[0] == 0.0


@pytest.mark.parametrize("alpha", [0.5, 2.0, 3.0, 4.0])
def test_shifted_sigmoid_inflection_and_slope(alpha):
    act = get_activation(f"shifted_sigmoid(alpha={alpha})")
    half = np.array([0.5])
    assert act.f(half)[0] == 0.5
    np.testing.assert_allclose(act.d1(half)[0], alpha / 2, rtol=1e-15)  # slope 1 at alpha = 2
    assert act.d2(half)[0] == 0.0
    lim = act.f(np.array([-1e4, 1e4]))
    np.testing.assert_allclose(lim, [0.0, 1.0], atol=1e-4 / alpha)


@pytest.mark.parametrize("spec", ["sigmoid", "shifted_sigmoid(alpha=3)", "cubic"])
def test_inverse_roundtrip(spec):
    act = get_activation(spec)
    z = np.linspace(0.02, 0.98, 49) if act.name == "cubic" else np.linspace(-4, 4, 81)
    np.testing.assert_allclose(act.inverse(act.f(z)), z, rtol=1e-9, atol=1e-12)


def test_cubic_inverse_endpoints():
    act = get_activation("cubic")
    np.testing.assert_allclose(act.inverse(np.array([0.0, 0.5, 1.0])), [0.0, 0.5, 1.0], atol=1e-15)


@pytest.mark.parametrize("spec", SPECS)
def test_float32_stays_float32(spec):
    act = get_activation(spec)
    z = np.linspace(-2, 2, 5, dtype=np.float32)
    for fn in (act.f, act.d1, act.d2):
        assert fn(z).dtype == np.float32


def test_spec_roundtrip_and_errors():
    assert get_activation(get_activation("shifted_sigmoid(alpha=4)").spec).alpha == 4.0
    with pytest.raises(ValueError, match="activation: unknown activation 'relu'"):
        get_activation("relu")
    with pytest.raises(ValueError, match="needs a slope"):
        get_activation("shifted_sigmoid")
    with pytest.raises(ValueError, match="alpha must be finite and > 0"):
        get_activation("shifted_sigmoid(alpha=-1)")
    with pytest.raises(ValueError, match="takes no alpha"):
        get_activation("sigmoid(alpha=2)")
    with pytest.raises(TypeError, match="activation"):
        get_activation(3)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sigmoid_prime_and_second_are_the_two_functions_bits(dtype):
    """The shared-exp pair Eq. 7's derivative term uses gives exactly sigmoid_prime's and
    sigmoid_second's numbers, saturated and signed-zero inputs included."""
    from refnet.activations import (get_activation, sigmoid_prime, sigmoid_prime_and_second,
                                    sigmoid_second)

    z = np.concatenate([np.random.default_rng(3).normal(0, 8, 1000),
                        [0.0, -0.0, 1e-300, -1e-300, 40.0, -40.0, 745.0, -745.0, 800.0, 3.0,
                         -3.0, 0.5]])
    z = z.astype(dtype).reshape(-1, 4)    # 1,012 values, a 2-D batch
    d1, d2 = sigmoid_prime_and_second(z)
    assert d1.dtype == d2.dtype == dtype
    np.testing.assert_array_equal(d1, sigmoid_prime(z))
    np.testing.assert_array_equal(d2, sigmoid_second(z))
    assert get_activation("sigmoid").d1_d2 is sigmoid_prime_and_second
    assert get_activation("cubic").d1_d2 is None
