"""Matrix products whose bits do not depend on the thread count: fixed row blocks, one BLAS
thread each (numba kernel beside its NumPy twin).

OpenBLAS splits a product differently on 1 and on 2 threads, and the last bits of the result
differ (measured for the training products 128x784 @ 784x300 in float32 and float64), so
``A @ B`` made a trained network's bits depend on ``OPENBLAS_NUM_THREADS``. Here the rows of
``C = op(A) op(B)`` are cut into a number of blocks that depends only on the shape
(:func:`row_blocks`), each block is one single-threaded ``?gemm`` call (SciPy's BLAS, inside
:func:`refnet._blas.fixed_blas_threads`), and the blocks run on numba's threads when the caller
is itself inside ``fixed_blas_threads`` (training), else one after the other. One thread
or many, numba or not, every block is the same call on the same numbers: the same bits.

Row-major ``C`` (M x N) is column-major ``C^T`` (N x M), so each block is the Fortran call
``gemm(op_B, op_A, N, m, K, 1, B, ldb, A_block, lda, 0, C_block, ldc)`` with ``'N'`` for a
C-contiguous operand and ``'T'`` for the transpose of one.
"""
from __future__ import annotations

import ctypes

import numpy as np

from . import _numba
from ._blas import fixed_blas_threads, in_fixed_blas_threads

__all__ = ["matmul", "matmul_numpy", "row_blocks", "SPLIT_MIN_ROWS", "SPLIT_MIN_WORK"]

# A product is split in two when it has at least this many rows and M*N*K multiply-adds:
# below that, a second block costs more (its own packing of B) than the thread it adds.
# Two blocks, not one per core: each block repacks op(B), which cost 4-10 % more work at two
# blocks and 8-28 % at four on the training shapes (measured on one core), and the count must
# not depend on the machine, or the bits would.
SPLIT_MIN_ROWS = 32
SPLIT_MIN_WORK = 1 << 20
_N, _T = ord("N"), ord("T")


def row_blocks(M: int, N: int, K: int) -> int:
    """How many row blocks ``C`` (M x N, inner dimension K) is cut into: a function of the
    shape alone, so that the bits are the same on any thread count."""
    return 2 if M >= SPLIT_MIN_ROWS and M * N * K >= SPLIT_MIN_WORK else 1


def _operand(x):
    """``(flag, storage, ld)``: ``x`` as BLAS sees it. ``storage`` is C-contiguous: ``x``
    itself (``'N'``) or the array ``x`` is the transpose of (``'T'``)."""
    if x.flags.c_contiguous:
        return _N, x, x.shape[1]
    return _T, x.T, x.shape[0]


def _fortran(x):
    """``(trans, array)`` for SciPy's ``?gemm`` wrapper: :func:`_operand`'s storage seen as a
    Fortran array (``x^T``, F-contiguous when ``x`` is C-contiguous) and whether BLAS
    transposes it (``'T'``) to get ``x^T``."""
    flag, storage, _ = _operand(x)
    return int(flag == _T), storage.T


def _gemm_blocks_body(gemm, ta, tb, a, lda, b, ldb, c, M, N, K, nb):
    # a, b, c: flat C-contiguous storage; one ?gemm per block of `step` rows of c. `gemm` is
    # an argument, not a global, so that the compiled kernel caches (its address changes
    # from process to process). Fortran takes the scalars by address: each block keeps its
    # own small arrays of them.
    step = (M + nb - 1) // nb
    isz = c.itemsize
    for i in _numba.prange(nb):
        r0 = i * step
        m = min(M, r0 + step) - r0
        if m > 0:
            dims = np.empty(6, np.int32)
            dims[0], dims[1], dims[2], dims[3], dims[4], dims[5] = N, m, K, ldb, lda, N
            alpha_beta = np.empty(2, c.dtype)
            alpha_beta[0], alpha_beta[1] = 1.0, 0.0
            flags = np.empty(2, np.uint8)
            flags[0], flags[1] = tb, ta
            a0 = r0 * lda if ta == _N else r0   # block rows of op(A): rows or columns of a
            gemm(flags[0:].ctypes.data, flags[1:].ctypes.data, dims[0:].ctypes.data,
                 dims[1:].ctypes.data, dims[2:].ctypes.data, alpha_beta[0:].ctypes.data,
                 b.ctypes.data, dims[3:].ctypes.data, a.ctypes.data + a0 * isz,
                 dims[4:].ctypes.data, alpha_beta[1:].ctypes.data,
                 c.ctypes.data + r0 * N * isz, dims[5:].ctypes.data)


_gemm_blocks = _numba.njit(_gemm_blocks_body, parallel=True, nogil=True, cache=True)
# The same body compiled serially (a copy, so that each build has its own cache entry): the
# blocks one after the other on the calling thread. Used outside fixed_blas_threads, where
# the caller's other products run on a multi-threaded OpenBLAS: waking numba's OpenMP threads
# there made both pools spin against each other (first-order propagation of 1,000 inputs,
# which calls forward() between its own products: 44 -> 128 ms). Same calls, same bits.
_gemm_blocks_serial = _numba.njit(_numba.variant(_gemm_blocks_body, "_serial"), nogil=True,
                                  cache=True)
_gemm_functions: dict = {}


def _gemm_function(dtype):
    """SciPy's ``sgemm`` / ``dgemm`` as a ctypes function (Fortran interface, 13 pointers)."""
    key = np.dtype(dtype).char
    if key not in _gemm_functions:
        from numba.extending import get_cython_function_address

        proto = ctypes.CFUNCTYPE(None, *([ctypes.c_void_p] * 13))
        _gemm_functions[key] = proto(get_cython_function_address(
            "scipy.linalg.cython_blas", {"f": "sgemm", "d": "dgemm"}[key]))
    return _gemm_functions[key]


def matmul_numpy(a, b, out):
    """The NumPy twin: the same blocks, one after the other, each the same ``?gemm`` call
    through SciPy's wrapper (``C_block^T = op(B)^T op(A_block)^T``, written into ``out``)."""
    from scipy.linalg import blas

    gemm = blas.dgemm if out.dtype == np.float64 else blas.sgemm
    M, K = a.shape
    N = b.shape[1]
    nb = row_blocks(M, N, K)
    step = -(-M // nb)
    fb, sb = _fortran(b)
    with fixed_blas_threads():
        for r0 in range(0, M, step):
            fa, sa = _fortran(a[r0:r0 + step])
            c = out[r0:r0 + step].T                      # F-contiguous view of the block
            res = gemm(1.0, sb, sa, beta=0.0, c=c, trans_a=fb, trans_b=fa, overwrite_c=1)
            if not np.shares_memory(res, c):
                c[...] = res
    return out


def matmul(a, b, *, out=None):
    """``a @ b`` for 2-D float32/float64 arrays of one dtype, the same bits on any number of
    threads (module docstring). ``a`` (M, K), ``b`` (K, N); each C- or F-contiguous (a
    transposed view is fine); ``out`` (M, N) C-contiguous, or a new array. Anything else
    (other dtypes, strided views, 1-D) is NumPy's ``a @ b`` on one BLAS thread."""
    a, b = np.asarray(a), np.asarray(b)
    kernel = _gemm_blocks if in_fixed_blas_threads() else _gemm_blocks_serial
    with fixed_blas_threads():
        if (a.ndim != 2 or b.ndim != 2 or a.dtype != b.dtype or a.dtype.char not in "fd"
                or a.shape[1] != b.shape[0]
                or not (a.flags.c_contiguous or a.flags.f_contiguous)
                or not (b.flags.c_contiguous or b.flags.f_contiguous)
                or (out is not None and (out.dtype != a.dtype or not out.flags.c_contiguous
                                         or out.shape != (a.shape[0], b.shape[1])))):
            return np.matmul(a, b, out=out)
        M, K = a.shape
        N = b.shape[1]
        if out is None:
            out = np.empty((M, N), a.dtype)
        if M == 0 or N == 0:
            return out
        if K == 0:
            out[...] = 0
            return out
        if not _numba.HAVE_NUMBA:
            _numba.warn_fallback("the fixed-block matrix products")
            return matmul_numpy(a, b, out)
        ta, sa, lda = _operand(a)
        tb, sb, ldb = _operand(b)
        kernel(_gemm_function(a.dtype), ta, tb, sa.reshape(-1), lda, sb.reshape(-1), ldb,
                     out.reshape(-1), M, N, K, row_blocks(M, N, K))
    return out
