"""Conditioning on W2's dominant singular directions (refnet.propagation.conditioned): the
cubature rule, the deflation, one conditional level against a direct computation, and the
curve against Monte-Carlo with and without it."""
import functools
import itertools
import math

import numpy as np
import pytest

from refnet.propagation.conditioned import (conditioned_directions, conditioned_probability,
                                            cubature_rule, deflate)
from refnet.propagation.gaussian_argmax import positive_orthant_probability

@pytest.fixture(scope="module")
def blobs_net(make_blobs_net):
    return make_blobs_net(seed=21, d=16, k=4, n=1000, n_train=700, hidden=(24, 20),
                          scale=0.7, epochs=12)


def _gaussian_moment(idx) -> float:
    """E prod_i t_{idx_i} for independent standard normals: prod over distinct i of
    (m_i - 1)!! for even multiplicities m_i, 0 if any is odd."""
    out = 1.0
    for i in set(idx):
        m = idx.count(i)
        if m % 2:
            return 0.0
        out *= math.prod(range(m - 1, 0, -2))
    return out


@pytest.mark.parametrize("k", [1, 2, 3, 4, 6])
def test_cubature_is_exact_to_degree_five_and_not_six(k):
    """Every monomial of degree <= 5 in k standard normals is integrated exactly; t_1^6
    (E = 15) is not (the rule is fifth degree, no more)."""
    pts, w = cubature_rule(k)
    want = 7 if k == 2 else 2 * k * k + 1 - (2 * k if k == 4 else 0)
    assert pts.shape == (len(w), k) and len(w) == want
    for deg in range(6):
        for idx in itertools.combinations_with_replacement(range(k), deg):
            got = w @ np.prod(pts[:, list(idx)], axis=1) if idx else w.sum()
            assert abs(got - _gaussian_moment(list(idx))) < 1e-10, idx
    assert abs(w @ pts[:, 0] ** 6 - 15.0) > 1.0
    with pytest.raises(ValueError, match="direction"):
        cubature_rule(0)


def test_directions_are_those_wider_than_the_threshold():
    S = np.array([10.0, 9.0, 4.0, 1.0])
    assert conditioned_directions(S, 1e-3) == 0          # sqrt(s) * 10 = 0.32
    assert conditioned_directions(S, 0.09) == 1          # 3.0 >= 3 exactly
    assert conditioned_directions(S, 1.0) == 2                     # the default cap
    assert conditioned_directions(S, 1.0, max_directions=4) == 3
    assert conditioned_directions(S, 1.0, max_directions=4, min_sd=5.0) == 2
    assert conditioned_directions(S, 100.0, max_directions=4) == 4
    assert conditioned_directions(S, 100.0, max_directions=0) == 0


@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("shape", [(12, 12), (8, 15), (15, 8)])
def test_deflation_keeps_every_neurons_mean_and_variance(k, shape):
    """Law of total variance over the cubature: E_t[shift] = 0 and
    E_t[shift^2] + Var(z2 | t) = s (W2 W2^T)_ii per neuron, with W' W'^T + U_k S_k^2 U_k^T
    = W2 W2^T exactly (the shift and the deflated Gram are the two parts of the noise)."""
    rng = np.random.default_rng(k)
    W2 = rng.normal(size=shape)
    svd = np.linalg.svd(W2, full_matrices=W2.shape[0] > W2.shape[1])
    if svd[0].shape[0] != svd[0].shape[1]:
        svd = np.linalg.svd(W2, full_matrices=True)
    d = deflate(svd, k, gram_rank=4)
    q2 = (W2 * W2).sum(axis=1)
    np.testing.assert_allclose(d.W_rest @ d.W_rest.T + d.US @ d.US.T, W2 @ W2.T, atol=1e-12)
    np.testing.assert_allclose(q2 - d.q_drop, (d.W_rest ** 2).sum(axis=1), atol=1e-12)
    pts, w = cubature_rule(k)
    shifts = pts @ d.US.T                                   # (m, n2), over sqrt(s)
    np.testing.assert_allclose(w @ shifts, 0.0, atol=1e-12)
    np.testing.assert_allclose(w @ shifts ** 2 + (q2 - d.q_drop), q2, atol=1e-12)
    # the deflated PPCA form is built on the singular directions that remain
    np.testing.assert_allclose(np.abs(d.gram.U_r.T @ svd[0][:, :k]), 0.0, atol=1e-12)
    np.testing.assert_allclose(d.gram.S_r, svd[1][k:k + 4], atol=1e-12)


def _spy_on_integrals(monkeypatch):
    """Record how many rows each argmax integral of the curve's conditional level takes."""
    from refnet.propagation import moment_curve

    rows, inner = [], moment_curve.orthant_probability_and_variance

    def spy(md, cov, **kw):
        rows.append(len(md))
        return inner(md, cov, **kw)
    monkeypatch.setattr(moment_curve, "orthant_probability_and_variance", spy)
    return rows


@pytest.mark.parametrize("s", [0.5, 0.01])
def test_one_conditional_level_is_the_gaussian_of_its_shifted_network(blobs_net, s,
                                                                        monkeypatch):
    """With every direction conditioned on, z2 is fixed by t and the logits are Gaussian
    (only the layer-2 noise is left, whose covariance does not depend on t): the level's
    probability at one cubature point equals a direct computation from W2 (a1 + sqrt(s) V t),
    which does not go through U and S. At s = 0.01 most inputs are settled at the point by
    its own rules (checked), at 0.5 none."""
    from refnet.propagation.moment_curve import _conditional_level, _level_moments

    arch, P, X, y = blobs_net
    W1, W2, W3 = P.W
    b1, b2, b3 = P.b
    a1 = 1 / (1 + np.exp(-(X @ W1.T + b1)))
    z2 = a1 @ W2.T + b2
    svd = np.linalg.svd(W2, full_matrices=True)
    k = len(svd[1])
    defl = deflate(svd, k, gram_rank=None)
    assert np.abs(defl.W_rest).max() < 1e-12
    t = np.linspace(-1.5, 1.5, k)
    var_z = np.zeros(z2.shape[1])
    level = _conditional_level(s, W3, b3, y, z2, var_z, defl, 12, None,
                               functools.partial(_level_moments, "sigmoid", 24))
    rows = _spy_on_integrals(monkeypatch)
    p, tv, _ = level(np.sqrt(s) * (defl.US @ t), var_z, defl)
    assert (sum(rows) == len(y)) if s == 0.5 else (sum(rows) < 0.5 * len(y))
    a2 = 1 / (1 + np.exp(-((a1 + np.sqrt(s) * (svd[2][:k].T @ t)) @ W2.T + b2)))
    mu = a2 @ W3.T + b3
    K = W3.shape[0]
    others = np.array([[j for j in range(K) if j != c] for c in y])
    md = mu[np.arange(len(y)), y][:, None] - np.take_along_axis(mu, others, axis=1)
    A = W3[y][:, None, :] - W3[others]                      # (n, K-1, n2)
    cov = s * A @ A.transpose(0, 2, 1)
    direct = positive_orthant_probability(md, cov, log2_points=12)
    assert np.all(tv == 0)
    np.testing.assert_allclose(p, direct, atol=2e-3)
    assert np.abs(p - direct).mean() < 2e-4


@pytest.mark.parametrize("gram_rank, table_nodes", [(None, None), (8, None), (None, 24)])
def test_conditional_level_shares_the_covariance_at_the_unshifted_mean(blobs_net, gram_rank,
                                                                        table_nodes, monkeypatch):
    """One direction conditioned on, the rest of the noise wide: at a shifted point the
    level's probability is that of the logit means at the point (Gauss-Hermite at the
    shifted mean) with the covariance at t = 0 (A diag(v2) A^T + s (A D W') (A D W')^T from
    the moments at the unshifted mean), computed here directly in float64 from the generic
    moments, on the same 2**12 fixed points and with nothing settled (settle_tol 0). With a
    PPCA form of W' W'^T the level's covariance is that form's: within its total-variation
    bound of the direct one, which the level reports. With a table of the neurons' means (the
    curve's way for the sigmoid) the means are within 1e-9 of the sums: the same result to
    the integral's own rounding."""
    from refnet.propagation.moment_curve import _conditional_level, _level_moments
    from refnet.propagation.neuron_moments import gauss_hermite_activation_moments

    arch, P, X, y = blobs_net
    W1, W2, W3 = P.W
    b1, b2, b3 = P.b
    s = 0.6
    a1 = 1 / (1 + np.exp(-(X @ W1.T + b1)))
    z2 = a1 @ W2.T + b2
    q2 = (W2 * W2).sum(axis=1)
    defl = deflate(np.linalg.svd(W2, full_matrices=True), 1, gram_rank=gram_rank)
    var_z = s * np.clip(q2 - defl.q_drop, 0.0, None)
    assert var_z.max() > 0.5                                # the rest of the noise is wide
    level = _conditional_level(s, W3, b3, y, z2, var_z, defl, 12, None,
                               functools.partial(_level_moments, "sigmoid", 24),
                               table_nodes=table_nodes, settle_tol=0.0)
    rows = _spy_on_integrals(monkeypatch)
    shift = np.sqrt(s) * (defl.US @ cubature_rule(1)[0][1])   # a point of the rule
    p, tv, _ = level(shift, var_z, defl)
    assert sum(rows) == len(y)                              # nothing settled or dropped
    m1 = gauss_hermite_activation_moments("sigmoid", z2 + shift, np.broadcast_to(
        var_z, z2.shape), n_nodes=24)[0]
    e1, e2, d = gauss_hermite_activation_moments("sigmoid", z2, np.broadcast_to(var_z, z2.shape),
                                                 n_nodes=24)
    # each neuron's own variance beyond its linear part (the part W' carries), plus its noise
    v2 = np.clip(e2 - e1 ** 2 - d * d * var_z, 0.0, None) + s
    mu = m1 @ W3.T + b3
    K = W3.shape[0]
    others = np.array([[j for j in range(K) if j != c] for c in y])
    md = mu[np.arange(len(y)), y][:, None] - np.take_along_axis(mu, others, axis=1)
    A = W3[y][:, None, :] - W3[others]                      # (n, K-1, n2)
    E = (A * d[:, None, :]) @ defl.W_rest
    cov = (A * v2[:, None, :]) @ A.transpose(0, 2, 1) + s * E @ E.transpose(0, 2, 1)
    direct = positive_orthant_probability(md, cov, log2_points=12)
    if gram_rank is None:
        assert np.all(tv == 0)
        np.testing.assert_allclose(p, direct, atol=1e-4)
    else:
        assert np.all(tv > 0) and np.all(np.abs(p - direct) <= tv + 1e-4)
    with pytest.raises(ValueError, match="another deflation"):
        level(shift, var_z, deflate(np.linalg.svd(W2, full_matrices=True), 1, gram_rank=None))


def test_conditioned_probability_weights_the_points():
    """conditioned_probability is the cubature mean of the level over the rule's shifts, with the
    variance pattern of the deflated noise, each point's weight relative to the largest, and
    the standard deviations added (not their squares) for the bound on the integration
    variance."""
    rng = np.random.default_rng(5)
    W2 = rng.normal(size=(6, 6))
    defl = deflate(np.linalg.svd(W2), 2, gram_rank=None)
    z2 = rng.normal(size=(3, 6))
    q2 = (W2 * W2).sum(axis=1)
    seen = []

    def level(shift, var_z, d, share):
        seen.append((shift, var_z, share))
        return z2[:, 0] + shift[0], np.full(3, 0.01), np.full(3, 4e-6)
    p, tv, var = conditioned_probability(0.25, q2, defl, level)
    shifts = np.array([sh for sh, _, _ in seen])
    pts, w = cubature_rule(2)
    assert len(seen) == len(w) == 7
    np.testing.assert_allclose(shifts, 0.5 * pts @ defl.US.T, atol=1e-12)
    np.testing.assert_allclose(p, z2[:, 0] + w @ shifts[:, 0], atol=1e-15)
    np.testing.assert_allclose(w @ shifts, 0.0, atol=1e-12)
    np.testing.assert_allclose(seen[0][1], 0.25 * (q2 - defl.q_drop), atol=1e-15)
    np.testing.assert_allclose([sh for _, _, sh in seen], w / w.max())
    np.testing.assert_allclose(tv, 0.01)
    np.testing.assert_allclose(var, 4e-6)


@pytest.mark.parametrize("noise_type", ["add_unc"])
def test_conditioning_moves_the_curve_toward_monte_carlo(blobs_net, noise_type):
    """Where it is used (variances 0.3 to 1 on this net, whose W2 has three singular values
    of 5-6 and the rest below 1.4), the conditioned curve is closer to a Monte-Carlo of 2,000
    repetitions than the linearised one (summed over those levels, by more than twice
    Monte-Carlo's standard error), and it changes nothing where the noise along W2's
    directions is narrow."""
    from refnet.montecarlo import accuracy_sweep
    from refnet.propagation.moments import predicted_accuracy_curve

    arch, P, X, y = blobs_net
    levels = [1e-3, 1e-2, 0.3, 0.6, 1.0]
    cond = predicted_accuracy_curve(arch, P, X, y, "duque", noise_type, levels)
    lin = predicted_accuracy_curve(arch, P, X, y, "duque", noise_type, levels, directions=0)
    used = np.array(cond.settings["conditioned_directions"]) > 0
    assert used.tolist() == [False, False, True, True, True]
    np.testing.assert_array_equal(cond.per_input[~used], lin.per_input[~used])
    reps = 2000
    mc = accuracy_sweep(arch, P, X, y, "duque", noise_types=(noise_type,), variances=levels,
                        repetitions=reps, rng=29)
    se = np.sqrt(np.sum((mc.std[0, used] / math.sqrt(reps)) ** 2))
    err_cond = np.abs(cond.accuracy[used] - mc.mean[0, used]).sum()
    err_lin = np.abs(lin.accuracy[used] - mc.mean[0, used]).sum()
    assert err_cond + 2 * se < err_lin, (err_cond, err_lin, se)


def test_conditional_level_takes_the_sums_where_a_table_would_be_too_long(monkeypatch):
    """Pre-activations spread over 1e6 (diverged weights) would need billions of knots: the
    level then takes the Gauss-Hermite sums at each point (the same numbers as without a
    table), and allocates no table; a usual spread takes the table."""
    from refnet.propagation import moment_curve
    from refnet.propagation.moment_curve import _conditional_level, _level_moments

    rng = np.random.default_rng(11)
    n1, n2, K, B = 8, 6, 4, 400
    W2, W3 = rng.normal(size=(n2, n1)), rng.normal(size=(K, n2))
    b3, y = rng.normal(size=K), rng.integers(0, K, size=B)
    defl = deflate(np.linalg.svd(W2), 1, gram_rank=None)
    var_z = 0.5 * np.clip((W2 * W2).sum(axis=1) - defl.q_drop, 0.0, None)
    moments = functools.partial(_level_moments, "sigmoid", 12)
    built = []
    table = moment_curve.sigmoid_mean_table
    monkeypatch.setattr(moment_curve, "sigmoid_mean_table",
                        lambda *a, **k: built.append(1) or table(*a, **k))
    shift = np.sqrt(0.5) * (defl.US @ cubature_rule(1)[0][1])
    for spread, tabled in ((1e6, False), (1.0, True)):
        z2 = rng.normal(scale=spread, size=(B, n2))
        built.clear()
        with_table = _conditional_level(0.5, W3, b3, y, z2, var_z, defl, 8, None, moments,
                                        table_nodes=12)(shift, var_z, defl)
        assert bool(built) == tabled
        sums = _conditional_level(0.5, W3, b3, y, z2, var_z, defl, 8, None, moments)(
            shift, var_z, defl)
        if tabled:
            np.testing.assert_allclose(with_table[0], sums[0], atol=1e-6)
        else:
            np.testing.assert_array_equal(with_table[0], sums[0])
    assert moment_curve.mean_table_knots(np.zeros(3), np.array([0.0, 1.0, np.inf])) == 2 ** 62
