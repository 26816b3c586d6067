"""Duque 2024 Eq. 4 and Eq. 7: values, finite-difference gradients, properties, bad input."""
import math

import numpy as np
import pytest
from hypothesis import given, strategies as st
from hypothesis.extra.numpy import arrays

from refnet.model import Params, forward, init_params, mlp
from refnet.noise import NoiseConfig, NoiseSpec, draw_layer_noise
from refnet.regularizers import (REGULARIZER_PRESETS, RowSumPenalty, SaturationPenalty,
                                 derivative_penalty, regularizer_from_dict, regularizer_preset,
                                 regularizer_value, regularizer_value_and_grad, row_sum_penalty,
                                 value, value_and_grad)
from refnet.testing import check_grad

ARCH = mlp((3, 4, 4, 2))

#: Every preset and some general specs (other layers, both reductions and powers).
SPECS = {name: regularizer_preset(name, lam=0.3) for name in REGULARIZER_PRESETS}
SPECS.update({
    "eq4_layers_1_3": RowSumPenalty({1: 0.2, -1: 0.7}),
    "eq7_layer1_sum_sq": SaturationPenalty({1: 0.4, 2: 0.1}, {1: 0.05}, "sum", 2),
    "eq7_mean_sq": SaturationPenalty({2: 0.5}, 0.1, "mean", 2),
    "eq7_output_layer": SaturationPenalty({3: 0.5}, {}, "sum", 1),
    "both": (RowSumPenalty(0.1), SaturationPenalty({1: 0.2, 2: 0.3}, 0.1)),
})

NOISE = NoiseConfig(NoiseSpec(add_unc=0.1, add_cor=0.05, mul_unc=0.02, mul_cor=0.03), (0, 1, 2),
                    "post")
NOISE_PRE = NoiseConfig(NoiseSpec(add_unc=0.1, add_cor=0.05, mul_unc=0.02, mul_cor=0.03), (1, 2),
                        "pre")


def _setup(seed, n_batch, arch=ARCH):
    rng = np.random.default_rng(seed)
    params = init_params(arch, "torch", rng)
    X = rng.normal(size=(n_batch, arch.sizes[0]))
    return params, X


def _draws(config, arch, n_batch, seed):
    rng = np.random.default_rng(seed)
    layers = config.resolved_layers(arch.n_layers)
    return [draw_layer_noise(config.spec, n_batch, arch.sizes[l], rng) if l in layers else None
            for l in range(arch.n_layers + 1)]


@pytest.mark.parametrize("n_batch", [1, 5])
@pytest.mark.parametrize("name", list(SPECS))
def test_regularizer_gradient_matches_finite_differences(name, n_batch):
    params, X = _setup(1, n_batch)
    reg = SPECS[name]
    v, g = value_and_grad(ARCH, params, X, reg)
    assert v == value(ARCH, params, X, reg)
    check_grad(lambda a: value(ARCH, Params.from_arrays(a), X, reg), params.arrays(), 2,
               g.arrays(), name=name)


@pytest.mark.parametrize("config", [NOISE, NOISE_PRE], ids=["post", "pre"])
@pytest.mark.parametrize("n_batch", [1, 4])
@pytest.mark.parametrize("name", ["eq7", "addunc_sigm_sq", "eq7_layer1_sum_sq", "both"])
def test_eq7_gradient_with_supplied_noise(name, n_batch, config):
    params, X = _setup(3, n_batch)
    reg = SPECS[name]
    draws = _draws(config, ARCH, n_batch, 4)
    v, g = value_and_grad(ARCH, params, X, reg, config, draws=draws)
    assert v == value(ARCH, params, X, reg, config, draws=draws)
    check_grad(lambda a: value(ARCH, Params.from_arrays(a), X, reg, config, draws=draws),
               params.arrays(), 5, g.arrays(), name=name)


@pytest.mark.parametrize("act", ["cubic", "shifted_sigmoid(alpha=4)", "sigmoid"])
def test_eq7_gradient_other_activations(act):
    arch = mlp((3, 4, 4, 2), hidden=act)
    params, X = _setup(6, 3, arch)
    reg = SaturationPenalty({1: 0.3, 2: 0.2}, 0.1, "mean", 2)
    v, g = value_and_grad(arch, params, X, reg)
    check_grad(lambda a: value(arch, Params.from_arrays(a), X, reg), params.arrays(), 7,
               g.arrays(), name=act)


def test_eq7_uses_noisy_preactivation_from_cache():
    """The penalty sees z^(2) computed from the noisy layer-1 activations (cache.Zn[1])."""
    params, X = _setup(8, 6)
    draws = _draws(NOISE, ARCH, 6, 9)
    reg = SaturationPenalty({2: 1.0}, {}, "sum", 1)
    _, cache = forward(ARCH, params, X, NOISE, draws=draws)
    _, clean = forward(ARCH, params, X)
    s = 1 / (1 + np.exp(-cache.Zn[1]))
    assert regularizer_value(ARCH, params, cache, reg) == pytest.approx(np.sum(s * (1 - s)),
                                                                         rel=1e-13)
    assert regularizer_value(ARCH, params, cache, reg) != regularizer_value(ARCH, params, clean, reg)


def test_eq7_derivative_term_reaches_earlier_layers_only():
    """dR/dz^(2) flows into W2, b2, W1, b1 but not W3, b3 (no weight terms here)."""
    params, X = _setup(10, 4)
    _, g = value_and_grad(ARCH, params, X, SaturationPenalty({2: 1.0}))
    for arr in (g.W[0], g.b[0], g.W[1], g.b[1]):
        assert np.all(np.abs(arr) > 0)
    assert not np.any(g.W[2]) and not np.any(g.b[2])


def test_combined_parts_add_up():
    params, X = _setup(11, 3)
    _, cache = forward(ARCH, params, X)
    a, b = SPECS["eq4"], SPECS["eq7"]
    va, ga, za = regularizer_value_and_grad(ARCH, params, cache, a)
    vb, gb, zb = regularizer_value_and_grad(ARCH, params, cache, b)
    v, g, z = regularizer_value_and_grad(ARCH, params, cache, [a, b])
    assert v == pytest.approx(va + vb, rel=1e-15)
    assert za == {} and set(z) == set(zb) == {2}
    np.testing.assert_array_equal(z[2], zb[2])
    for x, y, w in zip(g.W, ga.W, gb.W):
        np.testing.assert_allclose(x, y + w, rtol=1e-15)
    assert all(not np.any(bb) for bb in g.b)  # biases are never regularized
    assert regularizer_value_and_grad(ARCH, params, None, None)[0] == 0.0


def test_eq4_hand_worked():
    """W2 = [[1, -2, 0.5, 0.25], [0.5, -0.25, -0.25, 0], ...]: row sums -0.25, 0, 1, -1."""
    params, _ = _setup(12, 1)
    W2 = np.array([[1, -2, 0.5, 0.25], [0.5, -0.25, -0.25, 0], [1, 0, 0, 0], [0, -0.5, -0.5, 0]])
    W = list(params.W)
    W[1] = W2
    p = Params(tuple(W), params.b)
    v, g = row_sum_penalty(p, {2: 0.5})
    assert v == 0.5 * (0.25 + 0 + 1 + 1)
    expect = 0.5 * np.array([-1.0, 0.0, 1.0, -1.0])[:, None] * np.ones((1, 4))
    np.testing.assert_array_equal(g.W[1], expect)  # the zero row gets subgradient 0
    assert not np.any(g.W[0]) and not np.any(g.W[2])


def test_eq7_hand_worked_single_neuron():
    """2-1-1 net, z^(1) = w.x + b; sum over a batch of 2 of lam sigma'(z)^p with math.exp."""
    arch = mlp((2, 1, 1))
    p = Params((np.array([[0.5, -1.5]]), np.array([[2.0]])), (np.array([0.25]), np.array([0.0])))
    X = np.array([[1.0, 2.0], [-0.5, 0.125]])
    z = [0.5 * x0 - 1.5 * x1 + 0.25 for x0, x1 in X]
    sp = [math.exp(-zz) / (1 + math.exp(-zz)) ** 2 for zz in z]
    for red, n in (("sum", 1), ("mean", 2)):
        for power in (1, 2):
            reg = SaturationPenalty({1: 0.7}, {2: 0.1}, red, power)
            expect = 0.7 * sum(s ** power for s in sp) / n + 0.1 * 4.0
            assert value_and_grad(arch, p, X, reg)[0] == pytest.approx(expect, rel=1e-13)


def test_float32_stays_float32():
    params, X = _setup(13, 3)
    p32 = params.astype(np.float32)
    for reg in SPECS.values():
        _, g = value_and_grad(ARCH, p32, X.astype(np.float32), reg)
        assert all(a.dtype == np.float32 for a in g.arrays())


def test_as_dict_roundtrip():
    for name, reg in SPECS.items():
        for r in (reg if isinstance(reg, tuple) else (reg,)):
            assert regularizer_from_dict(r.as_dict()) == r


def test_code_presets_coefficients():
    """The authors' MNIST set: lambda 6e-3 times (c0, c1, c2) = (0.01, 0.015, 3.0), summed."""
    r = regularizer_preset("addunc_sigm_mnist")
    assert dict(r.derivative_lambdas) == {2: pytest.approx(6e-5)}
    assert dict(r.weight_lambdas) == {2: pytest.approx(9e-5), -1: pytest.approx(1.8e-2)}
    assert (r.reduction, r.power) == ("sum", 1)
    f = regularizer_preset("addunc_sigm_fashion")
    assert dict(f.derivative_lambdas)[2] == pytest.approx(1.2e-3)
    assert dict(f.weight_lambdas)[-1] == pytest.approx(2.4e-2)
    assert regularizer_preset("addunc_sigm_sq").power == 2
    assert dict(regularizer_preset("custom_sum", 0.1).lambdas) == {2: 0.1, -1: 3.0}
    e7 = regularizer_preset("eq7", 0.2)
    assert (e7.reduction, e7.power, e7.weight_lambdas) == ("mean", 1, 0.2)


# --- properties (hypothesis is a test extra that tests/run.sh installs: these always run) ------
finite = st.floats(-3, 3, allow_nan=False, allow_infinity=False)


@given(W=arrays(np.float64, (4, 4), elements=finite), perm_seed=st.integers(0, 2**31))
def test_eq4_invariant_to_permuting_inputs(W, perm_seed):
    params, _ = _setup(14, 1)
    perm = np.random.default_rng(perm_seed).permutation(4)
    p1 = Params((params.W[0], W, params.W[2]), params.b)
    p2 = Params((params.W[0], W[:, perm], params.W[2]), params.b)
    v1, g1 = row_sum_penalty(p1, 0.3)
    v2, g2 = row_sum_penalty(p2, 0.3)
    assert v2 == pytest.approx(v1, rel=1e-12, abs=1e-12)
    # the gradient is constant along a row, so permuting columns leaves it unchanged
    s1, s2 = W.sum(axis=1), W[:, perm].sum(axis=1)
    clear = np.minimum(np.abs(s1), np.abs(s2)) > 1e-9  # rows whose sign is not rounding noise
    np.testing.assert_array_equal(g2.W[1][clear], g1.W[1][:, perm][clear])


@given(W=arrays(np.float64, (4, 2), elements=finite))
def test_eq4_zero_when_rows_sum_to_zero(W):
    # rows (a, -a, b, -b) sum to exactly 0 in any summation order
    Wz = np.stack([W[:, 0], -W[:, 0], W[:, 1], -W[:, 1]], axis=1)
    params, _ = _setup(15, 1)
    p = Params((params.W[0], Wz, params.W[2]), params.b)
    v, g = row_sum_penalty(p, {2: 1.0})
    assert v == 0.0
    assert not np.any(g.W[1])


@given(c=st.floats(-4, 4, allow_nan=False).filter(lambda c: abs(c) > 1e-3))
def test_eq7_weight_term_scales_quadratically(c):
    params, X = _setup(16, 2)
    reg = SaturationPenalty({}, {2: 0.3, 3: 0.7})
    scaled = Params(tuple(c * W for W in params.W), params.b)
    v1 = value(ARCH, params, X, reg)
    v2 = value(ARCH, scaled, X, reg)
    assert v2 == pytest.approx(c * c * v1, rel=1e-12)


# --- bad input -------------------------------------------------------------------------------
@pytest.mark.parametrize("make, word", [
    (lambda: regularizer_preset("eq5", 0.1), "name"),
    (lambda: regularizer_preset("eq4"), "lam"),
    (lambda: regularizer_preset("eq7", -1.0), "lam"),
    (lambda: RowSumPenalty({2: -0.1}), "lambdas"),
    (lambda: RowSumPenalty(float("nan")), "lambdas"),
    (lambda: RowSumPenalty({0: 0.1}), "lambdas"),
    (lambda: RowSumPenalty({2.5: 0.1}), "lambdas"),
    (lambda: SaturationPenalty({2: -1.0}), "derivative_lambdas"),
    (lambda: SaturationPenalty(0.1), "derivative_lambdas"),
    (lambda: SaturationPenalty({2: 1.0}, {3: -2.0}), "weight_lambdas"),
    (lambda: SaturationPenalty({2: 1.0}, reduction="median"), "reduction"),
    (lambda: SaturationPenalty({2: 1.0}, power=3), "power"),
])
def test_bad_spec_names_the_argument(make, word):
    with pytest.raises(ValueError, match=word):
        make()


@pytest.mark.parametrize("reg, word", [
    (RowSumPenalty({4: 0.1}), "lambdas"),
    (RowSumPenalty({-4: 0.1}), "lambdas"),
    (RowSumPenalty({3: 0.1, -1: 0.2}), "lambdas"),
    (SaturationPenalty({5: 0.1}), "derivative_lambdas"),
    (SaturationPenalty({2: 0.1}, {7: 1.0}), "weight_lambdas"),
])
def test_layer_out_of_range_names_the_argument(reg, word):
    params, X = _setup(17, 2)
    with pytest.raises(ValueError, match=word):
        value_and_grad(ARCH, params, X, reg)


def test_saturation_needs_cache():
    params, _ = _setup(18, 1)
    with pytest.raises(ValueError, match="cache"):
        regularizer_value_and_grad(ARCH, params, None, SPECS["eq7"])
    with pytest.raises(TypeError, match="regs"):
        regularizer_value_and_grad(ARCH, params, None, ["eq4"])


def test_derivative_penalty_rejects_1d():
    with pytest.raises(ValueError, match="z"):
        derivative_penalty("sigmoid", np.zeros(3), 1.0)


# --- the checker itself must be able to fail ----------------------------------------------------
def test_check_grad_catches_wrong_gradients():
    params, X = _setup(19, 3)
    reg = SPECS["eq7"]
    _, g = value_and_grad(ARCH, params, X, reg)
    f = lambda a: value(ARCH, Params.from_arrays(a), X, reg)  # noqa: E731
    bad = [a.copy() for a in g.arrays()]
    bad[2][1, 3] += 1e-4  # one wrong coordinate of W2
    with pytest.raises(AssertionError, match="mismatch"):
        check_grad(f, params.arrays(), 0, bad, n_directions=0)
    with pytest.raises(AssertionError, match="directional"):
        check_grad(f, params.arrays(), 0, [1.01 * a for a in g.arrays()])
    # a small error everywhere passes the per-coordinate bound but not the mean bound
    shifted = [a + 5e-8 for a in g.arrays()]
    with pytest.raises(AssertionError, match="mean"):
        check_grad(f, params.arrays(), 0, shifted, n_directions=0, atol=1e-7, rtol=0.0,
                   mean_atol=1e-8)
    with pytest.raises(ValueError, match="grads"):
        check_grad(f, params.arrays(), 0, g.arrays()[:-1])


@pytest.mark.parametrize("name", ["custom_sum", "addunc_sigm_fashion", "both"])
def test_loss_plus_regularizer_in_one_backward(name):
    """The trainer's wiring: backward(d_loss, dZ_extra) + direct weight grads = d(CE + R)."""
    from refnet.losses import cross_entropy
    from refnet.model import backward
    params, X = _setup(21, 4)
    y = np.array([0, 1, 1, 0])
    draws = _draws(NOISE, ARCH, 4, 22)
    reg = SPECS[name]

    def total(arrays):
        p = Params.from_arrays(arrays)
        out, cache = forward(ARCH, p, X, NOISE, draws=draws)
        return cross_entropy(out, y)[0] + regularizer_value(ARCH, p, cache, reg)

    out, cache = forward(ARCH, params, X, NOISE, draws=draws)
    _, d_out = cross_entropy(out, y)
    _, g_reg, dZ = regularizer_value_and_grad(ARCH, params, cache, reg)
    g = backward(ARCH, params, cache, d_out, dZ)
    grads = [a + b for a, b in zip(g.arrays(), g_reg.arrays())]
    check_grad(total, params.arrays(), 23, grads, name=name)


@pytest.mark.parametrize("regs", [
    [regularizer_preset("eq4", 0.01)],
    [regularizer_preset("addunc_sigm_mnist")],
    [regularizer_preset("eq4", 0.01), regularizer_preset("custom_sum", 0.02),
     regularizer_preset("eq7", 0.03)],
])
def test_trainer_layers_are_the_nonzero_part_of_the_full_gradient(regs):
    from refnet.regularizers.combine import regularizer_layers

    p = init_params(ARCH, rng=2)
    _, cache = forward(ARCH, p, np.random.default_rng(3).normal(size=(7, 3)))
    R, full, extra = regularizer_value_and_grad(ARCH, p, cache, regs)
    R2, dW, extra2 = regularizer_layers(ARCH, p, cache, regs)
    assert R2 == R
    assert sorted(extra2) == sorted(extra)
    for l in extra:
        np.testing.assert_array_equal(extra2[l], extra[l])
    for l, g in enumerate(full.W, start=1):
        if l in dW:
            np.testing.assert_array_equal(dW[l], g)
            assert np.any(g)
        else:
            assert not np.any(g)
    assert not any(np.any(b) for b in full.b)


@pytest.mark.parametrize("lambdas, L, message", [
    ({-1: 0.1, 2: 0.2}, 2, "layers -1 and 2 are the same layer 2 of a network with 2 weight"),
    ({3: 0.1, -1: 0.2}, 3, "layers -1 and 3 are the same layer 3"),
    ({4: 0.1}, 3, "layer 4 does not exist in a network with 3 weight layers"),
])
def test_layer_lambdas_that_collide_or_do_not_exist_are_named(lambdas, L, message):
    from refnet.regularizers.lambdas import resolve_layer_lambdas

    with pytest.raises(ValueError, match=message):
        resolve_layer_lambdas(lambdas, L)
    assert resolve_layer_lambdas({-1: 0.1, 1: 0.2}, L) == {L: 0.1, 1: 0.2}
