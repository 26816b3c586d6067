"""The Monte-Carlo engine against refnet.model.forward, its shortcuts against the
straightforward path, the accuracy sweep, per-neuron statistics, and determinism."""
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numba
import numpy as np
import pytest
from scipy import stats

from refnet import montecarlo as mc
from refnet.model import Architecture, forward, init_params, mlp, predict
from refnet.montecarlo_stats import combine_moments, neuron_statistics
from refnet.noise import NOISE_TYPES, LayerNoise, NoiseConfig, NoiseSpec

ROOT = Path(__file__).resolve().parents[1]
ARCHS = {
    "2layer": Architecture((5, 4, 3), ("cubic", "identity")),
    "3layer": mlp((6, 5, 4, 3), "sigmoid", "identity"),
    "4layer": Architecture((6, 7, 5, 4, 2), ("shifted_sigmoid(alpha=4)", "sigmoid", "cubic",
                                             "identity")),
}
FULL = NoiseSpec(0.1, 0.2, 0.05, 0.03)


def _net(name, seed=0):
    arch = ARCHS[name]
    return arch, init_params(arch, rng=seed)


def _run(engine, X, gen, keep=()):
    state = mc.clean_state(engine, X)
    draws = mc.draw_noise(engine, state, len(X), gen, keep)
    return mc.propagate(engine, state, np.arange(len(X)), draws, keep), draws


@pytest.mark.parametrize("name", list(ARCHS))
@pytest.mark.parametrize("pos", ["pre", "post"])
@pytest.mark.parametrize("layers", [(0,), (1,), (-2,), (-1,), (1, -2), (0, 1, 2, -1)])
@pytest.mark.parametrize("spec", [FULL, NoiseSpec(add_cor=0.2, mul_cor=0.05),
                                  NoiseSpec(add_unc=0.1)], ids=["all", "cor", "add_unc"])
@pytest.mark.parametrize("backend", mc.BACKENDS)
def test_engine_equals_forward_on_same_draws(name, pos, layers, spec, backend):
    arch, p = _net(name)
    cfg = NoiseConfig(spec, layers, pos)
    X = np.random.default_rng(1).normal(size=(9, arch.sizes[0]))
    # the straightforward twin, and the exact (same-draws) shortcuts
    for short in ("none", ("clean_prefix", "row_sums")):
        eng = mc.prepare(arch, p, cfg, backend, short)
        (out, _), draws = _run(eng, X, np.random.default_rng(3))
        ref, _ = forward(arch, p, X, cfg, draws=draws)
        np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-12)


def test_engine_reproduces_forward_random_stream_and_keeps_layers():
    arch, p = _net("3layer")
    cfg = NoiseConfig(FULL, (0, 1, 2, 3), "post")
    X = np.random.default_rng(1).normal(size=(9, 6))
    eng = mc.prepare(arch, p, cfg, "numba", "none")
    (out, kept), _ = _run(eng, X, np.random.default_rng(5), keep=(1, 2, 3))
    ref, cache = forward(arch, p, X, cfg, rng=np.random.default_rng(5))
    np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-12)
    for l in (1, 2, 3):
        np.testing.assert_allclose(kept[l], cache.A[l], rtol=1e-12, atol=1e-12)


def test_float32_engine_close_to_float64():
    """Same draws (float64 draws rounded to float32): outputs agree to float32 precision."""
    arch, p = _net("3layer")
    cfg = NoiseConfig(FULL, (1, 2), "post")
    X = np.random.default_rng(1).normal(size=(9, 6))
    (o64, _), draws = _run(mc.prepare(arch, p, cfg, "numba", "none"), X, np.random.default_rng(3))
    e32 = mc.prepare(arch, p, cfg, "numba", "none", dtype=np.float32)
    d32 = tuple(None if d is None else
                LayerNoise(*(None if x is None else x.astype(np.float32)
                             for x in (d.add_unc, d.add_cor, d.mul_unc, d.mul_cor)))
                for d in draws)
    o32, _ = mc.propagate(e32, mc.clean_state(e32, X), np.arange(9), d32)
    assert o32.dtype == np.float32
    d = mc.draw_noise(e32, mc.clean_state(e32, X), 2, np.random.default_rng(0))
    assert d[1].add_unc.dtype == np.float32
    np.testing.assert_array_equal(   # float32 engines round the float64 stream
        d[1].add_unc, np.random.default_rng(0).standard_normal((2, 5)).astype(np.float32))
    np.testing.assert_allclose(o32, o64, rtol=1e-5, atol=1e-5)


def test_narrow_draws_have_the_exact_gaussian_law():
    """Additive uncorrelated noise (variance s2) on the last hidden layer only, linear output:
    ``out - clean = W xi ~ N(0, s2 W W^T)``. Whitened deviations must be iid N(0, 1): mean,
    variance and pairwise products checked at 5 standard errors (false-positive rate about 6e-7
    per check, 9 checks; fixed seed). Run for the narrow path and, as a check of the oracle,
    the straightforward path."""
    arch, p = _net("3layer")
    s2, n = 0.3, 20000
    cfg = NoiseConfig(NoiseSpec(add_unc=s2), (2,), "post")
    X = np.repeat(np.random.default_rng(1).normal(size=(1, 6)), n, axis=0)
    clean = forward(arch, p, X[:1])[0]
    Lc = np.linalg.cholesky(s2 * p.W[2] @ p.W[2].T)
    for short in ("all", "none"):
        eng = mc.prepare(arch, p, cfg, "numba", short)
        assert (eng.narrow_layers() == {2}) == (short == "all")
        (out, _), _ = _run(eng, X, np.random.default_rng(9))
        E = np.linalg.solve(Lc, (out - clean).T).T     # (n, 3), should be iid N(0, 1)
        se = 1 / np.sqrt(n)
        assert np.all(np.abs(E.mean(axis=0)) <= 5 * se)
        assert np.all(np.abs((E ** 2).mean(axis=0) - 1) <= 5 * np.sqrt(2) * se)
        for i, j in ((0, 1), (0, 2), (1, 2)):
            assert abs(np.mean(E[:, i] * E[:, j])) <= 5 * se


@pytest.mark.parametrize("layers, position, narrow", [((1, 2), "post", {1, 2}),
                                                      ((0, 2), "pre", {0})])
def test_narrow_and_row_sum_shortcuts_equal_in_distribution_through_nonlinearity(
        layers, position, narrow):
    """Two-sample Kolmogorov-Smirnov test per output neuron, all shortcuts vs none, with
    additive and correlated multiplicative noise on a 6-5-4-3 sigmoid net: on both hidden
    layers after the activation (narrow draws 5 -> 4 and 4 -> 3, row sums at layer 1), or on
    the input (narrow draws 6 -> 5) and before layer 2's activation. Pass if every p-value >
    1e-4: false-positive rate <= 3 x 1e-4 per case; fixed seeds."""
    arch, p = _net("3layer")
    cfg = NoiseConfig(NoiseSpec(add_unc=0.2, add_cor=0.1, mul_cor=0.05), layers, position)
    X = np.repeat(np.random.default_rng(1).normal(size=(1, 6)), 20000, axis=0)
    fast = mc.prepare(arch, p, cfg, "numba", "all")
    assert fast.narrow_layers() == narrow
    (a, _), _ = _run(fast, X, np.random.default_rng(10))
    (b, _), _ = _run(mc.prepare(arch, p, cfg, "numba", "none"), X, np.random.default_rng(11))
    for j in range(3):
        assert stats.ks_2samp(a[:, j], b[:, j]).pvalue > 1e-4


def test_draw_shape_errors_name_the_argument():
    arch, p = _net("3layer")
    eng = mc.prepare(arch, p, NoiseConfig(FULL, (1,), "post"), "numba", "none")
    state = mc.clean_state(eng, np.zeros((2, 6)))
    with pytest.raises(ValueError, match="draws: layer 1 is noisy"):
        mc.propagate(eng, state, [0, 1], (None,) * 4)
    good = mc.draw_noise(eng, state, 3, np.random.default_rng(0))
    with pytest.raises(ValueError, match="draws: layer 1 add_unc"):
        mc.propagate(eng, state, [0, 1], good)
    with pytest.raises(ValueError, match="idx"):
        mc.propagate(eng, state, [0, 2], good)
    with pytest.raises(ValueError, match="keep"):
        mc.propagate(eng, state, [0, 1], good, keep=(0,))
    with pytest.raises(ValueError, match="backend"):
        mc.prepare(arch, p, eng.config, "cuda")
    with pytest.raises(ValueError, match="shortcuts"):
        mc.prepare(arch, p, eng.config, "numba", ("fast",))


# --- accuracy sweep ---------------------------------------------------------------------------
def _classifier(seed=0, n=300):
    """A 6-8-8-3 sigmoid net and data it classifies well (labels = its clean argmax)."""
    arch = mlp((6, 8, 8, 3), "sigmoid", "identity")
    p = init_params(arch, "normal", rng=seed, std=1.5)
    X = np.random.default_rng(seed + 1).normal(size=(n, 6))
    return arch, p, X, predict(arch, p, X)


def test_sweep_shapes_and_sanity():
    arch, p, X, y = _classifier()
    v = np.array([1e-8, 1e-2, 1e4])
    r = mc.accuracy_sweep(arch, p, X, y, "duque", variances=v, repetitions=2, batch_size=64, rng=4)
    assert r.accuracy.shape == (4, 3, 2) and r.mean.shape == r.std.shape == (4, 3)
    assert r.noise_types == NOISE_TYPES and r.seed == 4 and r.clean_accuracy == 1.0
    assert r.settings["layers"] == [1, 2] and r.settings["position"] == "post"
    assert np.all(r.accuracy[:, 0] >= 0.99)            # negligible noise: clean accuracy
    assert np.all(r.accuracy[[0, 2], 2] < 0.6)           # huge uncorrelated noise: near chance
    assert np.all((0 <= r.accuracy) & (r.accuracy <= 1))
    np.testing.assert_allclose(r.std, r.accuracy.std(axis=2, ddof=1))


def test_sweep_same_seed_same_result_and_backends_agree():
    arch, p, X, y = _classifier()
    kw = dict(variances=[0.05, 0.5], repetitions=2, batch_size=50)
    a = mc.accuracy_sweep(arch, p, X, y, rng=3, **kw)
    b = mc.accuracy_sweep(arch, p, X, y, rng=3, **kw)
    c = mc.accuracy_sweep(arch, p, X, y, rng=3, backend="numpy", **kw)
    d = mc.accuracy_sweep(arch, p, X, y, rng=4, **kw)
    assert np.array_equal(a.accuracy, b.accuracy)
    np.testing.assert_allclose(c.accuracy, a.accuracy, atol=1 / len(X) + 1e-12)
    assert not np.array_equal(a.accuracy, d.accuracy)
    g = mc.accuracy_sweep(arch, p, X, y, rng=np.random.default_rng(8), **kw)
    assert isinstance(g.seed, int)
    assert np.array_equal(mc.accuracy_sweep(arch, p, X, y, rng=g.seed, **kw).accuracy, g.accuracy)


def test_sweep_shortcuts_match_straightforward_statistically():
    """Per type, the mean accuracy over 4 levels x 3 repetitions (300 samples each) with all
    shortcuts vs none: difference within 5 standard errors of a difference of two binomial
    proportions (false-positive rate about 6e-7 per type; fixed seed)."""
    arch, p, X, y = _classifier()
    kw = dict(variances=[0.1, 0.3, 1.0, 3.0], repetitions=3, batch_size=100)
    a = mc.accuracy_sweep(arch, p, X, y, rng=1, **kw)
    b = mc.accuracy_sweep(arch, p, X, y, rng=2, shortcuts="none", **kw)
    n = a.accuracy[0].size * len(X)
    ma, mb = a.accuracy.mean(axis=(1, 2)), b.accuracy.mean(axis=(1, 2))
    se = np.sqrt((ma * (1 - ma) + mb * (1 - mb)) / n)
    assert np.all(np.abs(ma - mb) <= 5 * se + 1e-12)


def test_sweep_bad_arguments():
    arch, p, X, y = _classifier(n=10)
    with pytest.raises(ValueError, match="noise_types"):
        mc.accuracy_sweep(arch, p, X, y, noise_types=("add_unk",))
    with pytest.raises(ValueError, match="variances"):
        mc.accuracy_sweep(arch, p, X, y, variances=[-1.0])
    with pytest.raises(ValueError, match="y: labels"):
        mc.accuracy_sweep(arch, p, X, y + 5)
    with pytest.raises(ValueError, match="X"):
        mc.accuracy_sweep(arch, p, X[:, :3], y)
    with pytest.raises(ValueError, match="preset"):
        mc.accuracy_sweep(arch, p, X, y, noise="loud")
    with pytest.raises(ValueError, match="repetitions"):
        mc.accuracy_sweep(arch, p, X, y, repetitions=0)


@pytest.mark.parametrize("backend", ["numba", "numba-parallel"])
def test_sweep_and_statistics_bitwise_identical_for_1_and_2_numba_threads(backend):
    arch, p, X, y = _classifier()
    cfg = NoiseConfig(NoiseSpec(0.1, 0.1, 0.1, 0.1), (1, 2))
    before, res = numba.get_num_threads(), []
    try:
        for t in sorted({1, min(2, numba.config.NUMBA_NUM_THREADS)}):
            numba.set_num_threads(t)
            r = mc.accuracy_sweep(arch, p, X, y, variances=[0.1, 1.0], repetitions=2,
                                  batch_size=64, rng=5, backend=backend)
            s = neuron_statistics(arch, p, X[:20], cfg, K=40, rng=2, backend=backend)
            res.append((r.accuracy, s.layers[3].variance, s.layers[1].mean))
    finally:
        numba.set_num_threads(before)
    for other in res[1:]:
        assert all(np.array_equal(a, b) for a, b in zip(res[0], other))


def test_results_independent_of_the_number_of_workers():
    arch, p, X, y = _classifier()
    cfg = NoiseConfig(NoiseSpec(0.1, 0.1, 0.1, 0.1), (1, 2))
    kw = dict(variances=[0.1, 1.0], repetitions=2, batch_size=64, rng=5)
    r1 = mc.accuracy_sweep(arch, p, X, y, **kw)
    r3 = mc.accuracy_sweep(arch, p, X, y, workers=3, **kw)
    assert np.array_equal(r1.accuracy, r3.accuracy)
    s1 = neuron_statistics(arch, p, X[:20], cfg, K=45, rng=2, repeat_block=10, rows_per_chunk=50)
    s2 = neuron_statistics(arch, p, X[:20], cfg, K=45, rng=2, repeat_block=10, rows_per_chunk=50,
                           workers=2)
    for l in (1, 2, 3):
        assert np.array_equal(s1.layers[l].mean, s2.layers[l].mean)
        assert np.array_equal(s1.layers[l].variance, s2.layers[l].variance)
    with pytest.raises(ValueError, match="workers"):
        mc.accuracy_sweep(arch, p, X, y, workers=2, backend="numba-parallel", **kw)
    with pytest.raises(ValueError, match="workers"):
        mc.accuracy_sweep(arch, p, X, y, workers=0, **kw)


_CHILD = """
import numpy as np
from refnet import montecarlo as mc
from refnet.model import mlp, init_params, predict
from refnet.montecarlo_stats import neuron_statistics
from refnet.noise import NoiseConfig, NoiseSpec
arch = mlp((6, 8, 8, 3), "sigmoid", "identity")
p = init_params(arch, "normal", rng=0, std=1.5)
X = np.random.default_rng(1).normal(size=(300, 6))
y = predict(arch, p, X)
r = mc.accuracy_sweep(arch, p, X, y, variances=[0.1, 1.0], repetitions=2, batch_size=64, rng=5,
                      backend="numba-parallel")
s = neuron_statistics(arch, p, X[:20], NoiseConfig(NoiseSpec(0.1, 0.1, 0.1, 0.1), (1, 2)),
                      K=40, rng=2, backend="numba-parallel")
print(r.accuracy.tobytes().hex(), s.layers[3].variance.tobytes().hex())
"""


@pytest.mark.slow
def test_results_identical_in_a_single_threaded_subprocess():
    # one numba thread and one BLAS thread in the child; defaults in this process
    env = dict(os.environ, NUMBA_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    child = subprocess.run([sys.executable, "-c", _CHILD], env=env, capture_output=True,
                           text=True, timeout=300, check=True)
    acc_hex, var_hex = child.stdout.split()
    arch, p, X, y = _classifier()
    r = mc.accuracy_sweep(arch, p, X, y, variances=[0.1, 1.0], repetitions=2, batch_size=64, rng=5)
    s = neuron_statistics(arch, p, X[:20], NoiseConfig(NoiseSpec(0.1, 0.1, 0.1, 0.1), (1, 2)),
                          K=40, rng=2)   # serial backend here, parallel one in the child
    assert r.accuracy.tobytes().hex() == acc_hex
    assert s.layers[3].variance.tobytes().hex() == var_hex


# --- per-neuron statistics ----------------------------------------------------------------
def test_combine_moments_equals_two_pass_numpy(rng):
    x = rng.normal(size=(5, 37, 3))
    n, mean, M2 = 0, np.zeros((5, 3)), np.zeros((5, 3))
    for a, b in ((0, 10), (10, 11), (11, 37)):
        blk = x[:, a:b]
        m_b = blk.mean(axis=1)
        M2_b = ((blk - m_b[:, None]) ** 2).sum(axis=1)
        n, mean, M2 = combine_moments(n, mean, M2, b - a, m_b, M2_b)
    np.testing.assert_allclose(mean, x.mean(axis=1), rtol=1e-12)
    np.testing.assert_allclose(M2 / (n - 1), x.var(axis=1, ddof=1), rtol=1e-12)


def test_neuron_statistics_streaming_equals_all_samples_at_once():
    arch, p = _net("3layer")
    cfg = NoiseConfig(FULL, (1, 2), "post")
    X = np.random.default_rng(1).normal(size=(7, 6))
    K, kb, rows = 23, 5, 15          # 3 inputs per block, 5 blocks of repeats (last one of 3)
    s = neuron_statistics(arch, p, X, cfg, K=K, rng=6, repeat_block=kb, rows_per_chunk=rows,
                          layers=(1, 3))
    eng = mc.prepare(arch, p, cfg)
    state = mc.clean_state(eng, X)
    tb = rows // kb
    Y = {1: np.empty((7, K, 5)), 3: np.empty((7, K, 3))}
    for ti, t0 in enumerate(range(0, 7, tb)):
        t1 = min(t0 + tb, 7)
        for ki, k0 in enumerate(range(0, K, kb)):
            k = min(kb, K - k0)
            idx = np.repeat(np.arange(t0, t1), k)
            d = mc.draw_noise(eng, state, len(idx), mc.chunk_generator(6, (ti, ki)), (1, 3))
            _, kept = mc.propagate(eng, state, idx, d, (1, 3))
            for l in (1, 3):
                Y[l][t0:t1, k0:k0 + k] = kept[l].reshape(t1 - t0, k, -1)
    for l in (1, 3):
        st = s.layers[l]
        np.testing.assert_allclose(st.mean, Y[l].mean(axis=1), rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(st.variance, Y[l].var(axis=1, ddof=1), rtol=1e-10)
        np.testing.assert_allclose(st.snr, st.mean / np.sqrt(st.variance), rtol=1e-12)
    assert set(s.layers) == {1, 3} and s.K == K and s.T == 7 and s.seed == 6


def test_neuron_statistics_confidence_intervals_cover_the_truth():
    """Linear one-layer net, additive uncorrelated noise on its output: every neuron is
    Gaussian with known mean (the clean output) and variance. Over 200 inputs x 3 neurons the
    number of 95% intervals containing the truth is Binomial(600, 0.95); accept within 5 of its
    standard deviations (false-positive rate about 6e-7 per interval type; fixed seed)."""
    arch = Architecture((4, 3), ("identity",))
    p = init_params(arch, rng=0)
    X = np.random.default_rng(1).normal(size=(200, 4))
    s2 = 0.04
    s = neuron_statistics(arch, p, X, NoiseConfig(NoiseSpec(add_unc=s2), (1,)), K=30, rng=3)
    st = s.layers[1]
    truth_mean = forward(arch, p, X)[0]
    n, c = truth_mean.size, 0.95
    bound = 5 * np.sqrt(n * c * (1 - c))
    for (lo, hi), truth in ((st.mean_ci, truth_mean), (st.variance_ci, s2)):
        inside = np.count_nonzero((lo <= truth) & (truth <= hi))
        assert abs(inside - n * c) <= bound, inside


def test_neuron_statistics_clean_layers_and_errors():
    arch, p = _net("3layer")
    X = np.random.default_rng(1).normal(size=(4, 6))
    s = neuron_statistics(arch, p, X, NoiseConfig(NoiseSpec(add_unc=0.1), (2,)), K=5, rng=0,
                          layers=(1, 2))
    np.testing.assert_allclose(s.layers[1].mean, forward(arch, p, X)[1].A[1], rtol=1e-12)
    assert np.all(s.layers[1].variance == 0) and np.all(s.layers[2].variance > 0)
    with pytest.raises(ValueError, match="K"):
        neuron_statistics(arch, p, X, NoiseConfig(), K=1)
    with pytest.raises(ValueError, match="layers"):
        neuron_statistics(arch, p, X, NoiseConfig(), K=3, layers=(7,))
    with pytest.raises(TypeError, match="noise"):
        neuron_statistics(arch, p, X, "semenova", K=3)


@pytest.mark.slow
def test_neuron_statistics_memory_flat_in_K():
    """Peak traced memory for K = 40 and K = 1600 repeats. Storing every sample would need
    T K sum(n_l) 8 bytes (3 MB more for K = 1600); the streaming estimate may grow by at most a
    tenth of that (numba's unboxing of the per-chunk Generators leaves small ctypes objects
    to the garbage collector, about 100 kB, independent of K beyond a few hundred chunks)."""
    arch, p = _net("3layer")
    cfg = NoiseConfig(FULL, (1, 2), "post")
    X = np.random.default_rng(1).normal(size=(20, 6))
    peaks = []
    for K in (40, 1600):
        neuron_statistics(arch, p, X, cfg, K=K, rng=0, repeat_block=20, rows_per_chunk=200)
        tracemalloc.start()
        neuron_statistics(arch, p, X, cfg, K=K, rng=0, repeat_block=20, rows_per_chunk=200)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    all_samples = 20 * (1600 - 40) * (5 + 4 + 3) * 8
    assert peaks[1] - peaks[0] < 0.1 * all_samples, peaks


def test_chunk_generator_is_the_nested_spawn_child():
    """The docstring's claim: key (i, j) is child j of child i of SeedSequence(seed)."""
    direct = mc.chunk_generator(42, (3, 5)).standard_normal(4)
    nested = np.random.default_rng(np.random.SeedSequence(42).spawn(4)[3].spawn(6)[5])
    assert np.array_equal(direct, nested.standard_normal(4))
    assert mc.resolve_seed(7) == 7 and isinstance(mc.resolve_seed(None), int)
    with pytest.raises(TypeError, match="rng"):
        mc.resolve_seed("seven")
