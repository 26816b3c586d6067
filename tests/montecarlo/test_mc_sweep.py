"""The accuracy sweep: against independent noisy forward passes, its settings, determinism
(seed, backends, shortcuts, threads, workers), and a run without numba."""
import os
import subprocess
import sys
from dataclasses import FrozenInstanceError
from pathlib import Path

import numpy as np
import pytest

from refnet import Adagrad
from refnet.montecarlo import (SweepSettings, accuracy_sweep, monte_carlo_outputs,
                               neuron_statistics)
from refnet.noise import NOISE_TYPES, NoiseConfig, NoiseSpec

ROOT = Path(__file__).resolve().parents[2]
NOISY = NoiseConfig(NoiseSpec(0.1, 0.1, 0.1, 0.1), (1, 2))


def test_sweep_shapes_and_sanity(classifier):
    arch, p, X, y = classifier
    v = np.array([1e-8, 1e-2, 1e4])
    r = accuracy_sweep(arch, p, X, y, "duque", variances=v, repetitions=2, batch_size=64, rng=4)
    assert r.accuracy.shape == (4, 3, 2) and r.mean.shape == r.std.shape == (4, 3)
    assert r.noise_types == NOISE_TYPES and r.seed == 4 and r.clean_accuracy == 1.0
    assert r.settings["layers"] == [1, 2] and r.settings["position"] == "post"
    assert np.all(r.accuracy[:, 0] >= 0.99)            # negligible noise: clean accuracy
    assert np.all(r.accuracy[[0, 2], 2] < 0.6)           # huge uncorrelated noise: near chance
    assert np.all((0 <= r.accuracy) & (r.accuracy <= 1))
    np.testing.assert_allclose(r.std, r.accuracy.std(axis=2, ddof=1))
    np.testing.assert_array_equal(r.variances, v)


@pytest.mark.parametrize("noise_type", NOISE_TYPES)
def test_sweep_agrees_with_independent_noisy_forward_passes(classifier, noise_type):
    """The sweep (engine, all shortcuts, chunk seeds) against the NumPy reference: repeated
    :func:`refnet.model.forward` with the noise at the same variances and its own draws.

    Each estimate is a mean of N = 20 x 300 independent trials (fresh noise per input and
    pass); the variance of such a mean is at most ``p (1 - p) / N`` (a mean of Bernoulli
    trials with different success probabilities varies less than a binomial one). Accept a
    difference within 5 standard errors of a difference of two such means: false-positive
    rate about 6e-7 per comparison; fixed seeds. Variances 0.3 and 3 put every type's
    accuracy between 0.46 and 0.97, where confusing variance with standard deviation moves
    it by many standard errors."""
    arch, p, X, y = classifier
    v, R = [0.3, 3.0], 20
    sweep = accuracy_sweep(arch, p, X, y, "duque", noise_types=(noise_type,), variances=v,
                           repetitions=R, batch_size=100, rng=0)
    for j, var in enumerate(v):
        cfg = NoiseConfig(NoiseSpec.single(noise_type, var), (1, 2), "post")
        Y = monte_carlo_outputs(arch, p, X, cfg, R, rng=1)            # (R, 300, 3)
        p_ref, p_sweep = np.mean(Y.argmax(-1) == y), sweep.mean[0, j]
        n = R * len(X)
        se = np.sqrt((p_ref * (1 - p_ref) + p_sweep * (1 - p_sweep)) / n)
        assert 0.4 < p_ref < 0.99 and abs(p_sweep - p_ref) <= 5 * se, (var, p_sweep, p_ref)


def test_sweep_settings_keyword_only_checked_once_and_overridable(classifier):
    s = SweepSettings(variances=np.array([0.1, 1.0]), repetitions=2, shortcuts="none",
                      dtype="float32")
    assert s.variances == (0.1, 1.0) and s.shortcuts == frozenset() and s.dtype == np.float32
    assert s.noise_types == NOISE_TYPES and s == SweepSettings(**{
        "variances": [0.1, 1.0], "repetitions": 2, "shortcuts": (), "dtype": np.float32})
    with pytest.raises(TypeError):
        SweepSettings(NOISE_TYPES)                       # keyword-only
    with pytest.raises(FrozenInstanceError):
        s.repetitions = 3
    arch, p, X, y = classifier
    X, y = X[:40], y[:40]
    base = SweepSettings(variances=[0.5], repetitions=2, batch_size=16)
    a = accuracy_sweep(arch, p, X, y, "duque", base, rng=3, repetitions=1)
    b = accuracy_sweep(arch, p, X, y, "duque", variances=[0.5], repetitions=1, batch_size=16,
                       rng=3)
    assert a.accuracy.shape == (4, 1, 1) and np.array_equal(a.accuracy, b.accuracy)
    with pytest.raises(TypeError, match="settings: expected a SweepSettings"):
        accuracy_sweep(arch, p, X, y, "duque", NOISE_TYPES)   # the old positional call
    with pytest.raises(TypeError, match="unknown setting.*varainces"):
        accuracy_sweep(arch, p, X, y, varainces=[0.1])


@pytest.mark.parametrize("kwargs, match", [
    (dict(noise_types=("add_unk",)), "noise_types: unknown"),
    (dict(noise_types="add_unc"), "noise_types: need a sequence"),
    (dict(noise_types=("add_unc", "add_unc")), "noise_types: need distinct"),
    (dict(variances=[-1.0]), "variances"),
    (dict(variances=[]), "variances"),
    (dict(repetitions=0), "repetitions"),
    (dict(repetitions=10 ** 11), "repetitions: at most 10000"),   # before 1.46 TiB
    (dict(variances=np.ones(10_001)), "variances: at most 10000"),
    # each within its ceiling, their product not: 4e8 passes, a 3.2 GB result
    (dict(variances=np.ones(10_000), repetitions=10_000), "= 400,000,000 passes, at most "
                                                          "10,000,000"),
    (dict(batch_size=0), "batch_size"),
    (dict(backend="cuda"), "backend"),
    (dict(dtype=np.int64), "dtype"),
    (dict(shortcuts=("fast",)), "shortcuts"),
    (dict(workers=0), "workers"),
    (dict(workers=2, backend="numba-parallel"), "workers"),
])
def test_sweep_settings_errors_name_the_setting(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SweepSettings(**kwargs)


def test_sweep_input_errors_name_the_argument(classifier):
    arch, p, X, y = classifier
    X, y = X[:10], y[:10]
    with pytest.raises(ValueError, match="y: labels"):
        accuracy_sweep(arch, p, X, y + 5)
    with pytest.raises(ValueError, match="X"):
        accuracy_sweep(arch, p, X[:, :3], y)
    with pytest.raises(ValueError, match="preset"):
        accuracy_sweep(arch, p, X, y, noise="loud")


def test_sweep_same_seed_same_result_and_backends_agree(classifier):
    """The NumPy twins differ from the kernels by a few ulp (test_mc_kernels.py), which can
    flip an argmax that is tied to rounding: at most one input per pass here."""
    arch, p, X, y = classifier
    kw = dict(variances=[0.05, 0.5], repetitions=2, batch_size=50)
    a = accuracy_sweep(arch, p, X, y, rng=3, **kw)
    b = accuracy_sweep(arch, p, X, y, rng=3, **kw)
    c = accuracy_sweep(arch, p, X, y, rng=3, backend="numpy", **kw)
    d = accuracy_sweep(arch, p, X, y, rng=4, **kw)
    assert np.array_equal(a.accuracy, b.accuracy)
    np.testing.assert_allclose(c.accuracy, a.accuracy, atol=1 / len(X) + 1e-12)
    assert not np.array_equal(a.accuracy, d.accuracy)
    g = accuracy_sweep(arch, p, X, y, rng=np.random.default_rng(8), **kw)
    assert isinstance(g.seed, int)
    assert np.array_equal(accuracy_sweep(arch, p, X, y, rng=g.seed, **kw).accuracy, g.accuracy)


def test_sweep_shortcuts_match_straightforward_statistically(classifier):
    """Per type, the mean accuracy over 4 levels x 3 repetitions (300 samples each) with all
    shortcuts vs none: difference within 5 standard errors of a difference of two binomial
    proportions (false-positive rate about 6e-7 per type; fixed seed)."""
    arch, p, X, y = classifier
    kw = dict(variances=[0.1, 0.3, 1.0, 3.0], repetitions=3, batch_size=100)
    a = accuracy_sweep(arch, p, X, y, rng=1, **kw)
    b = accuracy_sweep(arch, p, X, y, rng=2, shortcuts="none", **kw)
    n = a.accuracy[0].size * len(X)
    ma, mb = a.accuracy.mean(axis=(1, 2)), b.accuracy.mean(axis=(1, 2))
    se = np.sqrt((ma * (1 - ma) + mb * (1 - mb)) / n)
    assert np.all(np.abs(ma - mb) <= 5 * se + 1e-12)


def _sweep_and_stats(arch, p, X, y, **kw):
    r = accuracy_sweep(arch, p, X, y, variances=[0.1, 1.0], repetitions=2, batch_size=64, rng=5,
                       **kw)
    s = neuron_statistics(arch, p, X[:20], NOISY, K=45, rng=2, repeat_block=10,
                          rows_per_chunk=50, **kw)
    return [r.accuracy] + [getattr(s.layers[l], m) for l in (1, 2, 3) for m in ("mean", "variance")]


def test_results_bitwise_identical_for_any_numba_thread_count_and_kernel_build(classifier):
    """numba-parallel on 1 and 2 threads, and the serial build: the same bits."""
    numba = pytest.importorskip("numba")
    arch, p, X, y = classifier
    res, before = [_sweep_and_stats(arch, p, X, y, backend="numba")], numba.get_num_threads()
    try:
        for t in sorted({1, min(2, numba.config.NUMBA_NUM_THREADS)}):
            numba.set_num_threads(t)
            res.append(_sweep_and_stats(arch, p, X, y, backend="numba-parallel"))
    finally:
        numba.set_num_threads(before)
    for other in res[1:]:
        assert all(np.array_equal(a, b) for a, b in zip(res[0], other))


def test_results_independent_of_the_number_of_workers(classifier):
    arch, p, X, y = classifier
    one, three = _sweep_and_stats(arch, p, X, y), _sweep_and_stats(arch, p, X, y, workers=3)
    assert all(np.array_equal(a, b) for a, b in zip(one, three))


def _all_at_once(fn, items, pool):
    """How the sweep handed out its chunks before: ``Executor.map``, every chunk submitted
    before the first result is taken."""
    return pool.map(fn, items) if pool is not None else map(fn, items)


@pytest.mark.parametrize("settings", [
    dict(workers=1, batch_size=64),
    dict(workers=2, batch_size=7, noise_types=("add_unc", "mul_cor")),
    dict(workers=3, batch_size=50, dtype=np.float32, backend="numpy"),
    dict(workers=2, batch_size=300, repetitions=5),   # one chunk per pass
], ids=["serial", "2-workers", "3-workers-float32-numpy", "one-chunk-per-pass"])
def test_chunks_handed_out_a_few_at_a_time_give_the_same_bits(settings, classifier,
                                                              monkeypatch):
    """The same chunks, seeds and order of sums as when every chunk was submitted at once."""
    import refnet.montecarlo.sweep as mc_sweep

    arch, p, X, y = classifier
    kw = dict(variances=[0.01, 0.3, 2.0], repetitions=3, rng=11) | settings
    bounded = accuracy_sweep(arch, p, X, y, "duque", **kw)
    monkeypatch.setattr(mc_sweep, "iter_chunks", _all_at_once)
    at_once = accuracy_sweep(arch, p, X, y, "duque", **kw)
    assert np.array_equal(bounded.accuracy, at_once.accuracy)
    assert bounded.clean_accuracy == at_once.clean_accuracy and bounded.seed == at_once.seed


def test_chunks_in_flight_stay_bounded(classifier, monkeypatch):
    """Every chunk of every pass was submitted before the first result was taken: memory grew
    with levels x repetitions x batches (millions of futures for a long evaluation). Now at
    most CHUNKS_AHEAD_PER_WORKER per worker are submitted and not yet taken, plus the clean
    pass's task."""
    from concurrent.futures import Future, ThreadPoolExecutor

    from refnet.montecarlo.chunks import CHUNKS_AHEAD_PER_WORKER

    arch, p, X, y = classifier
    outstanding, most, submitted = set(), [0], [0]
    real_submit, real_result = ThreadPoolExecutor.submit, Future.result

    def submit(self, *a, **k):
        future = real_submit(self, *a, **k)
        outstanding.add(future)
        submitted[0] += 1
        most[0] = max(most[0], len(outstanding))
        return future

    def result(self, *a, **k):
        outstanding.discard(self)
        return real_result(self, *a, **k)

    monkeypatch.setattr(ThreadPoolExecutor, "submit", submit)
    monkeypatch.setattr(Future, "result", result)
    workers, batches = 2, 300 // 5
    r = accuracy_sweep(arch, p, X, y, "duque", noise_types=("add_cor",), variances=[0.1, 1.0],
                       repetitions=2, batch_size=5, workers=workers, rng=3)
    assert r.accuracy.shape == (1, 2, 2)
    assert submitted[0] == 1 * 2 * 2 * batches + 2  # the chunks, the clean state, the clean pass
    assert most[0] <= CHUNKS_AHEAD_PER_WORKER * workers + 1, most[0]


def test_iter_chunks_is_lazy_ordered_and_cancels_what_is_left(monkeypatch):
    """Items may be endless; results come in order; closing it early drops the chunks queued
    (at most CHUNKS_AHEAD_PER_WORKER per worker were handed out)."""
    import itertools
    import threading

    from refnet.montecarlo.chunks import CHUNKS_AHEAD_PER_WORKER, iter_chunks, worker_pool

    calls, lock = [], threading.Lock()

    def square(x):
        with lock:
            calls.append(x)
        return x * x

    with worker_pool(2, "numba") as pool:
        it = iter_chunks(square, itertools.count(), pool)
        assert list(itertools.islice(it, 10)) == [x * x for x in range(10)]
        it.close()
    assert len(calls) <= 10 + CHUNKS_AHEAD_PER_WORKER * 2
    assert list(iter_chunks(square, range(5), None)) == [0, 1, 4, 9, 16]


_WITHOUT_NUMBA = """
import sys, warnings
sys.modules["numba"] = None          # import numba now raises ImportError
import numpy as np
import refnet, refnet.montecarlo as mc
from refnet import _numba, Adagrad
from refnet.model import mlp, init_params, predict
from refnet.noise import NoiseConfig, NoiseSpec
assert not _numba.HAVE_NUMBA
arch = mlp((6, 8, 8, 3), "sigmoid", "identity")
p = init_params(arch, "normal", rng=0, std=1.5)
X = np.random.default_rng(1).normal(size=(300, 6))
with warnings.catch_warnings(record=True) as caught:   # the first kernel's call warns, once
    warnings.simplefilter("always")
    y = predict(arch, p, X)
    r = mc.accuracy_sweep(arch, p, X, y, variances=[0.1, 1.0], repetitions=2, batch_size=64,
                          rng=5, backend="numba")
    s = mc.neuron_statistics(arch, p, X[:20], NoiseConfig(NoiseSpec(0.1, 0.1, 0.1, 0.1), (1, 2)),
                             K=45, rng=2, repeat_block=10, rows_per_chunk=50)
    g = np.random.default_rng(4).normal(size=(37, 53))
    (q,), _ = Adagrad(lr=0.03).step([g.copy()], [g], Adagrad(lr=0.03).init([g]))
said = [w for w in caught if "numba" in str(w.message)]
assert len(said) == 1 and str(said[0].message).startswith("numba is not installed"), said
assert r.settings["backend"] == "numpy"
# the kernels themselves, as plain Python (the parallel build is a _variant copy)
from refnet.montecarlo import kernels as K
Z, sd, e = X[:4, :5], np.array([0.3, 0.0, 0.2, 0.0]), np.empty((0, 0))
au, mu = np.random.default_rng(0).normal(size=(2, 4, 5))
outs = [np.empty_like(Z) for _ in range(3)]
for kern, out in zip((K.noisy_activation, K.noisy_activation_serial,
                      K.noisy_activation_numpy), outs):
    kern(Z, (1, 0.0, 2), sd, au, e, mu, e, out)
assert np.array_equal(outs[0], outs[1]) and np.allclose(outs[0], outs[2], rtol=1e-14)
# to a file in the working folder: np.save onto a pipe (stdout) can fail in tofile's ftell
np.save("child.npy", np.concatenate(
    [r.accuracy.ravel()] + [getattr(s.layers[l], m).ravel() for l in (1, 2, 3)
                            for m in ("mean", "variance")] + [q.ravel()]))
"""


def test_without_numba_same_results_from_the_numpy_twins(classifier, tmp_path):
    """A child process in which ``import numba`` fails: ``import refnet`` works, the numba
    backend falls back to the NumPy twins with one warning, and the sweep, the statistics and
    an Adagrad step give this process's numbers: bitwise those of the NumPy backend (same
    code), and those of the numba kernels to their few-ulp sigmoid difference (statistics),
    one input per pass (accuracies, as in test_sweep_same_seed_same_result_and_backends_agree)
    and bitwise (Adagrad, whose kernel repeats its twin's operations)."""
    pytest.importorskip("numba")   # the parent's numbers come from the kernels
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    child = subprocess.run([sys.executable, "-c", _WITHOUT_NUMBA], env=env, capture_output=True,
                           timeout=300, cwd=tmp_path)
    assert child.returncode == 0, child.stderr.decode()
    got = np.load(tmp_path / "child.npy")
    arch, p, X, y = classifier
    g = np.random.default_rng(4).normal(size=(37, 53))
    (q,), _ = Adagrad(lr=0.03).step([g.copy()], [g], Adagrad(lr=0.03).init([g]))
    n_acc = 4 * 2 * 2
    for backend in ("numpy", "numba"):
        want = np.concatenate([a.ravel() for a in _sweep_and_stats(arch, p, X, y,
                                                                   backend=backend)])
        if backend == "numpy":
            np.testing.assert_array_equal(got[:len(want)], want)
        else:
            np.testing.assert_allclose(got[:n_acc], want[:n_acc], atol=1 / len(X) + 1e-12)
            np.testing.assert_allclose(got[n_acc:len(want)], want[n_acc:], rtol=1e-12,
                                       atol=1e-15)
    np.testing.assert_array_equal(got[len(want):], q.ravel())
