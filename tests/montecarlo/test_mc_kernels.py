"""Numba kernels against their NumPy twins and refnet's reference functions, on the same draws.

Sizes are tiny so the file also runs with ``NUMBA_DISABLE_JIT=1`` (kernel bodies as Python).
"""
import itertools

import numba
import numpy as np
import pytest
from scipy.special import expit

from refnet import _kernels as K
from refnet.activations import get_activation
from refnet.noise import NOISE_TYPES, NoiseSpec, apply_noise, draw_layer_noise

ACTS = ["identity", "sigmoid", "shifted_sigmoid(alpha=4)", "cubic"]


def _desc(name, pos):
    act = get_activation(name)
    return (K.ACT_CODES[act.name], float(act.alpha or 0.0), pos)


def _args(spec, n, m, rng, dtype=np.float64):
    d = draw_layer_noise(spec, n, m, rng, dtype)
    e = np.empty((0, 0), dtype=dtype)
    sd = np.sqrt(np.array([getattr(spec, t) for t in NOISE_TYPES])).astype(dtype)
    return d, sd, [e if x is None else x for x in (d.add_unc, d.add_cor, d.mul_unc, d.mul_cor)]


def test_sigmoid_kernel_matches_expit():
    z = np.concatenate([np.linspace(-40, 40, 801), [-1e4, -745.0, -700.0, 0.0, 700.0, 1e4]])
    got = np.array([K.sigmoid(float(v)) for v in z])
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, expit(z), rtol=1e-15, atol=1e-300)  # subnormals at -745


@pytest.mark.parametrize("name", ACTS)
def test_activate_matches_reference_activation(name):
    code, alpha, _ = _desc(name, 0)
    z = np.linspace(-3, 3, 61)
    got = np.array([K.activate(float(v), code, alpha) for v in z])
    np.testing.assert_allclose(got, get_activation(name).f(z), rtol=1e-14, atol=1e-15)


SPECS = [NoiseSpec(0.1, 0, 0, 0), NoiseSpec(0, 0.2, 0, 0), NoiseSpec(0, 0, 0.05, 0),
         NoiseSpec(0, 0, 0, 0.03), NoiseSpec(0.1, 0.2, 0.05, 0.03), NoiseSpec(0, 0.2, 0.05, 0)]


@pytest.mark.parametrize("spec", SPECS,
                         ids=lambda s: "-".join(f"{v:g}" for v in s.as_dict().values()))
@pytest.mark.parametrize("pos", [K.POS_CLEAN, K.POS_PRE, K.POS_POST])
@pytest.mark.parametrize("name", ACTS)
def test_noisy_activation_kernel_equals_twin_and_reference(spec, pos, name):
    rng = np.random.default_rng(7)
    Z = rng.normal(size=(6, 5))
    d, sd, args = _args(spec, 6, 5, rng)
    f = get_activation(name).f
    ref = {K.POS_CLEAN: f(Z), K.POS_PRE: f(apply_noise(Z, spec, d)),
           K.POS_POST: apply_noise(f(Z), spec, d)}[pos]
    outs = []
    for kern in (K.noisy_activation, K.noisy_activation_serial, K.noisy_activation_numpy):
        out = np.empty_like(Z)
        kern(Z, _desc(name, pos), sd, *args, out)
        np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-12)
        outs.append(out)
    assert np.array_equal(outs[0], outs[1])   # parallel and serial compilations: same bits


def test_noisy_activation_float32_close_to_float64():
    rng = np.random.default_rng(8)
    spec = NoiseSpec(0.1, 0.2, 0.05, 0.03)
    Z = rng.normal(size=(6, 5))
    d, sd, args = _args(spec, 6, 5, rng)
    out64, out32 = np.empty_like(Z), np.empty(Z.shape, np.float32)
    desc = _desc("sigmoid", K.POS_POST)
    K.noisy_activation(Z, desc, sd, *args, out64)
    K.noisy_activation(Z.astype(np.float32), desc, sd.astype(np.float32),
                       *[a.astype(np.float32) for a in args], out32)
    np.testing.assert_allclose(out32, out64, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("spec", [NoiseSpec(0, 0.2, 0, 0), NoiseSpec(0, 0, 0, 0.03),
                                  NoiseSpec(0, 0.2, 0, 0.03), NoiseSpec()])
def test_row_sum_affine_equals_twin_and_direct_product(spec):
    rng = np.random.default_rng(9)
    A = rng.uniform(size=(4, 6))           # clean layer outputs of 4 inputs
    W, b = rng.normal(size=(3, 6)), rng.normal(size=3)
    idx = np.array([0, 0, 1, 3, 2, 3, 3])  # rows: repeats of those inputs
    d, sd, args = _args(spec, len(idx), 6, rng)
    ac, mc = args[1], args[3]
    U = A @ W.T
    direct = (apply_noise(A[idx], spec, d) if not spec.is_zero else A[idx]) @ W.T + b
    outs = []
    for kern in (K.row_sum_affine, K.row_sum_affine_serial, K.row_sum_affine_numpy):
        out = np.empty((7, 3))
        kern(U, idx, W.sum(axis=1), b, sd, ac, mc, out)
        np.testing.assert_allclose(out, direct, rtol=1e-12, atol=1e-12)
        outs.append(out)
    assert np.array_equal(outs[0], outs[1])


def test_kernels_bitwise_identical_for_1_and_2_threads():
    rng = np.random.default_rng(10)
    spec = NoiseSpec(0.1, 0.2, 0.05, 0.03)
    Z = rng.normal(size=(64, 9))
    _, sd, args = _args(spec, 64, 9, rng)
    outs = []
    before = numba.get_num_threads()
    try:
        for n in sorted({1, min(2, numba.config.NUMBA_NUM_THREADS)}):
            numba.set_num_threads(n)
            out = np.empty_like(Z)
            K.noisy_activation(Z, _desc("sigmoid", K.POS_POST), sd, *args, out)
            outs.append(out)
    finally:
        numba.set_num_threads(before)
    assert all(np.array_equal(outs[0], o) for o in outs[1:])


def test_noise_draw_moments_correlated_shared_and_independent_across_samples():
    """Noisy output of ``x`` = 0.5 everywhere under all four sources, 20000 samples x 4 neurons.

    Checks mean, per-neuron variance, between-neuron covariance (correlated sources only) and
    covariance between consecutive samples (zero) against the contract's values, each with
    ``|estimate - truth| <= 5 standard errors``: per check a false-positive rate of about 6e-7
    for a normal estimate; the seed is fixed, so the outcome is deterministic.
    """
    n, m, x = 20000, 4, 0.5
    spec = NoiseSpec(0.04, 0.09, 0.01, 0.02)
    rng = np.random.default_rng(11)
    _, sd, args = _args(spec, n, m, rng)
    Y = np.empty((n, m))
    K.noisy_activation(np.full((n, m), x), _desc("identity", K.POS_POST), sd, *args, Y)
    s = spec
    var_mul = s.mul_unc + s.mul_cor + s.mul_unc * s.mul_cor
    var = x * x * var_mul + s.add_unc + s.add_cor
    cov_nb = x * x * s.mul_cor + s.add_cor   # neurons i != j of one sample
    D = Y - x
    checks = [
        (D.mean(axis=0), 0.0, np.sqrt(var / n)),
        ((D ** 2).mean(axis=0), var, (D ** 2).std(axis=0) / np.sqrt(n)),
    ]
    prods = np.stack([D[:, i] * D[:, j] for i, j in itertools.combinations(range(m), 2)], axis=1)
    checks.append((prods.mean(axis=0), cov_nb, prods.std(axis=0) / np.sqrt(n)))
    lag = D[1:] * D[:-1]                     # the same neuron in consecutive samples
    checks.append((lag.mean(axis=0), 0.0, lag.std(axis=0) / np.sqrt(n - 1)))
    for est, truth, se in checks:
        assert np.all(np.abs(est - truth) <= 5 * se), (est, truth, se)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fill_normal_kernel_reproduces_numpy_stream_and_state(dtype):
    a, b = np.empty(257, dtype=dtype), np.empty(257, dtype=dtype)
    g1, g2 = np.random.default_rng(21), np.random.default_rng(21)
    K.fill_normal(g1, a)
    K.fill_normal_numpy(g2, b)
    assert np.array_equal(a, b)
    assert np.array_equal(a, np.random.default_rng(21).standard_normal(257).astype(dtype))
    assert g1.standard_normal() == g2.standard_normal()   # the generators advanced alike
