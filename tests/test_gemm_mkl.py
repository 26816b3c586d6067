"""The opt-in MKL provider of refnet._gemm (REFNET_BLAS=mkl): the same fixed blocks calling
MKL's ?gemm and ?trmm. Checked against float64 sums, across numba thread counts in child
processes (training bits), and for its errors. The MKL tests skip where MKL's library is not
installed (``pip install --no-deps mkl``; CI installs it); the error tests run everywhere."""
import hashlib

import numpy as np
import pytest

from refnet import _gemm, _numba
from refnet._blas import fixed_blas_threads
from refnet.errors import ConfigError
from refnet.testing import call_in_child

HAVE_MKL = bool(_gemm._mkl_library_paths()) and _numba.HAVE_NUMBA
needs_mkl = pytest.mark.skipif(not HAVE_MKL, reason="MKL's libmkl_rt (pip install --no-deps "
                               "mkl) or numba is not installed")


@pytest.fixture
def provider():
    """Switch providers inside a test; the process's own choice (REFNET_BLAS) afterwards.
    torch, where installed, is imported first, as the module docstring advises, so that the
    suite's later torch tests keep torch's own MKL."""
    import importlib.util

    if importlib.util.find_spec("torch") is not None:
        import torch  # noqa: F401
    saved, functions = list(_gemm._provider), dict(_gemm._blas_functions)
    yield _gemm._set_provider
    _gemm._provider[:] = saved
    _gemm._blas_functions.clear()
    _gemm._blas_functions.update(functions)


def test_an_unknown_provider_names_the_variable_and_the_choices(provider, monkeypatch):
    monkeypatch.setenv("REFNET_BLAS", "atlas")
    _gemm._provider[:] = []
    with pytest.raises(ConfigError, match="REFNET_BLAS: unknown BLAS 'atlas'; use one of "
                                          "openblas, mkl"):
        _gemm.blas_provider()
    monkeypatch.setenv("REFNET_BLAS", " OpenBLAS ")
    assert _gemm.blas_provider() == "openblas"


def test_mkl_without_its_library_says_how_to_install_it(provider, monkeypatch):
    monkeypatch.setattr(_gemm, "_mkl_library_paths", lambda: [])
    if not _numba.HAVE_NUMBA:
        with pytest.raises(ConfigError, match="numba is not installed"):
            provider("mkl", "REFNET_BLAS")
        return
    with pytest.raises(ConfigError, match=r"REFNET_BLAS=mkl: no libmkl_rt found .*pip install "
                                          r"--no-deps mkl"):
        provider("mkl", "REFNET_BLAS")
    assert _gemm._provider == [] or _gemm._provider[0] != "mkl"   # nothing half-switched


@needs_mkl
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("M,K,N", [(128, 784, 300), (300, 128, 784), (257, 300, 10), (5, 7, 3)])
def test_mkl_blocks_match_float64_sums(provider, dtype, M, K, N):
    """Every orientation the trainer uses (op(A) and op(B) transposed or not), split and
    unsplit shapes: within the rounding bound of the float64 product, on MKL."""
    provider("mkl")
    assert _gemm.blas_provider() == "mkl"
    rng = np.random.default_rng(M + K + N)
    for ta in (False, True):
        for tb in (False, True):
            a = rng.standard_normal((K, M) if ta else (M, K)).astype(dtype)
            b = rng.standard_normal((N, K) if tb else (K, N)).astype(dtype)
            a, b = (a.T if ta else a), (b.T if tb else b)
            ref = a.astype(np.float64) @ b.astype(np.float64)
            bound = K * np.finfo(dtype).eps * (np.abs(a).astype(np.float64) @ np.abs(b))
            with fixed_blas_threads():
                got = _gemm.matmul(a, b)
            assert got.dtype == dtype
            assert np.all(np.abs(got - ref) <= bound + np.finfo(dtype).tiny)


@needs_mkl
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_mkl_triangular_rows_match_float64_sums(provider, dtype):
    provider("mkl")
    rng = np.random.default_rng(4)
    R = np.asfortranarray(np.triu(rng.standard_normal((300, 300))).astype(dtype))
    M = rng.standard_normal((700, 300)).astype(dtype)
    ref = M.astype(np.float64) @ R.T.astype(np.float64)
    bound = 300 * np.finfo(dtype).eps * (np.abs(M).astype(np.float64) @ np.abs(R.T))
    with fixed_blas_threads():
        got = _gemm.upper_triangular_times_rows(R, M.copy())
    assert np.all(np.abs(got - ref) <= bound)


def _mkl_training_fingerprint() -> dict:
    """The blas provider in use and the hash of a float32 and a float64 network after one
    epoch of 784-300-300-10 (batch 128: split products)."""
    import refnet as rn
    from refnet.train import TrainConfig, train

    rng = np.random.default_rng(0)
    X, y = rng.random((512, 784)), rng.integers(0, 10, 512)
    arch = rn.mlp((784, 300, 300, 10))
    out = {"provider": _gemm.blas_provider()}
    for dt in (np.float32, np.float64):
        p = train(arch, rn.init_params(arch, rng=1).astype(dt), X, y,
                  TrainConfig(epochs=1, batch_size=128, seed=2)).params
        h = hashlib.sha256()
        for arr in p.arrays():
            h.update(np.ascontiguousarray(arr).tobytes())
        out[np.dtype(dt).name] = h.hexdigest()
    return out


@needs_mkl
@pytest.mark.slow
def test_mkl_training_bits_do_not_depend_on_numba_threads():
    """REFNET_BLAS=mkl trains to the same bits on 1 and 2 numba threads (one MKL thread per
    fixed block), and to other bits than OpenBLAS (its products round differently: the
    README says so), in fresh processes."""
    runs = {n: call_in_child(__file__, "_mkl_training_fingerprint",
                             env={"REFNET_BLAS": "mkl", "NUMBA_NUM_THREADS": n})
            for n in (1, 2)}
    assert runs[1]["provider"] == "mkl"
    assert runs[1] == runs[2]
    openblas = call_in_child(__file__, "_mkl_training_fingerprint",
                             env={"REFNET_BLAS": "openblas", "NUMBA_NUM_THREADS": 2})
    assert openblas["provider"] == "openblas"
    assert openblas["float64"] != runs[1]["float64"]


def _torch_mkl_threads(torch_first: bool) -> dict:
    """torch's MKL thread count (from its own report) and the warnings refnet gave, with
    torch imported before or after refnet's first MKL product."""
    import re
    import warnings

    if torch_first:
        import torch
    a = np.ones((64, 64))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with fixed_blas_threads():
            _gemm.matmul(a, a)
    import torch

    torch.set_num_threads(2)
    m = re.search(r"mkl_get_max_threads\(\) : (\d+)", torch.__config__.parallel_info())
    return {"mkl_threads": int(m.group(1)) if m else None,
            "warned": any("before PyTorch" in str(w.message) for w in caught)}


@needs_mkl
@pytest.mark.slow
def test_torch_imported_first_keeps_its_threads_and_a_late_torch_is_warned_about():
    """The hazard the module docstring states, and its warning: torch imported after refnet
    loaded MKL reports one MKL thread, imported before it keeps two; the warning appears
    exactly when torch was not imported yet."""
    pytest.importorskip("torch")
    first = call_in_child(__file__, "_torch_mkl_threads_first", env={"REFNET_BLAS": "mkl"})
    late = call_in_child(__file__, "_torch_mkl_threads_late", env={"REFNET_BLAS": "mkl"})
    assert first == {"mkl_threads": 2, "warned": False}
    assert late == {"mkl_threads": 1, "warned": True}


def _torch_mkl_threads_first() -> dict:
    return _torch_mkl_threads(True)


def _torch_mkl_threads_late() -> dict:
    return _torch_mkl_threads(False)


def _first_products_on_many_threads() -> dict:
    """Right after MKL is loaded, products split in 8 blocks on 8 numba threads: how many of
    20 left a block unwritten or wrong."""
    from refnet import _numba as N

    _gemm.blas_provider()
    rng = np.random.default_rng(0)
    a, b = rng.random((256, 784)), rng.random((300, 784)).T
    ta, sa, lda = _gemm._operand(a)
    tb, sb, ldb = _gemm._operand(b)
    f = _gemm._blas_function("gemm", np.float64, 13)
    bad = 0
    with fixed_blas_threads():
        for _ in range(20):
            out = np.full((256, 300), np.nan)
            _gemm._gemm_blocks(f, ta, tb, sa.reshape(-1), lda, sb.reshape(-1), ldb,
                               out.reshape(-1), 256, 300, 784, 8)
            bad += not np.allclose(out, a @ b, rtol=1e-12, atol=1e-9)
    return {"threads": N.threads(), "bad": int(bad)}


@needs_mkl
def test_mkl_first_products_on_many_threads_are_complete():
    """MKL's first products made on several threads at once left a block unwritten (seen
    with two threads); refnet warms MKL up on one thread when it loads it. Checked on 8 numba
    threads in a fresh process."""
    got = call_in_child(__file__, "_first_products_on_many_threads",
                        env={"REFNET_BLAS": "mkl", "NUMBA_NUM_THREADS": 8})
    assert got == {"threads": 8, "bad": 0}
