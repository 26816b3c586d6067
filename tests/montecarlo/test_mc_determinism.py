"""Same seed, same bits: whatever ran before in the process and whatever the thread count.

OpenBLAS float32 products of a 784-300 layer differ in their last bits between 1 and 2 BLAS
threads, and its thread count is process-wide, so an engine that ran its products under the
ambient setting gave results that depended on whether a multi-worker call (which set one
thread) had run before (issue #15). Every public Monte-Carlo entry point is checked, in both
dtypes: in this process before and after a two-worker call, and in child processes started
with 1 and with 2 BLAS and numba threads.
"""
import hashlib

import numpy as np
import pytest

from refnet.testing import call_in_child


def _fingerprints(workers: int = 1) -> dict:
    """``{entry point/dtype: sha1 of its numbers}`` for every public Monte-Carlo entry point.

    The network is large enough (784-300-300-10) for OpenBLAS's float32 products to round
    differently on 1 and 2 threads. ``workers``: threads of the two calls that take them."""
    from refnet.model import init_params, mlp
    from refnet.montecarlo import (accuracy_sweep, clean_state, draw_noise, chunk_generator,
                                   monte_carlo_outputs, neuron_statistics, prepare, propagate)
    from refnet.noise import NoiseSpec, noise_config

    arch = mlp((784, 300, 300, 10), "sigmoid", "identity")
    p = init_params(arch, rng=0)
    X = np.random.default_rng(1).random((48, 784))
    y = np.arange(48) % 10
    cfg = noise_config("semenova", NoiseSpec(add_unc=0.01, mul_cor=0.01), arch.n_layers)
    out = {}

    def put(name, *arrays):
        out[name] = hashlib.sha1(b"".join(np.ascontiguousarray(a).tobytes()
                                          for a in arrays)).hexdigest()

    for dt in (np.float32, np.float64):
        tag = np.dtype(dt).name
        st = neuron_statistics(arch, p, X, cfg, K=6, rng=3, dtype=dt, repeat_block=3,
                               workers=workers)
        put(f"neuron_statistics/{tag}",
            *[getattr(s, m) for s in st.layers.values() for m in ("mean", "variance", "snr")])
        sw = accuracy_sweep(arch, p, X, y, "duque", variances=[0.1], repetitions=1,
                            batch_size=16, dtype=dt, rng=5, workers=workers)
        put(f"accuracy_sweep/{tag}", sw.accuracy, np.array(sw.clean_accuracy))
        eng = prepare(arch, p, cfg, dtype=dt)
        state = clean_state(eng, X)
        rows = np.arange(len(X))
        draws = draw_noise(eng, state, len(X), chunk_generator(7, (0,)), keep=(1, 2))
        y_out, kept = propagate(eng, state, rows, draws, (1, 2))
        put(f"engine/{tag}", state.P, state.U, y_out, kept[1], kept[2])
        put(f"monte_carlo_outputs/{tag}",
            monte_carlo_outputs(arch, p.astype(dt), X[:8], cfg, n_trials=3, rng=9))
    return out


def _two_worker_call() -> None:
    from refnet.model import init_params, mlp
    from refnet.montecarlo import neuron_statistics
    from refnet.noise import NoiseSpec, noise_config

    arch = mlp((20, 9, 4), "sigmoid", "identity")
    neuron_statistics(arch, init_params(arch, rng=0), np.ones((5, 20)),
                      noise_config("semenova", NoiseSpec(add_unc=0.1), 2), K=8, rng=0,
                      repeat_block=2, workers=2)


def _child(threads: int) -> dict:
    return call_in_child(__file__, "_fingerprints", env={
        "OPENBLAS_NUM_THREADS": threads, "NUMBA_NUM_THREADS": threads, "OMP_NUM_THREADS": threads})


def _require_controlled_blas():
    from refnet._blas import blas_controlled

    if not blas_controlled():
        pytest.skip("NumPy's BLAS is not an OpenBLAS whose thread count refnet can set")


def test_same_bits_before_and_after_a_multi_worker_call():
    _require_controlled_blas()
    from refnet._blas import blas_thread_counts

    counts = blas_thread_counts()
    before = _fingerprints()
    _two_worker_call()
    assert blas_thread_counts() == counts, "the worker pool changed the process's BLAS threads"
    after = _fingerprints()
    assert blas_thread_counts() == counts
    assert set(before) == {f"{e}/{t}" for e in ("neuron_statistics", "accuracy_sweep", "engine",
                                                "monte_carlo_outputs")
                           for t in ("float32", "float64")}
    assert before == after
    assert _fingerprints(workers=2) == before    # and whatever the worker count


def test_same_bits_on_one_and_two_threads():
    _require_controlled_blas()
    one, two = _child(1), _child(2)
    assert one == two
    assert one == _fingerprints()
