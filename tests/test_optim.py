"""Hand-written SGD, Adagrad and Adam: update formulas, state handling, masks, bad input.

The bit-for-bit comparison with torch.optim is in test_torch_crosscheck_reg_optim.py; here the
expected values come from the published update rules evaluated by hand in the test.
"""
import contextlib
import math

import numpy as np
import pytest

from refnet import _optim_kernels
from refnet.optim import (SGD, Adagrad, Adam, get_optimizer, optimizer_from_dict, pack,
                         packed_step)

ALL = [SGD(lr=0.1), SGD(lr=0.1, momentum=0.9, dampening=0.1, weight_decay=0.01),
       SGD(lr=0.1, momentum=0.9, nesterov=True), Adagrad(), Adagrad(lr=0.1, lr_decay=0.01,
       weight_decay=0.02, initial_accumulator_value=0.1), Adam(), Adam(weight_decay=0.1,
       amsgrad=True), Adam(weight_decay=0.1, decoupled_weight_decay=True)]


def _arrays(rng, dtype=np.float64):
    return [rng.normal(size=(3, 2)).astype(dtype), rng.normal(size=(3,)).astype(dtype)]


def test_sgd_two_steps_by_hand():
    p, g1, g2 = np.array([1.0, -2.0]), np.array([0.5, 0.25]), np.array([-1.0, 2.0])
    opt = SGD(lr=0.1, momentum=0.9, dampening=0.5, weight_decay=0.01)
    state = opt.init([p])
    (p1,), state = opt.step([p], [g1], state)
    d1 = g1 + 0.01 * p                       # buffer = first decayed gradient, no dampening
    np.testing.assert_allclose(p1, p - 0.1 * d1, rtol=1e-15)
    (p2,), state = opt.step([p1], [g2], state)
    b2 = 0.9 * d1 + 0.5 * (g2 + 0.01 * p1)
    np.testing.assert_allclose(p2, p1 - 0.1 * b2, rtol=1e-15)
    np.testing.assert_allclose(state["momentum_buffer.0"], b2, rtol=1e-15)
    assert state["step"].tolist() == [2]


def test_sgd_nesterov_by_hand():
    p, g = np.array([1.0]), np.array([0.5])
    opt = SGD(lr=0.1, momentum=0.9, nesterov=True)
    (p1,), s = opt.step([p], [g], opt.init([p]))
    np.testing.assert_allclose(p1, p - 0.1 * (g + 0.9 * g), rtol=1e-15)
    (p2,), s = opt.step([p1], [g], s)
    b = 0.9 * g + g
    np.testing.assert_allclose(p2, p1 - 0.1 * (g + 0.9 * b), rtol=1e-15)


def test_adagrad_steps_by_hand():
    p, g = np.array([1.0, -2.0]), np.array([0.5, -0.25])
    opt = Adagrad(lr=0.1, lr_decay=0.5, initial_accumulator_value=0.2, eps=1e-3)
    (p1,), s = opt.step([p], [g], opt.init([p]))
    acc = 0.2 + g ** 2
    np.testing.assert_allclose(p1, p - 0.1 * g / (np.sqrt(acc) + 1e-3), rtol=1e-15)
    (p2,), s = opt.step([p1], [g], s)
    acc = acc + g ** 2
    clr = 0.1 / (1 + 1 * 0.5)  # lr / (1 + (t - 1) lr_decay) at t = 2
    np.testing.assert_allclose(p2, p1 - clr * g / (np.sqrt(acc) + 1e-3), rtol=1e-15)
    np.testing.assert_allclose(s["sum.0"], acc, rtol=1e-15)


def test_adam_first_step_is_lr_times_sign():
    """At t = 1 the bias corrections cancel: p - lr g / (|g| + eps)."""
    p, g = np.array([1.0, -2.0, 3.0]), np.array([0.5, -0.25, 4.0])
    opt = Adam(lr=0.01, eps=1e-8)
    (p1,), s = opt.step([p], [g], opt.init([p]))
    np.testing.assert_allclose(p1, p - 0.01 * g / (np.abs(g) + 1e-8), rtol=1e-14)


def test_adam_second_step_by_hand():
    p, g1, g2 = np.array([0.5]), np.array([0.2]), np.array([-0.4])
    b1, b2, lr, eps = 0.8, 0.99, 0.05, 1e-6
    opt = Adam(lr=lr, betas=(b1, b2), eps=eps)
    (q,), s = opt.step([p], [g1], opt.init([p]))
    (q2,), s = opt.step([q], [g2], s)
    m = b1 * (1 - b1) * g1 + (1 - b1) * g2
    v = b2 * (1 - b2) * g1 ** 2 + (1 - b2) * g2 ** 2
    expect = q - lr / (1 - b1 ** 2) * m / (np.sqrt(v) / math.sqrt(1 - b2 ** 2) + eps)
    np.testing.assert_allclose(q2, expect, rtol=1e-14)


def test_adam_amsgrad_uses_running_max():
    p = np.array([0.5])
    opt = Adam(lr=0.1, amsgrad=True)
    s = opt.init([p])
    (p,), s = opt.step([p], [np.array([10.0])], s)
    v_big = s["exp_avg_sq.0"].copy()
    (p,), s = opt.step([p], [np.array([0.0])], s)
    np.testing.assert_array_equal(s["max_exp_avg_sq.0"], v_big)
    assert s["exp_avg_sq.0"][0] < v_big[0]


def test_decoupled_weight_decay_shrinks_parameter_first():
    p = np.array([2.0])
    opt = Adam(lr=0.1, weight_decay=0.5, decoupled_weight_decay=True)
    (p1,), _ = opt.step([p], [np.array([0.0])], opt.init([p]))
    np.testing.assert_allclose(p1, p * (1 - 0.1 * 0.5), rtol=1e-15)


@pytest.mark.parametrize("opt", ALL, ids=repr)
def test_inputs_not_modified_and_state_is_plain_arrays(opt, rng, tmp_path):
    arrays, grads = _arrays(rng), _arrays(rng)
    a_copy, g_copy = [a.copy() for a in arrays], [g.copy() for g in grads]
    state = opt.init(arrays)
    s_copy = {k: v.copy() for k, v in state.items()}
    new, new_state = opt.step(arrays, grads, state)
    for x, y in zip(arrays + grads, a_copy + g_copy):
        np.testing.assert_array_equal(x, y)
    for k in state:
        np.testing.assert_array_equal(state[k], s_copy[k])
    assert all(not np.shares_memory(n, a) for n, a in zip(new, arrays))
    # checkpoint through .npz and continue: identical to continuing in memory
    np.savez(tmp_path / "s.npz", **new_state)
    loaded = dict(np.load(tmp_path / "s.npz", allow_pickle=False))
    a1, s1 = opt.step(new, grads, new_state)
    a2, s2 = opt.step(new, grads, loaded)
    for x, y in zip(a1, a2):
        np.testing.assert_array_equal(x, y)
    assert s1.keys() == s2.keys()
    # and the hyperparameters round-trip through their dict
    assert optimizer_from_dict(opt.as_dict()) == opt


@pytest.mark.parametrize("opt", ALL, ids=repr)
def test_trainable_mask_and_none_grad_freeze(opt, rng):
    arrays, grads = _arrays(rng), _arrays(rng)
    state = opt.init(arrays)
    new, s = opt.step(arrays, grads, state, trainable=[True, False])
    assert new[1] is arrays[1]
    assert s["step"].tolist() == [1, 0]
    assert not np.array_equal(new[0], arrays[0])
    new2, s2 = opt.step(arrays, [grads[0], None], state)
    np.testing.assert_array_equal(new2[0], new[0])
    assert new2[1] is arrays[1] and s2["step"].tolist() == [1, 0]
    for k in s:
        np.testing.assert_array_equal(s[k], s2[k])


@pytest.mark.parametrize("opt", ALL, ids=repr)
def test_float32_stays_float32(opt, rng):
    arrays = _arrays(rng, np.float32)
    state = opt.init(arrays)
    for _ in range(3):
        arrays, state = opt.step(arrays, _arrays(rng, np.float32), state)
    assert all(a.dtype == np.float32 for a in arrays)
    assert all(v.dtype == np.float32 for k, v in state.items() if k != "step")


@pytest.mark.parametrize("opt", [SGD(lr=0.1), SGD(lr=0.05, momentum=0.9), Adagrad(lr=0.5),
                                 Adam(lr=0.05)], ids=repr)
def test_minimises_a_quadratic(opt):
    """f(x) = 0.5 sum a_i x_i^2 falls by at least 100x in 300 steps from x = 1."""
    a = np.array([1.0, 3.0, 0.5])
    x = [np.ones(3)]
    s = opt.init(x)
    for _ in range(300):
        x, s = opt.step(x, [a * x[0]], s)
    assert 0.5 * np.sum(a * x[0] ** 2) < 0.01 * 0.5 * np.sum(a)


# --- bad input -------------------------------------------------------------------------------
@pytest.mark.parametrize("make, word", [
    (lambda: get_optimizer("rmsprop"), "name"),
    (lambda: get_optimizer("adam", momentum=0.9), "momentum"),
    (lambda: SGD(lr=-1.0), "lr"),
    (lambda: SGD(lr=0.1, nesterov=True), "nesterov"),
    (lambda: SGD(lr=0.1, momentum=float("nan")), "momentum"),
    (lambda: Adagrad(lr_decay=-0.1), "lr_decay"),
    (lambda: Adagrad(initial_accumulator_value=-1.0), "initial_accumulator_value"),
    (lambda: Adam(betas=(0.9, 1.0)), "betas"),
    (lambda: Adam(eps=-1e-8), "eps"),
])
def test_bad_hyperparameters_name_the_argument(make, word):
    with pytest.raises(ValueError, match=word):
        make()


def test_bad_state_or_grads_name_the_argument(rng):
    arrays = _arrays(rng)
    opt = Adam()
    state = opt.init(arrays)
    with pytest.raises(ValueError, match="grads"):
        opt.step(arrays, arrays[:1], state)
    with pytest.raises(ValueError, match="grads"):
        opt.step(arrays, [arrays[0].T, arrays[1]], state)
    with pytest.raises(ValueError, match="state"):
        opt.step(arrays, arrays, SGD(lr=0.1, momentum=0.9).init(arrays))
    with pytest.raises(ValueError, match="state"):
        opt.step(arrays, arrays, {**state, "exp_avg.0": np.zeros(2)})
    with pytest.raises(ValueError, match="trainable"):
        opt.step(arrays, arrays, state, trainable=[True])


def test_get_optimizer_defaults_match_torch_defaults():
    assert get_optimizer("SGD") == SGD(lr=1e-3)
    assert get_optimizer("adagrad") == Adagrad(lr=1e-2, eps=1e-10)
    assert get_optimizer("adam", lr=0.01) == Adam(lr=0.01, betas=(0.9, 0.999), eps=1e-8)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_adagrad_kernel_equals_its_numpy_twin(dtype):
    from refnet._optim_kernels import adagrad_update, adagrad_update_numpy

    rng = np.random.default_rng(4)
    p, g = rng.normal(size=(37, 53)).astype(dtype), rng.normal(size=(37, 53)).astype(dtype)
    s = np.abs(rng.normal(size=(37, 53))).astype(dtype)
    out1 = np.empty_like(p), np.empty_like(p)
    out2 = np.empty_like(p), np.empty_like(p)
    adagrad_update(p, g, s, 0.03, 1e-10, *out1)
    adagrad_update_numpy(p, g, s, 0.03, 1e-10, *out2)
    np.testing.assert_array_equal(out1[0], out2[0])
    np.testing.assert_array_equal(out1[1], out2[1])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_parallel_adagrad_build_writes_the_serial_bits(dtype):
    """Inside fixed_blas_threads (training) the update runs on numba's threads: the same
    bits as the serial build and the NumPy twin, on arrays long enough to be split."""
    from refnet import _optim_kernels as K
    from refnet._blas import fixed_blas_threads

    rng = np.random.default_rng(7)
    p, g = rng.normal(size=(301, 257)).astype(dtype), rng.normal(size=(301, 257)).astype(dtype)
    s = np.abs(rng.normal(size=(301, 257))).astype(dtype)
    serial, parallel = (p.copy(), s.copy()), (p.copy(), s.copy())
    K.adagrad_update_inplace(*serial[:1], g, serial[1], 0.03, 1e-10)
    with fixed_blas_threads():
        K.adagrad_update_inplace(*parallel[:1], g, parallel[1], 0.03, 1e-10)
    twin = np.empty_like(p), np.empty_like(p)
    K.adagrad_update_numpy(p, g, s, 0.03, 1e-10, *twin)
    if K._numba.HAVE_NUMBA:
        assert K._adagrad_inplace.signatures and K._adagrad_inplace_serial.signatures
    for a, b, c in zip(serial, parallel, twin):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)


def test_adagrad_non_contiguous_arrays_take_the_numpy_path():
    rng = np.random.default_rng(5)
    p = rng.normal(size=(6, 4))
    g = rng.normal(size=(4, 6)).T  # Fortran-ordered view
    opt = Adagrad(lr=0.1)
    (q,), st = opt.step([p], [g], opt.init([p]))
    np.testing.assert_allclose(q, p - 0.1 * g / (np.abs(g) + 1e-10), rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("opt", ALL, ids=lambda o: repr(o))
def test_step_inplace_writes_the_bits_of_step(opt, dtype):
    rng = np.random.default_rng(6)
    arrays = _arrays(rng, dtype)
    grads = [[rng.normal(size=a.shape).astype(dtype) for a in arrays] for _ in range(3)]
    grads[1][1] = grads[1][1][::-1]   # a non-contiguous gradient takes the generic copy-back
    state = opt.init(arrays)
    mine, my_state = [a.copy() for a in arrays], {k: v.copy() for k, v in state.items()}
    buffers = [id(a) for a in mine] + [id(v) for v in my_state.values()]
    for g in grads:
        arrays, state = opt.step(arrays, g, state, trainable=[True, True])
        # Adagrad counts in its kernel or its NumPy twin; Adam only in its kernel (numba)
        numba = _optim_kernels._numba.HAVE_NUMBA
        fused = isinstance(opt, Adagrad) or isinstance(opt, Adam) and not opt.amsgrad and numba
        counted = fused and opt.weight_decay == 0 and all(
            x.flags.c_contiguous for x in g)   # only the fused kernels count
        assert opt.step_inplace(mine, g, my_state, trainable=[True, True]) == (
            0 if counted else None)
    assert [id(a) for a in mine] + [id(v) for v in my_state.values()] == buffers
    for a, b in zip(mine, arrays):
        assert a.dtype == dtype
        np.testing.assert_array_equal(a, b)
    assert set(my_state) == set(state)
    for k in state:
        np.testing.assert_array_equal(my_state[k], state[k], err_msg=k)


def test_step_inplace_leaves_frozen_arrays_alone():
    rng = np.random.default_rng(7)
    arrays = _arrays(rng)
    before = [a.copy() for a in arrays]
    opt = Adagrad(lr=0.1)
    state = opt.init(arrays)
    opt.step_inplace(arrays, [rng.normal(size=a.shape) for a in arrays], state, [True, False])
    assert not np.array_equal(arrays[0], before[0])
    np.testing.assert_array_equal(arrays[1], before[1])
    assert list(state["step"]) == [1, 0]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("numba_off", [False, True])
def test_adagrad_step_inplace_counts_values_beyond_the_limit(dtype, numba_off, monkeypatch):
    """The fused update returns how many updated values lie outside +-limit (the trainer's
    divergence check): by default the non-finite ones (a NaN gradient, an infinite one, a
    finite step that overflows), with a limit also large finite ones; counted alike by the
    parallel and serial kernels and the NumPy path without numba."""
    from refnet import _optim_kernels as K
    from refnet._blas import fixed_blas_threads

    if numba_off:
        monkeypatch.setattr(K._numba, "HAVE_NUMBA", False)
        monkeypatch.setattr(K._numba, "_warned", True)
    big = np.finfo(dtype).max
    p = np.array([[1.0, 2.0, big], [3.0, 4.0, 5.0]], dtype=dtype)
    g = np.array([[np.nan, np.inf, -1.0], [0.5, 0.0, -0.5]], dtype=dtype)
    for limit, want_count in ((math.inf, 3), (10.0, 5)):
        want = None
        for parallel in (False, True):
            arrays, opt = [p.copy()], Adagrad(lr=big)    # big - (-1 -> +big) overflows
            state = opt.init(arrays)
            with (fixed_blas_threads() if parallel else contextlib.nullcontext()):
                with np.errstate(all="ignore"):
                    n = opt.step_inplace(arrays, [g], state, limit=limit)
            assert n == np.count_nonzero(~(np.abs(arrays[0]) <= min(limit, big))) == want_count, (
                parallel, limit, arrays[0])
            want = arrays[0] if want is None else want
            np.testing.assert_array_equal(arrays[0], want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adam_fused_update_counts_and_matches_on_both_builds(dtype):
    """Adam's fused kernel (the plain case) counts the non-finite and the large updated values
    like Adagrad's, with the same bits from its serial and parallel builds; without numba (or
    for AMSGrad) the generic path counts nothing (None)."""
    from refnet import _optim_kernels as K
    from refnet._blas import fixed_blas_threads

    if not K._numba.HAVE_NUMBA:
        pytest.skip("no numba: Adam's in-place step is the generic path, which does not count")

    p = np.array([[1.0, 2.0, 3.0], [3.0, 4.0, 5.0]], dtype=dtype)
    g = np.array([[np.nan, np.inf, -1.0], [0.5, 0.0, -0.5]], dtype=dtype)
    results = []
    for parallel in (False, True):
        arrays, opt = [p.copy()], Adam(lr=10.0)
        state = opt.init(arrays)
        with (fixed_blas_threads() if parallel else contextlib.nullcontext()):
            with np.errstate(invalid="ignore"):
                n = opt.step_inplace(arrays, [g], state, limit=5.5)
        assert n == np.count_nonzero(~(np.abs(arrays[0]) <= 5.5)) >= 2, (parallel, arrays[0])
        results.append(arrays[0])
    np.testing.assert_array_equal(results[0], results[1])
    arrays, opt = [p.copy()], Adam(lr=10.0, amsgrad=True)
    with np.errstate(invalid="ignore"):
        assert opt.step_inplace(arrays, [g], opt.init(arrays)) is None


def test_pack_copies_into_one_buffer_with_views_of_each_shape():
    rng = np.random.default_rng(11)
    arrays = [rng.normal(size=(3, 2)), rng.normal(size=(4,)), rng.normal(size=(2, 5)).T]
    flat, views = pack(arrays)
    assert flat.shape == (6 + 4 + 10,) and flat.flags.c_contiguous
    for a, v in zip(arrays, views):
        assert v.shape == a.shape and v.flags.c_contiguous and np.shares_memory(v, flat)
        np.testing.assert_array_equal(v, a)
    views[2][...] = 7.0                       # a view writes the flat buffer, not the array
    assert np.all(flat[10:] == 7.0) and not np.any(arrays[2] == 7.0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("opt", ALL, ids=lambda o: repr(o))
@pytest.mark.parametrize("trainable", [[True, True, True, True], [True, False, True, False]])
def test_packed_step_gives_the_bits_of_step_inplace(opt, dtype, trainable):
    """One update of the packed arrays gives, array for array, the numbers and state of
    updating them one by one; frozen arrays and their state are left alone."""
    rng = np.random.default_rng(12)
    arrays = _arrays(rng, dtype) + _arrays(rng, dtype)
    state = opt.init(arrays)
    mine, my_state = [a.copy() for a in arrays], {k: v.copy() for k, v in state.items()}
    frozen_before = [a.copy() for a, t in zip(arrays, trainable) if not t]
    grads, step = packed_step(opt, mine, my_state, trainable)
    assert step is not None and [g.shape for g in grads] == [a.shape for a in arrays]
    for i in range(3):
        g = [rng.normal(size=a.shape).astype(dtype) for a in arrays]
        if i == 1:   # a gradient computed elsewhere (not into the buffers) is copied in
            got = step(g, math.inf)
        else:
            for buffer, gk in zip(grads, g):
                buffer[...] = gk
            got = step(grads, math.inf)
        expected = opt.step_inplace(arrays, g, state, trainable)
        assert got == expected
    for a, b in zip(mine, arrays):
        assert a.dtype == dtype
        np.testing.assert_array_equal(a, b)
    for a, before in zip([a for a, t in zip(mine, trainable) if not t], frozen_before):
        np.testing.assert_array_equal(a, before)
    assert set(my_state) == set(state)
    for k in state:
        np.testing.assert_array_equal(my_state[k], state[k], err_msg=k)


def test_packed_step_counts_values_beyond_the_limit_as_step_inplace():
    opt = Adagrad(lr=1.0)
    arrays = [np.array([[1.0, 2.0]]), np.array([50.0])]
    state = opt.init(arrays)
    grads, step = packed_step(opt, arrays, state, [True, True])
    for buffer in grads:
        buffer[...] = 1.0
    assert step(grads, 5.0) == 1                # 50 - 1 is beyond +-5, 1 - 1 and 2 - 1 are not


def test_packed_step_declines_a_state_whose_step_counts_differ():
    rng = np.random.default_rng(13)
    arrays = _arrays(rng)
    opt = Adam()
    state = opt.init(arrays)
    state["step"][:] = [3, 2]
    grads, step = packed_step(opt, arrays, state, [True, True])
    assert step is None and [g.shape for g in grads] == [a.shape for a in arrays]
