"""refnet._gemm: fixed-block products, and training whose bits do not depend on the thread count.

The products are checked against float64 sums (rounding bound), against their NumPy twin
(bitwise: the same ?gemm calls one after the other) and against NumPy where they fall back. The
training runs are compared across child processes on 1 and 2 BLAS and numba threads: no
recorded numbers, every run is made in the test.
"""
import hashlib
import os

import numpy as np
import pytest

from refnet import _gemm
from refnet._gemm import SPLIT_MIN_ROWS, SPLIT_MIN_WORK, matmul, matmul_numpy, row_blocks
from refnet.testing import call_in_child


@pytest.fixture(autouse=True)
def _default_blas():
    """These tests are about the default provider (the twins are its calls through SciPy), so
    they pin it even when REFNET_BLAS=mkl is set (tests/test_gemm_mkl.py covers MKL)."""
    saved = list(_gemm._provider)
    _gemm._set_provider("openblas")
    yield
    _gemm._provider[:] = saved
    _gemm._blas_functions.clear()

SHAPES = [(128, 784, 300), (300, 128, 784), (129, 300, 300), (5, 7, 3), (1, 40, 1), (64, 1, 9)]


def _operands(rng, M, K, N, dtype, a_order, b_order):
    a = np.asarray(rng.standard_normal((M, K)), dtype=dtype, order=a_order)
    b = np.asarray(rng.standard_normal((K, N)), dtype=dtype, order=b_order)
    return a, b


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("M,K,N", SHAPES)
def test_matches_float64_sums_and_its_twin_bitwise(dtype, M, K, N):
    rng = np.random.default_rng(M * K + N)
    eps = np.finfo(dtype).eps
    for a_order in "CF":
        for b_order in "CF":
            a, b = _operands(rng, M, K, N, dtype, a_order, b_order)
            c = matmul(a, b)
            exact = a.astype(np.float64) @ b.astype(np.float64)
            # |fl(a.b) - a.b| <= K eps sum|a_k b_k| (plus room for the final rounding)
            bound = (K + 1) * eps * (np.abs(a).astype(np.float64) @ np.abs(b).astype(np.float64))
            assert c.dtype == dtype and c.shape == (M, N) and c.flags.c_contiguous
            assert np.all(np.abs(c - exact) <= bound)
            twin = matmul_numpy(a, b, np.full((M, N), np.nan, dtype))
            assert np.array_equal(c, twin)


def test_writes_into_out_and_transposed_views():
    rng = np.random.default_rng(3)
    W = rng.standard_normal((300, 784))
    A = rng.standard_normal((128, 784))
    dZ = rng.standard_normal((128, 300))
    out = np.empty((128, 300))
    assert matmul(A, W.T, out=out) is out               # forward: A @ W.T
    assert np.array_equal(out, matmul(A, np.ascontiguousarray(W.T)))
    dW = np.empty((300, 784))
    assert matmul(dZ.T, A, out=dW) is dW                # backward: dZ.T @ A
    assert np.array_equal(dW, matmul(np.ascontiguousarray(dZ.T), A))


def test_falls_back_to_numpy_for_what_it_does_not_handle():
    rng = np.random.default_rng(4)
    a = rng.standard_normal((40, 30))
    ints = np.arange(12).reshape(3, 4)
    assert np.array_equal(matmul(ints, ints.T), ints @ ints.T)            # integer dtype
    strided = a[:, ::2]
    assert np.array_equal(matmul(strided, strided.T), strided @ strided.T)
    mixed = matmul(a.astype(np.float32), a.T)                               # two dtypes
    assert mixed.dtype == np.float64
    assert matmul(np.ones((0, 3)), np.ones((3, 2))).shape == (0, 2)
    assert np.array_equal(matmul(np.ones((2, 0)), np.ones((0, 3))), np.zeros((2, 3)))


def test_block_count_depends_on_the_shape_alone():
    assert row_blocks(128, 300, 784) == 2
    assert row_blocks(SPLIT_MIN_ROWS - 1, 10**4, 10**4) == 1
    assert row_blocks(SPLIT_MIN_ROWS, 1, SPLIT_MIN_WORK // SPLIT_MIN_ROWS - 1) == 1
    assert row_blocks(SPLIT_MIN_ROWS, 1, SPLIT_MIN_WORK // SPLIT_MIN_ROWS) == 2


# --- training: the same bits on 1 and 2 threads --------------------------------------------------

def _train_fingerprints() -> dict:
    """Hashes of the parameters after one epoch of 784-300-300-10 training (batch 128, so the
    products are split) in each dtype, optimizer and objective that changes the products."""
    import refnet as rn
    from refnet.noise import NoiseSpec, noise_config
    from refnet.regularizers import ExpectedLoss, regularizer_preset
    from refnet.train import TrainConfig, train

    rng = np.random.default_rng(0)
    X = rng.random((256, 784))
    y = rng.integers(0, 10, 256)
    arch = rn.mlp((784, 300, 300, 10))
    runs = {
        "adagrad": {},
        "noise-aware": {"noise": noise_config("duque", NoiseSpec(add_unc=1.0), 3)},
        "eq4+eq7": {"regularizers": (regularizer_preset("eq4", 6e-3),
                                     regularizer_preset("addunc_sigm_mnist"))},
        "expected-loss": {"regularizers": (
            ExpectedLoss(noise_config("duque", NoiseSpec(0.1, 0.0, 0.05))),)},
        "adam": {"optimizer": "adam", "lr": 1e-3},
    }
    out = {}
    for dt in (np.float32, np.float64):
        p0 = rn.init_params(arch, rng=1).astype(dt)
        for name, kw in runs.items():
            if name == "expected-loss" and dt == np.float32:
                continue   # float64 suffices: its products are the same calls
            cfg = TrainConfig(epochs=1, batch_size=128, seed=2, **kw)
            p = train(arch, p0, X, y, cfg).params
            h = hashlib.sha256()
            for arr in p.arrays():
                h.update(np.ascontiguousarray(arr).tobytes())
            out[f"{name}/{np.dtype(dt).name}"] = h.hexdigest()
    return out


def _child(blas: int, numba: int) -> dict:
    return call_in_child(__file__, "_train_fingerprints", env={
        "OPENBLAS_NUM_THREADS": blas, "OMP_NUM_THREADS": blas, "NUMBA_NUM_THREADS": numba,
        "REFNET_BLAS": "openblas"})


def test_training_bits_do_not_depend_on_blas_or_numba_threads():
    from refnet._blas import blas_controlled

    if not blas_controlled():
        pytest.skip("NumPy's BLAS is not an OpenBLAS whose thread count refnet can set")
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("one CPU: OpenBLAS caps its threads at the CPUs it may use, so 1 and 2 "
                    "threads cannot be told apart")
    runs = {(b, n): _child(b, n) for b, n in ((1, 1), (2, 2), (2, 1))}
    first = runs[(1, 1)]
    assert len(first) == 9
    for key, fp in runs.items():
        assert fp == first, f"OPENBLAS/NUMBA threads {key} changed the trained bits"
    assert _train_fingerprints() == first      # and in this process, whatever ran before


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_parallel_and_serial_blocks_give_the_same_bits(dtype):
    """Inside fixed_blas_threads the blocks run on numba's threads, outside one after the
    other: the same calls, so the same bits."""
    from refnet._blas import fixed_blas_threads

    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(300, 784)).astype(dtype), rng.normal(size=(784, 300)).astype(dtype)
    assert row_blocks(300, 300, 784) == 2
    outside = matmul(a, b.T.copy().T)
    with fixed_blas_threads():
        inside = matmul(a, b.T.copy().T)
    np.testing.assert_array_equal(inside, outside)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rows,n", [(2560, 300), (333, 200), (7, 5), (1, 1), (0, 4)])
def test_triangular_rows_match_sums_twin_and_threads(dtype, rows, n):
    """``M R^T`` for upper triangular R: within the float64 sums' rounding bound, the NumPy
    twin's bits, and the same bits inside and outside fixed_blas_threads (numba's threads or
    one after the other)."""
    from refnet._blas import fixed_blas_threads
    from refnet._gemm import upper_triangular_times_rows, upper_triangular_times_rows_numpy

    rng = np.random.default_rng(rows + n)
    R = np.asfortranarray(np.triu(rng.standard_normal((n, n))).astype(dtype))
    M = rng.standard_normal((rows, n)).astype(dtype)
    exact = M.astype(np.float64) @ R.T.astype(np.float64)
    bound = (n + 1) * np.finfo(dtype).eps * (np.abs(M).astype(np.float64)
                                             @ np.abs(R.T).astype(np.float64))
    got = upper_triangular_times_rows(R, M.copy())
    assert got.dtype == dtype and got.shape == (rows, n)
    assert np.all(np.abs(got - exact) <= bound)
    np.testing.assert_array_equal(upper_triangular_times_rows_numpy(R, M.copy()), got)
    with fixed_blas_threads():
        np.testing.assert_array_equal(upper_triangular_times_rows(R, M.copy()), got)


def test_triangular_rows_reject_what_they_do_not_handle():
    from refnet._gemm import upper_triangular_times_rows

    R = np.asfortranarray(np.triu(np.ones((3, 3))))
    with pytest.raises(ValueError, match="Fortran-ordered"):
        upper_triangular_times_rows(np.ascontiguousarray(R), np.ones((2, 3)))
    with pytest.raises(ValueError, match="C-contiguous"):
        upper_triangular_times_rows(R, np.ones((3, 2)).T)
    with pytest.raises(ValueError, match="dtype"):
        upper_triangular_times_rows(R, np.ones((2, 3), np.float32))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rows,m", [(1000, 300), (7, 5), (1, 1), (0, 4)])
def test_lower_triangular_mix_is_scipys_call_bitwise(dtype, rows, m):
    """``scale M L^T`` in place for lower triangular L: within the float64 sums' rounding
    bound, and the bits of SciPy's own ``?trmm`` wrapper (the twin), also when the process
    has chosen MKL for the training products (the Monte-Carlo engine keeps SciPy's BLAS)."""
    from refnet._gemm import lower_triangular_mix, lower_triangular_mix_numpy

    rng = np.random.default_rng(rows + m)
    L = np.asfortranarray(np.tril(rng.standard_normal((m, m))).astype(dtype))
    M = rng.standard_normal((rows, m)).astype(dtype)
    exact = 0.7 * (M.astype(np.float64) @ L.T.astype(np.float64))
    bound = (m + 2) * np.finfo(dtype).eps * 0.7 * (np.abs(M).astype(np.float64)
                                                   @ np.abs(L.T).astype(np.float64))
    got = M.copy()
    assert lower_triangular_mix(L, 0.7, got) is got
    assert np.all(np.abs(got - exact) <= bound)
    np.testing.assert_array_equal(lower_triangular_mix_numpy(L, 0.7, M.copy()), got)
    if rows:
        _gemm._provider[:] = ["mkl", None]      # as if MKL were chosen: must not be asked for
        _gemm._blas_functions.clear()
        np.testing.assert_array_equal(lower_triangular_mix(L, 0.7, M.copy()), got)


def test_lower_triangular_mix_rejects_what_it_does_not_handle():
    from refnet._gemm import lower_triangular_mix

    L = np.asfortranarray(np.tril(np.ones((3, 3))))
    with pytest.raises(ValueError, match="Fortran-ordered"):
        lower_triangular_mix(np.ascontiguousarray(L), 1.0, np.ones((2, 3)))
    with pytest.raises(ValueError, match="C-contiguous"):
        lower_triangular_mix(L, 1.0, np.ones((3, 2)).T)
    with pytest.raises(ValueError, match="dtype"):
        lower_triangular_mix(L, 1.0, np.ones((2, 3), np.float32))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("B,K,n", [(256, 10, 300), (130, 10, 200), (3, 7, 13), (1, 1, 1),
                                   (0, 10, 5), (4, 0, 5), (4, 3, 0)])
def test_squares_times_squares_matches_sums_twin_and_threads(dtype, B, K, n):
    """``sum_j G_kj^2 x_j^2`` per input: within the float64 sums' rounding bound (every term is
    non-negative), its twin's bits (the same ?gemv per input through SciPy's wrapper), the same
    bits inside and outside fixed_blas_threads, also when MKL is the training products'
    provider (it keeps SciPy's BLAS), and close to NumPy's own batched product, whose
    ?gemv calls it replaces."""
    from refnet._blas import fixed_blas_threads
    from refnet._gemm import squares_times_squares, squares_times_squares_numpy

    rng = np.random.default_rng(B + K + n)
    G = rng.standard_normal((B, K, n)).astype(dtype)
    x = rng.standard_normal((B, n)).astype(dtype)
    exact = np.einsum("bkj,bj->bk", G.astype(np.float64) ** 2, x.astype(np.float64) ** 2)
    got = squares_times_squares(G, x)
    assert got.dtype == dtype and got.shape == (B, K)
    assert np.all(np.abs(got - exact) <= (n + 3) * np.finfo(dtype).eps * exact)
    np.testing.assert_array_equal(squares_times_squares_numpy(G, x), got)
    with fixed_blas_threads():
        np.testing.assert_array_equal(squares_times_squares(G, x), got)
    np.testing.assert_allclose(((G * G) @ (x ** 2)[:, :, None])[..., 0], got,
                               rtol=(n + 3) * 2 * np.finfo(dtype).eps)
    _gemm._provider[:] = ["mkl", None]      # as if MKL were chosen: must not be asked for
    _gemm._blas_functions.clear()
    np.testing.assert_array_equal(squares_times_squares(G, x), got)


def test_squares_times_squares_rejects_what_it_does_not_handle():
    from refnet._gemm import squares_times_squares

    with pytest.raises(ValueError, match=r"G \(B, K, n\)"):
        squares_times_squares(np.ones((2, 3)), np.ones((2, 3)))
    with pytest.raises(ValueError, match="dtype"):
        squares_times_squares(np.ones((2, 3, 4)), np.ones((2, 4), np.float32))
    with pytest.raises(ValueError, match="x"):
        squares_times_squares(np.ones((2, 3, 4)), np.ones((2, 5)))
