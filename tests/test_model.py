"""Hand-derived backprop of refnet.model against finite differences (refnet.testing.check_grad:
directional and coordinate-wise central differences, float64), plus shapes, init and bad input."""
import numpy as np
import pytest

import refnet as rn
from refnet.noise import NOISE_TYPES, draw_layer_noise
from refnet.testing import check_grad

ACTS = ["sigmoid", "shifted_sigmoid(alpha=3)", "cubic", "identity"]


def _net(hidden, output="identity", sizes=(3, 4, 4, 2), seed=0):
    arch = rn.Architecture(sizes, (hidden,) * (len(sizes) - 2) + (output,))
    return arch, rn.init_params(arch, rng=seed)


def _grad_check(arch, params, X, target, loss, noise=None, draws=None, seed=0):
    loss_fn = {"ce": rn.cross_entropy, "mse": rn.mse}[loss]

    def f(arrays):
        out, _ = rn.forward(arch, rn.Params.from_arrays(arrays), X, noise, draws=draws)
        return loss_fn(out, target)[0]

    out, cache = rn.forward(arch, params, X, noise, draws=draws)
    g = rn.backward(arch, params, cache, loss_fn(out, target)[1])
    check_grad(f, params.arrays(), seed, g.arrays(), name=f"{arch.activations} {loss}")


@pytest.mark.parametrize("batch", [1, 5])
@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("loss", ["ce", "mse"])
def test_clean_gradient_matches_finite_differences(act, loss, batch, rng):
    arch, params = _net(act)
    X = rng.uniform(0, 1, size=(batch, 3))  # in [0, 1]: the cubic's sigmoid-like range
    target = rng.integers(0, 2, batch) if loss == "ce" else rng.normal(size=(batch, 2))
    _grad_check(arch, params, X, target, loss)


@pytest.mark.parametrize("batch", [1, 4])
@pytest.mark.parametrize("position", ["pre", "post"])
@pytest.mark.parametrize("noise_type", list(NOISE_TYPES) + ["all"])
def test_noisy_gradient_with_supplied_draws_matches_finite_differences(noise_type, position,
                                                                       batch, rng):
    arch, params = _net("sigmoid")
    spec = (rn.NoiseSpec(0.05, 0.04, 0.03, 0.02) if noise_type == "all"
            else rn.NoiseSpec.single(noise_type, 0.05))
    cfg = rn.NoiseConfig(spec, (0, 1, 2, 3), position)  # every layer noisy, input included
    g = np.random.default_rng(5)
    draws = [draw_layer_noise(spec, batch, n, g) for n in arch.sizes]
    X = rng.normal(size=(batch, 3))
    _grad_check(arch, params, X, rng.integers(0, 2, batch), "ce", cfg, draws)


def test_frozen_bias_architecture_still_reports_bias_gradients(rng):
    arch = rn.Architecture((3, 4, 2), ("sigmoid", "identity"), train_biases=False)
    p = rn.init_params(arch, rng=1)
    X = rng.normal(size=(4, 3))
    _grad_check(arch, p, X, rng.integers(0, 2, 4), "ce")


def test_shapes_follow_pytorch_layout():
    arch, p = _net("sigmoid", sizes=(784, 300, 300, 10))
    assert [w.shape for w in p.W] == [(300, 784), (300, 300), (10, 300)]
    assert [b.shape for b in p.b] == [(300,), (300,), (10,)]
    out, cache = rn.forward(arch, p, np.zeros((7, 784)))
    assert out.shape == (7, 10) and [a.shape for a in cache.A] == [(7, 784), (7, 300), (7, 300), (7, 10)]


def test_torch_default_init_bounds_and_seed():
    arch = rn.mlp((50, 20, 3))
    p = rn.init_params(arch, "torch", rng=0)
    assert np.abs(p.W[0]).max() <= 1 / np.sqrt(50) and np.abs(p.b[1]).max() <= 1 / np.sqrt(20)
    assert np.abs(p.W[0]).max() > 0.9 / np.sqrt(50)  # fills the interval
    np.testing.assert_array_equal(rn.init_params(arch, "torch", rng=0).W[0], p.W[0])
    x = rn.init_params(arch, "xavier", rng=0)
    assert np.abs(x.W[0]).max() <= np.sqrt(6 / 70) and not np.any(x.b[0])
    n = rn.init_params(arch, "normal", rng=0, std=0.5)
    assert 0.4 < n.W[0].std() < 0.6
    assert rn.init_params(arch, rng=0, dtype=np.float32).dtype == np.float32


def test_forward_does_not_modify_inputs(rng):
    arch, p = _net("sigmoid")
    X = rng.normal(size=(3, 3))
    X0, W0 = X.copy(), p.W[0].copy()
    out, cache = rn.forward(arch, p, X, rn.noise_config("semenova", rn.NoiseSpec(0.1, 0.1, 0.1, 0.1), 3), 0)
    rn.backward(arch, p, cache, np.ones_like(out))
    np.testing.assert_array_equal(X, X0)
    np.testing.assert_array_equal(p.W[0], W0)


def test_float32_forward_backward_stays_float32(rng):
    arch, p = _net("sigmoid")
    p32 = p.astype(np.float32)
    cfg = rn.noise_config("duque", rn.NoiseSpec(0.1, 0.1, 0.1, 0.1), 3)
    out, cache = rn.forward(arch, p32, rng.normal(size=(4, 3)), cfg, 0)
    g = rn.backward(arch, p32, cache, rn.cross_entropy(out, [0, 1, 0, 1])[1])
    assert out.dtype == np.float32 and all(a.dtype == np.float32 for a in g.arrays())


def test_bad_input_gives_clear_errors(rng):
    arch, p = _net("sigmoid")
    with pytest.raises(ValueError, match=r"X: expected shape \(n_batch, 3\), got \(4, 2\)"):
        rn.forward(arch, p, np.zeros((4, 2)))
    with pytest.raises(ValueError, match=r"X: expected shape \(n_batch, 3\)"):
        rn.forward(arch, p, np.zeros(3))
    X = np.zeros((4, 3))
    X[2, 1] = np.nan
    with pytest.raises(ValueError, match="X: contains NaN or inf .*row 2, column 1"):
        rn.forward(arch, p, X)
    bad = rn.Params((p.W[0].T,) + p.W[1:], p.b)
    with pytest.raises(ValueError, match=r"params: W1 has shape \(3, 4\), expected \(4, 3\)"):
        rn.forward(arch, bad, np.zeros((1, 3)))
    with pytest.raises(ValueError, match="init: unknown initialisation 'he'"):
        rn.init_params(arch, "he")
    with pytest.raises(ValueError, match="activations: need one per weight layer"):
        rn.Architecture((3, 4, 2), ("sigmoid",))
    with pytest.raises(ValueError, match="y: labels must lie in 0..1"):
        rn.cross_entropy(np.zeros((2, 2)), [0, 2])
    with pytest.raises(ValueError, match=r"d_out: expected shape"):
        out, cache = rn.forward(arch, p, np.zeros((2, 3)))
        rn.backward(arch, p, cache, np.zeros((3, 2)))


def test_cross_entropy_is_stable_for_huge_logits():
    logits = np.array([[1e4, 0.0, -1e4], [0.0, 0.0, 0.0]])
    v, g = rn.cross_entropy(logits, [0, 2])
    np.testing.assert_allclose(v, np.log(3) / 2, rtol=1e-14)
    assert np.all(np.isfinite(g))
    np.testing.assert_allclose(g.sum(axis=1), 0, atol=1e-16)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_sigmoid_backward_equals_its_numpy_twin(dtype):
    from refnet._model_kernels import times_sigmoid_prime, times_sigmoid_prime_numpy

    g = np.random.default_rng(8)
    s = (1.0 / (1.0 + np.exp(-3.0 * g.normal(size=(33, 17))))).astype(dtype)
    s[0, :3] = (0.0, 1.0, 0.5)
    dA = g.normal(size=(33, 17)).astype(dtype)
    for a, b in ((dA, s), (dA[:, ::2], s[:, ::2]), (dA.astype(np.float64), s)):
        got, want = times_sigmoid_prime(a, b), times_sigmoid_prime_numpy(a, b)
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("c", [1.0, 0.3 ** 0.5])
def test_fused_additive_noise_equals_its_numpy_twin(dtype, c):
    from refnet._model_kernels import plus_scaled, plus_scaled_numpy

    g = np.random.default_rng(9)
    x, d = g.normal(size=(2, 31, 19)).astype(dtype)
    for a, b in ((x, d), (x[:, ::2], d[:, ::2]), (x, d.astype(np.float64))):
        got, want = plus_scaled(a, c, b), plus_scaled_numpy(a, c, b)
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)
    assert not np.shares_memory(plus_scaled(x, c, d), x)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_row_values_kernel_equals_its_numpy_twin(dtype):
    from refnet._model_kernels import add_row_values, add_row_values_numpy

    g = np.random.default_rng(10)
    base = g.normal(size=(23, 29)).astype(dtype)
    base[0, :4] = (-0.0, np.inf, np.nan, 1e30)
    c = g.normal(size=23).astype(dtype)
    c[1:5] = (0.0, -0.0, np.nan, -np.inf)
    for a, v in ((base, c), (base[:, ::2], c), (base, c.astype(np.float64)),
                 (np.asfortranarray(base), c), (base, c[::-1])):
        got, want = a.copy(order="K"), a.copy(order="K")
        add_row_values(got, v)
        add_row_values_numpy(want, v)
        assert got.dtype == want.dtype == dtype
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(np.signbit(got), np.signbit(want))
        assert not np.array_equal(got, a, equal_nan=True)   # something was added
    view = base[:, ::2]                   # a strided view is written through, as g += does
    before = base.copy()
    add_row_values(view, c)
    np.testing.assert_array_equal(base[:, 1::2], before[:, 1::2])
    np.testing.assert_array_equal(base[:, ::2], before[:, ::2] + c[:, None])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_all_finite_agrees_with_the_elementwise_test(dtype, rng):
    from refnet.model import all_finite

    big = np.finfo(dtype).max
    X = rng.normal(size=(50, 7)).astype(dtype)
    assert all_finite(X)
    huge = np.full((4, 3), big, dtype=dtype)          # finite entries, the sum overflows
    assert all_finite(huge) and all_finite(-huge)
    assert all_finite(np.zeros((0, 3), dtype=dtype))
    for bad in (np.nan, np.inf, -np.inf):
        for i, j in ((0, 0), (17, 3), (49, 6)):
            Y = X.copy()
            Y[i, j] = bad
            assert not all_finite(Y)
            with pytest.raises(ValueError, match=f"X: contains NaN or inf .*row {i}, column {j}"):
                rn.model.check_input(Y, 7)
            H = np.concatenate([huge[:, :1].repeat(7, axis=1), Y])  # an overflowing sum too
            assert not all_finite(H)
    Y = X.copy()
    Y[3, 2], Y[9, 1] = np.inf, -np.inf                # inf - inf: the sum is NaN
    assert not all_finite(Y)
    assert all_finite(X[:, ::2]) and not all_finite(Y[:, 1::1])   # views


def test_check_params_finite_uses_the_same_test(rng):
    arch, p = _net("sigmoid")
    W = p.W[0].copy()
    W[1, 2] = np.nan
    with pytest.raises(ValueError,
                       match=r"params: W1 holds a non-finite value \(nan at index \(1, 2\)\)"):
        rn.model.check_params(arch, rn.Params((W,) + p.W[1:], p.b), finite=True)
    big = rn.Params(tuple(np.full_like(w, np.finfo(w.dtype).max) for w in p.W), p.b)
    rn.model.check_params(arch, big, finite=True)      # finite, though their sums overflow
