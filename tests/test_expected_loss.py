"""The expected-loss objective (refnet/regularizers/expected_loss.py): gradient, training mode, spec.

The float64 autograd cross-check and the Monte-Carlo check of the expansion are in
test_expected_loss_torch.py and test_expected_loss_montecarlo.py.
"""
import json

import numpy as np
import pytest

from refnet.errors import ConfigError
from refnet.losses import cross_entropy
from refnet.model import Params, backward, forward, init_params, mlp
from refnet.noise import NOISE_TYPES, NoiseConfig, NoiseSpec, noise_config
from refnet.regularizers import (ExpectedLoss, expected_loss, regularizer_from_dict,
                                 regularizer_value, regularizer_value_and_grad,
                                 saturation_penalty, value_and_grad)
from refnet.testing import check_grad
from refnet.train import TrainConfig, train

ARCH = mlp((4, 5, 6, 3))
# noisy layers: Duque (both hidden), one hidden, the input, the logits, Semenova (all)
PLACEMENTS = {"duque": (1, 2), "first_hidden": (1,), "input": (0,), "logits": (3,),
              "all": (0, 1, 2, 3)}


def _setup(seed, n_batch, arch=ARCH, std=0.8):
    """Weights large enough that the sigmoids are off their linear part, random biases."""
    rng = np.random.default_rng(seed)
    p = init_params(arch, "normal", rng=seed, std=std)
    p = Params(p.W, tuple(rng.normal(size=b.shape) for b in p.b))
    X = rng.normal(size=(n_batch, arch.sizes[0]))
    y = rng.integers(0, arch.sizes[-1], n_batch)
    return p, X, y


def _spec(noise_type, layers, variance=0.3):
    return ExpectedLoss(NoiseConfig(NoiseSpec.single(noise_type, variance), layers))


def _check(arch, params, X, y, spec, name):
    J, g = expected_loss(arch, params, X, y, spec)
    check_grad(lambda a: expected_loss(arch, Params.from_arrays(a), X, y, spec)[0],
               params.arrays(), 3, g.arrays(), name=name)
    return J


@pytest.mark.parametrize("placement", list(PLACEMENTS))
@pytest.mark.parametrize("noise_type", NOISE_TYPES)
def test_gradient_matches_finite_differences(noise_type, placement):
    params, X, y = _setup(1, 5)
    _check(ARCH, params, X, y, _spec(noise_type, PLACEMENTS[placement]), f"{noise_type}/{placement}")


def test_gradient_all_four_types_at_once_single_sample():
    params, X, y = _setup(2, 1)
    spec = ExpectedLoss(NoiseConfig(NoiseSpec(0.1, 0.05, 0.2, 0.03), (0, 1, 2, 3)))
    _check(ARCH, params, X, y, spec, "all types")


@pytest.mark.parametrize("act", ["cubic", "shifted_sigmoid(alpha=4)", "sigmoid"])
@pytest.mark.parametrize("sizes", [(3, 4, 2), (3, 4, 5, 4, 2)], ids=["1 hidden", "3 hidden"])
def test_gradient_other_depths_and_activations(sizes, act):
    arch = mlp(sizes, act)
    params, X, y = _setup(3, 4, arch, std=0.5)
    # the cubic 3z^2 - 2z^3 is meant for signals in [0, 1] (Semenova 2022, Methods VII A):
    # inputs there and small biases keep it from blowing up through the layers
    X = np.abs(np.tanh(X))
    params = Params(params.W, tuple(0.1 * b for b in params.b))
    spec = ExpectedLoss(NoiseConfig(NoiseSpec(0.2, 0.1, 0.1, 0.05), tuple(range(1, len(sizes) - 1))))
    _check(arch, params, X, y, spec, f"{sizes} {act}")


def test_gradient_sigmoid_output_activation():
    arch = mlp((3, 4, 3), "sigmoid", output="sigmoid")  # f_L'' enters the Jacobians
    params, X, y = _setup(4, 3, arch)
    _check(arch, params, X, y, _spec("mul_unc", (1, 2)), "sigmoid output")


def test_gradient_in_float64_is_not_trivially_zero():
    """The penalty's own gradient is a sizeable part of the objective's (no vanishing term)."""
    params, X, y = _setup(5, 6)
    spec = _spec("add_unc", (1, 2), 0.5)
    _, g_total = expected_loss(ARCH, params, X, y, spec)
    R, g_pen = value_and_grad(ARCH, params, X, spec)
    assert R > 1e-3
    for W_pen, W_tot in zip(g_pen.W, g_total.W):
        assert np.linalg.norm(W_pen) > 1e-3 * np.linalg.norm(W_tot)


def test_value_equals_sensitivity_covariance_path():
    """The trainer's value and the one built on the sensitivity report's covariance agree."""
    params, X, y = _setup(6, 7)
    spec = ExpectedLoss(NoiseConfig(NoiseSpec(0.1, 0.2, 0.3, 0.4), (0, 1, 2, 3)))
    _, cache = forward(ARCH, params, X)
    R, _, _ = regularizer_value_and_grad(ARCH, params, cache, spec)
    assert R == pytest.approx(regularizer_value(ARCH, params, cache, spec), rel=1e-12)


def test_objective_is_cross_entropy_plus_penalty():
    params, X, y = _setup(7, 4)
    spec = _spec("add_cor", (1, 2))
    out, cache = forward(ARCH, params, X)
    ce, _ = cross_entropy(out, y)
    R, _, _ = regularizer_value_and_grad(ARCH, params, cache, spec)
    assert expected_loss(ARCH, params, X, y, spec)[0] == pytest.approx(ce + R, rel=1e-14)


def test_penalty_scales_linearly_with_variance():
    """Sigma is first order in the noise: tr(H Sigma) is exactly linear in the variance."""
    params, X, y = _setup(8, 4)
    _, cache = forward(ARCH, params, X)
    r1 = regularizer_value_and_grad(ARCH, params, cache, _spec("mul_cor", (1, 2), 0.1))[0]
    r3 = regularizer_value_and_grad(ARCH, params, cache, _spec("mul_cor", (1, 2), 0.3))[0]
    assert r3 == pytest.approx(3 * r1, rel=1e-12)


def test_zero_noise_gives_the_plain_cross_entropy_gradient():
    params, X, y = _setup(9, 4)
    spec = ExpectedLoss(noise_config("duque", NoiseSpec(), ARCH.n_layers))
    J, g = expected_loss(ARCH, params, X, y, spec)
    out, cache = forward(ARCH, params, X)
    ce, d_out = cross_entropy(out, y)
    ref = backward(ARCH, params, cache, d_out)
    assert J == ce
    for a, b in zip(g.arrays(), ref.arrays()):
        np.testing.assert_array_equal(a, b)


def test_combines_with_eq7_in_one_pass():
    params, X, y = _setup(10, 5)
    _, cache = forward(ARCH, params, X)
    el = _spec("add_unc", (1, 2))
    from refnet.regularizers import regularizer_preset
    eq7 = regularizer_preset("eq7", 0.2)
    R, g, dz = regularizer_value_and_grad(ARCH, params, cache, [el, eq7])
    R1, g1, dz1 = regularizer_value_and_grad(ARCH, params, cache, el)
    R2, g2, dz2 = saturation_penalty(ARCH, params, cache, eq7)
    assert R == pytest.approx(R1 + R2, rel=1e-14)
    for l in dz:
        np.testing.assert_allclose(dz[l], dz1.get(l, 0) + dz2.get(l, 0), rtol=1e-14)


def test_float32_stays_float32():
    params, X, y = _setup(14, 4)
    p32 = params.astype(np.float32)
    J, g = expected_loss(ARCH, p32, X.astype(np.float32), y, _spec("mul_unc", (1, 2)))
    assert all(a.dtype == np.float32 for a in g.arrays())
    J64 = expected_loss(ARCH, params, X, y, _spec("mul_unc", (1, 2)))[0]
    assert J == pytest.approx(J64, rel=1e-5)


def test_as_dict_roundtrips_through_json_and_train_config():
    spec = ExpectedLoss(NoiseConfig(NoiseSpec(0.1, 0.0, 0.25, 0.0), (1, -2)))
    d = json.loads(json.dumps(spec.as_dict()))
    assert d["kind"] == "expected_loss"
    assert regularizer_from_dict(d) == spec
    cfg = TrainConfig(epochs=1, regularizers=(spec,))
    assert TrainConfig.from_dict(json.loads(json.dumps(cfg.as_dict()))) == cfg


def test_training_with_the_objective_lowers_it():
    arch = mlp((4, 8, 8, 3))
    params, X, y = _setup(11, 200, arch, std=0.5)
    y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0.5)
    spec = ExpectedLoss(noise_config("duque", NoiseSpec(add_unc=0.5), arch.n_layers))
    cfg = TrainConfig(epochs=15, batch_size=32, optimizer="adam", lr=0.01, regularizers=(spec,))
    res = train(arch, params, X, y, cfg)
    before = expected_loss(arch, params, X, y, spec)[0]
    after = expected_loss(arch, res.params, X, y, spec)[0]
    assert after < 0.7 * before
    assert res.history[-1]["train_penalty"] > 0


@pytest.mark.parametrize("make, word", [
    (lambda: ExpectedLoss(NoiseConfig(NoiseSpec(add_unc=0.1), (1,), "pre")), "position"),
    (lambda: ExpectedLoss({"add_unc": 0.1}), "NoiseConfig"),
    (lambda: TrainConfig(loss="mse", regularizers=(_spec("add_unc", (1,)),)), "cross-entropy"),
    (lambda: TrainConfig(noise=noise_config("duque", NoiseSpec(add_unc=0.1)),
                         regularizers=(_spec("add_unc", (1,)),)), "without noise"),
])
def test_bad_settings_are_config_errors(make, word):
    with pytest.raises(ConfigError, match=word):
        make()


def test_noisy_cache_is_refused():
    params, X, _ = _setup(12, 3)
    noise = noise_config("duque", NoiseSpec(add_unc=0.1), ARCH.n_layers)
    _, cache = forward(ARCH, params, X, noise, rng=0)
    with pytest.raises(ConfigError, match="clean forward"):
        regularizer_value_and_grad(ARCH, params, cache, _spec("add_unc", (1, 2)))


def test_layer_out_of_range_is_named():
    params, X, y = _setup(13, 2)
    with pytest.raises(ValueError, match="layers"):
        expected_loss(ARCH, params, X, y, _spec("add_unc", (5,)))


@pytest.mark.parametrize("v", [1e7, 1e300])
def test_a_train_config_with_any_finite_noise_variance_reads_back(v):
    """`refnet train --noise-variance 1e7` took the variance; its config's dict was refused
    on reading (variances of at most 1e6 there)."""
    cfg = TrainConfig(epochs=1, noise=NoiseConfig(NoiseSpec(add_unc=v), (1, 2)))
    assert TrainConfig.from_dict(json.loads(json.dumps(cfg.as_dict()))) == cfg
    d = json.loads(json.dumps(cfg.as_dict()))
    d["noise"]["spec"]["add_unc"] = 10 ** 400    # past every float: still refused
    with pytest.raises(ConfigError, match="add_unc"):
        TrainConfig.from_dict(d)
