"""The correlated curve's kernels (refnet.propagation._curve_kernels) against their NumPy twins."""
import numpy as np
import pytest

from refnet import _numba
from refnet.propagation import _curve_kernels as CK
from refnet.propagation.moment_steps import normal_panel_rule

pytestmark = pytest.mark.skipif(not _numba.HAVE_NUMBA, reason="the kernels are numba's")


@pytest.mark.parametrize("shared", [True, False])
def test_values_and_slopes_are_the_twins_bits(shared):
    rng = np.random.default_rng(0)
    B, n = 37, 23
    z2 = rng.normal(scale=4.0, size=(B, n))
    z2[0, :3] = [800.0, -800.0, 0.0]            # exp overflow on one side, saturation on both
    u = rng.normal(size=(1 if shared else B, n))
    for t in (-3.7, 0.0, 0.41):
        got = CK.sigmoid_values_and_slopes(z2, u, t, np.empty((2 * B, n)))
        ref = CK.sigmoid_values_and_slopes_numpy(z2, u, t, np.empty((2 * B, n)))
        np.testing.assert_array_equal(got, ref)
    assert got[0, 1] == 0.0 and got[0, 0] == 1.0


@pytest.mark.parametrize("mul", [False, True])
def test_level_probability_is_the_twin_to_rounding(mul):
    rng = np.random.default_rng(1)
    G, B, K = 9, 64, 6
    grid = np.linspace(-2.0, 2.0, G)
    H = rng.normal(scale=0.8, size=(G, B, K)).cumsum(axis=0) * 0.3
    dH = rng.normal(size=(G, B, K))
    sd = 0.6
    tau, w = normal_panel_rule(16, -1.0 / sd if mul else None)
    tau = sd * tau * 1.5                        # some nodes beyond the grid: direct values
    out = np.abs(tau) > grid[-1]
    assert out.any() and not out.all()
    slot = np.where(out, np.cumsum(out) - 1, -1)
    direct = rng.normal(size=(int(out.sum()), B, K))
    b3, y = rng.normal(size=K), rng.integers(0, K, B)
    slope = sd * rng.normal(size=K)
    slope[1] = slope[2]                         # a parallel pair: the a == 0 branch
    got = CK.level_probability(H, dH, grid, tau, w, direct, slot, b3, slope, y, mul, sd)
    ref = CK.level_probability_numpy(H, dH, grid, tau, w, direct, slot, b3, slope, y, mul, sd)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12)
    assert 0.05 < ref.mean() < 0.95             # neither all won nor all lost
