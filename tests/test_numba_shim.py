"""refnet/_numba.py: numba as an accelerator, not a gate (the no-numba run is in .ci/run)."""
import pytest

from refnet import _numba


def test_thread_count_is_checked_and_applied():
    n = _numba.max_threads()
    assert n >= 1
    _numba.set_threads(n)
    for bad in (0, n + 1):
        with pytest.raises(ValueError, match="threads"):
            _numba.set_threads(bad)


def test_njit_stand_in_returns_the_function_in_every_call_form():
    if _numba.HAVE_NUMBA:
        pytest.skip("numba is installed: njit is numba's own (the no-numba CI run covers this)")

    def f(x):
        return x + 1

    assert _numba.njit(f) is f and _numba.njit(cache=True)(f) is f
    assert _numba.njit(f, cache=True, nogil=True) is f   # the form the kernel modules use
    assert _numba.prange is range
