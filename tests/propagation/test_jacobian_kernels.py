"""refnet.propagation._jacobian_kernels: the element-wise halves of the Jacobian steps give
their NumPy twins' bits, and the top step gives the values of the product it replaces."""
import numpy as np
import pytest

from refnet._gemm import matmul
from refnet.propagation._jacobian_kernels import (columns_scaled, columns_scaled_numpy,
                                                  rows_scaled, rows_scaled_numpy)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("B,K,n", [(256, 10, 300), (3, 7, 5), (1, 1, 1), (0, 10, 4)])
def test_rows_scaled_is_the_top_jacobian_product(dtype, B, K, n):
    """``diag(d) W`` per input: the twin's bits, and those of ``(I diag(d)) W`` taken as the
    product (its other terms are exact zeros), which ``output_jacobians`` used to form."""
    rng = np.random.default_rng(B + K + n)
    d = rng.uniform(0.01, 0.3, (B, K)).astype(dtype)
    W = rng.standard_normal((K, n)).astype(dtype)
    got = rows_scaled(d, W)
    assert got.dtype == dtype and got.shape == (B, K, n)
    np.testing.assert_array_equal(got, rows_scaled_numpy(d, W))
    eye = np.broadcast_to(np.eye(K, dtype=dtype), (B, K, K))
    product = matmul((eye * d[:, None, :]).reshape(-1, K), W).reshape(B, K, n)
    np.testing.assert_array_equal(got, product)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("B,K,n", [(256, 10, 300), (3, 7, 5), (1, 1, 1), (0, 10, 4)])
def test_columns_scaled_is_its_twin(dtype, B, K, n):
    rng = np.random.default_rng(B * K + n)
    G = rng.standard_normal((B, K, n)).astype(dtype)
    d = rng.uniform(0.01, 0.3, (B, n)).astype(dtype)
    got = columns_scaled(G, d)
    assert got.dtype == dtype and got.shape == (B, K, n)
    np.testing.assert_array_equal(got, columns_scaled_numpy(G, d))
    np.testing.assert_array_equal(got, G * d[:, None, :])
    inplace = G.copy()
    assert columns_scaled(inplace, d, out=inplace) is inplace     # out=G scales in place
    np.testing.assert_array_equal(inplace, got)


def test_mixed_dtypes_take_numpys_promotion():
    G, d = np.ones((2, 3, 4), np.float32), np.full((2, 4), 0.5)
    assert columns_scaled(G, d).dtype == np.float64
    assert rows_scaled(np.full((2, 3), 0.5), np.ones((3, 4), np.float32)).dtype == np.float64
