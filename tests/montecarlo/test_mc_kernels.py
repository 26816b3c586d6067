"""The Monte-Carlo kernels pinned to refnet's one definition of each equation, on the same draws:
the noise row kernel to :func:`refnet.noise.apply_noise` (Eq. 3), the kernel activations to
:mod:`refnet.activations`, the NumPy twins to the compiled kernels.

Sizes are tiny so the file also runs with ``NUMBA_DISABLE_JIT=1`` (kernel bodies as Python; CI
does so, see ``.ci/run``).
"""
import itertools

import numpy as np
import pytest

from refnet.activations import get_activation
from refnet.montecarlo import kernels as K
from refnet.noise import NOISE_TYPES, NoiseSpec, apply_noise, draw_layer_noise

ACTS = ["identity", "sigmoid", "shifted_sigmoid(alpha=4)", "cubic"]
NOISY_ACTIVATION = {"parallel": K.noisy_activation, "serial": K.noisy_activation_serial,
                    "numpy": K.noisy_activation_numpy}
VARIANCES = dict(add_unc=0.1, add_cor=0.2, mul_unc=0.05, mul_cor=0.03)
#: every combination of the four sources, on or off (16 specs)
COMBOS = [NoiseSpec(**{t: VARIANCES[t] * on for t, on in zip(NOISE_TYPES, mask)})
          for mask in itertools.product((0, 1), repeat=4)]


def _spec_id(spec):
    return "+".join(t for t in NOISE_TYPES if getattr(spec, t)) or "clean"


def _desc(name, pos):
    act = get_activation(name)
    return (K.ACT_CODES[act.name], float(act.alpha or 0.0), pos)


def _args(spec, n, m, rng, dtype=np.float64):
    """Draws as LayerNoise, the four standard deviations, and the kernels' draw arguments."""
    d = draw_layer_noise(spec, n, m, rng, dtype)
    e = np.empty((0, 0), dtype=dtype)
    sd = np.sqrt(np.array([getattr(spec, t) for t in NOISE_TYPES])).astype(dtype)
    return d, sd, [e if x is None else x for x in (d.add_unc, d.add_cor, d.mul_unc, d.mul_cor)]


def test_kernel_activations_equal_refnet_activations():
    """Every activation code against :mod:`refnet.activations`, including sigmoid's tails.

    Same formulas except the sigmoid, which the kernel evaluates branch-free as
    ``e / (1 + e)`` or ``1 / (1 + e)`` with ``e = exp(-|z|)`` and refnet as
    ``1 / (1 + exp(-z))``: each is one exp, one addition and one division, within 2 ulp of the
    true value, so they differ by at most 4 ulp (``spacing(0)`` covers the underflow at
    ``z = -745``, where one gives 0 and the other the smallest subnormal).
    """
    z = np.concatenate([np.linspace(-40, 40, 801),
                        [-1e4, -745.0, -700.0, -1e-300, 0.0, 1e-300, 700.0, 1e4]])
    for name in ACTS:
        code, alpha, _ = _desc(name, K.POS_CLEAN)
        got = np.array([K.activate(float(v), code, alpha) for v in z])
        ref = get_activation(name).f(z)
        assert np.all(np.isfinite(got))
        ulps = 4 if name == "sigmoid" else 0
        assert np.all(np.abs(got - ref) <= ulps * np.spacing(np.abs(ref))), name


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("pos", [K.POS_PRE, K.POS_POST])
@pytest.mark.parametrize("spec", COMBOS, ids=_spec_id)
def test_noise_row_kernel_mirrors_apply_noise(spec, pos, dtype):
    """The kernels' Eq. 3 against :func:`refnet.noise.apply_noise` (identity activation, so
    ``out`` is the noise operator alone), noise before or after the activation.

    float64: bitwise. float32: the kernel forms the multiplicative factor
    ``(1 + s_MU xi_MU)(1 + s_MC xi_MC)`` in float64 (numba types the literal 1.0 as float64)
    and rounds once, where NumPy rounds each of its four float32 operations: at most
    ``(4 + 1) / 2`` ulp of ``|x f|``; each of the two additions then rounds by at most 1/2 ulp
    in each of them. The bound is 4.5 ulp of the sum of the terms' magnitudes ``M``. The NumPy
    twin is apply_noise itself (bitwise in both dtypes).
    """
    rng = np.random.default_rng(7)
    Z = rng.normal(size=(6, 5)).astype(dtype)
    d, sd, args = _args(spec, 6, 5, rng, dtype)
    ref = apply_noise(Z, spec, d)
    s = sd.astype(np.float64)
    M = np.abs(Z.astype(np.float64))
    for k, t in ((2, "mul_unc"), (3, "mul_cor")):
        M = M * (1 + np.abs(s[k] * getattr(d, t))) if s[k] else M
    for k, t in ((0, "add_unc"), (1, "add_cor")):
        M = M + np.abs(s[k] * getattr(d, t)) if s[k] else M
    outs = {}
    for which, kern in NOISY_ACTIVATION.items():
        out = np.empty_like(Z)
        kern(Z, _desc("identity", pos), sd, *args, out)
        outs[which] = out
        if dtype == np.float64 or which == "numpy":
            np.testing.assert_array_equal(out, ref, err_msg=which)
        else:
            bound = 4.5 * np.spacing(M.astype(np.float32))
            assert np.all(np.abs(out.astype(np.float64) - ref) <= bound), which
    np.testing.assert_array_equal(outs["parallel"], outs["serial"])


@pytest.mark.parametrize("pos", [K.POS_CLEAN, K.POS_PRE, K.POS_POST])
@pytest.mark.parametrize("name", ACTS)
def test_noisy_activation_kernels_equal_their_twin(name, pos):
    """Activation and noise together, all four sources: compiled kernels vs the NumPy twin
    (refnet's activation and apply_noise). They differ only through the sigmoid's few ulp
    (above), which the noise's factors of order 1 carry over: rtol 1e-14."""
    rng = np.random.default_rng(7)
    Z = rng.normal(size=(6, 5))
    _, sd, args = _args(COMBOS[-1], 6, 5, rng)
    outs = {}
    for which, kern in NOISY_ACTIVATION.items():
        outs[which] = np.empty_like(Z)
        kern(Z, _desc(name, pos), sd, *args, outs[which])
    np.testing.assert_array_equal(outs["parallel"], outs["serial"])
    np.testing.assert_allclose(outs["serial"], outs["numpy"], rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("spec", [NoiseSpec(0, 0.2, 0, 0), NoiseSpec(0, 0, 0, 0.03),
                                  NoiseSpec(0, 0.2, 0, 0.03), NoiseSpec()], ids=_spec_id)
def test_row_sum_affine_equals_twin_and_direct_product(spec):
    rng = np.random.default_rng(9)
    A = rng.uniform(size=(4, 6))           # clean layer outputs of 4 inputs
    W, b = rng.normal(size=(3, 6)), rng.normal(size=3)
    idx = np.array([0, 0, 1, 3, 2, 3, 3])  # rows: repeats of those inputs
    d, sd, args = _args(spec, len(idx), 6, rng)
    ac, mc = args[1], args[3]
    U = A @ W.T
    direct = apply_noise(A[idx], spec, d) @ W.T + b
    outs = []
    for kern in (K.row_sum_affine, K.row_sum_affine_serial, K.row_sum_affine_numpy):
        out = np.empty((7, 3))
        kern(U, idx, W.sum(axis=1), b, sd, ac, mc, out)
        np.testing.assert_allclose(out, direct, rtol=1e-12, atol=1e-12)
        outs.append(out)
    assert np.array_equal(outs[0], outs[1])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("pos", [K.POS_CLEAN, K.POS_PRE, K.POS_POST])
@pytest.mark.parametrize("spec_in", [NoiseSpec(0, 0.2, 0, 0), NoiseSpec(0, 0, 0, 0.03),
                                     NoiseSpec(0, 0.2, 0, 0.03)], ids=_spec_id)
def test_row_sum_activation_is_the_two_kernels_in_turn(spec_in, pos, dtype):
    """The fused kernel (the next pre-activation from the row sums, then its noisy
    activation, row by row in place) gives the bits of row_sum_affine followed by
    noisy_activation, in each build, for every noise of the next layer; its NumPy twin those
    of the two twins."""
    rng = np.random.default_rng(11)
    A = rng.uniform(size=(4, 6)).astype(dtype)
    W, b = rng.normal(size=(5, 6)).astype(dtype), rng.normal(size=5).astype(dtype)
    idx = np.array([0, 0, 1, 3, 2, 3, 3])
    _, sd_in, args_in = _args(spec_in, len(idx), 6, rng, dtype)
    U, r = A @ W.T, W.sum(axis=1)
    builds = {"parallel": (K.row_sum_activation, K.row_sum_affine, K.noisy_activation),
              "serial": (K.row_sum_activation_serial, K.row_sum_affine_serial,
                         K.noisy_activation_serial),
              "numpy": (K.row_sum_activation_numpy, K.row_sum_affine_numpy,
                        K.noisy_activation_numpy)}
    for spec in (COMBOS[-1], COMBOS[5], COMBOS[0]):
        _, sd, args = _args(spec, len(idx), 5, rng, dtype)
        for name in ("sigmoid", "cubic"):
            layer = _desc(name, pos)
            for which, (fused, affine, activation) in builds.items():
                z, want, got = (np.empty((len(idx), 5), dtype) for _ in range(3))
                affine(U, idx, r, b, sd_in, args_in[1], args_in[3], z)
                activation(z, layer, sd, *args, want)
                fused(U, idx, r, b, sd_in, args_in[1], args_in[3], layer, sd, *args, got)
                np.testing.assert_array_equal(got, want, err_msg=f"{which} {name}")
                assert not np.array_equal(got, z)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fill_normal_kernel_reproduces_numpy_stream_and_state(dtype):
    a, b = np.empty(257, dtype=dtype), np.empty(257, dtype=dtype)
    g1, g2 = np.random.default_rng(21), np.random.default_rng(21)
    K.fill_normal(g1, a)
    K.fill_normal_numpy(g2, b)
    assert np.array_equal(a, b)
    assert np.array_equal(a, np.random.default_rng(21).standard_normal(257).astype(dtype))
    assert g1.standard_normal() == g2.standard_normal()   # the generators advanced alike


def test_fill_normal_f32_kernel_is_numpys_float32_stream():
    """Training's float32 draws (:func:`refnet._random_kernels.fill_normal_f32`, NumPy's
    float32 ziggurat rewritten for numba) against the twin, which is NumPy's own call; 20,000
    values take every branch but the tail here (about 300 rejection tests), the tail is in
    ``tests/test_noise.py``'s five million. Small enough to run with the JIT off."""
    from refnet._random_kernels import fill_normal_f32, fill_normal_f32_numpy

    if fill_normal_f32 is None:
        pytest.skip("no numba (or its bit-generator calls moved): float32 draws are NumPy's")
    a, b = np.empty(20000, dtype=np.float32), np.empty(20000, dtype=np.float32)
    g1, g2 = np.random.default_rng(22), np.random.default_rng(22)
    fill_normal_f32(g1, a)
    fill_normal_f32_numpy(g2, b)
    assert np.array_equal(a, b)
    assert g1.standard_normal(dtype=np.float32) == g2.standard_normal(dtype=np.float32)


@pytest.mark.parametrize("name", ACTS)
def test_tail_count_equals_twin_and_argmax_of_the_activation(name):
    """The fused output-layer kernel (activation, argmax, count) against its twin and against
    ``np.argmax`` of the clean activation kernel's output, with rows holding ties (first
    largest wins), a NaN (the first NaN wins, as in ``np.argmax``) and saturated sigmoids."""
    rng = np.random.default_rng(12)
    Z = rng.normal(size=(40, 4))
    Z[0] = [1.0, 3.0, 3.0, 0.0]          # tie: index 1
    Z[1] = [0.5, np.nan, 2.0, np.nan]    # NaN: index 1
    Z[2] = [np.nan, 1.0, 2.0, 0.0]       # NaN first: index 0
    Z[3] = [50.0, 60.0, 0.0, 0.0]        # sigmoid rounds both to 1.0: index 0 then
    desc = _desc(name, K.POS_CLEAN)
    act = np.empty_like(Z)
    e = np.empty((0, 0))
    K.noisy_activation_serial(Z, desc, np.zeros(4), e, e, e, e, act)
    want = np.argmax(act, axis=1)
    for labels in (want, rng.integers(0, 4, size=40), (want + 1) % 4):
        n = int(np.count_nonzero(want == labels))
        assert K.tail_count(Z, desc, labels) == n
        assert K.tail_count_numpy(Z, desc, labels) == n
