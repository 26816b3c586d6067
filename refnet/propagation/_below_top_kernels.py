r"""Weighted sums of squares of the Jacobian rows of the layer below the top hidden one, formed
block by block in cache: a numba kernel beside its NumPy twin.

For noise at layer ``l = L - 2`` (784-300-300-10: after the first hidden layer) the Jacobian
of the clean network is (:func:`refnet.propagation.sensitivity.output_jacobians`)::

    G_l[b] = M[b] F,   M[b] = diag(f_L'(z_L)[b]) W_L diag(f_{L-1}'(z_{L-1})[b])   (n_out, n)

with ``F = W_{L-1}`` (n, n_l), and the first-order variances need only
``S[b, k] = sum_j (M[b] F)_kj^2 w[b, j]^2`` for a weight ``w`` per term (the signal ``x`` for
multiplicative uncorrelated noise, ones for additive). For additive uncorrelated noise after
the activation ``F`` may be ``R^T``, the triangular factor of ``W_{L-1} W_{L-1}^T = R^T R``
(``W_{L-1}^T = Q R``): the same sums with half the multiply-adds.

Earlier these were three passes over ``(n_batch, n_out, n)`` arrays (``M`` written, scaled,
multiplied, squared and summed; 24 MB for 1,000 inputs of 784-300-300-10). Here each block of
:data:`INPUTS_PER_BLOCK` inputs forms its rows of ``M`` in a buffer, takes one BLAS product
(``?gemm`` with ``W_{L-1}``, or ``?trmm`` in place with ``R``), squares the result and sums
it with one ``?gemv`` per input and weight, while the block is in cache. The number of
blocks depends on the shape alone and each is the same calls in both builds, so the bits do
not depend on the thread count and are the twin's (tested).
"""
from __future__ import annotations

import numpy as np

from .. import _numba
from .._blas import fixed_blas_threads
from .._gemm import _blas_function, _blocks_kernel, _scipy_trmm

__all__ = ["below_top_sums_of_squares", "below_top_sums_of_squares_numpy", "INPUTS_PER_BLOCK"]

Array = np.ndarray

#: Inputs per block: 16 inputs of 784-300-300-10 are a 160 x 300 buffer (384 kB), which
#: stays in a core's L2 cache through the product and the sums.
INPUTS_PER_BLOCK = 16
_N, _T, _U, _LEFT = ord("N"), ord("T"), ord("U"), ord("L")


def _check(d_out, W_out, d_top, F, w, triangular):
    B, K = d_out.shape
    n = W_out.shape[1] if W_out.ndim == 2 else -1
    m = F.shape[1] if F.ndim == 2 else -1
    dtype = d_out.dtype
    ok = (dtype.char in "fd" and W_out.shape == (K, n) and d_top.shape == (B, n)
          and F.shape[0] == n and w.ndim == 3 and w.shape[2] == m
          and w.shape[1] in (1, B) and all(a.dtype == dtype for a in (W_out, d_top, F, w))
          and all(a.flags.c_contiguous for a in (d_out, W_out, d_top, w))
          and (F.flags.f_contiguous and m == n if triangular else F.flags.c_contiguous))
    if not ok:
        raise ValueError(
            "below_top_sums_of_squares: need d_out (B, K), W_out (K, n), d_top (B, n) and w "
            "(n_w, B or 1, m) C-contiguous, F (n, m) C-contiguous (or, triangular, (n, n) "
            "upper triangular in Fortran order), one float dtype; got "
            f"{d_out.shape}, {W_out.shape}, {d_top.shape}, {F.shape}, {w.shape}")
    return B, K, n, m


def below_top_sums_of_squares_numpy(d_out: Array, W_out: Array, d_top: Array, F: Array,
                                    w2: Array, *, triangular: bool = False) -> Array:
    """The NumPy twin: the same blocks, one after the other, each the same BLAS calls
    through SciPy's wrappers. Arguments and returns as :func:`below_top_sums_of_squares`."""
    from scipy.linalg import blas

    B, K, n, m = _check(d_out, W_out, d_top, F, w2, triangular)
    f64 = d_out.dtype == np.float64
    gemm, gemv = (blas.dgemm, blas.dgemv) if f64 else (blas.sgemm, blas.sgemv)
    out = np.zeros((len(w2), B, K), d_out.dtype)
    with fixed_blas_threads():
        for b0 in range(0, B, INPUTS_PER_BLOCK):
            b1 = min(B, b0 + INPUTS_PER_BLOCK)
            # rows of M, in the order diag(f_L') W_L first, then the columns' f_{L-1}'
            M = (d_out[b0:b1, :, None] * W_out[None]) * d_top[b0:b1, None, :]
            M = M.reshape(-1, n)
            if triangular:   # (M R^T)^T = R M^T, in place on the F-ordered view M^T
                _scipy_trmm(F, M.T, 1.0, lower=False)
                P = M
            else:            # P^T = W^T M^T: the kernel's 'N', 'N' call on the storage
                P = np.empty((len(M), m), d_out.dtype)
                res = gemm(1.0, F.T, M.T, beta=0.0, c=P.T, overwrite_c=1)
                if not np.shares_memory(res, P):
                    P.T[...] = res
            P *= P
            for t in range(b1 - b0):
                rows = P[t * K:(t + 1) * K].T          # (m, K) in Fortran order
                for i in range(len(w2)):
                    out[i, b0 + t] = gemv(1.0, rows, w2[i, 0 if w2.shape[1] == 1 else b0 + t],
                                          trans=1)
    return out


def _sums_body(gemm, trmm, gemv, triangular, d_out, W_out, d_top, F, w2, n_w, Bw, out,
               B, K, n, m, per_block):
    # flat C-contiguous storage: d_out (B, K), W_out (K, n), d_top (B, n), w2 (n_w, Bw, m),
    # out (n_w, B, K); F: W_{L-1} (n, m) C-ordered, which BLAS sees as the column-major
    # (m, n) W^T, or R (n, n) in Fortran order. A block's rows of M (rows, n) C-ordered are
    # the column-major (n, rows) M^T; its product P (rows, m) is P^T = W^T M^T (or R M^T in
    # place); the squares of input b's K rows are the column-major (m, K) matrix, and
    # out[i, b] = that matrix transposed times w2[i, b] (one ?gemv).
    nb = (B + per_block - 1) // per_block
    isz = out.itemsize
    for blk in _numba.prange(nb):
        b0 = blk * per_block
        bk = min(B, b0 + per_block) - b0
        rows = bk * K
        Mb = np.empty(rows * n, out.dtype)
        for t in range(bk):
            b = b0 + t
            for k in range(K):
                s = d_out[b * K + k]
                r = (t * K + k) * n
                for j in range(n):
                    Mb[r + j] = (s * W_out[k * n + j]) * d_top[b * n + j]
        dims = np.empty(6, np.int32)
        scal = np.empty(2, out.dtype)
        scal[0], scal[1] = 1.0, 0.0
        flags = np.empty(4, np.uint8)
        if triangular:
            dims[0], dims[1] = n, rows
            flags[0], flags[1], flags[2], flags[3] = _LEFT, _U, _N, _N
            trmm(flags[0:].ctypes.data, flags[1:].ctypes.data, flags[2:].ctypes.data,
                 flags[3:].ctypes.data, dims[0:].ctypes.data, dims[1:].ctypes.data,
                 scal[0:].ctypes.data, F.ctypes.data, dims[0:].ctypes.data,
                 Mb.ctypes.data, dims[0:].ctypes.data)
            P = Mb
        else:
            P = np.empty(rows * m, out.dtype)
            dims[0], dims[1], dims[2], dims[3], dims[4] = m, rows, n, m, n
            flags[0], flags[1] = _N, _N
            gemm(flags[0:].ctypes.data, flags[1:].ctypes.data, dims[0:].ctypes.data,
                 dims[1:].ctypes.data, dims[2:].ctypes.data, scal[0:].ctypes.data,
                 F.ctypes.data, dims[3:].ctypes.data, Mb.ctypes.data, dims[4:].ctypes.data,
                 scal[1:].ctypes.data, P.ctypes.data, dims[3:].ctypes.data)
        for j in range(rows * m):
            P[j] = P[j] * P[j]
        dims[0], dims[1], dims[5] = m, K, 1
        flags[0] = _T
        for t in range(bk):
            b = b0 + t
            for i in range(n_w):
                wb = i * Bw + (b if Bw > 1 else 0)
                gemv(flags[0:].ctypes.data, dims[0:].ctypes.data, dims[1:].ctypes.data,
                     scal[0:].ctypes.data, P.ctypes.data + t * K * m * isz,
                     dims[0:].ctypes.data, w2.ctypes.data + wb * m * isz,
                     dims[5:].ctypes.data, scal[1:].ctypes.data,
                     out.ctypes.data + (i * B + b) * K * isz, dims[5:].ctypes.data)


_sums = _numba.njit(_sums_body, parallel=True, nogil=True, cache=True)
_sums_serial = _numba.njit(_numba.variant(_sums_body, "_serial"), nogil=True, cache=True)


def below_top_sums_of_squares(d_out: Array, W_out: Array, d_top: Array, F: Array, w2: Array,
                              *, triangular: bool = False) -> Array:
    """``S[i, b, k] = sum_j (M[b] F)_kj^2 w2[i, b, j]`` with
    ``M[b] = diag(d_out[b]) W_out diag(d_top[b])`` (module docstring).

    d_out (B, K): ``f_L'(z_L)``; W_out (K, n): ``W_L``; d_top (B, n): ``f_{L-1}'(z_{L-1})``;
    F (n, m): ``W_{L-1}`` C-contiguous, or with ``triangular=True`` the upper triangular
    ``R`` (n, n) of ``W_{L-1}^T = Q R`` in Fortran order (then ``M R^T`` replaces ``M F``);
    w2 (n_w, B, m): the squared weights, one array per term (``(n_w, 1, m)``: the same for
    every input). One float dtype throughout. Returns (n_w, B, K).
    """
    B, K, n, m = _check(d_out, W_out, d_top, F, w2, triangular)
    out = np.zeros((len(w2), B, K), d_out.dtype)
    if 0 in (B, K, n, m, len(w2)):
        return out
    kernel = _blocks_kernel(_sums, _sums_serial, "the Jacobian rows' sums of squares")
    if kernel is None:
        return below_top_sums_of_squares_numpy(d_out, W_out, d_top, F, w2,
                                               triangular=triangular)
    dt = d_out.dtype
    with fixed_blas_threads():
        kernel(_blas_function("gemm", dt, 13), _blas_function("trmm", dt, 11),
               _blas_function("gemv", dt, 11), bool(triangular), d_out.reshape(-1),
               W_out.reshape(-1), d_top.reshape(-1), F.reshape(-1, order="A"),
               w2.reshape(-1), len(w2), w2.shape[1], out, B, K, n, m, INPUTS_PER_BLOCK)
    return out
