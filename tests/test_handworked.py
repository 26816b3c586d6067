"""A 2-2-1 sigmoid network worked by hand at full precision (constants: tests/make_handworked.py,
mpmath at 40 digits, scalar loops independent of refnet). Asserted at rtol 1e-12.

W1 = [[0.1, -0.2], [0.3, 0.4]], b1 = [0.05, -0.1], W2 = [[0.7, -0.5]], b2 = [0.2];
hidden sigmoid, identity output; x = [1, 2]; MSE against t = 0.5.
"""
import numpy as np
import pytest

import refnet as rn
from refnet.noise import LayerNoise

CLEAN = {
    'z1': [-0.25, 1.0],
    'a1': [0.437823499114201895972676362097, 0.731058578630004879251159241822],
    'z2': 0.140947160064938887555293832557,
    'L': 0.128918941865432615997879243889,
    'dW1': [[-0.123725197976444383140317389907, -0.247450395952888766280634779814],
            [0.0705940729954767047372260292097, 0.141188145990953409474452058419]],
    'db1': [-0.123725197976444383140317389907, 0.0705940729954767047372260292097],
    'dW2': [-0.314403541494519808208663128775, -0.524977317631984860549997954908],
    'db2': -0.718105679870122224889412334886,
}
# hidden layer 1 noisy: variances add_unc 0.04, add_cor 0.01, mul_unc 0.09, mul_cor 0.0025,
# draws e_au = [0.3, -1.1], e_ac = 0.7, e_mu = [-0.4, 1.5], e_mc = -0.8
NOISY = {
    'a1n': [0.4998732920516777617177169907, 0.867633541452966791917613664616],
    'z2': 0.116094533709691037243595061182,
    'L': 0.1473834070475795513462278589,
    'dW1': [[-0.111757838205776929227271738654, -0.223515676411553858454543477307],
            [0.105068711105759781047034920071, 0.210137422211519562094069840141]],
    'db1': [-0.111757838205776929227271738654, 0.105068711105759781047034920071],
    'dW2': [-0.383808178542342288238458300049, -0.666178518601226653611067129088],
    'db2': -0.767810932580617925512809877637,
}
RTOL = 1e-12


@pytest.fixture
def net():
    arch = rn.Architecture((2, 2, 1), ("sigmoid", "identity"))
    params = rn.Params((np.array([[0.1, -0.2], [0.3, 0.4]]), np.array([[0.7, -0.5]])),
                       (np.array([0.05, -0.1]), np.array([0.2])))
    return arch, params, np.array([[1.0, 2.0]]), np.array([[0.5]])


def _check(arch, params, cache, out, target, want):
    value, d_out = rn.mse(out, target)
    g = rn.backward(arch, params, cache, d_out)
    np.testing.assert_allclose(out[0, 0], want['z2'], rtol=RTOL)
    np.testing.assert_allclose(value, want['L'], rtol=RTOL)
    np.testing.assert_allclose(g.W[0], want['dW1'], rtol=RTOL)
    np.testing.assert_allclose(g.b[0], want['db1'], rtol=RTOL)
    np.testing.assert_allclose(g.W[1][0], want['dW2'], rtol=RTOL)
    np.testing.assert_allclose(g.b[1][0], want['db2'], rtol=RTOL)


def test_handworked_clean_forward_backward(net):
    arch, params, x, t = net
    out, cache = rn.forward(arch, params, x)
    np.testing.assert_allclose(cache.Z[0][0], CLEAN['z1'], rtol=RTOL)
    np.testing.assert_allclose(cache.A[1][0], CLEAN['a1'], rtol=RTOL)
    _check(arch, params, cache, out, t, CLEAN)


def test_handworked_noisy_forward_backward_with_supplied_draws(net):
    arch, params, x, t = net
    spec = rn.NoiseSpec(add_unc=0.04, add_cor=0.01, mul_unc=0.09, mul_cor=0.0025)
    cfg = rn.noise_config("duque", spec, n_weight_layers=2)
    d1 = LayerNoise(add_unc=np.array([[0.3, -1.1]]), add_cor=np.array([[0.7]]),
                    mul_unc=np.array([[-0.4, 1.5]]), mul_cor=np.array([[-0.8]]))
    out, cache = rn.forward(arch, params, x, cfg, draws=[None, d1, None])
    np.testing.assert_allclose(cache.A[1][0], NOISY['a1n'], rtol=RTOL)
    _check(arch, params, cache, out, t, NOISY)


# Duque 2024 Eq. 4 on layer 2 with lambda 0.01, and Eq. 7 generalised to the hidden layer:
# 0.02 * sum_i sigma'(z1_i) + 0.03 * ||W2||^2, clean forward, batch of one (mean = sum).
REGS = {
    'r4': 0.002,
    'r7': 0.0310549203195816040024535335229,
    'r7_dW1': [[0.000612150240534375499364137670531, 0.00122430048106875099872827534106],
               [-0.00181715495345896818884959228396, -0.00363430990691793637769918456792]],
    'r7_db1': [0.000612150240534375499364137670531, -0.00181715495345896818884959228396],
    'r7_dW2': [0.042, -0.03],
}


def test_handworked_regularizers(net):
    from refnet.regularizers import RowSumPenalty, SaturationPenalty, value_and_grad

    arch, params, x, _ = net
    v4, g4 = value_and_grad(arch, params, x, RowSumPenalty({2: 0.01}))
    np.testing.assert_allclose(v4, REGS['r4'], rtol=RTOL)
    np.testing.assert_allclose(g4.W[1][0], [0.01, 0.01], rtol=RTOL)  # lambda * sign(0.2)
    assert not np.any(g4.W[0]) and not any(np.any(b) for b in g4.b)
    v7, g7 = value_and_grad(arch, params, x, SaturationPenalty({1: 0.02}, {2: 0.03}))
    np.testing.assert_allclose(v7, REGS['r7'], rtol=RTOL)
    np.testing.assert_allclose(g7.W[0], REGS['r7_dW1'], rtol=RTOL)
    np.testing.assert_allclose(g7.b[0], REGS['r7_db1'], rtol=RTOL)
    np.testing.assert_allclose(g7.W[1][0], REGS['r7_dW2'], rtol=RTOL)
    assert not np.any(g7.b[1])
