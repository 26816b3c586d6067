"""Per-neuron statistics (Semenova 2022, Eq. 4, p. 3): streaming moments, confidence intervals,
clean layers, memory."""
import tracemalloc

import numpy as np
import pytest

from refnet import montecarlo as mc
from refnet.model import Architecture, forward, init_params
from refnet.montecarlo import combine_moments, neuron_statistics
from refnet.noise import NoiseConfig, NoiseSpec

FULL = NoiseSpec(0.1, 0.2, 0.05, 0.03)


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


def test_neuron_statistics_streaming_equals_all_samples_at_once(net3):
    arch, p = net3
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


def test_neuron_statistics_clean_layers_and_errors(net3):
    arch, p = net3
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
def test_neuron_statistics_memory_flat_in_K(net3):
    """Peak traced memory for K = 40 and K = 1600 repeats. Storing every sample would need
    T K sum(n_l) 8 bytes (3 MB more for K = 1600); the streaming estimate may grow by at most a
    tenth of that (numba's unboxing of the per-chunk Generators leaves small ctypes objects
    to the garbage collector, about 100 kB, independent of K beyond a few hundred chunks)."""
    arch, p = net3
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
