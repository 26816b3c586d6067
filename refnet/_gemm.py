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

The triangular product ``M R^T`` of the first-order propagation
(:func:`upper_triangular_times_rows`, one in-place ``?trmm`` per block of rows of ``M``) is
cut and run the same way; its per-input sums ``sum_j G_kj^2 x_j^2``
(:func:`squares_times_squares`, one ``?gemv`` per input) run their inputs in blocks on
numba's threads, each input one call.

Row-major ``C`` (M x N) is column-major ``C^T`` (N x M), so each block is the Fortran call
``gemm(op_B, op_A, N, m, K, 1, B, ldb, A_block, lda, 0, C_block, ldc)`` with ``'N'`` for a
C-contiguous operand and ``'T'`` for the transpose of one.

Which BLAS the blocks call (opt-in, :func:`blas_provider`): SciPy's OpenBLAS by default, or
Intel MKL with ``REFNET_BLAS=mkl`` (``pip install --no-deps mkl``; its sequential layer, one
thread per block as here). MKL's single-thread products ran 1.25-1.4x faster than OpenBLAS's
on the training blocks of the README's machine. Its products round differently, so a network
trained with it has other last bits than one trained with OpenBLAS: the same bits on any thread
count still, but not across the two providers (nor across BLAS versions or CPU families, with
either). PyTorch binds to an MKL already loaded in the process: imported after refnet loaded
MKL's sequential layer, its products ran on one thread (``mkl_get_max_threads() : 1`` in
``torch.__config__.parallel_info()``, half its speed on 2 cores); imported before, it keeps its
own. So with ``REFNET_BLAS=mkl``, import torch before refnet's first product (a warning says so
when torch is installed and not yet imported).
"""
from __future__ import annotations

import ctypes
import glob
import importlib.util
import os
import sys
import warnings

import numpy as np

from . import _numba
from ._blas import fixed_blas_threads, in_fixed_blas_threads, inside_on_this_thread
from .errors import ConfigError

__all__ = ["matmul", "matmul_numpy", "row_blocks", "SPLIT_MIN_ROWS", "SPLIT_MIN_WORK",
           "upper_triangular_times_rows", "upper_triangular_times_rows_numpy",
           "lower_triangular_mix", "lower_triangular_mix_numpy", "squares_times_squares",
           "squares_times_squares_numpy", "blas_provider",
           "BLAS_PROVIDERS"]

# A product is split in two when it has at least this many rows and M*N*K multiply-adds:
# below that, a second block costs more (its own packing of B) than the thread it adds.
# Two blocks, not one per core: each block repacks op(B), which cost 4-10 % more work at two
# blocks and 8-28 % at four on the training shapes (measured on one core), and the count must
# not depend on the machine, or the bits would.
SPLIT_MIN_ROWS = 32
SPLIT_MIN_WORK = 1 << 20
_N, _T, _U, _L = ord("N"), ord("T"), ord("U"), ord("L")


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
# which called forward() between its own products: 44 -> 128 ms). So refnet's own entry
# points (training, forward(), the first-order and moment propagation, the Monte-Carlo) run
# whole inside fixed_blas_threads and take their products here, where the blocks use both
# cores; a caller's bare products between two refnet calls still meet numba's spinning
# threads (measured: forward() of 256 inputs alternated with a 2560x300x300 NumPy product,
# 22 ms of work, took 40 ms, against 31 ms with the serial blocks). Same calls, same bits.
_gemm_blocks_serial = _numba.njit(_numba.variant(_gemm_blocks_body, "_serial"), nogil=True,
                                  cache=True)
_blas_functions: dict = {}
_scipy_functions: dict = {}
#: The BLAS libraries the fixed blocks can call (the ``REFNET_BLAS`` environment variable).
BLAS_PROVIDERS = ("openblas", "mkl")
_provider: list = []   # [name, library or None] once resolved


def blas_provider() -> str:
    """``"openblas"`` (SciPy's BLAS, the default) or ``"mkl"``: where the fixed-block products
    come from, from ``REFNET_BLAS`` on first use. Raises :class:`~refnet.errors.ConfigError`
    for another value, and for ``mkl`` when MKL's library or numba is missing."""
    if not _provider:
        _set_provider(os.environ.get("REFNET_BLAS", "openblas"), "REFNET_BLAS")
    return _provider[0]


def _set_provider(name: str, source: str = "provider") -> None:
    """Switch the fixed blocks to BLAS ``name`` (benchmarks compare the two in one process)."""
    key = str(name).strip().lower() or "openblas"
    if key not in BLAS_PROVIDERS:
        raise ConfigError(f"{source}: unknown BLAS {name!r}; use one of "
                          f"{', '.join(BLAS_PROVIDERS)} (or leave it unset for openblas)")
    lib = _load_mkl(source) if key == "mkl" else None
    _provider[:] = [key, lib]
    _blas_functions.clear()


def _mkl_library_paths() -> list:
    """Candidate paths of MKL's single dynamic library, ``libmkl_rt`` (the ``mkl`` wheel puts
    it in the environment's ``lib``)."""
    found = []
    for prefix in dict.fromkeys((sys.prefix, sys.base_prefix)):
        found += sorted(glob.glob(os.path.join(prefix, "lib", "libmkl_rt.so*")), reverse=True)
    return found


def _load_mkl(source: str):
    """MKL's ``libmkl_rt`` on its sequential layer (no thread pool of its own: the blocks are
    the parallelism) and 32-bit integers, warmed up once on this thread: its first products,
    made on two threads at once, left one block unwritten (MKL 2026.2); after one call on
    one thread, the first calls of 8 threads at once are complete (tested)."""
    if not _numba.HAVE_NUMBA:
        raise ConfigError(f"{source}=mkl: MKL is called from the numba kernels, and numba is not "
                          "installed; pip install numba, or unset it")
    paths = _mkl_library_paths()
    lib = None
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
            break
        except OSError:
            continue
    if lib is None:
        raise ConfigError(f"{source}=mkl: no libmkl_rt found under {sys.prefix}/lib; "
                          "pip install --no-deps mkl, or unset it")
    if "torch" not in sys.modules and importlib.util.find_spec("torch") is not None:
        warnings.warn(f"{source}=mkl: MKL is loading before PyTorch; a torch imported later in "
                      "this process binds to it and runs its products on one thread. Import "
                      "torch before refnet's first matrix product to keep torch's own.",
                      RuntimeWarning, stacklevel=4)
    lib.MKL_Set_Threading_Layer.argtypes = [ctypes.c_int]
    lib.MKL_Set_Interface_Layer.argtypes = [ctypes.c_int]
    lib.MKL_Set_Threading_Layer(1)    # MKL_THREADING_SEQUENTIAL
    lib.MKL_Set_Interface_Layer(0)    # MKL_INTERFACE_LP64: 32-bit integers, as SciPy's
    for dtype in (np.float64, np.float32):
        a, c = np.ones((1, 1), dtype), np.zeros((1, 1), dtype)
        _gemm_blocks_serial(_mkl_function(lib, "gemm", dtype, 13), _N, _N, a.reshape(-1), 1,
                            a.reshape(-1), 1, c.reshape(-1), 1, 1, 1, 1)
        _trmm_blocks_serial(_mkl_function(lib, "trmm", dtype, 11), _U, 1.0, a.reshape(-1), 1,
                            c.reshape(-1), 1, 1)
    return lib


def _fortran_function(address: int, n_args: int):
    """The BLAS routine at ``address`` (Fortran interface: ``n_args`` pointers) as a ctypes
    function, which the kernels take as an argument."""
    return ctypes.CFUNCTYPE(None, *([ctypes.c_void_p] * n_args))(address)


def _routine(name: str, dtype) -> str:
    """``s<name>`` or ``d<name>`` for a float32 or float64 ``dtype``."""
    return {"f": "s", "d": "d"}[np.dtype(dtype).char] + name


def _mkl_function(lib, name: str, dtype, n_args: int):
    symbol = getattr(lib, _routine(name, dtype) + "_")
    return _fortran_function(ctypes.cast(symbol, ctypes.c_void_p).value, n_args)


def _blas_function(name: str, dtype, n_args: int):
    """``s<name>`` / ``d<name>`` of the chosen BLAS (:func:`blas_provider`) as a ctypes
    function (:func:`_fortran_function`), looked up once per provider."""
    key = (name, np.dtype(dtype).char)
    found = _blas_functions.get(key)     # cleared when the provider changes
    if found is None:
        found = (_mkl_function(_provider[1], name, dtype, n_args) if blas_provider() == "mkl"
                 else _scipy_blas_function(name, dtype, n_args))
        _blas_functions[key] = found
    return found


def _scipy_blas_function(name: str, dtype, n_args: int):
    """``s<name>`` / ``d<name>`` of SciPy's BLAS as a ctypes function."""
    key = ("scipy", name, np.dtype(dtype).char)
    if key not in _scipy_functions:
        from numba.extending import get_cython_function_address

        _scipy_functions[key] = _fortran_function(get_cython_function_address(
            "scipy.linalg.cython_blas", _routine(name, dtype)), n_args)
    return _scipy_functions[key]


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
    if inside_on_this_thread():   # the usual caller (training: eight products per step)
        return _matmul(np.asarray(a), np.asarray(b), out, _gemm_blocks)
    kernel = _gemm_blocks if in_fixed_blas_threads() else _gemm_blocks_serial
    with fixed_blas_threads():
        return _matmul(np.asarray(a), np.asarray(b), out, kernel)


def _matmul(a, b, out, kernel):
    """:func:`matmul` inside ``fixed_blas_threads``, its blocks run by ``kernel``."""
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
    nb = row_blocks(M, N, K)
    if nb == 1:   # one block: the same call without starting numba's threads (about 4 us)
        kernel = _gemm_blocks_serial
    kernel(_blas_function("gemm", a.dtype, 13), ta, tb, sa.reshape(-1), lda,
           sb.reshape(-1), ldb, out.reshape(-1), M, N, K, nb)
    return out


# --- the triangular product R M^T in the same fixed blocks --------------------------------
def _trmm_blocks_body(trmm, uplo, scale, r, n, m, rows, nb):
    # m: flat C-contiguous (rows, n) storage, which BLAS sees as the column-major (n, rows)
    # matrix M^T; r: flat storage of the triangular R (n, n) in Fortran order, upper or lower
    # (uplo: ord("U") or ord("L")). Each block of `step` columns of M^T (rows of M) is one
    # in-place ?trmm: M^T <- scale R M^T.
    step = (rows + nb - 1) // nb
    isz = m.itemsize
    for i in _numba.prange(nb):
        c0 = i * step
        k = min(rows, c0 + step) - c0
        if k > 0:
            dims = np.empty(4, np.int32)
            dims[0], dims[1], dims[2], dims[3] = n, k, n, n
            alpha = np.empty(1, m.dtype)
            alpha[0] = scale
            flags = np.empty(4, np.uint8)
            flags[0], flags[1], flags[2], flags[3] = ord("L"), uplo, _N, _N
            trmm(flags[0:].ctypes.data, flags[1:].ctypes.data, flags[2:].ctypes.data,
                 flags[3:].ctypes.data, dims[0:].ctypes.data, dims[1:].ctypes.data,
                 alpha.ctypes.data, r.ctypes.data, dims[2:].ctypes.data,
                 m.ctypes.data + c0 * n * isz, dims[3:].ctypes.data)


_trmm_blocks = _numba.njit(_trmm_blocks_body, parallel=True, nogil=True, cache=True)
_trmm_blocks_serial = _numba.njit(_numba.variant(_trmm_blocks_body, "_serial"), nogil=True,
                                  cache=True)


def _blocks_kernel(parallel, serial, what: str):
    """Which build of a block kernel to call: the ``parallel`` one inside
    ``fixed_blas_threads`` (blocks on numba's threads), else the ``serial`` one; None, after
    the fallback warning naming ``what``, when numba is absent (the caller runs its twin)."""
    if not _numba.HAVE_NUMBA:
        _numba.warn_fallback(what)
        return None
    return parallel if in_fixed_blas_threads() else serial


def _check_trmm(R, M, name: str = "upper_triangular_times_rows", factor: str = "R",
                dim: str = "n"):
    if (R.ndim != 2 or M.ndim != 2 or R.shape != (M.shape[1],) * 2 or R.dtype != M.dtype
            or R.dtype.char not in "fd" or not R.flags.f_contiguous
            or not M.flags.c_contiguous):
        raise ValueError(f"{name}: need {factor} ({dim}, {dim}) Fortran-ordered and M (rows, "
                         f"{dim}) C-contiguous of one float dtype; got {factor} {R.shape} "
                         f"{R.dtype}, M {M.shape} {M.dtype}")


def _scipy_trmm(T, b, scale, *, lower: bool) -> None:
    """``b <- scale T b`` in place (``b`` an F-contiguous view) by one ``?trmm`` call through
    SciPy's wrapper: the twins' form of the kernels' call."""
    from scipy.linalg import blas

    trmm = blas.dtrmm if b.dtype == np.float64 else blas.strmm
    res = trmm(float(scale), T, b, side=0, lower=int(lower), overwrite_b=1)
    if not np.shares_memory(res, b):
        b[...] = res


def upper_triangular_times_rows_numpy(R, M):
    """The NumPy twin: the same column blocks of ``M^T``, one after the other, each the same
    ``?trmm`` call through SciPy's wrapper, in place."""
    _check_trmm(R, M)
    rows, n = M.shape
    nb = row_blocks(rows, n, n)
    step = -(-rows // nb) if rows else 1
    with fixed_blas_threads():
        for c0 in range(0, rows, step):
            _scipy_trmm(R, M[c0:c0 + step].T, 1.0, lower=False)   # F-contiguous (n, k) view
    return M


def upper_triangular_times_rows(R, M):
    """``M <- (R M^T)^T = M R^T`` in place, for ``R`` (n, n) upper triangular in Fortran
    order and ``M`` (rows, n) C-contiguous: one ``?trmm`` per fixed block of rows (a number of
    blocks that depends on the shape alone, :func:`row_blocks`), so the bits do not depend on
    the thread count; the blocks run on numba's threads inside ``fixed_blas_threads``.
    Half the multiply-adds of the general product. Returns ``M``."""
    _check_trmm(R, M)
    rows, n = M.shape
    if rows == 0 or n == 0:
        return M
    kernel = _blocks_kernel(_trmm_blocks, _trmm_blocks_serial, "the fixed-block matrix products")
    if kernel is None:
        return upper_triangular_times_rows_numpy(R, M)
    with fixed_blas_threads():
        kernel(_blas_function("trmm", M.dtype, 11), _U, 1.0, R.reshape(-1, order="F"), n,
               M.reshape(-1), rows, row_blocks(rows, n, n))
    return M


def lower_triangular_mix_numpy(L, scale, M):
    """The twin of :func:`lower_triangular_mix`: the same single ``?trmm`` call through
    SciPy's wrapper (which holds the GIL while it runs)."""
    _check_trmm(L, M, "lower_triangular_mix", "L", "m")
    _scipy_trmm(L, M.T, scale, lower=True)                # F-contiguous (m, rows) view
    return M


def lower_triangular_mix(L, scale, M):
    """``M <- scale (L M^T)^T = scale M L^T`` in place, for ``L`` (m, m) lower triangular in
    Fortran order and ``M`` (rows, m) C-contiguous: one ``?trmm`` of SciPy's BLAS (whatever
    :func:`blas_provider` says: the Monte-Carlo engine's products are SciPy's and NumPy's)
    on the calling thread, the same call as the twin's, so the same bits (tested), but from
    numba without the GIL: SciPy's wrapper holds it, and Monte-Carlo chunks on two worker
    threads took turns in it. Returns ``M``."""
    _check_trmm(L, M, "lower_triangular_mix", "L", "m")
    rows, m = M.shape
    if rows == 0 or m == 0:
        return M
    if not _numba.HAVE_NUMBA:
        _numba.warn_fallback("the triangular noise product")
        return lower_triangular_mix_numpy(L, scale, M)
    _trmm_blocks_serial(_scipy_blas_function("trmm", M.dtype, 11), _L, float(scale),
                        L.reshape(-1, order="F"), m, M.reshape(-1), rows, 1)
    return M


# --- per-input sums of squares weighted by the signal's squares -----------------------------
def _squared_gemv_body(gemv, g, x, out, B, K, n, nb):
    # g: flat C-contiguous (B, K, n) storage, x (B, n), out (B, K). For each input b one
    # ?gemv: out[b] = (g[b] o g[b]) (x[b] o x[b]), with the (K, n) squares, which BLAS sees
    # as the column-major (n, K) matrix, transposed ('T'). The squares are formed in a small
    # buffer per block of inputs, so no (B, K, n) array of them is written.
    step = (B + nb - 1) // nb
    for i in _numba.prange(nb):
        sq = np.empty(K * n, g.dtype)
        x2 = np.empty(n, g.dtype)
        dims = np.empty(4, np.int32)
        dims[0], dims[1], dims[2], dims[3] = n, K, n, 1
        alpha_beta = np.empty(2, g.dtype)
        alpha_beta[0], alpha_beta[1] = 1.0, 0.0
        flag = np.empty(1, np.uint8)
        flag[0] = _T
        for b in range(i * step, min(B, (i + 1) * step)):
            for j in range(K * n):
                v = g[b * K * n + j]
                sq[j] = v * v
            for j in range(n):
                v = x[b * n + j]
                x2[j] = v * v
            gemv(flag.ctypes.data, dims[0:].ctypes.data, dims[1:].ctypes.data,
                 alpha_beta[0:].ctypes.data, sq.ctypes.data, dims[2:].ctypes.data,
                 x2.ctypes.data, dims[3:].ctypes.data, alpha_beta[1:].ctypes.data,
                 out.ctypes.data + b * K * out.itemsize, dims[3:].ctypes.data)


_squared_gemv = _numba.njit(_squared_gemv_body, parallel=True, nogil=True, cache=True)
_squared_gemv_serial = _numba.njit(_numba.variant(_squared_gemv_body, "_serial"), nogil=True,
                                   cache=True)
#: Inputs per block of :func:`squares_times_squares` (the blocks, not the bits, use the cores).
SQUARED_GEMV_BLOCK = 64


def _check_squared(G, x):
    if (G.ndim != 3 or x.ndim != 2 or x.shape != (G.shape[0], G.shape[2])
            or G.dtype != x.dtype or G.dtype.char not in "fd"):
        raise ValueError(f"squares_times_squares: need G (B, K, n) and x (B, n) of one float "
                         f"dtype; got G {G.shape} {G.dtype}, x {x.shape} {x.dtype}")


def squares_times_squares_numpy(G, x):
    """The NumPy twin: the same ``?gemv`` call per input through SciPy's wrapper."""
    from scipy.linalg import blas

    _check_squared(G, x)
    gemv = blas.dgemv if G.dtype == np.float64 else blas.sgemv
    out = np.zeros(G.shape[:2], G.dtype)
    if 0 in G.shape:
        return out
    with fixed_blas_threads():
        for b in range(len(G)):
            out[b] = gemv(1.0, (G[b] * G[b]).T, x[b] * x[b], trans=1)
    return out


def squares_times_squares(G, x):
    """``out[b, k] = sum_j G[b, k, j]^2 x[b, j]^2`` for G (B, K, n), x (B, n), one float dtype:
    one ``?gemv`` of SciPy's BLAS per input on its squares, the call NumPy's
    ``(G * G) @ (x ** 2)[:, :, None]`` makes per input (the same bits with NumPy and SciPy
    on the same OpenBLAS kernel, as here: tested), without the (B, K, n) array of squares,
    and the inputs' blocks on numba's threads inside ``fixed_blas_threads`` (each input is
    one call: the bits do not depend on the thread count). Returns (B, K)."""
    G, x = np.ascontiguousarray(G), np.ascontiguousarray(x)
    _check_squared(G, x)
    B, K, n = G.shape
    out = np.zeros((B, K), G.dtype)
    if B == 0 or K == 0 or n == 0:
        return out
    kernel = _blocks_kernel(_squared_gemv, _squared_gemv_serial,
                            "the per-input weighted sums of squares")
    if kernel is None:
        return squares_times_squares_numpy(G, x)
    with fixed_blas_threads():
        kernel(_scipy_blas_function("gemv", G.dtype, 11), G.reshape(-1), x.reshape(-1),
               out, B, K, n, -(-B // SQUARED_GEMV_BLOCK))
    return out
