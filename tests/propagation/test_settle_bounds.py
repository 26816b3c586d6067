"""The clean-pass settle bounds (refnet.propagation.settle_bounds): each inequality they are
built on, and the bound itself against the model's exact per-level tails on a trained net."""
import numpy as np
import pytest
from scipy.special import ndtr

from refnet.propagation.neuron_moments import gauss_hermite_activation_moments
from refnet.propagation.settle_bounds import (SIGMOID_D2_MAX, SIGMOID_D3_MAX,
                                              CleanSettleBound)


def _sigmoid_derivatives(z):
    s = 1.0 / (1.0 + np.exp(-z))
    d1 = s * (1 - s)
    return s, d1, d1 * (1 - 2 * s), d1 * (1 - 6 * s + 6 * s * s)


def test_constants_are_the_sigmoid_derivatives_suprema():
    """Attained where stated (the second derivative at z = +-log(2 + sqrt 3), the third at
    0) and nowhere exceeded on a fine grid."""
    z = np.linspace(-12, 12, 2_000_001)
    _, _, d2, d3 = _sigmoid_derivatives(z)
    assert np.abs(d2).max() <= SIGMOID_D2_MAX + 1e-16
    assert np.abs(d3).max() <= SIGMOID_D3_MAX + 1e-16
    _, _, d2_at, _ = _sigmoid_derivatives(np.array([-np.log(2 + np.sqrt(3))]))
    _, _, _, d3_at = _sigmoid_derivatives(np.array([0.0]))
    assert abs(d2_at[0]) == pytest.approx(SIGMOID_D2_MAX, rel=1e-14)
    assert abs(d3_at[0]) == pytest.approx(SIGMOID_D3_MAX, rel=1e-14)


def test_the_moment_inequalities_the_bounds_use():
    """|E s(z) - s(mu)| <= sup|s''| var / 2, Var s(z) <= var / 16 and
    |E s'(z) - s'(mu)| <= sup|s'''| var / 2 for z ~ N(mu, var), over means and variances where
    each is close to tight."""
    rng = np.random.default_rng(5)
    mu = np.concatenate([rng.uniform(-8, 8, 3000), [0.0, 0.6585, -0.6585]])
    var = np.concatenate([10 ** rng.uniform(-4, 0.5, 3000), [1e-3, 1e-3, 1e-3]])
    m1, m2, d = gauss_hermite_activation_moments("sigmoid", mu, var, n_nodes=96)
    s0, d0, _, _ = _sigmoid_derivatives(mu)
    mean_gap = np.abs(m1 - s0) / (SIGMOID_D2_MAX / 2 * var)
    slope_gap = np.abs(d - d0) / (SIGMOID_D3_MAX / 2 * var)
    var_gap = (m2 - m1 * m1) / (var / 16)
    for gap in (mean_gap, slope_gap, var_gap):
        assert gap.max() <= 1.0 + 1e-9
        assert gap.max() > 0.9          # tight somewhere: a wrong constant would show


def _exact_tails(z2, W2, W3, b3, g1, y, s, *, mul):
    """The model's Phi(-E D_k / sd D_k) (1 where E D_k <= 0) at variance s, from 96-node
    moments and the exact layer-1 share (no bound)."""
    q2 = g1 @ (W2 * W2).T
    var_z = s * q2
    m1, m2, d = gauss_hermite_activation_moments("sigmoid", z2, var_z, n_nodes=96)
    res = np.clip((m2 - m1 * m1) - d * d * var_z, 0.0, None)
    v2 = res + s * ((m1 * m1 + res + d * d * var_z) if mul else 1.0)
    mu = m1 @ W3.T + b3
    rows = np.arange(len(y))
    w = W3[y][:, None, :] - W3[None, :, :]                       # (B, K, n2)
    ED = mu[rows, y][:, None] - mu
    share = (w * d[:, None, :]) @ W2                             # (B, K, n1)
    layer1 = (share * share * g1[:, None, :]).sum(axis=-1)
    sd = np.sqrt((w * w * v2[:, None, :]).sum(axis=-1) + s * layer1)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(ED > 0, ndtr(-ED / sd), 1.0)
    t[rows, y] = 0.0
    return t


@pytest.mark.parametrize("mul", [False, True])
def test_clean_bound_dominates_the_exact_tails(make_blobs_net, mul):
    arch, P, X, y = make_blobs_net(seed=21, d=16, k=4, n=1000, n_train=700, hidden=(24, 20),
                                   scale=0.7, epochs=12)
    W1, b1, W2, b2, W3, b3 = P.W[0], P.b[0], P.W[1], P.b[1], P.W[2], P.b[2]
    a1 = 1.0 / (1.0 + np.exp(-(X @ W1.T + b1)))
    z2 = a1 @ W2.T + b2
    g1 = a1 * a1 if mul else np.ones_like(a1)
    q2 = g1 @ (W2 * W2).T
    _, d0, _, _ = _sigmoid_derivatives(z2)
    w = W3[y][:, None, :] - W3[None, :, :]
    share0 = (w * d0[:, None, :]) @ W2
    dense0 = (share0 * share0 * g1[:, None, :]).sum(axis=-1)     # the exact clean share
    bound = CleanSettleBound(z2, q2 if mul else q2[0], g1.max(axis=1), dense0,
                             float(np.linalg.norm(W2, 2)), W3, b3, y, mul=mul,
                             moment_tol=1e-9)
    settled = []
    for s in (1e-4, 1e-3, 1e-2, 0.1, 1.0, 3.0):
        exact = _exact_tails(z2, W2, W3, b3, g1, y, s, mul=mul)
        got = bound.tails(s)
        assert got.shape == exact.shape
        assert np.all(got >= exact - 1e-12), (s, float((exact - got).max()))
        settled.append(float((got.sum(axis=1) <= 1e-4).mean()))
    # the bound does its job: most inputs settle at small variances, fewer as it grows
    assert settled[0] > 0.5 and settled[-1] < settled[0]
