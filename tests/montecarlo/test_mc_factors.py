"""The triangular factor of the opt-in ``triangular_draws`` shortcut: its defining identity
``L L^T = W W^T``, the in-place triangular product against its NumPy twin and a dense product,
and the law of the noise it carries (standard-error bounds, fixed seeds)."""
import numpy as np
import pytest

from refnet import montecarlo as mc
from refnet.model import Architecture, forward, init_params, mlp
from refnet.montecarlo.factors import triangular_factor, triangular_mix, triangular_mix_numpy
from refnet.noise import NoiseConfig, NoiseSpec


@pytest.mark.parametrize("shape, rank", [((4, 6), 4), ((5, 5), 5), ((4, 6), 2)])
def test_triangular_factor_reproduces_w_wt(shape, rank):
    rng = np.random.default_rng(0)
    W = rng.normal(size=(shape[0], rank)) @ rng.normal(size=(rank, shape[1]))
    L = triangular_factor(W, np.float64)
    assert L.shape == (shape[0],) * 2 and np.array_equal(L, np.tril(L))
    np.testing.assert_allclose(L @ L.T, W @ W.T, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="W"):
        triangular_factor(np.ones((shape[1] + 1, shape[1])), np.float64)


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-12), (np.float32, 1e-5)])
def test_triangular_mix_in_place_equals_twin_and_dense_product(dtype, rtol):
    rng = np.random.default_rng(1)
    L = triangular_factor(rng.normal(size=(5, 7)), dtype)
    eps = rng.normal(size=(9, 5)).astype(dtype)
    want = 0.3 * (eps.astype(np.float64) @ L.T.astype(np.float64))
    a, b = eps.copy(), eps.copy()
    out = triangular_mix(L, 0.3, a)
    assert np.shares_memory(out, a) and out.dtype == dtype and out.flags.c_contiguous
    np.testing.assert_allclose(out, want, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(triangular_mix_numpy(L, 0.3, b), want, rtol=rtol, atol=rtol)


def _outputs(arch, p, cfg, short, n, seed, backend="numba"):
    eng = mc.prepare(arch, p, cfg, backend, short)
    X = np.repeat(np.random.default_rng(1).normal(size=(1, arch.sizes[0])), n, axis=0)
    state = mc.clean_state(eng, X)
    draws = mc.draw_noise(eng, state, n, np.random.default_rng(seed))
    return eng, state, draws, mc.propagate(eng, state, np.arange(n), draws)[0]


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_triangular_draws_have_the_exact_gaussian_law(backend):
    """Additive uncorrelated noise (variance s2) after the hidden layer of a 6-5-4 net with a
    linear output: ``out - clean = W xi ~ N(0, s2 W W^T)``. The triangular path draws 4
    normals per sample (not 5); whitened deviations must be iid N(0, 1): mean, variance and
    pairwise products at 5 standard errors (false-positive rate about 6e-7 per check)."""
    arch = Architecture((6, 5, 4), ("sigmoid", "identity"))
    p = init_params(arch, rng=0)
    s2, n = 0.3, 20000
    cfg = NoiseConfig(NoiseSpec(add_unc=s2), (1,), "post")
    eng, state, draws, out = _outputs(arch, p, cfg, ("clean_prefix", "row_sums",
                                                     "triangular_draws"), n, 9, backend)
    assert eng.uses_triangular(state) and draws[1].add_unc.shape == (n, 4)
    clean = forward(arch, p, np.random.default_rng(1).normal(size=(1, 6)))[0]
    Lc = np.linalg.cholesky(s2 * p.W[1] @ p.W[1].T)
    E = np.linalg.solve(Lc, (out - clean).T).T
    se = 1 / np.sqrt(n)
    assert np.all(np.abs(E.mean(axis=0)) <= 5 * se)
    assert np.all(np.abs((E ** 2).mean(axis=0) - 1) <= 5 * np.sqrt(2) * se)
    for i in range(4):
        for j in range(i):
            assert abs(np.mean(E[:, i] * E[:, j])) <= 5 * se


def test_triangular_draws_is_opt_in_and_agrees_with_the_default_in_distribution():
    """Not in ``"all"`` (it changes the stream); named, it is used only where the clean
    row-sum path carries the first noisy layer. Through both sigmoid layers of a 6-5-5-3 net
    (noise on both, 5 -> 5 triangular at layer 1): the mean and variance of every output
    neuron agree with the default shortcuts' within 5 standard errors of their difference."""
    assert "triangular_draws" not in mc.parse_shortcuts("all")
    assert "triangular_draws" in mc.DEFAULT_SHORTCUTS + mc.OPT_IN_SHORTCUTS
    arch = mlp((6, 5, 5, 3), "sigmoid", "identity")
    p = init_params(arch, rng=2)
    cfg = NoiseConfig(NoiseSpec(add_unc=0.2), (1, 2), "post")
    n = 40000
    eng, state, _, a = _outputs(arch, p, cfg, mc.DEFAULT_SHORTCUTS + ("triangular_draws",), n, 3)
    assert eng.uses_triangular(state) and not eng.uses_triangular(state, keep=(1,))
    plain, pstate, _, b = _outputs(arch, p, cfg, "all", n, 4)
    assert plain.tri is None and not plain.uses_triangular(pstate)
    va, vb = a.var(axis=0, ddof=1), b.var(axis=0, ddof=1)
    assert np.all(np.abs(a.mean(axis=0) - b.mean(axis=0)) <= 5 * np.sqrt((va + vb) / n))
    # variance of a sample variance ~ (m4 - s^4) / n
    m4a, m4b = ((a - a.mean(0)) ** 4).mean(0), ((b - b.mean(0)) ** 4).mean(0)
    assert np.all(np.abs(va - vb) <= 5 * np.sqrt((m4a - va ** 2 + m4b - vb ** 2) / n))


def test_sweep_with_triangular_draws_within_standard_errors_of_default():
    """Accuracy under additive uncorrelated noise, triangular draws vs the defaults: the
    difference within 5 standard errors of a difference of two binomial proportions."""
    arch = mlp((8, 6, 6, 3), "sigmoid", "identity")
    p = init_params(arch, rng=4)
    rng = np.random.default_rng(5)
    X = rng.normal(size=(400, 8))
    y = np.argmax(forward(arch, p, X)[0], axis=1)
    kw = dict(noise_types=("add_unc",), variances=[0.05, 0.5], repetitions=20, batch_size=100)
    a = mc.accuracy_sweep(arch, p, X, y, rng=1, **kw)
    b = mc.accuracy_sweep(arch, p, X, y, rng=2, shortcuts=mc.DEFAULT_SHORTCUTS
                          + ("triangular_draws",), **kw)
    assert "triangular_draws" in b.settings["shortcuts"]
    n = 400 * 20
    pa, pb = a.mean[0], b.mean[0]
    se = np.sqrt(pa * (1 - pa) / n + pb * (1 - pb) / n)
    assert np.all(pa < 1) and np.all(np.abs(pa - pb) <= 5 * se)


def test_triangular_draws_same_bits_for_any_worker_count():
    arch = mlp((8, 6, 6, 3), "sigmoid", "identity")
    p = init_params(arch, rng=4)
    X = np.random.default_rng(5).normal(size=(90, 8))
    y = np.arange(90) % 3
    kw = dict(noise_types=("add_unc",), variances=[0.3], repetitions=3, batch_size=20, rng=7,
              shortcuts=mc.DEFAULT_SHORTCUTS + ("triangular_draws",))
    for dt in (np.float64, np.float32):
        one = mc.accuracy_sweep(arch, p, X, y, dtype=dt, workers=1, **kw).accuracy
        two = mc.accuracy_sweep(arch, p, X, y, dtype=dt, workers=2, **kw).accuracy
        assert np.array_equal(one, two)
