r"""Taylor machinery: jets, exact derivatives of any order, Gaussian moments, Gauss-Hermite.

Index (Eq. -> function -> test, all in ``tests/test_propagation_taylor.py``)
------------------------------------------------------------------------------
=====================  ==================================  ============================================
Eq.                    function                            test
=====================  ==================================  ============================================
Semenova 2022, Eq. 24  :func:`taylor_polynomial`           test_semenova_eq24_polynomial_matches_f
Semenova 2022, Eq. 25  :func:`taylor_mean`                 test_semenova_eq25_eq26_exact_for_cubic
Semenova 2022, Eq. 26  :func:`taylor_second_moment`        test_semenova_eq25_eq26_exact_for_cubic
Semenova 2022, Eq. 27  :func:`taylor_variance`             test_semenova_eq27_eq28_agree
Semenova 2022, Eq. 28  :func:`taylor_variance_recurrent`   test_semenova_eq27_eq28_agree
(derived)              :func:`activation_taylor_coefficients`  test_jet_matches_cauchy_integral, ...
(derived)              :func:`gaussian_central_moments`    test_gaussian_central_moments_match_quadrature
(reference)            :func:`gauss_hermite_mean_variance` test_gauss_hermite_matches_closed_forms
=====================  ==================================  ============================================

Jets
----
A *jet* of order ``M`` is the truncated Taylor series of a function at a point, stored as the
normalised coefficients ``c[m] = g^{(m)}(mu) / m!`` for ``m = 0..M``: an array of shape
``(M + 1, *batch_shape)``. Sums, products, powers and ``exp`` of jets follow the classical
recurrences of automatic differentiation (Griewank & Walther, *Evaluating Derivatives*, ch. 13),
so the derivatives of each activation come out exact up to rounding, at any order, with no
finite differences. Semenova's ``T_m = f^{(m)}(mu) / m!`` (Eq. 24) *is* the jet of ``f`` at
``mu``.
"""
from __future__ import annotations

import functools
import math

import numpy as np

from ..activations import Activation, get_activation

__all__ = ["jet_variable", "jet_mul", "jet_power", "jet_exp", "activation_taylor_coefficients",
           "activation_derivative", "gaussian_central_moments", "gauss_hermite_mean_variance",
           "taylor_polynomial", "taylor_mean", "taylor_second_moment", "taylor_variance",
           "taylor_variance_recurrent"]

Array = np.ndarray


# --- jet arithmetic -----------------------------------------------------------------------
def jet_variable(point, order: int) -> Array:
    """Jet of the identity ``z`` at ``point``: ``[point, 1, 0, ..., 0]``, shape (order+1, *shape)."""
    if int(order) != order or order < 0:
        raise ValueError(f"order: must be an integer >= 0, got {order!r}")
    mu = np.asarray(point, dtype=np.float64)
    c = np.zeros((int(order) + 1,) + mu.shape)
    c[0] = mu
    if order >= 1:
        c[1] = 1.0
    return c


def jet_mul(a: Array, b: Array) -> Array:
    """Product of two jets (truncated Cauchy product): ``(ab)_k = sum_j a_j b_{k-j}``."""
    out = np.zeros(np.broadcast_shapes(a.shape, b.shape))
    for k in range(out.shape[0]):
        out[k] = sum(a[j] * b[k - j] for j in range(k + 1))
    return out


def jet_power(a: Array, p: float) -> Array:
    """``a**p`` for a jet with ``a[0] > 0``.

    From ``a y' = p a' y``: ``y_k = sum_{j=1}^{k} ((p+1) j - k) a_j y_{k-j} / (k a_0)``.
    """
    if np.any(a[0] <= 0):
        raise ValueError("a: jet_power needs a positive constant term")
    y = np.zeros_like(a)
    y[0] = a[0] ** p
    for k in range(1, a.shape[0]):
        y[k] = sum(((p + 1.0) * j - k) * a[j] * y[k - j] for j in range(1, k + 1)) / (k * a[0])
    return y


def jet_exp(a: Array) -> Array:
    """``exp(a)`` of a jet. From ``y' = a' y``: ``y_k = sum_{j=1}^{k} j a_j y_{k-j} / k``."""
    y = np.zeros_like(a)
    y[0] = np.exp(a[0])
    for k in range(1, a.shape[0]):
        y[k] = sum(j * a[j] * y[k - j] for j in range(1, k + 1)) / k
    return y


def _sigmoid_jet(z: Array) -> Array:
    # Two branches so that exp never overflows: 1/(1+e^{-z}) for z0 >= 0, e^{z}/(1+e^{z}) else.
    pos = z[0] >= 0
    e = jet_exp(np.where(pos, -z, z))
    one_plus = e.copy()
    one_plus[0] += 1.0
    inv = jet_power(one_plus, -1.0)
    return np.where(pos, inv, jet_mul(e, inv))


def _shifted_sigmoid_jet(z: Array, alpha: float) -> Array:
    # f = 1/2 + (alpha u) / (2 sqrt(1 + (alpha u)^2)),  u = z - 1/2
    au = alpha * z
    au[0] = alpha * (z[0] - 0.5)
    w = jet_mul(au, au)
    w[0] += 1.0
    f = 0.5 * jet_mul(au, jet_power(w, -0.5))
    f[0] += 0.5
    return f


def activation_taylor_coefficients(activation: str | Activation, point, order: int) -> Array:
    r"""Taylor coefficients ``T_m = f^{(m)}(mu) / m!``, ``m = 0..order``, exact up to rounding.

    (Semenova 2022, Eq. 24, p. 10) with ``T_m`` defined as in Eq. 24. Eq. 13 (p. 6) prints
    ``T_m = f^{(m)}(mu) (x - mu)^m / m!``; the factor ``(x - mu)^m`` there is a typo, since
    Eqs. 25-28 integrate it out into the moments ``V_m`` (with it, Eq. 12 would depend on x).
    With the Eq. 24 reading Eq. 12 is exact for the cubic (test_semenova_eq12_exact_for_cubic)
    and matches Monte-Carlo in the symmetric network.

    Parameters
    ----------
    activation : str or Activation
        ``"sigmoid"``, ``"shifted_sigmoid(alpha=A)"``, ``"cubic"`` or ``"identity"``.
    point : array_like, any shape
        :math:`\mu`, the expansion points.
    order : int
        M, the highest order.

    Returns
    -------
    ndarray, shape (order + 1, *point.shape)
    """
    act = get_activation(activation)
    z = jet_variable(point, order)
    if not np.all(np.isfinite(z[0])):
        raise ValueError("point: contains NaN or inf")
    if act.name == "sigmoid":
        return _sigmoid_jet(z)
    if act.name == "shifted_sigmoid":
        return _shifted_sigmoid_jet(z, act.alpha)
    if act.name == "cubic":  # 3 z^2 - 2 z^3 = z^2 (3 - 2 z)
        three_minus = -2.0 * z
        three_minus[0] += 3.0
        return jet_mul(jet_mul(z, z), three_minus)
    return z  # identity


def activation_derivative(activation: str | Activation, point, m: int) -> Array:
    """``f^{(m)}(point)``, the m-th derivative, exact up to rounding (``m! T_m``)."""
    return math.factorial(m) * activation_taylor_coefficients(activation, point, m)[m]


# --- moments ------------------------------------------------------------------------------
def gaussian_central_moments(variance, max_order: int) -> Array:
    r"""Central moments ``V_m = E[(X - mu)^m]`` of a Gaussian, ``m = 0..max_order``.

    ``V_m = 0`` for odd m and ``(m-1)!! sigma^m`` for even m (Semenova 2022, Methods VII A,
    p. 10: ``V_4 = 3 Var^2``, ``V_6 = 15 Var^3``).

    Parameters
    ----------
    variance : array_like, any shape, >= 0
        ``Var[X]`` (a variance, not a std).

    Returns
    -------
    ndarray, shape (max_order + 1, *variance.shape)
    """
    var = np.asarray(variance, dtype=np.float64)
    if np.any(~np.isfinite(var)) or np.any(var < 0):
        raise ValueError("variance: must be finite and >= 0")
    V = np.zeros((int(max_order) + 1,) + var.shape)
    V[0] = 1.0
    for m in range(2, int(max_order) + 1, 2):
        V[m] = V[m - 2] * (m - 1) * var  # (m-1)!! var^{m/2}
    return V


@functools.lru_cache(maxsize=8)
def _hermite_rule(n_nodes: int) -> tuple[Array, Array]:
    """Nodes ``t_k`` and weights ``w_k`` of the ``n_nodes``-point Gauss-Hermite rule, read-only.

    Computed once per ``n_nodes``: NumPy solves an eigenproblem for them on every call, which
    took 2 of the quick preset's 10 s in Semenova's Fig. 4 (one call per layer and depth).
    """
    t, w = np.polynomial.hermite.hermgauss(n_nodes)
    t.flags.writeable = w.flags.writeable = False
    return t, w


def gauss_hermite_mean_variance(f, mean, variance, n_nodes: int = 160) -> tuple[Array, Array]:
    r"""Reference ``E f(X)`` and ``Var f(X)`` for ``X ~ N(mean, variance)`` by Gauss-Hermite.

    ``E g(X) = pi^{-1/2} sum_k w_k g(mean + sqrt(2 variance) t_k)`` with the physicists'
    Hermite nodes ``t_k``; exact for polynomials of degree ``< 2 n_nodes`` and exponentially
    accurate for the analytic activations here. It measures the error of the Taylor orders.

    Parameters
    ----------
    f : callable, elementwise
    mean, variance : array_like, broadcastable, variance >= 0

    Returns
    -------
    (E, Var) : ndarrays of the broadcast shape
    """
    mu = np.asarray(mean, dtype=np.float64)
    var = np.asarray(variance, dtype=np.float64)
    if np.any(var < 0) or not np.all(np.isfinite(var)):
        raise ValueError("variance: must be finite and >= 0")
    t, w = _hermite_rule(int(n_nodes))
    shape = np.broadcast_shapes(mu.shape, var.shape)
    x = mu[..., None] + np.sqrt(2.0 * var)[..., None] * t  # (*shape, n_nodes)
    fx = np.asarray(f(x), dtype=np.float64)
    w = w / math.sqrt(math.pi)
    E = fx @ w
    # centre before squaring: avoids cancellation when Var << E^2
    Var = ((fx - E[..., None]) ** 2) @ w
    return np.broadcast_to(E, shape).copy(), np.broadcast_to(Var, shape).copy()


# --- Semenova 2022, Methods VII A: Taylor moments (Eqs. 24-28) -----------------------------
def taylor_polynomial(taylor_coefficients: Array, x, expansion_point) -> Array:
    r"""``f(x) ~ sum_{m=0}^{M} T_m (x - mu)^m`` (Semenova 2022, Eq. 24, p. 10).

    taylor_coefficients : shape (M + 1, *shape); x, expansion_point broadcastable to shape.
    """
    T, mu = taylor_coefficients, np.asarray(expansion_point, dtype=np.float64)
    d = np.asarray(x, dtype=np.float64) - mu
    out = np.zeros(np.broadcast_shapes(T.shape[1:], d.shape))
    for m in range(T.shape[0] - 1, -1, -1):  # Horner
        out = out * d + T[m]
    return out


def _check_TV(T: Array, V: Array) -> int:
    M = T.shape[0] - 1
    if V.shape[0] < 2 * M + 1:
        raise ValueError(f"central_moments: need V_0..V_{2 * M} for order M = {M}, "
                         f"got {V.shape[0]} entries")
    return M


def taylor_mean(taylor_coefficients: Array, central_moments: Array) -> Array:
    r"""``E[Y] ~ f(mu) + sum_{m=1}^{M} T_m V_m`` (Semenova 2022, Eq. 25, p. 10).

    taylor_coefficients : (M + 1, *shape) ``T_m``; central_moments : (>= 2M + 1, *shape) ``V_m``.
    """
    T, V = taylor_coefficients, central_moments
    M = _check_TV(T, V)
    return T[0] + sum(T[m] * V[m] for m in range(1, M + 1))


def taylor_second_moment(taylor_coefficients: Array, central_moments: Array) -> Array:
    r"""``E[Y^2]`` of the order-M Taylor polynomial (Semenova 2022, Eq. 26, p. 10).

    ``f(mu)^2 + 2 f(mu) sum T_m V_m + sum T_m^2 V_2m + 2 sum_m sum_{i<m} T_m T_i V_{m+i}``.
    Eq. 26 as printed squares ``f(mu) + sum T_m V_m`` inside the integral; the integrand must be
    the polynomial of Eq. 24, ``(f(mu) + sum T_m (x - mu)^m)^2``, to give the printed result.
    """
    T, V = taylor_coefficients, central_moments
    M = _check_TV(T, V)
    f_mu = T[0]
    out = f_mu ** 2 + 2 * f_mu * sum(T[m] * V[m] for m in range(1, M + 1))
    out = out + sum(T[m] ** 2 * V[2 * m] for m in range(1, M + 1))
    for m in range(1, M + 1):
        for i in range(1, m):
            out = out + 2 * T[m] * T[i] * V[m + i]
    return out


def taylor_variance(taylor_coefficients: Array, central_moments: Array) -> Array:
    r"""``Var[Y]|_M = sum T_m^2 V_2m + 2 sum_m sum_{i<m} T_m T_i V_{m+i} - (sum T_m V_m)^2``.

    (Semenova 2022, Eq. 27, p. 10). Shapes as :func:`taylor_mean`.
    """
    T, V = taylor_coefficients, central_moments
    M = _check_TV(T, V)
    out = sum(T[m] ** 2 * V[2 * m] for m in range(1, M + 1))
    for m in range(1, M + 1):
        for i in range(1, m):
            out = out + 2 * T[m] * T[i] * V[m + i]
    return out - sum(T[m] * V[m] for m in range(1, M + 1)) ** 2


def taylor_variance_recurrent(taylor_coefficients: Array, central_moments: Array) -> Array:
    r"""All orders ``Var[Y]|_M`` for ``M = 1..M_max`` by the recurrence (Semenova 2022, Eq. 28, p. 10).

    ``Var|_M = Var|_{M-1} + T_M^2 (V_2M - V_M^2) - 2 T_M sum_{i<M} T_i (V_{M+i} - V_M V_i)``
    as printed; expanding ``(A + T_M V_M)^2`` with ``A = sum_{i<M} T_i V_i`` gives
    ``+ 2 T_M sum T_i V_{M+i} - 2 T_M V_M A``, i.e. ``+ 2 T_M sum_{i<M} T_i (V_{M+i} - V_M V_i)``:
    the printed minus sign before the last sum is a typo (Eq. 13 prints it with a plus), and the
    test against Eq. 27 settles it.

    Returns
    -------
    ndarray, shape (M_max, *shape): entry ``M - 1`` is ``Var[Y]|_M``; ``Var|_0 = 0``.
    """
    T, V = taylor_coefficients, central_moments
    M_max = _check_TV(T, V)
    out = np.zeros((M_max,) + np.broadcast_shapes(T.shape[1:], V.shape[1:]))
    prev = 0.0
    for M in range(1, M_max + 1):
        cross = sum(T[i] * (V[M + i] - V[M] * V[i]) for i in range(1, M))
        prev = prev + T[M] ** 2 * (V[2 * M] - V[M] ** 2) + 2 * T[M] * cross
        out[M - 1] = prev
    return out
