"""Mackey-Glass: known properties of the tau = 17 attractor and of the integration method."""
import numpy as np
import pytest

from refnet.datasets.mackey_glass import (integrate_mackey_glass, load_mackey_glass,
                                          mackey_glass_rhs, mackey_glass_series, make_windows)


def max_autocorrelation(s, lags):
    s = s - s.mean()
    return max((s[:-L] * s[L:]).mean() / (s * s).mean() for L in lags)


def test_rhs_is_the_equation():
    # beta x_tau / (1 + x_tau^n) - gamma x at x = 1, x_tau = 2: 0.2*2/(1+1024) - 0.1
    assert mackey_glass_rhs(1.0, 2.0) == pytest.approx(0.4 / 1025 - 0.1, rel=1e-15)
    assert mackey_glass_rhs(1.0, 1.0) == pytest.approx(0.0, abs=1e-15)  # x = 1 is the fixed point


def test_bounded_in_the_known_range():
    s = mackey_glass_series(3000)
    # the tau = 17 attractor lies within about [0.4, 1.35]
    assert 0.2 < s.min() < 0.6 and 1.2 < s.max() < 1.4
    assert s.std() > 0.15  # not collapsed onto the fixed point x = 1


def test_aperiodic_for_tau_17_but_periodic_for_tau_10():
    """The autocorrelation of a periodic orbit returns to ~1 at its period; for tau = 17
    (chaotic) it stays well below 1 over 1500 lags. tau = 10 (a limit cycle) is the control
    showing the statistic detects a period."""
    lags = range(20, 1500)
    _, x17 = integrate_mackey_glass(4000, 0.1, tau=17.0)
    _, x10 = integrate_mackey_glass(4000, 0.1, tau=10.0)
    assert max_autocorrelation(x17[10000::10], lags) < 0.98
    assert max_autocorrelation(x10[10000::10], lags) > 0.999


def test_converges_at_second_order_as_the_step_shrinks():
    """Halving dt divides the difference between successive solutions by ~4 (RK4 limited to
    order 2 by the linearly interpolated delayed half-step value), over 100 time units."""
    sols = {dt: integrate_mackey_glass(100, dt)[1][::int(round(1 / dt))] for dt in (0.2, 0.1, 0.05)}
    e1 = np.abs(sols[0.2] - sols[0.1]).max()
    e2 = np.abs(sols[0.1] - sols[0.05]).max()
    assert e2 < 1e-4
    assert 3.5 < e1 / e2 < 4.5


def test_history_is_constant_and_the_grid_is_exact():
    t, x = integrate_mackey_glass(17, 0.5, x0=1.2)
    assert t[-1] == 17 and x[0] == 1.2
    # for t <= tau the delayed term is the constant 1.2: dx/dt = 0.2*1.2/(1+1.2^10) - 0.1 x,
    # a linear ODE with solution c + (1.2 - c) exp(-0.1 t), c = 2*1.2/(1+1.2^10)
    c = 2 * 1.2 / (1 + 1.2 ** 10)
    np.testing.assert_allclose(x, c + (1.2 - c) * np.exp(-0.1 * t), rtol=1e-7)


def test_windows_are_the_previous_points_and_the_next():
    s = np.arange(10.0)
    X, y = make_windows(s, 4)
    assert X.shape == (6, 4) and y.shape == (6,)
    np.testing.assert_array_equal(X[0], [0, 1, 2, 3])
    np.testing.assert_array_equal(y, s[4:])


def test_loader_chronological_split():
    tr = load_mackey_glass("train", n_points=400, window=100, test_fraction=0.25, transient=200)
    te = load_mackey_glass("test", n_points=400, window=100, test_fraction=0.25, transient=200)
    assert tr.X.shape == (225, 100) and te.X.shape == (75, 100)
    np.testing.assert_array_equal(tr.X[1:, -1], tr.y[:-1])  # the target becomes the last input
    assert te.X[0, -1] == tr.y[-1]
    assert tr.info["tau"] == 17.0 and tr.info["dt"] == 0.1


@pytest.mark.parametrize("kw, match", [({"dt": 0.3}, "tau"), ({"dt": -1.0}, "dt"),
                                       ({"t_end": 10.05}, "t_end")])
def test_bad_steps_are_named(kw, match):
    args = dict(t_end=9.0, dt=0.1)
    args.update(kw)
    with pytest.raises(ValueError, match=match):
        integrate_mackey_glass(**args)
