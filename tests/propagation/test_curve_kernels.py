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


@pytest.mark.parametrize("mul", [False, True])
@pytest.mark.parametrize("shared", [True, False])
@pytest.mark.parametrize("n_nodes", [6, 7])
def test_hermite_level_is_the_twins_bits(shared, n_nodes, mul):
    """The fused kernel (sums, E f', the output variance) against its twin, bit for bit,
    saturated neurons, a variance of 0 and a NaN mean included."""
    from refnet.propagation.neuron_moments import hermite_rule

    rng = np.random.default_rng(3)
    B, n = 23, 13
    mean = rng.normal(scale=5.0, size=(B, n))
    mean[0, :3] = [-750.0, 750.0, np.nan]
    var_z = rng.uniform(0.0, 9.0, size=(1, n) if shared else (B, n))
    var_z[0, 3] = 0.0
    sd = np.sqrt(var_z)
    x, w = hermite_rule(n_nodes)
    half = n_nodes // 2
    with np.errstate(over="ignore", invalid="ignore"):
        E = np.exp(-mean)
        C = np.exp(-np.minimum(sd[None] * x[n_nodes - half:].reshape(-1, 1, 1), 700.0))
    w0 = float(w[half]) if n_nodes % 2 else None
    got = [np.empty((B, n)) for _ in range(3)]
    ref = [np.empty((B, n)) for _ in range(3)]
    CK.hermite_level(E, C, w[n_nodes - half:], w0, var_z, 0.7, mul, *got)
    with np.errstate(over="ignore", invalid="ignore"):
        CK.hermite_level_numpy(E, C, w[n_nodes - half:], w0, var_z, 0.7, mul, *ref)
    for g, r in zip(got, ref):
        np.testing.assert_array_equal(g, r)
    assert np.isnan(got[2][0, 2]) and np.isfinite(got[2][1:]).all()
    assert (got[2][1:] > (0.7 if not mul else 0.0)).any()     # a neuron's own spread counted


@pytest.mark.parametrize("shared", [True, False])
@pytest.mark.parametrize("n_nodes", [6, 7])
def test_hermite_sums_are_the_twins_bits(shared, n_nodes):
    from refnet.propagation.neuron_moments import hermite_rule

    rng = np.random.default_rng(2)
    B, n = 19, 11
    mean = rng.normal(scale=5.0, size=(B, n))
    mean[0, :2] = [-750.0, 750.0]                 # E = inf and E = 0
    sd = np.abs(rng.normal(size=(n,) if shared else (B, n)))
    x, w = hermite_rule(n_nodes)
    half = n_nodes // 2
    with np.errstate(over="ignore"):
        E = np.exp(-mean)
        C = np.exp(-np.minimum(sd[None] * x[n_nodes - half:].reshape((-1,) + (1,) * sd.ndim),
                               700.0)).reshape(half, -1, n)
    w0 = float(w[half]) if n_nodes % 2 else None
    got = [np.empty((B, n)), np.empty((B, n))]
    ref = [np.empty((B, n)), np.empty((B, n))]
    CK.hermite_sums(E, C, w[n_nodes - half:], w0, *got)
    with np.errstate(over="ignore", invalid="ignore"):
        CK.hermite_sums_numpy(E, C, w[n_nodes - half:], w0, *ref)
    np.testing.assert_array_equal(got[0], ref[0])
    np.testing.assert_array_equal(got[1], ref[1])
    assert 0.0 < got[0][1:].mean() < 1.0


def test_neuron_table_means_are_the_twins_bits():
    """The tabulated means kernel against its twin: random tables and means, some at the
    tables' ends and beyond them (the interval is kept in range, so the last one
    extrapolates), bit for bit."""
    rng = np.random.default_rng(4)
    n, N, B = 13, 57, 31
    lo = rng.normal(scale=3.0, size=n)
    step = rng.uniform(0.01, 0.2, size=n)
    values, slopes = rng.normal(size=(n, N)), rng.normal(size=(n, N))
    shift = rng.normal(size=n)
    z2T = (lo - shift)[:, None] + rng.uniform(-0.1, 1.1, size=(n, B)) * (step * (N - 1))[:, None]
    z2T[:, 0] = lo - shift                                # the first knot
    z2T[:, 1] = lo + step * (N - 1) - shift                 # the last
    got = CK.neuron_table_means(lo, step, values, slopes, z2T, shift, np.empty((n, B)))
    ref = CK.neuron_table_means_numpy(lo, step, values, slopes, z2T, shift, np.empty((n, B)))
    np.testing.assert_array_equal(got, ref)
    j = 3                                                 # at a knot: that knot's value
    u = ((z2T[j, 0] + shift[j]) - lo[j]) / step[j]
    if u == 0.0:
        assert got[j, 0] == values[j, 0]
