"""The sigmoid's numba passes (refnet/_activation_kernels.py) against their NumPy twins.

Whatever the machine, refnet.activations.sigmoid and its derivatives must return the NumPy
passes' bits: the numba pass runs only where a probe showed it gives them. These tests check
that on values the probe never saw, that a pass which does not agree is refused, and the
bodies themselves on small arrays (also under NUMBA_DISABLE_JIT=1, where they run as Python).
"""
import math
import zlib

import numpy as np
import pytest

from refnet import _activation_kernels as K
from refnet import _numba
from refnet import activations as A
from refnet._blas import fixed_blas_threads

NAMES = ("sigmoid", "sigmoid_prime", "sigmoid_prime_and_second")
#: the bodies run as Python functions (no numba, or NUMBA_DISABLE_JIT=1)
PYTHON_BODIES = not _numba.HAVE_NUMBA or _numba.jit_disabled()


def _bits(x):
    x = x if isinstance(x, tuple) else (x,)
    return tuple(np.ascontiguousarray(a).view(np.uint64).tobytes() for a in x)


def _values(seed, shape):
    rng = np.random.default_rng(seed)
    z = rng.standard_normal(shape) * rng.choice([0.5, 4.0, 40.0, 300.0], size=shape)
    return z


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("inside", [False, True])
@pytest.mark.parametrize("shape", [(128, 300), (1000, 37), (4099,), (3, 5, 700)])
def test_public_functions_give_the_numpy_bits(name, inside, shape):
    z = _values(zlib.crc32(f"{name}{shape}".encode()), shape)
    public, twin = getattr(A, name), getattr(A, name + "_numpy")
    if inside:  # where the parallel build runs
        with fixed_blas_threads():
            got = public(z)
    else:
        got = public(z)
    assert _bits(got) == _bits(twin(z))


@pytest.mark.parametrize("name", NAMES)
def test_the_pass_runs_where_it_should_and_only_there(name):
    z = _values(1, (64, 300))
    if PYTHON_BODIES:
        assert K._run(name, z) is None
        return
    ran = K._run(name, z) is not None
    assert ran == K.same_bits_as_numpy(name, False)
    assert K._run(name, z.astype(np.float32)) is None          # float32: NumPy's exp
    assert K._run(name, z[:, ::2]) is None                      # not contiguous
    assert K._run(name, z[:2, :3].copy()) is None               # below MIN_SIZE


@pytest.mark.skipif(PYTHON_BODIES, reason="needs compiled numba")
def test_a_pass_that_differs_in_one_ulp_is_refused(monkeypatch):
    par, ser, n_out = K._KERNELS["sigmoid"]

    def off_by_one_ulp(z, out):
        ser(z, out)
        out[1000] = np.nextafter(out[1000], 2.0)

    monkeypatch.setitem(K._KERNELS, "sigmoid", (off_by_one_ulp, off_by_one_ulp, n_out))
    K.same_bits_as_numpy.cache_clear()
    try:
        assert not K.same_bits_as_numpy("sigmoid", False)
        z = _values(2, (256, 300))
        assert _bits(A.sigmoid(z)) == _bits(A.sigmoid_numpy(z))   # the NumPy passes ran
    finally:
        K.same_bits_as_numpy.cache_clear()


class _NumpyWithLibmExp:
    """NumPy, but its ``exp`` is the C library's (Python's ``math.exp``, value by value): what
    the bodies call when they run as Python. NumPy's own ``exp`` is the C library's only on
    machines without AVX-512; with it, NumPy's SIMD ``exp`` differs in the last bit for some
    values (``exp(-36)``), and there the compiled pass does not run at all."""

    def __getattr__(self, name):
        return getattr(np, name)

    @staticmethod
    def exp(x, out=None):
        x = np.asarray(x)
        r = np.array([math.exp(v) for v in x.ravel().tolist()], dtype=x.dtype).reshape(x.shape)
        if out is None:
            return r
        out[...] = r
        return out


@pytest.mark.parametrize("name", NAMES)
def test_bodies_on_small_arrays(name, monkeypatch):
    """The serial build (a Python function under NUMBA_DISABLE_JIT=1) on edge values, against
    the twin; as Python, against the twin with the C library's exp (Python's math.exp)."""
    z = np.array([0.0, -0.0, 1e-300, -3.5, 2.25, 36.0, -709.78, 708.4, 745.2, -745.2, 1e4,
                  -1e4, np.inf, -np.inf])
    if PYTHON_BODIES:  # Python's math.exp raises OverflowError where C's gives inf
        z = z[z > -709.0]
        monkeypatch.setattr(A, "np", _NumpyWithLibmExp())
    want = getattr(A, name + "_numpy")(z)
    monkeypatch.undo()
    want = want if isinstance(want, tuple) else (want,)
    got = tuple(np.empty_like(z) for _ in want)
    K._KERNELS[name][1](z, *got)
    if not PYTHON_BODIES and not K.same_bits_as_numpy(name, False):
        pytest.skip("this machine's NumPy exp is not the C library's: the pass does not run")
    assert _bits(got) == _bits(want)


def test_numpy_passes_only_switches_the_pass_off_in_its_block_and_thread():
    z = _values(3, (64, 300))
    with K.numpy_passes_only():
        assert K._run("sigmoid", z) is None
        inner = A.sigmoid(z)
    assert _bits(inner) == _bits(A.sigmoid_numpy(z))
    if not PYTHON_BODIES and K.same_bits_as_numpy("sigmoid", False):
        assert K._run("sigmoid", z) is not None   # on again after the block
