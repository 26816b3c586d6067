"""Mackey-Glass series and the next-point prediction task of (Semenova 2022, Sec. IV).

Equation (Mackey and Glass 1977), with the classic chaotic parameters:

    dx/dt = beta x(t - tau) / (1 + x(t - tau)^n) - gamma x(t),
    beta = 0.2, gamma = 0.1, n = 10, tau = 17.

Method: classical fourth-order Runge-Kutta on a grid of step ``dt`` with ``tau`` an integer
multiple of ``dt``, so the delayed values at the start and end of each step are grid values;
the delayed value at the half step lies midway between two grid values and is linearly
interpolated. That interpolation limits the global order to 2 (tested: halving ``dt`` divides
the error by ~4). History: constant ``x(t) = x0 = 1.2`` for t <= 0. The first ``transient``
time units are dropped and the rest sampled at unit time. Task: the 100 previous samples ->
the next one; the windows are split chronologically (the first ``1 - test_fraction`` train).
"""
from __future__ import annotations

import numpy as np

from ..errors import ConfigError
from .dataset import Dataset, check_dtype, check_split

BETA, GAMMA, N_EXP, TAU = 0.2, 0.1, 10.0, 17.0


def mackey_glass_rhs(x, x_tau, beta=BETA, gamma=GAMMA, n=N_EXP):
    """dx/dt = beta x(t-tau) / (1 + x(t-tau)^n) - gamma x(t) (Mackey and Glass 1977)."""
    return beta * x_tau / (1.0 + x_tau ** n) - gamma * x


def _steps(value: float, dt: float, what: str) -> int:
    k = int(round(value / dt))
    if k < 1 or abs(k * dt - value) > 1e-9 * max(1.0, value):
        raise ConfigError(f"{what}: must be a positive integer multiple of dt={dt}, got {value}")
    return k


def integrate_mackey_glass(t_end: float, dt: float = 0.1, x0: float = 1.2, tau: float = TAU,
                           beta: float = BETA, gamma: float = GAMMA, n: float = N_EXP):
    """Solve the delay equation on [0, t_end] by RK4 with a linearly interpolated delayed
    half-step value (see the module docstring).

    Returns
    -------
    t, x : ndarray, shape (K + 1,)
        Grid times k * dt and the solution there, K = t_end / dt.
    """
    if not (np.isfinite(dt) and dt > 0):
        raise ConfigError(f"dt: expected a positive number, got {dt}")
    K, m = _steps(t_end, dt, "t_end"), _steps(tau, dt, "tau")
    x = np.empty(K + 1)
    x[0] = x0

    def delayed(j):  # x at grid index j (j < 0: the constant history)
        return x[j] if j >= 0 else x0

    h = dt
    for i in range(K):
        xd0, xd1 = delayed(i - m), delayed(i - m + 1)
        xdh = 0.5 * (xd0 + xd1)
        k1 = mackey_glass_rhs(x[i], xd0, beta, gamma, n)
        k2 = mackey_glass_rhs(x[i] + 0.5 * h * k1, xdh, beta, gamma, n)
        k3 = mackey_glass_rhs(x[i] + 0.5 * h * k2, xdh, beta, gamma, n)
        k4 = mackey_glass_rhs(x[i] + h * k3, xd1, beta, gamma, n)
        x[i + 1] = x[i] + h / 6.0 * (k1 + 2.0 * k2 + 2.0 * k3 + k4)
    return np.arange(K + 1) * dt, x


def mackey_glass_series(n_points: int, dt: float = 0.1, transient: float = 1000.0,
                        x0: float = 1.2):
    """``n_points`` samples at unit time after dropping ``transient`` time units.

    Returns an ndarray of shape (n_points,).
    """
    if n_points < 1:
        raise ConfigError(f"n_points: expected >= 1, got {n_points}")
    per_unit = _steps(1.0, dt, "1 (the sampling interval)")
    _, x = integrate_mackey_glass(transient + n_points - 1, dt, x0)
    return x[_steps(transient, dt, "transient") if transient else 0::per_unit][:n_points]


def make_windows(series, window: int = 100):
    """Inputs series[i : i+window] and targets series[i+window].

    Returns X of shape (len(series) - window, window) and y of shape (len(series) - window,).
    """
    s = np.asarray(series, dtype=np.float64)
    if s.ndim != 1 or not 1 <= window < s.size:
        raise ConfigError(f"window: expected 1 <= window < len(series)={s.size}, got {window}")
    X = np.lib.stride_tricks.sliding_window_view(s, window)[:-1].copy()
    return X, s[window:].copy()


def load_mackey_glass(split: str = "train", n_points: int = 6000, window: int = 100,
                      test_fraction: float = 0.2, dt: float = 0.1, transient: float = 1000.0,
                      dtype=np.float64) -> Dataset:
    """The next-point task: X (n, window) past samples, y (n,) the next sample (unscaled)."""
    check_split(split)
    dt_ = check_dtype(dtype)
    if not 0 < test_fraction < 1:
        raise ConfigError(f"test_fraction: expected 0 < test_fraction < 1, got {test_fraction}")
    X, y = make_windows(mackey_glass_series(n_points, dt, transient), window)
    n_train = int(round((1 - test_fraction) * y.size))
    part = slice(0, n_train) if split == "train" else slice(n_train, None)
    info = {"dataset": "mackey-glass", "split": split, "source": "generated",
            "equation": "dx/dt = beta x(t-tau)/(1+x(t-tau)^n) - gamma x(t)",
            "beta": BETA, "gamma": GAMMA, "n": N_EXP, "tau": TAU, "x0_history": 1.2,
            "method": "RK4, delayed half-step value linearly interpolated (order 2)",
            "dt": dt, "transient": transient, "sampling": 1.0, "n_points": n_points,
            "window": window, "test_fraction": test_fraction, "n_samples": int(y[part].size)}
    return Dataset(X[part].astype(dt_), y[part].astype(dt_), (), info)
