"""Monte-Carlo check of the expansion: E[CE(noisy logits)] - J(v) is O(v^2) where J is complete.

The noisy cross-entropy is averaged over many :func:`refnet.model.forward` passes with noise.
Two control variates with exactly zero mean remove most of the sampling noise without
biasing the average: ``g . delta_lin`` and ``1/2 delta_lin^T H delta_lin - 1/2 tr(H Cov)``,
where ``delta_lin = sum_l J_l eps_l`` is the first-order logit perturbation of the drawn noise
``eps_l`` and ``Cov`` its exact covariance, built here from explicit ``S_l`` matrices.

Where the noise feeds the linear read-out (the last hidden layer of a sigmoid MLP), the
logits are linear in it and the expansion ``CE + 1/2 tr(H Sigma)`` is complete to second
order: the error is O(v^2). Noise *below* a sigmoid also shifts the logits' mean by
``mu = W3 (1/2 f''(z2) (.) diag(W2 S1 W2^T))``, O(v), which the objective leaves out (as the
issue defines it): the error is then O(v), and becomes O(v^2) once ``g . mu`` is added
(docs/expected_loss.md, "What the objective leaves out").

Scaling criterion: with ``r(v) = (E[CE] - J) / v^2``, an O(v^2) error keeps ``r`` about
constant from ``v_big`` to ``v_small = v_big / 8``, an O(v) error multiplies it by 8; the test
asks ``|r(v_small)| <= 2 |r(v_big)| + 4 standard errors`` (and the uncorrected Duque placement
must fail it, so the criterion can fail).
"""
import numpy as np
import pytest

from refnet.activations import sigmoid_second
from refnet.model import Params, forward, init_params, mlp
from refnet.noise import NOISE_TYPES, NoiseConfig, NoiseSpec, apply_noise, draw_layer_noise
from refnet.propagation.sensitivity import output_jacobians
from refnet.regularizers import ExpectedLoss, expected_loss

ARCH = mlp((5, 6, 6, 3))
V_BIG, V_SMALL = 0.08, 0.01
K = 20000  # noisy passes per input


def _setup(seed=0, n=8):
    rng = np.random.default_rng(seed)
    p = init_params(ARCH, "normal", rng=seed, std=0.8)
    p = Params(p.W, tuple(rng.normal(size=b.shape) for b in p.b))
    return p, rng.normal(size=(n, 5)), rng.integers(0, 3, n)


def _S(noise_type, v, x):
    """The noise covariance of one layer as an explicit matrix per input, (n, n_l, n_l)."""
    n, n_l = x.shape
    if noise_type == "add_unc":
        return np.broadcast_to(v * np.eye(n_l), (n, n_l, n_l))
    if noise_type == "add_cor":
        return np.broadcast_to(v * np.ones((n_l, n_l)), (n, n_l, n_l))
    if noise_type == "mul_unc":
        return v * np.einsum("bi,ij->bij", x ** 2, np.eye(n_l))
    return v * x[:, :, None] * x[:, None, :]


def _mc_minus_objective(params, X, y, noise_type, v, layers, seed, mean_shift=False):
    """``(E[CE(noisy)] - J(v) [- g . mu], standard error)``, averaged over the inputs."""
    n, N = len(X), len(X) * K
    spec = NoiseSpec.single(noise_type, v)
    config = NoiseConfig(spec, layers)
    out, cache = forward(ARCH, params, X)
    p = np.exp(out - out.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    g = p - np.eye(3)[y]                                   # dCE/dy, (n, 3)
    H = np.einsum("bi,ij->bij", p, np.eye(3)) - p[:, :, None] * p[:, None, :]
    J = output_jacobians(ARCH, params, cache, min(layers))

    def rep(a):
        return np.repeat(a, K, axis=0)  # row b*K + k: input b, pass k

    rng = np.random.default_rng(seed)
    draws = [draw_layer_noise(spec, N, ARCH.sizes[l], rng) if l in layers else None
             for l in range(ARCH.n_layers + 1)]
    y_noisy, _ = forward(ARCH, params, rep(X), config, draws=draws)
    m = y_noisy.max(1, keepdims=True)
    ce = m[:, 0] + np.log(np.exp(y_noisy - m).sum(1)) - y_noisy[np.arange(N), rep(y)]
    d_lin, cov, eps = np.zeros((N, 3)), np.zeros((n, 3, 3)), {}
    for l in layers:
        a = cache.A[l]
        eps[l] = apply_noise(rep(a), spec, draws[l]) - rep(a)  # the drawn noise, zero mean
        d_lin += np.einsum("bij,bj->bi", rep(J[l]), eps[l])
        cov += J[l] @ _S(noise_type, v, a) @ J[l].transpose(0, 2, 1)
    quad = np.einsum("bi,bij,bj->b", d_lin, rep(H), d_lin) - rep(np.einsum("bij,bji->b", H, cov))
    rows = ce - np.einsum("bi,bi->b", rep(g), d_lin) - 0.5 * quad
    shift = 0.0
    if mean_shift:  # layer-1 noise through sigma(z2): mu = W3 (1/2 sigma'' (.) Var z2)
        W2, W3 = params.W[1], params.W[2]
        s2 = sigmoid_second(cache.Z[1])
        var_z2 = np.einsum("ij,bjk,ik->bi", W2, _S(noise_type, v, cache.A[1]), W2)
        shift = float(np.mean(np.einsum("bi,bi->b", g, 0.5 * (s2 * var_z2) @ W3.T)))
        u = eps[1] @ W2.T  # and its zero-mean fluctuation, a third control variate
        rows = rows - np.einsum("bi,bi->b", rep(g @ W3), 0.5 * rep(s2) * (u ** 2 - rep(var_z2)))
    R = rows.reshape(n, K)
    se = float(np.sqrt(R.var(axis=1, ddof=1).sum() / K) / n)
    objective = expected_loss(ARCH, params, X, y, ExpectedLoss(config))[0]
    return float(R.mean()) - objective - shift, se


def _ratios(noise_type, layers, mean_shift):
    params, X, y = _setup()
    (d_b, s_b), (d_s, s_s) = (_mc_minus_objective(params, X, y, noise_type, v, layers, seed,
                                                  mean_shift)
                              for v, seed in ((V_BIG, 1), (V_SMALL, 2)))
    r_b, r_s = d_b / V_BIG ** 2, d_s / V_SMALL ** 2
    return r_b, r_s, float(np.hypot(s_b / V_BIG ** 2, s_s / V_SMALL ** 2))


def _is_second_order(r_b, r_s, se):
    return abs(r_s) <= 2 * abs(r_b) + 4 * se


@pytest.mark.slow
@pytest.mark.parametrize("noise_type", NOISE_TYPES)
def test_error_is_order_v_squared_when_noise_feeds_the_readout(noise_type):
    r_b, r_s, se = _ratios(noise_type, (2,), mean_shift=False)
    assert _is_second_order(r_b, r_s, se), (r_b, r_s, se)


@pytest.mark.slow
@pytest.mark.parametrize("noise_type", NOISE_TYPES)
def test_duque_placement_error_is_the_mean_shift_plus_order_v_squared(noise_type):
    r_b, r_s, se = _ratios(noise_type, (1, 2), mean_shift=True)
    assert _is_second_order(r_b, r_s, se), (r_b, r_s, se)
    # without the mean-shift term the error is O(v): the criterion above must catch it
    r_b, r_s, se = _ratios(noise_type, (1, 2), mean_shift=False)
    assert not _is_second_order(r_b, r_s, se), (r_b, r_s, se)
