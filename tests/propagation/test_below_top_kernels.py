"""refnet.propagation._below_top_kernels: the Jacobian rows of layer L - 2, formed and reduced
block by block, against the float64 sums of their definition, their NumPy twin's bits, and
the same bits on any thread count."""
import numpy as np
import pytest

from refnet import _gemm
from refnet._blas import fixed_blas_threads
from refnet.propagation._below_top_kernels import (INPUTS_PER_BLOCK, below_top_sums_of_squares,
                                                   below_top_sums_of_squares_numpy)


def _operands(dtype, B, K, n, m, n_w, seed):
    rng = np.random.default_rng(seed)
    d_out = rng.uniform(0.01, 0.25, (B, K)).astype(dtype)
    W_out = rng.standard_normal((K, n)).astype(dtype)
    d_top = rng.uniform(0.01, 0.25, (B, n)).astype(dtype)
    W = rng.standard_normal((n, m)).astype(dtype)
    w2 = rng.uniform(0, 1, (n_w, B, m)).astype(dtype)
    return d_out, W_out, d_top, W, w2


def _exact(d_out, W_out, d_top, F, w2):
    """The definition in float64: M[b] = diag(d_out[b]) W_out diag(d_top[b]), then
    sum_j (M[b] F)_kj^2 w2[i, b, j]; also the same sums of absolute values (for the bound)."""
    f = [a.astype(np.float64) for a in (d_out, W_out, d_top, F, w2)]
    M = f[0][:, :, None] * f[1][None] * f[2][:, None, :]
    G = M @ f[3]
    absG = np.abs(M) @ np.abs(f[3])
    return (np.einsum("bkj,ibj->ibk", G * G, np.broadcast_to(f[4], (len(f[4]),) + G[:, 0].shape)),
            np.einsum("bkj,ibj->ibk", absG * absG,
                      np.broadcast_to(f[4], (len(f[4]),) + G[:, 0].shape)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("B,K,n,m,n_w", [(100, 10, 300, 300, 2), (37, 10, 30, 50, 1),
                                         (INPUTS_PER_BLOCK + 1, 3, 7, 4, 3), (1, 1, 1, 1, 1),
                                         (0, 10, 5, 5, 1), (4, 3, 5, 6, 0)])
def test_general_factor_matches_sums_twin_and_threads(dtype, B, K, n, m, n_w):
    """``F = W_{L-1}``: within the rounding bound of the product and the sums (every term of
    the sums is non-negative), the twin's bits, and the same bits inside and outside
    fixed_blas_threads (the blocks on numba's threads or one after the other)."""
    d_out, W_out, d_top, W, w2 = _operands(dtype, B, K, n, m, n_w, B + K + n + m)
    got = below_top_sums_of_squares(d_out, W_out, d_top, W, w2)
    assert got.dtype == dtype and got.shape == (n_w, B, K)
    exact, scale = _exact(d_out, W_out, d_top, W, w2)
    eps = np.finfo(dtype).eps
    assert np.all(np.abs(got - exact) <= (2 * (n + 4) + m + 2) * eps * scale + 1e-300)
    np.testing.assert_array_equal(below_top_sums_of_squares_numpy(d_out, W_out, d_top, W, w2),
                                  got)
    with fixed_blas_threads():
        np.testing.assert_array_equal(below_top_sums_of_squares(d_out, W_out, d_top, W, w2), got)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("B,K,n", [(100, 10, 300), (INPUTS_PER_BLOCK * 2, 4, 9), (1, 1, 1)])
def test_triangular_factor_gives_the_gram_sums(dtype, B, K, n):
    """``F = R^T`` with ``W^T = Q R``: the unweighted sums of ``(M W)^2`` (``M W W^T M^T``'s
    diagonal), the twin's bits, the same bits on any thread count; one weight row serves
    every input."""
    d_out, W_out, d_top, W, _ = _operands(dtype, B, K, n, n + 3, 1, 7 * B + n)
    R = np.asfortranarray(np.linalg.qr(W.astype(np.float64).T, mode="r").astype(dtype))
    ones = np.ones((1, 1, n), dtype)
    got = below_top_sums_of_squares(d_out, W_out, d_top, R, ones, triangular=True)
    assert got.dtype == dtype and got.shape == (1, B, K)
    exact, scale = _exact(d_out, W_out, d_top, W, np.ones((1, B, n + 3), dtype))
    tol = {np.float32: 1e-4, np.float64: 1e-12}[dtype]
    np.testing.assert_allclose(got, exact, rtol=tol * n, atol=tol * scale.max())
    np.testing.assert_array_equal(
        below_top_sums_of_squares_numpy(d_out, W_out, d_top, R, ones, triangular=True), got)
    with fixed_blas_threads():
        np.testing.assert_array_equal(
            below_top_sums_of_squares(d_out, W_out, d_top, R, ones, triangular=True), got)
    # a shared weight row is the same as that row repeated per input
    np.testing.assert_array_equal(
        below_top_sums_of_squares(d_out, W_out, d_top, R, np.ones((1, B, n), dtype),
                                  triangular=True), got)


def test_numba_build_and_twin_without_numba_agree(monkeypatch):
    """With numba missing the entry point runs the twin: the same bits."""
    d_out, W_out, d_top, W, w2 = _operands(np.float64, 40, 5, 20, 30, 2, 3)
    got = below_top_sums_of_squares(d_out, W_out, d_top, W, w2)
    monkeypatch.setattr(_gemm._numba, "HAVE_NUMBA", False)
    monkeypatch.setattr(_gemm._numba, "_warned", True)
    np.testing.assert_array_equal(below_top_sums_of_squares(d_out, W_out, d_top, W, w2), got)


def test_rejects_what_it_does_not_handle():
    d_out, W_out, d_top, W, w2 = _operands(np.float64, 4, 3, 5, 6, 1, 0)
    with pytest.raises(ValueError, match="below_top_sums_of_squares"):
        below_top_sums_of_squares(d_out, W_out, d_top, W, w2[:, :, :5])      # w: m columns
    with pytest.raises(ValueError, match="one float dtype"):
        below_top_sums_of_squares(d_out, W_out, d_top, W.astype(np.float32), w2)
    with pytest.raises(ValueError, match="C-contiguous"):
        below_top_sums_of_squares(d_out, W_out, d_top, np.asfortranarray(W), w2)
    R = np.triu(np.ones((5, 5)))
    with pytest.raises(ValueError, match="Fortran order"):
        below_top_sums_of_squares(d_out, W_out, d_top, R, np.ones((1, 1, 5)), triangular=True)
    with pytest.raises(ValueError, match="w"):
        below_top_sums_of_squares(d_out, W_out, d_top, W, w2[:, :3])         # B or 1 rows
