"""The noise contract of refnet.noise: variances, Eq. 3, correlated = shared per (sample, layer).

The moment checks of the noise live here only: the Monte-Carlo kernels are pinned to
:func:`refnet.noise.apply_noise` draw for draw (tests/montecarlo/test_mc_kernels.py)."""
import math

import numpy as np
import pytest

import refnet as rn
from refnet.noise import LayerNoise, NOISE_TYPES, apply_noise, draw_layer_noise


def test_from_intensities_means_variance_2D():
    s = rn.NoiseSpec.from_intensities(D_A_U=1e-4, D_A_C=2e-4, D_M_U=1e-3, D_M_C=3e-3)
    assert (s.add_unc, s.add_cor, s.mul_unc, s.mul_cor) == (2e-4, 4e-4, 2e-3, 6e-3)


@pytest.mark.parametrize("name", NOISE_TYPES)
def test_negative_nan_and_non_numbers_rejected_naming_the_argument(name):
    with pytest.raises(ValueError, match=f"{name}: a noise variance must be >= 0"):
        rn.NoiseSpec(**{name: -0.1})
    with pytest.raises(ValueError, match=f"{name}: a noise variance must be finite"):
        rn.NoiseSpec(**{name: float("nan")})
    with pytest.raises(TypeError, match=name):
        rn.NoiseSpec(**{name: "big"})
    with pytest.raises(ValueError, match="D_A_U"):
        rn.NoiseSpec.from_intensities(D_A_U=-1)


def test_unknown_names_rejected():
    with pytest.raises(ValueError, match="preset: unknown noise preset 'loud'"):
        rn.noise_config("loud")
    with pytest.raises(ValueError, match="noise_type: unknown 'add'"):
        rn.NoiseSpec.single("add", 0.1)
    with pytest.raises(ValueError, match="position"):
        rn.NoiseConfig(rn.NoiseSpec(0.1), (1,), "middle")
    with pytest.raises(ValueError, match="layers: layer 5 does not exist"):
        rn.NoiseConfig(rn.NoiseSpec(0.1), (5,)).resolved_layers(3)


def test_presets_place_noise_as_documented():
    spec = rn.NoiseSpec(add_unc=0.1)
    assert rn.noise_config("duque", spec, 3).resolved_layers(3) == (1, 2)
    assert rn.noise_config("semenova", spec, 3).resolved_layers(3) == (0, 1, 2, 3)
    assert rn.noise_config("none", spec, 3).is_zero
    assert rn.NoiseConfig(spec, (-1,)).resolved_layers(3) == (3,)


def test_apply_noise_is_semenova_eq3_on_supplied_draws(rng):
    x = rng.normal(size=(4, 3))
    spec = rn.NoiseSpec(0.04, 0.09, 0.16, 0.25)
    d = LayerNoise(*(rng.normal(size=s) for s in [(4, 3), (4, 1), (4, 3), (4, 1)]))
    y = apply_noise(x, spec, d)
    want = x * (1 + 0.4 * d.mul_unc) * (1 + 0.5 * d.mul_cor) + 0.2 * d.add_unc + 0.3 * d.add_cor
    np.testing.assert_allclose(y, want, rtol=1e-15)
    x0 = x.copy()
    apply_noise(x, spec, d)
    np.testing.assert_array_equal(x, x0)  # the caller's array is untouched


def test_wrong_draw_shape_is_an_error(rng):
    spec = rn.NoiseSpec(add_cor=0.1)
    with pytest.raises(ValueError, match=r"noise draw add_cor: expected shape \(4, 1\)"):
        apply_noise(np.zeros((4, 3)), spec, LayerNoise(add_cor=np.zeros((4, 3))))


# Moment tests: n = 200 000 draws; a z = 5 bound on a standard error has a two-sided
# false-positive probability of 6e-7 per comparison (and the seed is fixed).
N, Z = 200_000, 5.0


@pytest.mark.parametrize("name,var", [("add_unc", 0.3), ("add_cor", 0.05), ("mul_unc", 0.2),
                                      ("mul_cor", 0.7)])
def test_noise_moments_match_the_variance(name, var):
    rng = np.random.default_rng(7)
    x = np.full((N, 2), 2.0)
    spec = rn.NoiseSpec.single(name, var)
    y = apply_noise(x, spec, draw_layer_noise(spec, N, 2, rng))
    noise = y[:, 0] - 2.0
    want_var = var * (4.0 if name.startswith("mul") else 1.0)  # multiplicative scales with x^2
    assert abs(noise.mean()) <= Z * math.sqrt(want_var / N)
    # var of a sample variance of Gaussian data: 2 sigma^4 / (n - 1)
    assert abs(noise.var(ddof=1) - want_var) <= Z * want_var * math.sqrt(2 / (N - 1))


def test_correlated_noise_is_shared_by_a_layer_and_independent_across_samples():
    rng = np.random.default_rng(11)
    spec = rn.NoiseSpec(add_cor=0.5, mul_cor=0.3)
    x = np.ones((N, 5))
    y = apply_noise(x, spec, draw_layer_noise(spec, N, 5, rng))
    assert np.all(y == y[:, :1])  # one draw per sample, identical for every neuron
    r = np.corrcoef(y[:-1, 0], y[1:, 0])[0, 1]  # consecutive samples: uncorrelated
    assert abs(r) <= Z / math.sqrt(N)


def test_uncorrelated_noise_is_independent_across_neurons():
    rng = np.random.default_rng(12)
    spec = rn.NoiseSpec(add_unc=0.5, mul_unc=0.3)
    y = apply_noise(np.ones((N, 2)), spec, draw_layer_noise(spec, N, 2, rng))
    assert abs(np.corrcoef(y[:, 0], y[:, 1])[0, 1]) <= Z / math.sqrt(N)


def test_each_layer_draws_its_own_noise_and_each_pass_fresh_noise(rng):
    arch = rn.mlp((3, 4, 4, 2))
    p = rn.init_params(arch, rng=0)
    cfg = rn.noise_config("duque", rn.NoiseSpec(add_cor=0.1), 3)
    X = rng.normal(size=(5, 3))
    g = np.random.default_rng(3)
    _, c1 = rn.forward(arch, p, X, cfg, g)
    _, c2 = rn.forward(arch, p, X, cfg, g)
    assert not np.array_equal(c1.noise[1].add_cor, c1.noise[2].add_cor)
    assert not np.array_equal(c1.noise[1].add_cor, c2.noise[1].add_cor)
    o3, _ = rn.forward(arch, p, X, cfg, 3)
    o4, _ = rn.forward(arch, p, X, cfg, 3)
    np.testing.assert_array_equal(o3, o4)  # same seed, same numbers


def test_noise_only_where_configured(rng):
    arch = rn.mlp((3, 4, 4, 2))
    p = rn.init_params(arch, rng=0)
    X = rng.normal(size=(5, 3))
    clean, _ = rn.forward(arch, p, X)
    cfg = rn.NoiseConfig(rn.NoiseSpec(add_unc=0.1), layers=(2,))
    _, c = rn.forward(arch, p, X, cfg, 1)
    assert c.noise[0] is None and c.noise[1] is None and c.noise[3] is None
    np.testing.assert_array_equal(c.A[1], rn.forward(arch, p, X)[1].A[1])  # layer 1 clean
    assert not np.allclose(c.A[2], rn.forward(arch, p, X)[1].A[2])


@pytest.mark.parametrize("position", ["pre", "post"])
@pytest.mark.parametrize("layers", [(), (0,), (2,), (1, -1), (0, 1, 2, 3)])
def test_zero_variance_noise_equals_the_clean_network(position, layers):
    arch = rn.mlp((3, 5, 4, 2))
    p = rn.init_params(arch, rng=len(layers))
    X = np.random.default_rng(len(layers)).normal(size=(6, 3))
    cfg = rn.NoiseConfig(rn.NoiseSpec(), tuple(layers), position)
    np.testing.assert_array_equal(rn.forward(arch, p, X, cfg, 1)[0], rn.forward(arch, p, X)[0])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_layer_draws_are_numpys_standard_normals_and_leave_the_same_state(dtype):
    """Training's draws (float64 through numba's Generator) are NumPy's own
    ``standard_normal`` numbers in the contract's order, and the generator ends where NumPy's
    would: the next draw is the same."""
    spec = rn.NoiseSpec(add_unc=0.1, add_cor=0.2, mul_unc=0.3, mul_cor=0.4)
    mine, ref = np.random.default_rng(11), np.random.default_rng(11)
    d = draw_layer_noise(spec, 37, 29, mine, dtype)
    for name, shape in (("add_unc", (37, 29)), ("add_cor", (37, 1)), ("mul_unc", (37, 29)),
                        ("mul_cor", (37, 1))):
        got = getattr(d, name)
        assert got.dtype == dtype and got.shape == shape
        assert np.array_equal(got, ref.standard_normal(shape, dtype=dtype))
    assert mine.standard_normal() == ref.standard_normal()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_kernel_draws_stay_numpys_over_millions_of_values(dtype):
    """The numba path of training's draws follows NumPy's ziggurat (float64, and the float32
    one of ``standard_normal(dtype=np.float32)``) through its rare branches too: five million
    values in training-sized blocks, among them the tail's (beyond the ziggurat's last strip,
    about 3.65; about 1,300 of them here), then the generators' next draw of that dtype.
    numba's own float32 ``standard_normal`` leaves NumPy's stream after about 20 million values;
    ``benchmarks/check_normal_streams.py`` compares billions."""
    from refnet._random_kernels import standard_normal

    mine, ref = np.random.default_rng(2024), np.random.default_rng(2024)
    tail = 0
    for i in range(260):                           # 130 x 128 x 300 = 5.0 million
        shape = (128, 300) if i % 2 else (37, 1)
        got = standard_normal(mine, shape, dtype)
        assert got.dtype == dtype
        assert np.array_equal(got, ref.standard_normal(shape, dtype=dtype)), i
        tail += int(np.count_nonzero(np.abs(got) > 3.66))
    assert tail > 500
    assert mine.standard_normal(dtype=dtype) == ref.standard_normal(dtype=dtype)
